//! `otlp-traces`: load for the trace ingestion of AI-observability backends.
//!
//! Every request exports one synthetic trace over OTLP/HTTP (protobuf, or
//! JSON with `--otlp-json`; gzip on), built with the OpenTelemetry protobuf
//! types. The trace's scenario is drawn from the mix; its encoded size,
//! spans and tokens travel with the request into the record, so the report
//! can say how many bytes and spans the backend took in. With `--mb-per-s`
//! arrivals are paced by bytes: each trace takes the share of the schedule
//! its size asks for, so the byte rate holds whatever the mix draws.

pub mod gen;
pub mod query;
pub mod tracer;

use std::io::Write as _;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use prost::Message;

pub use gen::{Dress, Generator, Kind, Platform, Trace};

use crate::client::{Expect, Prepared};
use crate::record::{Group, Payload};
use crate::workload::{Session, Turn, Workload};

/// The agent mix of the issue's sizing, as trace-backend operators use it.
pub const DEFAULT_MIX: &str =
    "simple_query:40,single_service_search:30,delegated_booking:20,multi_service_complex:10";

/// The OTLP/HTTP traces path.
pub const TRACES_PATH: &str = "/v1/traces";

/// What an `otlp-traces` run sends.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OtlpSpec {
    /// Scenarios and their weights.
    pub mix: Vec<(Kind, u32)>,
    pub platform: Platform,
    /// OTLP/JSON instead of protobuf.
    pub json: bool,
    pub service_name: String,
    pub project: String,
    /// The URL path traces are posted to.
    pub path: String,
    /// Mean encoded bytes of a trace of the mix, measured before the run;
    /// set when arrivals are paced by bytes (`--mb-per-s`).
    pub pace_mean_bytes: Option<f64>,
    /// Trace ids accepted by the backend (the collector keeps them), for
    /// the query load's `{{trace_id}}`.
    #[serde(skip)]
    pub recent: Arc<query::RecentTraces>,
}

impl OtlpSpec {
    /// What every trace of the run is dressed with.
    fn dress(&self) -> Dress {
        Dress {
            platform: self.platform,
            service_name: self.service_name.clone(),
            project: self.project.clone(),
        }
    }
}

/// Parse `simple_query:40,multi_service_complex:10` (a bare name weighs 1).
pub fn parse_mix(s: &str) -> Result<Vec<(Kind, u32)>, String> {
    let names = || {
        Kind::ALL
            .iter()
            .map(|k| k.name())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut mix = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, w) = match part.split_once(':') {
            Some((n, w)) => (
                n,
                w.trim().parse::<u32>().map_err(|_| {
                    format!("--mix: '{part}' needs a whole-number weight, e.g. simple_query:40")
                })?,
            ),
            None => (part, 1),
        };
        let kind = Kind::parse(name).ok_or_else(|| {
            format!(
                "--mix: unknown trace scenario '{name}': expected one of {}",
                names()
            )
        })?;
        if w > 0 {
            mix.push((kind, w));
        }
    }
    if mix.is_empty() {
        return Err(format!(
            "--mix names no scenario with a weight above 0: e.g. {DEFAULT_MIX}"
        ));
    }
    Ok(mix)
}

/// Encode a trace export: (body as sent, payload bytes before compression).
pub fn encode(
    req: &opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest,
    json: bool,
) -> (Bytes, usize) {
    let raw = if json {
        serde_json::to_vec(req).expect("a trace always serializes")
    } else {
        req.encode_to_vec()
    };
    let mut gz = flate2::write::GzEncoder::new(
        Vec::with_capacity(raw.len() / 3),
        flate2::Compression::fast(),
    );
    gz.write_all(&raw).expect("writing to memory");
    let body = gz.finish().expect("writing to memory");
    (Bytes::from(body), raw.len())
}

