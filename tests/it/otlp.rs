//! otlp-traces against receivers that decode what periscope sends: a
//! capture server here (the same OpenTelemetry protobuf types), periscope's
//! mock (its own counts and arrival stamps), and Arize Phoenix (its REST API).

use std::collections::{BTreeMap, HashMap};
use std::io::Read as _;
use std::sync::{Arc, Mutex};

use crate::common::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::Value;

/// One trace as it arrived.
#[derive(Debug, Clone)]
pub(crate) struct Got {
    scenario: String,
    pub(crate) spans: Vec<Span>,
    /// Encoded bytes (after gunzip).
    bytes: usize,
}

/// A server on a free loopback port that answers every request with
/// `handler`; its address.
pub(crate) async fn serve<F, Fut>(handler: F) -> std::net::SocketAddr
where
    F: Fn(hyper::Request<hyper::body::Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = bytes::Bytes> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let handler = handler.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let answer = handler(req);
                    async move {
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(
                            http_body_util::Full::new(answer.await),
                        ))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

/// A plain OTLP/HTTP receiver: gunzips and decodes every export.
pub(crate) async fn capture() -> (String, Arc<Mutex<Vec<Got>>>) {
    use http_body_util::BodyExt;
    let got: Arc<Mutex<Vec<Got>>> = Arc::default();
    let store = got.clone();
    let addr = serve(move |req: hyper::Request<hyper::body::Incoming>| {
        let store = store.clone();
        async move {
            let gz = req
                .headers()
                .get("content-encoding")
                .map(|v| v.as_bytes() == b"gzip");
            assert_eq!(gz, Some(true), "exports are gzip-compressed");
            assert_eq!(
                req.headers().get("content-type").unwrap(),
                "application/x-protobuf"
            );
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let mut raw = Vec::new();
            flate2::read::GzDecoder::new(&body[..])
                .read_to_end(&mut raw)
                .unwrap();
            let export = ExportTraceServiceRequest::decode(raw.as_slice()).unwrap();
            let spans: Vec<Span> = export
                .resource_spans
                .iter()
                .flat_map(|r| r.scope_spans.iter().flat_map(|s| s.spans.clone()))
                .collect();
            if !spans.is_empty() {
                let scenario = attr(&spans[0], "periscope.scenario").unwrap_or_default();
                store.lock().unwrap().push(Got {
                    scenario,
                    spans,
                    bytes: raw.len(),
                });
            }
            bytes::Bytes::new()
        }
    })
    .await;
    (format!("http://{addr}/v1/traces"), got)
}

fn attr(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            Any::StringValue(s) => Some(s.clone()),
            Any::IntValue(i) => Some(i.to_string()),
            _ => Some(String::new()),
        })
}

/// Levels of a trace's tree (the root is level 1).
fn depth(spans: &[Span]) -> usize {
    let parent: HashMap<&[u8], &[u8]> = spans
        .iter()
        .map(|s| (s.span_id.as_slice(), s.parent_span_id.as_slice()))
        .collect();
    spans
        .iter()
        .map(|s| {
            let mut d = 1;
            let mut p = s.parent_span_id.as_slice();
            while !p.is_empty() {
                d += 1;
                p = parent.get(p).copied().unwrap_or(&[]);
            }
            d
        })
        .max()
        .unwrap_or(0)
}

/// `periscope run otlp-traces --endpoint URL ARGS… --json`: it succeeds;
/// its output and result.
pub(crate) async fn otlp_run(url: &str, args: &[&str]) -> (std::process::Output, Value) {
    let dir = tempfile::tempdir().unwrap();
    let json = temp_json(&dir, "r.json");
    let mut a = s(&["run", "otlp-traces", "--endpoint", url]);
    a.extend(s(args));
    a.extend(s(&["--json", &json]));
    let out = periscope_async(a).await;
    assert!(out.status.success(), "{}", stderr(&out));
    (out, read_json(&json))
}

/// (spans, depth, target bytes, share of the default mix) of a scenario.
type Shape = ((usize, usize), (usize, usize), f64, f64);

