//! `--runs N`: the same test N times on fresh connections, each run's
//! figures and their spread; `--between-runs` between them; `compare`
//! judging two such results by the spread between runs.

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_runs_give_each_figure_and_its_spread_and_identical_setups_compare_equal() {
    // Requests of 120 ms: a busy shared machine's scheduling noise stays well
    // under the 2% noise floor, as identical setups should.
    let m = MockProc::start(&["--ttft", "50ms", "--itl", "10ms", "--output-tokens", "8"]);
    let dir = tempfile::tempdir().unwrap();
    let count = dir.path().join("between.txt");
    let mut results = Vec::new();
    for name in ["a", "b"] {
        let json = temp_json(&dir, name);
        let between = format!("echo x >> {}", count.display());
        let out = periscope(&[
            "run",
            "--target",
            &m.base(),
            "--vus",
            "4",
            "--duration",
            "2s",
            "--runs",
            "5",
            "--between-runs",
            &between,
            "--json",
            &json,
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        let md = stdout(&out);
        assert!(md.contains("### Runs"), "{md}");
        let progress = stderr(&out);
        for i in 1..=5 {
            assert!(progress.contains(&format!("run {i}/5: ")), "{progress}");
        }
        let r = read_json(&json);
        let runs = &r["runs"];
        assert_eq!(runs["runs"].as_array().unwrap().len(), 5, "{runs}");
        let ttft = &runs["figures"]["ttft.p50"];
        assert_eq!(ttft["values"].as_array().unwrap().len(), 5);
        // Each run's value, and a steady mock: a CV under 2%.
        assert!(f(&ttft["cv"]) < 0.02, "{ttft}");
        let (lo, hi) = (f(&ttft["ci"][0]), f(&ttft["ci"][1]));
        assert!(lo <= f(&ttft["mean"]) && f(&ttft["mean"]) <= hi, "{ttft}");
        // The figures are those of the mock's stamps.
        let mock = f(&m.stats().await["ttft_us"]["p50"]) / 1000.0;
        assert!(
            (f(&ttft["mean"]) - mock).abs() < 2.0,
            "{ttft} vs the mock's {mock}"
        );
        results.push(json);
    }
    // Between runs only: 4 for each of the two series.
    let lines = std::fs::read_to_string(&count).unwrap().lines().count();
    assert_eq!(lines, 8);
    let out = periscope(&["compare", &results[0], &results[1]]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("No significant change"),
        "{}",
        stdout(&out)
    );
    // A failing command between runs stops them, with one line.
    let out = periscope(&[
        "run",
        "--target",
        &m.base(),
        "--vus",
        "1",
        "--duration",
        "1s",
        "--runs",
        "2",
        "--between-runs",
        "exit 3",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--between-runs 'exit 3' failed"),
        "{}",
        stderr(&out)
    );
}