/// Lowercase hex of an id, as OTLP/JSON and trace APIs write trace ids.
pub fn hex(id: &[u8]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// Nanoseconds since the Unix epoch, now.
pub fn now_unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

pub struct OtlpTraces {
    spec: Arc<OtlpSpec>,
    cumulative: Arc<Vec<(u32, Kind)>>,
    dress: Dress,
}

impl OtlpTraces {
    pub fn new(spec: OtlpSpec) -> Self {
        let mut total = 0;
        let cumulative = spec
            .mix
            .iter()
            .map(|(k, w)| {
                total += w;
                (total, *k)
            })
            .collect();
        let dress = spec.dress();
        OtlpTraces {
            spec: Arc::new(spec),
            cumulative: Arc::new(cumulative),
            dress,
        }
    }

    fn session_seeded(&self, seed: u64) -> OtlpSession {
        OtlpSession {
            spec: self.spec.clone(),
            cumulative: self.cumulative.clone(),
            gen: Generator::new(seed, self.dress.clone()),
            rng: fastrand::Rng::with_seed(seed.rotate_left(17) ^ 0x9e37_79b9),
        }
    }
}

struct OtlpSession {
    spec: Arc<OtlpSpec>,
    cumulative: Arc<Vec<(u32, Kind)>>,
    gen: Generator,
    rng: fastrand::Rng,
}

impl OtlpSession {
    fn pick(&mut self) -> Kind {
        let total = self.cumulative.last().map_or(1, |c| c.0);
        let x = self.rng.u32(0..total);
        let i = self.cumulative.partition_point(|c| c.0 <= x);
        self.cumulative[i.min(self.cumulative.len() - 1)].1
    }
}

fn post(spec: &OtlpSpec, body: Bytes) -> Prepared {
    let mut p = Prepared::post("", body, Expect::Otlp);
    p.path = spec.path.clone().into();
    p
}

impl Session for OtlpSession {
    fn next(&mut self, _turn: Turn) -> Prepared {
        let kind = self.pick();
        let t = self.gen.trace(kind, now_unix_ns());
        let (body, raw) = encode(&t.request, self.spec.json);
        let wire = body.len() as u64;
        let mut p = post(&self.spec, body);
        p.group = Some(Group::TraceScenario(kind.name()));
        p.exported_trace = Some(t.trace_id);
        p.payload = Payload {
            sent_bytes: raw as u64,
            wire_bytes: wire,
            spans: t.spans as u64,
            rejected_spans: 0,
            tokens: t.tokens,
        };
        if let Some(mean) = self.spec.pace_mean_bytes {
            p.weight = raw as f64 / mean.max(1.0);
        }
        p
    }
}

impl Workload for OtlpTraces {
    fn name(&self) -> &'static str {
        "otlp-traces"
    }

    fn session(&self, vu: u64) -> Box<dyn Session> {
        Box::new(self.session_seeded(vu ^ fastrand::u64(..)))
    }

    fn paced_by_weight(&self) -> bool {
        self.spec.pace_mean_bytes.is_some()
    }

    /// An export with no spans: it checks the endpoint and adds no data.
    fn preflight(&self) -> Prepared {
        let empty =
            opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest::default();
        post(&self.spec, encode(&empty, self.spec.json).0)
    }
}

/// Spans an OTLP answer says were rejected (`partial_success`), from its
/// protobuf or JSON body; 0 for an empty or unreadable body.
pub fn rejected_spans(body: &[u8]) -> u64 {
    if body.is_empty() {
        return 0;
    }
    if body.first() == Some(&b'{') {
        let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let r = &v["partialSuccess"]["rejectedSpans"];
        return r
            .as_u64()
            .or_else(|| r.as_str().and_then(|s| s.parse().ok()))
            .unwrap_or(0);
    }
    opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse::decode(body)
        .ok()
        .and_then(|r| r.partial_success)
        .map_or(0, |p| p.rejected_spans.max(0) as u64)
}

/// An otlp-traces run, resolved from flags, scenario file and environment.
pub struct Resolved {
    pub spec: OtlpSpec,
    /// The URL exports go to.
    pub url: String,
    /// Headers every export carries (content type and encoding, the
    /// platform's, `OTEL_EXPORTER_OTLP_HEADERS`).
    pub headers: Vec<(String, String)>,
    /// Traces per second when `--mb-per-s` sets the rate.
    pub rate: Option<f64>,
    /// The query load sent alongside ingestion.
    pub queries: Option<query::QueryPlan>,
    /// What the run is planned to send.
    pub view: OtlpView,
}

