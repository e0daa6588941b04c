//! Servers that advertise keep-alive and close the connection anyway
//! (llama.cpp's server after every streamed answer): the next request on
//! that connection is sent again on a fresh one, a reconnect, never an
//! error. Checked against the mock's `--close-after-response` fault, whose
//! own count of the connections it closed is the reference.

use crate::common::*;
use serde_json::Value;

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

async fn closing_mock_run(engine: &str, vus: &str, n: &str) -> (Value, Value) {
    let mock = MockProc::start(&[
        "--ttft",
        "1ms",
        "--itl",
        "0ms",
        "--output-tokens",
        "4",
        "--close-after-response",
        "0.3",
        "--seed",
        "19",
    ]);
    let (_, r) = run_ok(&[
        "run",
        "--target",
        &mock.base(),
        "--http-engine",
        engine,
        "--vus",
        vus,
        "--iterations",
        n,
    ])
    .await;
    (r, mock.stats().await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_closed_after_answers_cost_reconnects_not_errors() {
    let (r, stats) = closing_mock_run("h1", "1", "2000").await;
    let s = &r["summary"];
    assert_eq!(u(&s["ok"]), 2000, "{s}");
    assert_eq!(u(&s["errors"]), 0, "{}", r["errors"]);
    // The preflight and 2000 load requests: each of the first 2000 answers
    // closed its connection with p = 0.3, and each close costs the next
    // request a reconnect. Binomial(2000, 0.3): mean 600, sd 20.5.
    let reconnects = u(&s["reconnects"]);
    assert!((508..=692).contains(&reconnects), "{reconnects}");
    // Exactly the mock's own count, less a close after the last answer.
    let closed = u(&stats["closed_after_response"]);
    assert!(
        closed == reconnects || closed == reconnects + 1,
        "the mock closed {closed} connections, periscope reconnected {reconnects} times"
    );
    // The per-second series and the raw counts add up to the total.
    let series: u64 = r["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["reconnects"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(series, reconnects);
    assert_eq!(u(&r["raw"]["total"]["reconnects"]), reconnects);
    let warnings = r["warnings"].to_string();
    assert!(
        warnings.contains("found their kept-alive connection closed by the server"),
        "{warnings}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_vus_and_the_reqwest_engine_reconnect_without_errors() {
    // With several connections idle, a request that finds a closed one may
    // take another kept-alive one: never more reconnects than closes.
    let (r, stats) = closing_mock_run("h1", "8", "2000").await;
    let s = &r["summary"];
    assert_eq!((u(&s["ok"]), u(&s["errors"])), (2000, 0), "{}", r["errors"]);
    let reconnects = u(&s["reconnects"]);
    assert!(
        reconnects > 0 && reconnects <= u(&stats["closed_after_response"]),
        "{reconnects} {stats}"
    );
    // reqwest replaces a pooled connection it finds closed by itself; one
    // closed after the request was written is sent again here: no errors.
    let (r, stats) = closing_mock_run("reqwest", "2", "600").await;
    let s = &r["summary"];
    assert_eq!((u(&s["ok"]), u(&s["errors"])), (600, 0), "{}", r["errors"]);
    assert!(u(&s["reconnects"]) <= u(&stats["closed_after_response"]));
    assert!(u(&stats["closed_after_response"]) > 100, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_after_answer_bytes_stays_an_error() {
    // Cut mid-stream, after the headers and some tokens: an error of the
    // server's, not a reconnect; the connection is not reused.
    let mock = MockProc::start(&[
        "--ttft",
        "1ms",
        "--itl",
        "1ms",
        "--output-tokens",
        "8",
        "--cut-stream-rate",
        "1",
    ]);
    let (_, r) = run_ok(&[
        "run",
        "--target",
        &mock.base(),
        "--vus",
        "1",
        "--iterations",
        "20",
    ])
    .await;
    assert_eq!(u(&r["summary"]["errors"]), 20);
    assert_eq!(r["errors"][0]["class"], "stream_cut");
    assert_eq!(u(&r["summary"]["reconnects"]), 0);
}
