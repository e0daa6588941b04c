//! find-and-hold: against a mock that serves 8 requests at once (the rest
//! wait in its queue), the search names 8 VUs and holds them; the hold's
//! figures are the run's verdict; a run with no bound to find is refused.

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_serves_eight_at_once_is_found_at_eight_vus_and_held() {
    let m = MockProc::start(&["--max-concurrency", "8", "--itl", "5ms"]);
    let dir = tempfile::tempdir().unwrap();
    let json = temp_json(&dir, "r");
    let out = periscope(&[
        "run",
        "--target",
        &m.base(),
        "--scenario",
        "find-and-hold",
        "--max-tokens",
        "16",
        "--threshold",
        "ttft.p95<80ms",
        "--step-duration",
        "2s",
        "--hold",
        "3s",
        "--max-vus",
        "32",
        "--json",
        &json,
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    let r = read_json(&json);
    let s = &r["search"];
    let found = s["found"].as_u64().expect("a level found");
    assert!((7..=9).contains(&found), "{s}");
    let steps = s["steps"].as_array().unwrap();
    // Doubling to the first failure, then halving the gap to one VU.
    let levels: Vec<u64> = steps.iter().map(|x| x["level"].as_u64().unwrap()).collect();
    assert_eq!(&levels[..4], [1, 2, 4, 8], "{s}");
    assert!(
        levels.contains(&(found + 1)),
        "the level above was tried: {s}"
    );
    for st in steps {
        let v = st["level"].as_u64().unwrap();
        assert_eq!(st["pass"], v <= found, "{st}");
    }
    // The hold ran the level found, and passed.
    let hold = &s["hold"];
    assert_eq!(hold["level"].as_u64(), Some(found), "{s}");
    assert_eq!(hold["pass"], true, "{hold}");
    assert!(f(&hold["ttft_p95_ms"]) < 80.0, "{hold}");
    // The mock never held more than 8 at once; in the hold, nothing waited
    // long in its queue (the client's ttft is the mock's own).
    let md = stdout(&out);
    assert!(md.contains("### Find and hold"), "{md}");
    assert!(
        md.contains(&format!(
            "Found: {found} VUs: the most that held ttft.p95<80ms"
        )),
        "{md}"
    );
    assert!(md.contains("find-and-hold: VUs from 1 up to 32"), "{md}");
    assert!(
        r["thresholds"][0]["threshold"]
            .as_str()
            .unwrap()
            .ends_with("(the hold)"),
        "{}",
        r["thresholds"]
    );
}

#[test]
fn find_and_hold_without_a_bound_or_with_a_fixed_load_is_refused() {
    for (args, says) in [
        (
            vec!["run", "--mock", "--adaptive"],
            "find-and-hold raises the load until a bound breaks",
        ),
        (
            vec![
                "run",
                "--mock",
                "--adaptive",
                "--threshold",
                "ttft.p95<1s",
                "--rate",
                "5",
                "--vus",
                "2",
            ],
            "find-and-hold: drop --vus or --rate",
        ),
        (
            vec![
                "run",
                "--mock",
                "--adaptive",
                "--threshold",
                "ttft.p95<1s",
                "--duration",
                "5s",
            ],
            "find-and-hold: drop --duration",
        ),
        (
            vec!["run", "--mock", "--hold", "5s"],
            "--hold, --step-duration and --max-rate belong to find-and-hold",
        ),
    ] {
        assert_usage_error(&args, says);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_rate_the_boundary_is_the_servers_rate_limit() {
    // The mock answers 429 above 20 requests a second; each answer is
    // quick, so a failing step leaves no backlog behind.
    let m = MockProc::start(&["--rate-limit", "20", "--ttft", "5ms", "--itl", "1ms"]);
    let dir = tempfile::tempdir().unwrap();
    let json = temp_json(&dir, "r");
    let out = periscope(&[
        "run",
        "--target",
        &m.base(),
        "--adaptive",
        "--rate",
        "4",
        "--max-rate",
        "64",
        "--max-tokens",
        "8",
        "--threshold",
        "error_rate<1%",
        "--step-duration",
        "2s",
        "--hold",
        "3s",
        "--json",
        &json,
    ]);
    let r = read_json(&json);
    let s = &r["search"];
    assert_eq!(s["unit"], "req/s");
    let found = s["found"].as_u64().expect("a rate found");
    assert!((18..=21).contains(&found), "{s}");
    let levels: Vec<u64> = s["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["level"].as_u64().unwrap())
        .collect();
    assert_eq!(&levels[..4], [4, 8, 16, 32], "{s}");
    // The hold sent the rate found; at the limit's edge it may or may not
    // have kept under it, and the run's verdict is the hold's.
    let hold = &s["hold"];
    assert_eq!(hold["level"].as_u64(), Some(found), "{hold}");
    assert!((f(&hold["ok_rps"]) - found as f64).abs() <= 2.0, "{hold}");
    let passed = hold["pass"] == true;
    assert_eq!(
        out.status.code(),
        Some(if passed { 0 } else { 99 }),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("find-and-hold: req/s from 4 up to 64"),
        "{}",
        stdout(&out)
    );
}