/// The otlp-traces part of the plan, for `--dry-run` and the result.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct OtlpView {
    pub url: String,
    pub mix: String,
    pub platform: String,
    pub json: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mb_per_s: Option<f64>,
    /// Mean encoded bytes and spans of a trace of the mix.
    pub mean_trace_bytes: f64,
    pub mean_trace_spans: f64,
    /// The query load, planned or (without an endpoint) not sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queries: Option<QueryView>,
}

/// The query load of the plan.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct QueryView {
    /// Where queries go; none when no query endpoint was given (not sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    pub per_s: f64,
    pub templates: Vec<String>,
}

impl OtlpView {
    /// `planned traces: …` for `--dry-run`, at `rate` traces/s.
    pub fn planned(&self, rate: Option<f64>) -> String {
        let per = format!(
            "mean trace {:.1} KB, {:.1} spans",
            self.mean_trace_bytes / 1e3,
            self.mean_trace_spans
        );
        match rate {
            Some(r) => format!(
                "{:.2} traces/s, {:.1} spans/s, {:.3} MB/s ({per})",
                r,
                r * self.mean_trace_spans,
                r * self.mean_trace_bytes / 1e6
            ),
            None => format!("as fast as the VUs go ({per})"),
        }
    }

    /// `planned queries: …` for `--dry-run`.
    pub fn planned_queries(&self) -> Option<String> {
        let q = self.queries.as_ref()?;
        Some(match &q.endpoint {
            Some(e) => format!(
                "{} queries/s to {e}, in turn: {}",
                q.per_s,
                q.templates.join("; ")
            ),
            None => format!(
                "none: the scenario's {} queries/s need --query-endpoint URL (the backend's query API)",
                q.per_s
            ),
        })
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// `k=v,k2=v2` (values percent-decoded), as `OTEL_EXPORTER_OTLP_HEADERS`.
pub fn parse_otel_headers(s: &str) -> Result<Vec<(String, String)>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').ok_or_else(|| {
                "OTEL_EXPORTER_OTLP_HEADERS: expected key=value pairs separated by commas"
                    .to_string()
            })?;
            let v = percent_encoding::percent_decode_str(v.trim())
                .decode_utf8()
                .map_err(|_| "OTEL_EXPORTER_OTLP_HEADERS: a value is not UTF-8".to_string())?;
            Ok((k.trim().to_string(), v.into_owned()))
        })
        .collect()
}

/// Where exports go: `--endpoint`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (as
/// is), `OTEL_EXPORTER_OTLP_ENDPOINT` (+ `/v1/traces`), then `--target`. A
/// URL with no path gets `/v1/traces`.
pub fn traces_url(endpoint: Option<&str>, target: Option<&str>) -> Result<String, String> {
    let (raw, append) = match (
        endpoint,
        env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
        env("OTEL_EXPORTER_OTLP_ENDPOINT"),
        target,
    ) {
        (Some(e), ..) => (e.to_string(), false),
        (None, Some(t), ..) => (t, false),
        (None, None, Some(b), _) => (b, true),
        (None, None, None, Some(t)) => (t.to_string(), false),
        _ => {
            return Err(
                "otlp-traces needs the traces URL: --endpoint http://host:4318/v1/traces (or OTEL_EXPORTER_OTLP_ENDPOINT), or --mock".into(),
            )
        }
    };
    let mut url = reqwest::Url::parse(raw.trim()).map_err(|e| {
        format!("'{raw}' is not a URL ({e}): expected e.g. http://localhost:4318/v1/traces")
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!(
            "'{raw}' must be an http:// or https:// URL with a host"
        ));
    }
    if append {
        let path = format!("{}{TRACES_PATH}", url.path().trim_end_matches('/'));
        url.set_path(&path);
    } else if url.path() == "/" || url.path().is_empty() {
        url.set_path(TRACES_PATH);
    }
    Ok(url.to_string())
}

