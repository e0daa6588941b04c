//! vLLM's benchmark JSON: written by `--json PATH --format vllm` with every
//! field `vllm bench serve` writes (the list taken from vLLM's source,
//! tests/it/data/vllm_bench_serve_fields.txt), its figures those of the
//! mock's stamps; read back by `compare` and `report --from-vllm`.

use crate::common::*;

fn fields() -> Vec<String> {
    include_str!("data/vllm_bench_serve_fields.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.trim().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_in_vllms_format_has_its_every_field_and_compare_reads_it() {
    let m = MockProc::start(&["--ttft", "25ms", "--itl", "3ms", "--output-tokens", "12"]);
    let dir = tempfile::tempdir().unwrap();
    let vllm = temp_json(&dir, "vllm");
    let ours = temp_json(&dir, "ours");
    let out = periscope(&[
        "run",
        "--target",
        &m.base(),
        "--vus",
        "4",
        "--iterations",
        "200",
        "--no-preflight",
        "--json",
        &vllm,
        "--format",
        "vllm",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v = read_json(&vllm);
    for field in fields() {
        assert!(v.get(&field).is_some(), "no `{field}` in {v}");
    }
    assert!(
        v.get("schema").is_none(),
        "vLLM's format has no schema field"
    );
    assert_eq!(v["completed"], 200);
    assert_eq!(v["failed"], 0);
    assert_eq!(v["max_concurrency"], 4);
    assert_eq!(v["request_rate"], "inf");
    assert_eq!(f(&v["total_output_tokens"]), 200.0 * 12.0);
    // Its latencies are the mock's send stamps', in ms as vLLM writes them.
    let st = m.stats().await;
    let mock_ttft = f(&st["ttft_us"]["p50"]) / 1000.0;
    assert!(
        (f(&v["median_ttft_ms"]) - mock_ttft).abs() < 2.0,
        "{} vs {mock_ttft}",
        v["median_ttft_ms"]
    );
    assert!(
        (f(&v["mean_itl_ms"]) - 3.0).abs() < 1.0,
        "{}",
        v["mean_itl_ms"]
    );
    assert!(f(&v["std_ttft_ms"]) >= 0.0 && f(&v["p99_ttft_ms"]) >= f(&v["median_ttft_ms"]));
    let e2e = f(&v["median_e2el_ms"]);
    assert!((e2e - (25.0 + 11.0 * 3.0)).abs() < 5.0, "{e2e}");
    // The same setup in periscope's own format; compare reads either.
    let out = periscope(&[
        "run",
        "--target",
        &m.base(),
        "--vus",
        "4",
        "--iterations",
        "200",
        "--no-preflight",
        "--json",
        &ours,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = periscope(&["compare", &vllm, &ours]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let md = stdout(&out);
    assert!(md.contains("vLLM benchmark result"), "{md}");
    for metric in [
        "ttft.p50", "ttft.p99", "itl.p50", "tpot.p50", "e2e.p50", "ok_rps",
    ] {
        assert!(md.contains(&format!("| {metric}")), "{metric}: {md}");
    }
    let out = periscope(&["report", "--from-vllm", &vllm]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("| ttft "), "{}", stdout(&out));
    // A file that is neither is refused with one line.
    std::fs::write(dir.path().join("x.json"), "{\"a\": 1}").unwrap();
    let out = periscope(&[
        "report",
        "--from-vllm",
        dir.path().join("x.json").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("not a vLLM benchmark result"),
        "{}",
        stderr(&out)
    );
}
