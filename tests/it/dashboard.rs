//! `--dashboard`: the live page a run serves, read by headless Chromium
//! while the run goes on (a first browser from the start, a second opened
//! mid-run), its end figures against the JSON result, a reader that never
//! reads, and the token beyond loopback.

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::browser::Driver;
use crate::common::*;
use serde_json::Value;

/// periscope started with `args`, its output kept.
fn spawn(args: &[&str]) -> Child {
    Command::new(BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start periscope")
}

/// Wait until the dashboard at `base` serves (`path`: with its token).
fn wait_page(base: &str, path: &str, child: &mut Child) {
    for _ in 0..200 {
        if let Ok(Some(s)) = child.try_wait() {
            panic!("periscope exited before its dashboard served: {s}");
        }
        if blocking_get(&format!("{base}{path}")).is_ok_and(|s| s == 200) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no dashboard at {base}");
}

/// Ctrl-C to a lingering run: it leaves at once, with its exit code.
async fn interrupt(child: Child) -> std::process::Output {
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let t = Instant::now();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "the linger did not end on Ctrl-C"
    );
    out
}

fn number(v: &Value) -> f64 {
    v.as_str()
        .unwrap_or_else(|| panic!("not a tile's text: {v}"))
        .replace(',', "")
        .parse()
        .unwrap_or_else(|_| panic!("not a number on the page: {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_the_run_live_with_the_server_beside_and_ends_on_the_results_figures() {
    let Some(mut driver) = Driver::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let json = temp_json(&dir, "r.json");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let base = format!("http://{addr}");
    let mut child = spawn(&[
        "run",
        "--mock",
        "--vus",
        "4",
        "--duration",
        "10s",
        "--server-metrics",
        "--threshold",
        "error_rate<0.01",
        "--dashboard",
        &addr,
        "--dashboard-linger",
        "60s",
        "--json",
        &json,
    ]);
    wait_page(&base, "/", &mut child);

    // A first browser from the start: every chart fills as the run goes.
    let first = driver.browser().await;
    first.open(&format!("{base}/")).await;
    first
        .wait_for(
            "return S.windows.length >= 3 && S.server.length >= 3",
            Duration::from_secs(15),
        )
        .await;
    let charts = first
        .eval("return [...document.querySelectorAll('canvas')].map(c => [c.id, +(c.dataset.points || 0)])")
        .await;
    let charts = charts.as_array().unwrap();
    assert_eq!(charts.len(), 9, "{charts:?}");
    for c in charts {
        assert!(
            c[1].as_f64().unwrap() > 0.0,
            "a chart with no data mid-run: {charts:?}"
        );
    }
    let mid_run = first
        .eval("return document.getElementById('status').textContent")
        .await;
    assert_eq!(mid_run, "running");
    let png = first.screenshot().await;
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-live.png");
    std::fs::write(&shot, &png).unwrap();

    // A second browser opened mid-run gets the run so far, from its first
    // second: a phone in dark mode, the page as wide as its screen.
    let seen = first
        .eval("return S.windows.length")
        .await
        .as_u64()
        .unwrap();
    let second = driver.phone_in_the_dark().await;
    second.open(&format!("{base}/")).await;
    second
        .wait_for(
            &format!("return S.windows.length >= {seen} && S.windows[0].window.t === 0"),
            Duration::from_secs(10),
        )
        .await;
    let phone = second
        .eval(
            "return [document.documentElement.scrollWidth <= innerWidth, matchMedia('(prefers-color-scheme: dark)').matches, getComputedStyle(document.body).backgroundColor]",
        )
        .await;
    assert_eq!(
        phone,
        serde_json::json!([true, true, "rgb(13, 17, 23)"]),
        "on a phone in the dark"
    );
    let light = first
        .eval("return getComputedStyle(document.body).backgroundColor")
        .await;
    assert_eq!(light, "rgb(255, 255, 255)");
    std::fs::write(
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-phone-dark.png"),
        second.screenshot().await,
    )
    .unwrap();

    // The end: the page's figures are the result's.
    first
        .wait_for("return S.done !== null", Duration::from_secs(30))
        .await;
    let r = read_json(&json);
    let tiles = first
        .eval(
            "return Object.fromEntries([...document.querySelectorAll('[id^=s-]')].map(e => [e.id, e.textContent]))",
        )
        .await;
    let s = &r["summary"];
    let exact = [
        ("s-requests", &s["requests"]),
        ("s-ok", &s["ok"]),
        ("s-errors", &s["errors"]),
        ("s-output-tokens", &s["output_tokens"]),
    ];
    for (id, want) in exact {
        assert_eq!(number(&tiles[id]), f(want), "{id}: {tiles}");
    }
    let close = [
        ("s-ok-rps", f(&s["ok_rps"]), 0.005),
        ("s-tokens-per-s", f(&s["tokens_per_s"]), 0.05),
        ("s-ttft-p50", f(&latency(&r, "ttft")["p50"]), 0.005),
        ("s-ttft-p99", f(&latency(&r, "ttft")["p99"]), 0.005),
        ("s-itl-p50", f(&latency(&r, "itl")["p50"]), 0.005),
        ("s-e2e-p50", f(&latency(&r, "e2e")["p50"]), 0.005),
    ];
    for (id, want, within) in close {
        let got = number(&tiles[id]);
        // Four digits and more are shown rounded to the unit.
        // Half a unit of the last digit shown, and the float's own error
        // (52.735 is stored as 52.73499…, which rounds down to 52.73).
        let within = if want >= 1000.0 { 0.5 } else { within } + 1e-9;
        assert!(
            (got - want).abs() <= within,
            "{id}: the page says {got}, the result {want}"
        );
    }
    // Every window of the JSON series reached the page, with its counts.
    let series = r["series"].as_array().unwrap();
    let page = first
        .eval("return S.windows.map(e => [e.window.t, e.window.requests, e.window.ok])")
        .await;
    let page: Vec<Vec<u64>> = serde_json::from_value(page).unwrap();
    let json_series: Vec<Vec<u64>> = series
        .iter()
        .map(|w| {
            vec![
                w["t"].as_u64().unwrap(),
                w["requests"].as_u64().unwrap(),
                w["ok"].as_u64().unwrap(),
            ]
        })
        .collect();
    assert_eq!(
        page, json_series,
        "the page's windows against the JSON series"
    );
    let verdict = first
        .eval("return [...document.querySelectorAll('#thresholds td')].map(t => t.textContent)")
        .await;
    assert_eq!(verdict[0], "error_rate<0.01", "{verdict}");
    assert_eq!(verdict[2], "pass", "{verdict}");
    // The report, while the page lingers.
    let report = http().get(format!("{base}/report")).send().await.unwrap();
    assert_eq!(report.status(), 200);
    assert!(report.text().await.unwrap().contains("<html"));
    first.close().await;
    second.close().await;
    let out = interrupt(child).await;
    assert!(out.status.success(), "{}", stderr(&out));
}

/// A client that asks for the event stream and never reads it.
fn stuck_reader(addr: &str) -> std::net::TcpStream {
    let s = std::net::TcpStream::connect(addr).unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&s);
    let small: libc::c_int = 1024;
    // SAFETY: setting an option on a socket we own.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &small as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    (&s).write_all(format!("GET /events HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .unwrap();
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_that_never_reads_changes_nothing_in_the_run() {
    let mock = MockProc::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let json = temp_json(&dir, "r.json");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let t = Instant::now();
    let mut child = spawn(&[
        "run",
        "--target",
        &mock.base(),
        "--vus",
        "8",
        "--duration",
        "6s",
        "--no-preflight",
        "--dashboard",
        &addr,
        "--json",
        &json,
    ]);
    wait_page(&format!("http://{addr}"), "/", &mut child);
    let early = stuck_reader(&addr);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let late = stuck_reader(&addr);
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "a 6 s run with two stuck pages took {:?}",
        t.elapsed()
    );
    // The figures are the mock's own, as without a page.
    let r = read_json(&json);
    let n = r["summary"]["requests"].as_u64().unwrap();
    usage_and_stamps_agree(&r, &mock.stats().await, n);
    // The run's end closed both.
    for mut s in [early, late] {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        let text = String::from_utf8_lossy(&buf);
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_loopback_the_page_asks_for_its_token_and_never_shows_the_api_key() {
    assert_usage_error(
        &[
            "run",
            "--mock",
            "--duration",
            "1s",
            "--dashboard",
            "0.0.0.0:0",
        ],
        "--dashboard-token",
    );
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let key = "sk-dashboard-test-key-4242";
    let mut child = spawn(&[
        "run",
        "--mock",
        "--token",
        key,
        "--vus",
        "2",
        "--duration",
        "2s",
        "--dashboard",
        &format!("0.0.0.0:{port}"),
        "--dashboard-token",
        "s3cret",
        "--dashboard-linger",
        "60s",
    ]);
    wait_page(&base, "/?token=s3cret", &mut child);
    let get = |path: &str, bearer: Option<&str>| {
        let mut req = http().get(format!("{base}{path}"));
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        req.send()
    };
    assert_eq!(get("/", None).await.unwrap().status(), 401);
    assert_eq!(get("/?token=s3cre", None).await.unwrap().status(), 401);
    assert_eq!(get("/events", Some("wrong")).await.unwrap().status(), 401);
    assert_eq!(get("/?token=s3cret", None).await.unwrap().status(), 200);
    // The whole stream once the run is over: no key anywhere.
    let mut events = String::new();
    let t = Instant::now();
    while !events.contains("event: done") && t.elapsed() < Duration::from_secs(15) {
        events = read_some(&base, "/events?token=s3cret").await;
    }
    assert!(events.contains("event: summary"), "{events}");
    assert!(events.contains("event: done"), "{events}");
    assert!(!events.contains(key), "the API key in the page's events");
    let report = get("/report", Some("s3cret"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(report.contains("<html") && !report.contains(key));
    let out = interrupt(child).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("s3cret"),
        "the dashboard token printed"
    );
}

/// What the event stream has sent within half a second (a lingering
/// board keeps it open).
async fn read_some(base: &str, path: &str) -> String {
    let mut resp = http().get(format!("{base}{path}")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut got = Vec::new();
    let until = Instant::now() + Duration::from_millis(500);
    while let Ok(Ok(Some(chunk))) = tokio::time::timeout(
        until.saturating_duration_since(Instant::now()),
        resp.chunk(),
    )
    .await
    {
        got.extend_from_slice(&chunk);
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// Every event a lingering board has sent, once it says `done`.
async fn all_events(base: &str) -> String {
    let t = Instant::now();
    loop {
        let events = read_some(base, "/events").await;
        if events.contains("event: done") {
            return events;
        }
        assert!(t.elapsed() < Duration::from_secs(60), "no `done`: {events}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The `data` of every event of `kind`.
fn data_of(events: &str, kind: &str) -> Vec<Value> {
    events
        .split("\n\n")
        .filter_map(|e| e.strip_prefix(&format!("event: {kind}\ndata: ")))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_shows_each_level_and_a_probe_its_cases_as_they_end() {
    let mock = MockProc::start(&["--ttft", "2ms", "--itl", "1ms", "--output-tokens", "4"]);
    let dir = tempfile::tempdir().unwrap();
    let json = temp_json(&dir, "sweep.json");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = spawn(&[
        "sweep",
        "--url",
        &mock.base(),
        "--concurrency-list",
        "1,2,4",
        "--requests",
        "12",
        "--dashboard",
        &format!("127.0.0.1:{port}"),
        "--dashboard-linger",
        "60s",
        "--json",
        &json,
    ]);
    wait_page(&base, "/", &mut child);
    let events = all_events(&base).await;
    let out = interrupt(child).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let r = read_json(&json);
    // Each of the sweep's runs: announced, then its summary, in order; the
    // requests they sum to are the rows'.
    let runs = data_of(&events, "run");
    let summaries = data_of(&events, "summary");
    assert!(runs.len() >= 3, "{} runs", runs.len());
    assert_eq!(runs.len(), summaries.len());
    for (i, (run, sum)) in runs.iter().zip(&summaries).enumerate() {
        assert_eq!(
            (run["run"].as_u64(), sum["run"].as_u64()),
            (Some(i as u64), Some(i as u64))
        );
        assert!(run["at"].as_f64() <= sum["at"].as_f64());
    }
    let page: u64 = summaries
        .iter()
        .map(|s| s["summary"]["requests"].as_u64().unwrap())
        .sum();
    let rows: u64 = r["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["ok"].as_u64().unwrap() + row["errors"].as_u64().unwrap())
        .sum();
    assert_eq!(page, rows, "requests on the page and in the sweep's rows");
    let report = data_of(&events, "done");
    assert_eq!(report[0]["report"], true, "the sweep's HTML report offered");

    // A probe: its cases' verdicts, as the result counts them.
    let json = temp_json(&dir, "probe.json");
    let mut child = spawn(&[
        "probe",
        "--url",
        &mock.base(),
        "--dataset-suite",
        "core",
        "--workers",
        "8",
        "--dashboard",
        &format!("127.0.0.1:{port}"),
        "--dashboard-linger",
        "60s",
        "--output-json",
        &json,
    ]);
    wait_page(&base, "/", &mut child);
    let events = all_events(&base).await;
    let out = interrupt(child).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let probe = read_json(&json);
    let cases = data_of(&events, "cases");
    assert_eq!(cases[0]["confusion"], probe["confusion"]);
    // Each case as it ended, with the verdict the result gives it.
    let ended = data_of(&events, "case");
    let results = probe["cases"].as_array().unwrap();
    assert_eq!(ended.len(), results.len(), "a `case` event per case");
    for e in &ended {
        let r = results.iter().find(|r| r["id"] == e["id"]).unwrap();
        let last = r["tries"].as_array().unwrap().last().unwrap();
        assert_eq!(e["verdict"], last["verdict"], "{e} against {r}");
    }
    let sent: u64 = data_of(&events, "summary")[0]["summary"]["requests"]
        .as_u64()
        .unwrap();
    assert_eq!(sent, 124, "every case of the core suite, on the page");
}
