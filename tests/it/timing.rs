//! Timing accuracy: periscope's figures against the mock's own send stamps,
//! the open model's schedule, the proxy's added delay and the rate limiter.
//! Under `cargo test` (one process) these tests hold a lock so they never
//! run beside each other; nextest runs each in its own process, the
//! 256-stream schedule test alone (`.config/nextest.toml`). Their bounds
//! compare periscope with the mock's own stamps, so they hold on a loaded
//! machine.

use crate::common::{chat, f, fire, http, latency, run_ok, sse_data, stdout, MockProc};
use serde_json::{json, Value};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn figures_agree_with_the_mocks_send_stamps() {
    let _serial = SERIAL.lock().await;
    let mock = MockProc::start(&["--ttft", "100ms", "--itl", "20ms", "--output-tokens", "16"]);
    let (_, r) = run_ok(&[
        "run",
        "--target",
        &mock.base(),
        "--vus",
        "8",
        "--duration",
        "4s",
        "--no-preflight",
    ])
    .await;
    let st = mock.stats().await;
    assert_eq!(r["schema"], "periscope.result/v1");
    let ok = r["summary"]["ok"].as_u64().unwrap();
    assert!(ok >= 60, "ok {ok}");
    assert_eq!(
        st["requests"].as_u64().unwrap(),
        ok,
        "every request the mock served was counted ok"
    );
    // ttft p50 within 2 ms, itl p50 within 1 ms of the mock's own stamps.
    let ttft = f(&latency(&r, "ttft")["p50"]);
    let mock_ttft = f(&st["ttft_us"]["p50"]) / 1000.0;
    assert!(
        (ttft - mock_ttft).abs() <= 2.0,
        "ttft {ttft} vs mock {mock_ttft}"
    );
    let itl = f(&latency(&r, "itl")["p50"]);
    let mock_itl = f(&st["itl_us"]["p50"]) / 1000.0;
    assert!(
        (itl - mock_itl).abs() <= 1.0,
        "itl {itl} vs mock {mock_itl}"
    );
    // e2e is consistent with the stamps: ttft + 15 gaps ≈ 400 ms.
    let e2e = f(&latency(&r, "e2e")["p50"]);
    let mock_e2e = f(&st["e2e_us"]["p50"]) / 1000.0;
    assert!(
        (e2e - mock_e2e).abs() <= 3.0,
        "e2e {e2e} vs mock {mock_e2e}"
    );
    assert!((390.0..430.0).contains(&e2e), "e2e {e2e}");
    let tpot = f(&latency(&r, "tpot")["p50"]);
    assert!((tpot - (e2e - ttft) / 15.0).abs() <= 1.0, "tpot {tpot}");
    // Output tokens exactly 16 per request, from usage.
    assert_eq!(r["summary"]["output_tokens"].as_u64().unwrap(), 16 * ok);
    assert_eq!(
        r["summary"]["output_token_sources"]["usage"]
            .as_u64()
            .unwrap(),
        ok
    );
    // Every answer's usage checked at the end (fewer than the sample's
    // 256), and the mock's counts are cl100k_base's: no disagreement.
    assert_eq!(r["summary"]["usage_checked"].as_u64().unwrap(), ok.min(256));
    assert_eq!(r["summary"]["usage_mismatch"], 0);
    assert!(
        r["warnings"].as_array().unwrap().is_empty(),
        "{}",
        r["warnings"]
    );
    // Histograms are serialized; series cover the run.
    assert!(r["histograms"]["ttft"]
        .as_str()
        .unwrap()
        .starts_with("HISTF"));
    let series_ok: u64 = r["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["ok"].as_u64().unwrap())
        .sum();
    assert_eq!(series_ok, ok);
    assert!(r["generator"]["cpu_seconds"].as_f64().unwrap() > 0.0);
    assert!(r["generator"]["peak_rss_mib"].as_f64().unwrap() > 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_keeps_schedule_with_256_streams() {
    let _serial = SERIAL.lock().await;
    // Issue 2's timing point: 256 concurrent streams at ttft 100 ms, itl 20 ms
    // (12,800 tokens/s), the VUs ramped up over a second so their streams
    // overlap as real users' do: first tokens leave within 1 ms of their
    // schedule at p99 by the mock's own stamps. The load client shares the
    // machine's two cores with the mock, so the mock runs ahead of it
    // (nice -10, as the README advises), and nextest runs this test alone
    // (.config/nextest.toml). Measured here: p50 ≈ 0.05 ms, p99 0.3–0.5 ms
    // (at equal priority, p99 0.5–1 ms).
    let mock =
        MockProc::start_ahead(&["--ttft", "100ms", "--itl", "20ms", "--output-tokens", "16"]);
    let (_, r) = run_ok(&[
        "run",
        "--target",
        &mock.base(),
        "--stages",
        "1s:256,3s:256",
        "--grace",
        "5s",
        "--no-preflight",
    ])
    .await;
    let st = mock.stats().await;
    let ok = r["summary"]["ok"].as_u64().unwrap();
    assert!(ok >= 1500, "ok {ok}");
    assert_eq!(
        st["requests"].as_u64().unwrap(),
        ok + r["summary"]["interrupted"].as_u64().unwrap()
    );
    let lag = &st["first_token_lag_us"];
    eprintln!("first-token lag by the mock's stamps: {lag}");
    assert!(
        f(&lag["p50"]) <= 500.0,
        "first tokens left late at p50: {lag}"
    );
    assert!(
        f(&lag["p99"]) <= 1000.0,
        "first tokens left more than 1 ms late at p99: {lag}"
    );
    // The client's view agrees with the stamps.
    let ttft = f(&latency(&r, "ttft")["p50"]);
    let mock_ttft = f(&st["ttft_us"]["p50"]) / 1000.0;
    assert!(
        (ttft - mock_ttft).abs() <= 2.0,
        "client ttft p50 {ttft} vs mock {mock_ttft}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_model_sends_the_requested_rate() {
    let _serial = SERIAL.lock().await;
    let mock = MockProc::start(&["--ttft", "5ms", "--itl", "1ms", "--output-tokens", "4"]);
    let (out, r) = run_ok(&[
        "run",
        "--target",
        &mock.base(),
        "--rate",
        "50",
        "--duration",
        "10s",
        "--no-preflight",
    ])
    .await;
    let sent = mock.stats().await["requests"].as_u64().unwrap();
    assert!(
        (490..=510).contains(&sent),
        "the mock received {sent} requests"
    );
    assert_eq!(r["summary"]["requests"].as_u64().unwrap(), sent);
    let sc = &r["schedule"];
    assert_eq!(sc["behind"], false, "{sc}");
    assert!(f(&sc["lag_p99_ms"]) < 10.0);
    assert!(latency(&r, "latency")["count"].as_u64().unwrap() > 0);
    assert!(stdout(&out).contains("### Schedule"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_model_backlog_grows_latency_not_service_time() {
    let _serial = SERIAL.lock().await;
    // 5 slots of 200 ms serve 25 req/s; 50 req/s arrive: a growing backlog.
    let mock = MockProc::start(&["--ttft", "200ms", "--itl", "0ms", "--output-tokens", "1"]);
    let (_, r) = run_ok(&[
        "run",
        "--target",
        &mock.base(),
        "--no-stream",
        "--rate",
        "50",
        "--duration",
        "4s",
        "--max-in-flight",
        "5",
        "--grace",
        "30s",
        "--no-preflight",
    ])
    .await;
    let service = latency(&r, "e2e");
    let from_schedule = latency(&r, "latency");
    // Service time stays at the mock's 200 ms; latency from the schedule grows.
    assert!(f(&service["p99"]) < 260.0, "service {service}");
    assert!(
        f(&from_schedule["p50"]) > 2.0 * f(&service["p50"]),
        "latency {from_schedule} vs service {service}"
    );
    assert!(
        f(&from_schedule["max"]) > 1500.0,
        "the backlog grew: {from_schedule}"
    );
    assert!(latency(&r, "queue_wait")["count"].as_u64().unwrap() > 0);
    // The generator itself kept its schedule: this is the target's backlog.
    assert_eq!(r["schedule"]["behind"], false);
    assert!(r["warnings"].to_string().contains("backlog"));
}

async fn p50_ms(c: &reqwest::Client, url: &str, n: usize) -> f64 {
    let mut v = Vec::new();
    for _ in 0..n {
        let t = std::time::Instant::now();
        let r = c
            .post(url)
            .json(&chat("hi", false, 4))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
        v.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[n / 2]
}

#[tokio::test]
async fn proxy_mode_adds_the_configured_delay_and_passes_streams_through() {
    let _serial = SERIAL.lock().await;
    let upstream = MockProc::start(&["--ttft", "2ms", "--itl", "1ms"]);
    let proxy = MockProc::start(&[
        "--upstream",
        &format!("http://{}", upstream.addr),
        "--added-latency",
        "5ms",
    ]);
    let c = http();
    // Interleave to spread machine noise over both.
    let mut direct = Vec::new();
    let mut via = Vec::new();
    for _ in 0..5 {
        direct.push(p50_ms(&c, &upstream.url("/v1/chat/completions"), 40).await);
        via.push(p50_ms(&c, &proxy.url("/v1/chat/completions"), 40).await);
    }
    direct.sort_by(|a, b| a.partial_cmp(b).unwrap());
    via.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let added = via[2] - direct[2];
    assert!(
        (added - 5.0).abs() <= 2.0,
        "proxy added {added:.2} ms (direct {direct:?}, proxy {via:?})"
    );

    // Streams pass through event by event, headers kept.
    let r = c
        .post(proxy.url("/v1/chat/completions"))
        .json(&chat("hello", true, 6))
        .send()
        .await
        .unwrap();
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let events = sse_data(&r.text().await.unwrap());
    assert_eq!(events.len(), 1 + 6 + 1 + 1 + 1);
    // Errors pass through with their status.
    let r = c
        .post(proxy.url("/v1/nope"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_answers_429_with_retry_after_beyond_the_rate() {
    let _serial = SERIAL.lock().await;
    let mock = MockProc::start(&["--ttft", "0ms", "--itl", "0ms", "--rate-limit", "200"]);
    let c = http();
    let start = std::time::Instant::now();
    let out = fire(
        mock.url("/v1/chat/completions"),
        chat("hi", false, 1),
        1500,
        8,
    )
    .await;
    let elapsed = start.elapsed().as_secs_f64();
    let ok = out.iter().filter(|(s, _)| *s == 200).count();
    let limited = out.iter().filter(|(s, _)| *s == 429).count();
    assert_eq!(ok + limited, 1500);
    // At most rate × time + the burst (20) were served.
    let allowed = 200.0 * elapsed + 20.0 + 5.0;
    assert!((ok as f64) <= allowed, "ok {ok} in {elapsed:.2}s");
    assert!(limited > 0);
    let r = c
        .post(mock.url("/v1/chat/completions"))
        .json(&chat("hi", false, 1))
        .send()
        .await
        .unwrap();
    if r.status() == 429 {
        let secs: u64 = r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(secs >= 1);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], "rate_limit_exceeded");
    }
    // Over a sustained second the served rate matches the limit.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let t0 = std::time::Instant::now();
    let out = fire(
        mock.url("/v1/chat/completions"),
        chat("hi", false, 1),
        3000,
        8,
    )
    .await;
    let el = t0.elapsed().as_secs_f64();
    let ok = out.iter().filter(|(s, _)| *s == 200).count() as f64;
    let expect = 200.0 * el + 20.0;
    assert!(
        (ok - expect).abs() <= 0.15 * expect,
        "served {ok} in {el:.2}s, expected ≈ {expect:.0}"
    );
}