#[tokio::test(flavor = "multi_thread")]
async fn each_scenario_arrives_with_its_spans_depth_size_and_genai_attributes() {
    let (url, got) = capture().await;
    let (out, r) = otlp_run(
        &url,
        &["--vus", "4", "--iterations", "1000", "--duration", "5m"],
    )
    .await;
    let got = got.lock().unwrap().clone();
    assert_eq!(got.len(), 1000);
    // (spans, depth, target bytes) of each scenario.
    let shapes: BTreeMap<&str, Shape> = [
        ("simple_query", ((5, 5), (2, 3), 35e3, 0.40)),
        ("single_service_search", ((11, 13), (3, 4), 270e3, 0.30)),
        ("delegated_booking", ((23, 27), (4, 5), 470e3, 0.20)),
        ("multi_service_complex", ((72, 88), (5, 8), 2.3e6, 0.10)),
    ]
    .into();
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for t in &got {
        let (spans, levels, bytes, _) = shapes[t.scenario.as_str()];
        *count
            .entry(shapes.get_key_value(t.scenario.as_str()).unwrap().0)
            .or_default() += 1;
        let n = t.spans.len();
        assert!(
            (spans.0..=spans.1).contains(&n),
            "{}: {n} spans",
            t.scenario
        );
        let d = depth(&t.spans);
        assert!(
            (levels.0..=levels.1).contains(&d),
            "{}: depth {d}",
            t.scenario
        );
        let off = t.bytes as f64 / bytes - 1.0;
        assert!(
            off.abs() <= 0.15,
            "{}: {} bytes, {:+.0}% off",
            t.scenario,
            t.bytes,
            off * 100.0
        );
        // One trace id, one root.
        assert!(t.spans.iter().all(|s| s.trace_id == t.spans[0].trace_id));
        assert_eq!(
            t.spans
                .iter()
                .filter(|s| s.parent_span_id.is_empty())
                .count(),
            1
        );
        // The GenAI semantic conventions, by operation.
        for s in &t.spans {
            let op = attr(s, "gen_ai.operation.name");
            let need: &[&str] = match op.as_deref() {
                Some("chat") => &[
                    "gen_ai.request.model",
                    "gen_ai.provider.name",
                    "gen_ai.usage.input_tokens",
                    "gen_ai.usage.output_tokens",
                    "gen_ai.input.messages",
                    "gen_ai.output.messages",
                ],
                Some("execute_tool") => &[
                    "gen_ai.tool.name",
                    "gen_ai.tool.call.id",
                    "gen_ai.tool.call.arguments",
                    "gen_ai.tool.call.result",
                ],
                Some("invoke_agent") => &["gen_ai.agent.name", "gen_ai.conversation.id"],
                // A router's decision: the agent it chose.
                _ if s.name == "route request" => &["router.decision", "gen_ai.conversation.id"],
                // Downstream calls of tools: plain HTTP client spans.
                _ => &["http.request.method", "server.address"],
            };
            for k in need {
                assert!(
                    attr(s, k).is_some(),
                    "{} span {:?} lacks {k}",
                    t.scenario,
                    s.name
                );
            }
        }
        let ops: Vec<String> = t
            .spans
            .iter()
            .filter_map(|s| attr(s, "gen_ai.operation.name"))
            .collect();
        assert!(
            ops.iter().any(|o| o == "invoke_agent"),
            "{}: no agent",
            t.scenario
        );
        assert!(
            ops.iter().any(|o| o == "chat"),
            "{}: no model call",
            t.scenario
        );
    }
    // The mix, within 4.5 standard deviations of each share.
    for (name, (_, _, _, share)) in &shapes {
        let n = *count.get(name).unwrap_or(&0) as f64;
        let sd = (1000.0 * share * (1.0 - share)).sqrt();
        assert!((n - 1000.0 * share).abs() < 4.5 * sd, "{name}: {n} of 1000");
    }
    // The result says what arrived.
    let o = &r["otlp"];
    let spans: usize = got.iter().map(|t| t.spans.len()).sum();
    let bytes: usize = got.iter().map(|t| t.bytes).sum();
    assert_eq!(o["traces"], 1000);
    assert_eq!(o["spans_accepted"], spans);
    assert_eq!(o["payload_bytes"], bytes);
    let mix = o["mix"].as_array().unwrap();
    for row in mix {
        let name = row["scenario"].as_str().unwrap();
        assert_eq!(row["traces"], count[name], "{row}");
    }
    // The report ends with the mix table and the data volume (then the
    // definitions' footnote).
    let text = stdout(&out);
    let tail = text.rsplit("### Trace mix").next().unwrap();
    let volume = format!("**Data volume: {:.2} MB** encoded", bytes as f64 / 1e6);
    assert!(tail.contains(&volume), "{tail}");
    let after: Vec<&str> = tail
        .split(&volume)
        .nth(1)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(after.len(), 2, "{tail}");
    assert!(after[1].starts_with("<sub>Definitions"), "{tail}");
    for row in mix {
        let name = row["scenario"].as_str().unwrap();
        assert!(tail.contains(&format!("| {name} ")), "{tail}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn mb_per_s_holds_the_byte_rate_by_the_receivers_stamps() {
    let mock = MockProc::start(&[]);
    let (_, r) = otlp_run(
        &mock.url("/v1/traces"),
        &["--mb-per-s", "1", "--duration", "20s", "--no-preflight"],
    )
    .await;
    let st = mock.stats().await;
    let o = &st["otlp"];
    // Arrival k is due when the bytes before it are sent at the rate: from
    // the first arrival to the last, all bytes but the last export's.
    let bytes = o["payload_bytes"].as_f64().unwrap() - o["last_payload_bytes"].as_f64().unwrap();
    let secs = o["arrival_span_us"].as_f64().unwrap() / 1e6;
    let rate = bytes / secs / 1e6;
    assert!((rate - 1.0).abs() <= 0.05, "{rate:.3} MB/s over {secs:.1}s");
    assert!(secs > 15.0, "{secs}");
    // periscope's figures are the receiver's.
    assert_eq!(r["otlp"]["payload_bytes"], o["payload_bytes"]);
    assert_eq!(r["otlp"]["spans_accepted"], o["spans"]);
    assert_eq!(r["otlp"]["traces"], o["exports"]);
    // The generator kept the byte rate by its own account too (its
    // schedule lag is this machine's load: other tests run beside it).
    let short = r["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w.as_str().unwrap().contains("requested"))
        .count();
    assert_eq!(short, 0, "{}", r["warnings"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_exports_and_partial_successes_are_counted_not_crashed_on() {
    let mock = MockProc::start(&[
        "--error-rate",
        "0.2",
        "--error-status",
        "503",
        "--otlp-reject-rate",
        "0.1",
    ]);
    let (out, r) = otlp_run(
        &mock.url("/v1/traces"),
        &[
            "--mix",
            "simple_query:3,small:1",
            "--vus",
            "2",
            "--iterations",
            "300",
            "--duration",
            "2m",
            "--no-preflight",
        ],
    )
    .await;
    let st = mock.stats().await;
    let o = &r["otlp"];
    assert_eq!(o["failed_exports"], st["by_status"]["503"], "{st}");
    assert!(o["failed_exports"].as_u64().unwrap() > 20, "{o}");
    assert_eq!(o["rejected_spans"], st["otlp"]["rejected_spans"]);
    assert!(o["rejected_spans"].as_u64().unwrap() > 0);
    let received = st["otlp"]["spans"].as_u64().unwrap();
    let rejected = st["otlp"]["rejected_spans"].as_u64().unwrap();
    assert_eq!(o["spans_accepted"], received - rejected);
    assert_eq!(r["summary"]["requests"], 300);
    let text = stdout(&out);
    assert!(text.contains("### Errors"), "{text}");
    assert!(
        text.contains("small") && text.contains("simple_query"),
        "{text}"
    );
}

/// `00-TRACEID-SPANID-01` of a span, as the target should have received it.
fn traceparent_of(span: &Span) -> String {
    format!("00-{}-{}-01", hex(&span.trace_id), hex(&span.span_id))
}

/// The `traceparent` headers a mock received.
pub(crate) async fn received_traceparents(mock: &MockProc) -> Vec<String> {
    let v = get_json(&mock.url("/mock/traceparents")).await;
    assert_eq!(
        v["received"].as_u64().unwrap() as usize,
        v["recent"].as_array().unwrap().len()
    );
    v["recent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn trace_requests_export_one_client_span_per_request_with_the_traceparent_the_target_got() {
    let (traces_url, got) = capture().await;
    let mock = MockProc::start(&[
        "--ttft",
        "30ms",
        "--itl",
        "2ms",
        "--error-rate",
        "0.2",
        "--error-status",
        "503",
    ]);
    let (out, r) = run_ok(&[
        "run",
        "completions",
        "--target",
        &mock.base(),
        "--model",
        "m-traced",
        "--vus",
        "4",
        "--iterations",
        "80",
        "--max-tokens",
        "8",
        "--no-preflight",
        "--trace-requests",
        // No path: /v1/traces is added, as OTLP exporters do.
        traces_url.trim_end_matches("/v1/traces"),
    ])
    .await;
    let spans: Vec<Span> = got
        .lock()
        .unwrap()
        .iter()
        .flat_map(|g| g.spans.clone())
        .collect();
    let sum = &r["summary"];
    assert_eq!(sum["requests"], 80);
    assert_eq!(spans.len(), 80, "one span per request");
    // The traceparent of every span is one the target received, and back.
    let mut sent: Vec<String> = spans.iter().map(traceparent_of).collect();
    let mut received = received_traceparents(&mock).await;
    sent.sort();
    received.sort();
    assert_eq!(sent, received);
    let errors: Vec<&Span> = spans
        .iter()
        .filter(|s| s.status.as_ref().is_some_and(|st| st.code == 2))
        .collect();
    assert_eq!(errors.len() as u64, sum["errors"].as_u64().unwrap());
    assert!(!errors.is_empty(), "the mock's 503s are error spans");
    for e in &errors {
        assert_eq!(attr(e, "error.type").as_deref(), Some("http_5xx"));
        assert_eq!(attr(e, "http.response.status_code").as_deref(), Some("503"));
        assert!(e.events.is_empty());
    }
    let mut ttft_event_ms = Vec::new();
    for sp in spans
        .iter()
        .filter(|s| s.status.as_ref().is_none_or(|st| st.code != 2))
    {
        assert_eq!(sp.name, "chat m-traced");
        assert_eq!(sp.kind, 3, "client span");
        assert!(sp.parent_span_id.is_empty());
        assert_eq!(attr(sp, "gen_ai.operation.name").as_deref(), Some("chat"));
        assert_eq!(
            attr(sp, "gen_ai.request.model").as_deref(),
            Some("m-traced")
        );
        assert_eq!(attr(sp, "gen_ai.usage.output_tokens").as_deref(), Some("8"));
        assert!(attr(sp, "gen_ai.usage.input_tokens").is_some());
        assert_eq!(
            attr(sp, "periscope.run_id"),
            r["run_id"].as_str().map(String::from)
        );
        assert_eq!(sp.events.len(), 1, "{sp:?}");
        assert_eq!(sp.events[0].name, "gen_ai.content.first_token");
        ttft_event_ms.push((sp.events[0].time_unix_nano - sp.start_time_unix_nano) as f64 / 1e6);
        assert!(sp.end_time_unix_nano > sp.events[0].time_unix_nano);
    }
    // The first-token events say what the report says.
    ttft_event_ms.sort_by(f64::total_cmp);
    let p50 = ttft_event_ms[(ttft_event_ms.len() - 1) / 2];
    let reported = f(&latency(&r, "ttft")["p50"]);
    assert!(
        (p50 - reported).abs() < 1.0,
        "events p50 {p50} ms, report {reported} ms"
    );
    // Spans are counted among the outputs: all written.
    let o = &r["outputs"][0];
    assert!(
        o["label"]
            .as_str()
            .unwrap()
            .starts_with("trace-requests=http://127.0.0.1:"),
        "{o}"
    );
    assert_eq!(o["written"], 80);
    assert_eq!(o["dropped"], 0);
    assert!(stdout(&out).contains("80 spans written, 0 dropped"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_absent_trace_backend_costs_spans_not_the_run() {
    let mock = MockProc::start(&[]);
    let dead = format!("http://127.0.0.1:{}", free_port());
    let (out, r) = run_ok(&[
        "run",
        "embeddings",
        "--target",
        &mock.base(),
        "--vus",
        "2",
        "--iterations",
        "20",
        "--trace-requests",
        &dead,
    ])
    .await;
    assert_eq!(r["summary"]["ok"], 20);
    let o = &r["outputs"][0];
    assert_eq!(o["written"], 0, "{o}");
    assert_eq!(o["dropped"], 20, "{o}");
    let err = stderr(&out);
    assert_eq!(err.matches("warning: trace-requests=").count(), 1, "{err}");
    // The target still got every traceparent.
    assert_eq!(received_traceparents(&mock).await.len(), 20);
}

#[test]
fn dry_run_plans_traces_spans_and_megabytes_per_second_and_bad_input_says_what_to_fix() {
    let out = periscope(&[
        "run",
        "otlp-traces",
        "--endpoint",
        "http://127.0.0.1:4318",
        "--mb-per-s",
        "1.2",
        "--duration",
        "10s",
        "--dry-run",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let line = text
        .lines()
        .find(|l| l.starts_with("planned traces:"))
        .unwrap();
    assert!(line.contains("1.200 MB/s, 103.7 GB/day"), "{line}");
    assert!(
        text.contains("\"url\": \"http://127.0.0.1:4318/v1/traces\""),
        "{text}"
    );
    for (args, want) in [
        (vec!["--mix", "simple:3"], "unknown trace scenario 'simple'"),
        (vec!["--mb-per-s", "0"], "--mb-per-s must be more than 0"),
        (vec!["--mb-per-s", "1", "--vus", "3"], "drop --vus"),
        (vec!["--endpoint", "4318"], "is not a URL"),
        (vec!["--queries-per-s", "5"], "needs --query-endpoint URL"),
        (
            vec!["--query-endpoint", "http://t:3200"],
            "add --queries-per-s",
        ),
        (
            vec!["--queries-per-s", "5", "--query-endpoint", "tempo"],
            "--query-endpoint 'tempo' is not a URL",
        ),
        (
            vec![
                "--queries-per-s",
                "5",
                "--query-endpoint",
                "http://t",
                "--query",
                "/s?{{svc}}",
            ],
            "unknown placeholder {{svc}}",
        ),
        (
            vec![
                "--queries-per-s",
                "5",
                "--query-endpoint",
                "http://t",
                "--platform",
                "langsmith",
            ],
            "give the backend's query path with --query",
        ),
        (vec!["--trace-requests", "x"], "--trace-requests"),
    ] {
        let mut a = vec!["run", "otlp-traces", "--dry-run"];
        if !args.contains(&"--endpoint") {
            a.extend(["--endpoint", "http://127.0.0.1:4318"]);
        }
        a.extend(args.iter().copied());
        let out = periscope(&a);
        assert_eq!(out.status.code(), Some(1), "{a:?}");
        let err = stderr(&out);
        assert!(
            err.contains(want) && err.lines().count() == 1,
            "{a:?}: {err}"
        );
    }
    let out = periscope(&[
        "run",
        "completions",
        "--mock",
        "--mix",
        "simple_query",
        "--dry-run",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("apply to otlp-traces"));
    // The sizing ladder's query rate: planned with an endpoint, said to be
    // unsent without one.
    for (extra, want) in [
        (
            vec!["--query-endpoint", "http://127.0.0.1:3200"],
            "planned queries: 25 queries/s to http://127.0.0.1:3200, in turn: /api/search?",
        ),
        (
            vec![],
            "planned queries: none: the scenario's 25 queries/s need --query-endpoint",
        ),
    ] {
        let mut a = vec![
            "run",
            "--scenario",
            "otlp-1x-small",
            "--endpoint",
            "http://127.0.0.1:4318",
            "--dry-run",
        ];
        a.extend(extra);
        let out = periscope(&a);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stdout(&out).contains(want), "{}", stdout(&out));
    }
}

#[test]
fn otel_environment_variables_set_the_url_headers_and_service_and_secrets_stay_hidden() {
    let out = std::process::Command::new(BIN)
        .args(["run", "otlp-traces", "--dry-run", "--platform", "langsmith"])
        .env_remove("OPENAI_BASE_URL")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318/otel")
        .env(
            "OTEL_EXPORTER_OTLP_HEADERS",
            "api-key=sk-secret-123,x-team=obs%20team",
        )
        .env("LANGSMITH_API_KEY", "ls-secret-456")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("http://127.0.0.1:4318/otel/v1/traces"),
        "{text}"
    );
    assert!(text.contains("obs team"), "{text}");
    assert!(text.contains("Langsmith-Project"), "{text}");
    assert!(
        !text.contains("sk-secret-123") && !text.contains("ls-secret-456"),
        "{text}"
    );
    assert!(text.contains("<redacted>"), "{text}");
}