/// Resolve an otlp-traces run. `target` is `--target` or the file's;
/// `mock_base` the in-process mock's base URL when `--mock`.
pub fn resolve(
    a: &crate::cli::OtlpArgs,
    f: Option<&crate::scenario::OtlpEntry>,
    endpoint: Option<&str>,
    target: Option<&str>,
    mock: bool,
) -> Result<Resolved, String> {
    let url = if mock {
        // The mock's port is known only when it starts: the path is what counts.
        format!("http://127.0.0.1{TRACES_PATH}")
    } else {
        traces_url(endpoint.or(f.and_then(|f| f.endpoint.as_deref())), target)?
    };
    let mix = match a.mix.as_deref().or(f.and_then(|f| f.mix.as_deref())) {
        Some(m) => parse_mix(m)?,
        None => parse_mix(DEFAULT_MIX)?,
    };
    let platform = match (a.platform, f.and_then(|f| f.platform.as_deref())) {
        (Some(p), _) => p,
        (None, Some(p)) => <Platform as clap::ValueEnum>::from_str(p, true).map_err(|_| {
            format!("otlp.platform: '{p}' is not one of otlp, braintrust, langsmith, phoenix")
        })?,
        (None, None) => Platform::Otlp,
    };
    let json = a.otlp_json || f.and_then(|f| f.json).unwrap_or(false);
    let project = project_name(
        a.project
            .clone()
            .or_else(|| f.and_then(|f| f.project.clone())),
        platform,
    );
    let mb = a
        .mb_per_s
        .or(f.and_then(|f| f.mb_per_s.as_ref().map(|v| v.0)));
    if let Some(m) = mb {
        if !(m > 0.0 && m.is_finite()) {
            return Err("--mb-per-s must be more than 0".into());
        }
    }
    let path = reqwest::Url::parse(&url)
        .map(|u| u.path().to_string())
        .unwrap_or_else(|_| TRACES_PATH.into());
    let headers = export_headers(platform, &project, json)?;
    let service_name = env("OTEL_SERVICE_NAME").unwrap_or_else(|| "periscope-agent".into());
    let (queries, query_view) =
        resolve_queries(a, f, mock, platform, &headers, &service_name, &project)?;
    let mut spec = OtlpSpec {
        mix,
        platform,
        json,
        service_name,
        project,
        path,
        pace_mean_bytes: None,
        recent: Arc::default(),
    };
    let (mean_bytes, mean_spans) = expected(&spec);
    let rate = mb.map(|m| {
        spec.pace_mean_bytes = Some(mean_bytes);
        m * 1e6 / mean_bytes
    });
    let view = OtlpView {
        url: url.clone(),
        mix: spec
            .mix
            .iter()
            .map(|(k, w)| format!("{}:{w}", k.name()))
            .collect::<Vec<_>>()
            .join(","),
        platform: format!("{platform:?}").to_lowercase(),
        json,
        mb_per_s: mb,
        mean_trace_bytes: mean_bytes,
        mean_trace_spans: mean_spans,
        queries: query_view,
    };
    Ok(Resolved {
        spec,
        url,
        headers,
        rate,
        queries,
        view,
    })
}

