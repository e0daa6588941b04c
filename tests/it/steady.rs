//! The steady state: the plateau of a run found from its own per-second
//! in-flight series, its figures beside the whole run's in the JSON and the
//! Markdown, and a run that never reached its load said to have none.

use crate::common::*;
use serde_json::Value;

/// The series' windows inside `[start, end)`.
fn windows_in(r: &Value, start: f64, end: f64) -> Vec<&Value> {
    r["series"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| {
            let t = f(&w["t"]);
            t >= start && t < end
        })
        .collect()
}

#[test]
fn a_ramp_and_a_drain_are_left_out_of_the_steady_state() {
    let (r, md) = run_json(&["--stages", "3s:8,4s:8,2s:0"]);
    let st = &r["steady_state"];
    assert_eq!(st["found"], true, "{st}");
    let (start, end) = (f(&st["start_s"]), f(&st["end_s"]));
    // The ramp reaches 95% of 8 VUs in its third second; the hold ends at 7 s.
    assert!(
        (2.0..=3.0).contains(&start),
        "plateau starts at {start}: {st}"
    );
    assert!((6.0..=8.0).contains(&end), "plateau ends at {end}: {st}");
    assert_eq!(f(&st["duration_s"]), end - start);
    // Its figures are those of its windows, and every window in it is at load
    // in the series the JSON carries.
    let inside = windows_in(&r, start, end);
    let reqs: f64 = inside.iter().map(|w| f(&w["requests"])).sum();
    assert_eq!(f(&st["requests"]), reqs, "{st}");
    for w in &inside {
        assert!(
            f(&w["in_flight"]) >= 0.95 * 8.0 * 0.9,
            "a window in the plateau: {w}"
        );
    }
    assert!(f(&st["in_flight"]) >= 7.6, "{st}");
    // The ramp and drain lower the whole run's throughput, not the plateau's:
    // 8 requests in flight, each taking the mean e2e (Little's law).
    let e2e_s = f(&st["latency"]["e2e"]["mean"]) / 1000.0;
    let little = 8.0 / e2e_s;
    let steady_rps = f(&st["ok_rps"]);
    assert!(
        (steady_rps - little).abs() / little < 0.1,
        "steady {steady_rps} req/s, Little's law {little}"
    );
    assert!(steady_rps > f(&r["summary"]["ok_rps"]) * 1.1, "{st}");
    let sec = md
        .split("### Steady state")
        .nth(1)
        .expect("a steady-state section");
    assert!(
        sec.contains("| whole run (") && sec.contains("| steady state ("),
        "{sec}"
    );
}

#[test]
fn an_open_model_is_at_load_when_its_rate_times_latency_is_in_flight() {
    let (r, _) = run_json(&["--rate", "20", "--duration", "5s"]);
    let st = &r["steady_state"];
    assert_eq!(st["found"], true, "{st}");
    // The first second fills up (0.68 s per request); the rest holds 20 req/s.
    assert!(f(&st["start_s"]) >= 1.0, "{st}");
    let rps = f(&st["ok_rps"]);
    assert!(
        (rps - 20.0).abs() < 1.5,
        "steady {rps} req/s at a rate of 20: {st}"
    );
}

/// Runs `args` against a fresh mock; the JSON result and the Markdown.
fn run_json(args: &[&str]) -> (Value, String) {
    let mock = MockProc::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let json = temp_json(&dir, "r");
    let base = mock.base();
    let mut all = vec!["run", "--target", &base, "--json", &json];
    all.extend_from_slice(args);
    let o = periscope(&all);
    assert!(o.status.success(), "{}", stderr(&o));
    (read_json(&json), stdout(&o))
}

#[test]
fn a_run_that_never_reaches_its_load_has_no_steady_state_and_says_so() {
    // A ramp to 8 VUs that ends as it gets there: no second holds 7.6.
    let (r, md) = run_json(&["--stages", "3s:8"]);
    let st = &r["steady_state"];
    assert_eq!(st["found"], false, "{st}");
    assert!(
        st.get("requests").is_none(),
        "no figures without a plateau: {st}"
    );
    let note = st["note"].as_str().unwrap();
    assert!(
        note.contains("no second reached 95% of the in-flight of 8 VUs (best "),
        "{note}"
    );
    assert!(md.contains("### Steady state\n\nNone: "), "{md}");
}

#[test]
fn a_plateau_every_request_outlasts_has_no_figures_and_says_why() {
    // 8 requests of 3 s each, all in flight from the start, all ending after
    // the third second: at load, but nothing ended at load.
    let (r, md) = run_json(&["--vus", "8", "--iterations", "8", "--max-tokens", "300"]);
    let st = &r["steady_state"];
    assert_eq!(st["found"], false, "{st}");
    let note = st["note"].as_str().unwrap();
    assert!(note.contains("no request ended in that time"), "{note}");
    assert!(md.contains("None: at load from 0 s to 3 s"), "{md}");
}