/// The query load: flags over the scenario file; none without a rate, and
/// none (noted in the view) when a file's rate has no endpoint to go to.
fn resolve_queries(
    a: &crate::cli::OtlpArgs,
    f: Option<&crate::scenario::OtlpEntry>,
    mock: bool,
    platform: Platform,
    export_headers: &[(String, String)],
    service: &str,
    project: &str,
) -> Result<(Option<query::QueryPlan>, Option<QueryView>), String> {
    let rate = a
        .queries_per_s
        .or(f.and_then(|f| f.queries_per_s.as_ref().map(|v| v.0)));
    let endpoint = a
        .query_endpoint
        .clone()
        .or_else(|| f.and_then(|f| f.query_endpoint.clone()));
    let given: Vec<String> = if a.queries.is_empty() {
        f.map(|f| f.queries.clone()).unwrap_or_default()
    } else {
        a.queries.clone()
    };
    if let Some(r) = rate {
        if !(r > 0.0 && r.is_finite()) {
            return Err("--queries-per-s must be more than 0".into());
        }
    }
    let Some(rate) = rate else {
        if endpoint.is_some() || !a.queries.is_empty() {
            return Err("--query-endpoint and --query need a rate: add --queries-per-s N".into());
        }
        return Ok((None, None));
    };
    let templates = if given.is_empty() {
        query::default_templates(platform).ok_or_else(|| {
            format!(
                "--platform {}: no default query; give the backend's query path with --query TEMPLATE",
                format!("{platform:?}").to_lowercase()
            )
        })?
    } else {
        given
    };
    let parsed = templates
        .iter()
        .map(|t| query::parse_template(t))
        .collect::<Result<Vec<_>, _>>()?;
    let (endpoint, prefix) = match endpoint {
        Some(e) => {
            let u = reqwest::Url::parse(e.trim()).map_err(|err| {
                format!("--query-endpoint '{e}' is not a URL ({err}): expected e.g. http://tempo:3200")
            })?;
            if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
                return Err(format!(
                    "--query-endpoint '{e}' must be an http:// or https:// URL with a host"
                ));
            }
            let prefix = u.path().trim_end_matches('/').to_string();
            (Some(e.trim().trim_end_matches('/').to_string()), prefix)
        }
        None if mock => (None, String::new()),
        None if a.queries_per_s.is_some() => {
            return Err(
                "--queries-per-s needs --query-endpoint URL: the backend's query API, e.g. http://tempo:3200"
                    .into(),
            )
        }
        None => {
            // A profile's query rate, with nowhere to send it.
            let view = QueryView {
                endpoint: None,
                per_s: rate,
                templates,
            };
            return Ok((None, Some(view)));
        }
    };
    let view = QueryView {
        endpoint: Some(
            endpoint
                .clone()
                .unwrap_or_else(|| "http://127.0.0.1 (built-in mock)".into()),
        ),
        per_s: rate,
        templates: templates.clone(),
    };
    let headers = export_headers
        .iter()
        .filter(|(k, _)| {
            !k.eq_ignore_ascii_case("content-type") && !k.eq_ignore_ascii_case("content-encoding")
        })
        .cloned()
        .collect();
    Ok((
        Some(query::QueryPlan {
            endpoint,
            prefix,
            rate,
            templates: parsed,
            headers,
            service: service.to_string(),
            project: project.to_string(),
        }),
        Some(view),
    ))
}

/// The project spans go to: the one given, else the platform's usual
/// environment variable, else `periscope`.
pub fn project_name(given: Option<String>, platform: Platform) -> String {
    given
        .or_else(|| match platform {
            Platform::Langsmith => env("LANGSMITH_PROJECT"),
            Platform::Phoenix => env("PHOENIX_PROJECT_NAME"),
            _ => None,
        })
        .unwrap_or_else(|| "periscope".into())
}

/// The headers of an export: content type and encoding, the platform's
/// (keys from their usual environment variables), and
/// `OTEL_EXPORTER_OTLP_HEADERS`.
pub fn export_headers(
    platform: Platform,
    project: &str,
    json: bool,
) -> Result<Vec<(String, String)>, String> {
    let mut headers = vec![
        (
            "Content-Type".to_string(),
            if json {
                "application/json"
            } else {
                "application/x-protobuf"
            }
            .to_string(),
        ),
        ("Content-Encoding".to_string(), "gzip".to_string()),
    ];
    match platform {
        Platform::Langsmith => {
            if let Some(k) = env("LANGSMITH_API_KEY") {
                headers.push(("x-api-key".into(), k));
            }
            headers.push(("Langsmith-Project".into(), project.to_string()));
        }
        Platform::Braintrust => {
            if let Some(k) = env("BRAINTRUST_API_KEY") {
                headers.push(("Authorization".into(), format!("Bearer {k}")));
            }
            headers.push(("x-bt-parent".into(), format!("project_name:{project}")));
        }
        Platform::Phoenix => {
            if let Some(k) = env("PHOENIX_API_KEY") {
                headers.push(("Authorization".into(), format!("Bearer {k}")));
            }
        }
        Platform::Otlp => {}
    }
    if let Some(h) = env("OTEL_EXPORTER_OTLP_HEADERS") {
        headers.extend(parse_otel_headers(&h)?);
    }
    Ok(headers)
}

/// What the mix sends on average: (encoded bytes, spans) per trace, from a
/// few traces of each scenario weighted by the mix.
pub fn expected(spec: &OtlpSpec) -> (f64, f64) {
    let mut g = Generator::new(0x5eed, spec.dress());
    let total: u32 = spec.mix.iter().map(|(_, w)| w).sum();
    let (mut bytes, mut spans) = (0.0, 0.0);
    const EACH: usize = 4;
    for (kind, w) in &spec.mix {
        let share = *w as f64 / total.max(1) as f64;
        for _ in 0..EACH {
            let t = g.trace(*kind, now_unix_ns());
            let len = if spec.json {
                serde_json::to_vec(&t.request).map_or(0, |v| v.len())
            } else {
                t.request.encoded_len()
            };
            bytes += share * len as f64 / EACH as f64;
            spans += share * t.spans as f64 / EACH as f64;
        }
    }
    (bytes, spans)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> OtlpSpec {
        OtlpSpec {
            mix: parse_mix(DEFAULT_MIX).unwrap(),
            platform: Platform::Otlp,
            json: false,
            service_name: "s".into(),
            project: "p".into(),
            path: TRACES_PATH.into(),
            pace_mean_bytes: None,
            recent: Arc::default(),
        }
    }

    #[test]
    fn mixes_parse_and_bad_ones_say_what_to_fix() {
        assert_eq!(
            parse_mix("simple_query:3,large").unwrap(),
            vec![(Kind::SimpleQuery, 3), (Kind::Large, 1)]
        );
        assert!(parse_mix("simple:3").unwrap_err().contains("simple_query"));
        assert!(parse_mix("simple_query:x").unwrap_err().contains("weight"));
        assert!(parse_mix("simple_query:0").is_err());
    }

    #[test]
    fn the_mix_is_drawn_in_its_proportions() {
        let w = OtlpTraces::new(spec());
        let mut s = w.session_seeded(3);
        let mut n = std::collections::BTreeMap::new();
        for _ in 0..10_000 {
            *n.entry(s.pick()).or_insert(0u32) += 1;
        }
        for (k, want) in [
            (Kind::SimpleQuery, 4000.0),
            (Kind::SingleServiceSearch, 3000.0),
            (Kind::DelegatedBooking, 2000.0),
            (Kind::MultiServiceComplex, 1000.0),
        ] {
            let got = n[&k] as f64;
            assert!((got - want).abs() < 5.0 * want.sqrt(), "{k:?}: {got}");
        }
    }

    #[test]
    fn partial_success_is_read_from_protobuf_and_json() {
        use opentelemetry_proto::tonic::collector::trace::v1::{
            ExportTracePartialSuccess, ExportTraceServiceResponse,
        };
        let r = ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: 7,
                error_message: "too big".into(),
            }),
        };
        assert_eq!(rejected_spans(&r.encode_to_vec()), 7);
        assert_eq!(
            rejected_spans(br#"{"partialSuccess":{"rejectedSpans":"5"}}"#),
            5
        );
        assert_eq!(rejected_spans(b"{}"), 0);
        assert_eq!(rejected_spans(b""), 0);
    }

    #[test]
    fn json_traces_follow_otlp_json() {
        let mut g = Generator::new(
            1,
            Dress {
                platform: Platform::Otlp,
                service_name: "s".into(),
                project: "p".into(),
            },
        );
        let t = g.trace(Kind::SimpleQuery, now_unix_ns());
        let v = serde_json::to_value(&t.request).unwrap();
        let span = &v["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        // Hex ids and string-encoded 64-bit times, as OTLP/JSON asks.
        assert_eq!(span["traceId"].as_str().unwrap().len(), 32, "{span}");
        assert!(span["startTimeUnixNano"].is_string(), "{span}");
    }
}
