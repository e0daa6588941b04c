//! `--prometheus URL --promql EXPR`: Debian's Prometheus and
//! VictoriaMetrics scrape the mock and llama.cpp's real server while
//! periscope runs; the range queries it asks at the end cover the run's
//! window and agree with its own scrapes of the same counters.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;
use crate::real::servers::Llama;
use serde_json::Value;

/// A scrape configuration (Prometheus's format, which VictoriaMetrics
/// reads too): every second, one job per `(name, host:port)`.
fn scrape_config(dir: &Path, jobs: &[(&str, String)]) -> PathBuf {
    let mut text =
        String::from("global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n");
    for (name, addr) in jobs {
        text.push_str(&format!(
            "  - job_name: {name}\n    static_configs:\n      - targets: ['{addr}']\n"
        ));
    }
    let p = dir.join("scrape.yml");
    std::fs::write(&p, text).unwrap();
    p
}

fn prometheus(config: &Path) -> Option<Server> {
    if !installed("prometheus", "prometheus") {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut cmd = Command::new("prometheus");
    cmd.arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", dir.path().display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"));
    Some(Server::spawn(
        cmd,
        dir,
        format!("http://127.0.0.1:{port}"),
        "/-/ready",
    ))
}

fn victoria_metrics(config: &Path) -> Option<Server> {
    if !installed("victoria-metrics", "victoria-metrics") {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut cmd = Command::new("victoria-metrics");
    cmd.arg(format!("-promscrape.config={}", config.display()))
        .arg(format!("-storageDataPath={}", dir.path().display()))
        .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
        .arg("-search.latencyOffset=0s")
        .arg("-search.disableCache");
    Some(Server::spawn(
        cmd,
        dir,
        format!("http://127.0.0.1:{port}"),
        "/health",
    ))
}

/// Wait until the store has scraped every job at least once.
async fn wait_scraped(base: &str, jobs: usize) {
    for _ in 0..100 {
        let a = get_json(&format!("{base}/api/v1/query?query=up")).await;
        let up = a["data"]["result"]
            .as_array()
            .map_or(0, |r| r.iter().filter(|s| s["value"][1] == "1").count());
        if up >= jobs {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    panic!("{base} never scraped its {jobs} targets");
}

/// Our scrape's value of a counter at the last sample at or before `t`
/// (the first when none), and at the first at or after `t` (the last).
fn bracket(ours: &[Value], t: f64) -> (f64, f64) {
    let pts: Vec<(f64, f64)> = ours.iter().map(|p| (f(&p[0]), f(&p[1]))).collect();
    let lo = pts.iter().rev().find(|p| p.0 <= t).unwrap_or(&pts[0]).1;
    let hi = pts
        .iter()
        .find(|p| p.0 >= t)
        .unwrap_or(&pts[pts.len() - 1])
        .1;
    (lo, hi)
}

/// Run against `target` with `--promql` to `store`, and check the answer.
async fn run_and_check(target: &str, extra: &[&str], store: &str, counter: &str, ours: &str) {
    let mut args = vec![
        "run",
        "--target",
        target,
        "--no-preflight",
        "--vus",
        "2",
        "--duration",
        "3s",
        "--server-metrics",
        "--scrape-interval",
        "500ms",
        "--prometheus",
        store,
        "--promql",
        counter,
        "--promql",
        "targets_up: up",
        "--threshold",
        "server.promql.targets_up.min>0.5",
        "--threshold",
        "server.promql.targets_up.max<1.5",
        "--prometheus-wait",
        "2500ms",
    ];
    args.extend_from_slice(extra);
    let (out, r) = run_ok(&args).await;
    assert_eq!(r["summary"]["errors"], 0, "{}", r["errors"]);
    let q = &r["server"]["queries"];
    let (gen, up) = (&q[0], &q[1]);
    assert!(gen["error"].is_null() && up["error"].is_null(), "{q}");
    // The window asked for is the run's own.
    let (start, end, step) = (f(&gen["start"]), f(&gen["end"]), f(&gen["step_s"]));
    let ours = r["server"]["targets"][0]["raw"]["counters"][ours]
        .as_array()
        .unwrap()
        .clone();
    let (first, last) = (f(&ours[0][0]), f(&ours[ours.len() - 1][0]));
    assert!(
        first <= start + 0.1 && start - first < 1.0,
        "{first} vs {start}"
    );
    assert!(
        (end - start - f(&r["duration_s"])).abs() < 0.5,
        "{start}..{end}: {}",
        r["duration_s"]
    );
    assert_eq!(step, 0.5);
    let series = gen["series"].as_array().unwrap();
    assert_eq!(series.len(), 1, "{gen}");
    let samples = series[0]["samples"].as_array().unwrap();
    assert!(samples.len() >= 4, "{gen}");
    for s in samples {
        let (t, v) = (f(&s[0]), f(&s[1]));
        assert!(
            t >= start - step && t <= end + step,
            "{t} outside {start}..{end}"
        );
        // The store's value at t is its scrape at most ~1 s before t: the
        // counter as we scraped it then and at t bounds it.
        let (lo, _) = bracket(&ours, t - 2.0);
        let (_, hi) = bracket(&ours, t);
        assert!(
            lo <= v && v <= hi,
            "at {t}: {v} not in [{lo}, {hi}] ({ours:?})"
        );
    }
    let seen = f(&samples[samples.len() - 1][1]) - f(&samples[0][1]);
    let all = f(&ours[ours.len() - 1][1]) - f(&ours[0][1]);
    assert!(
        all > 0.0 && seen >= 0.3 * all,
        "the store saw {seen} of {all}"
    );
    assert!(up["series"].as_array().unwrap().iter().all(|s| s["samples"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p[1] == 1.0)));
    assert!(stdout(&out).contains("### Prometheus queries"));
    // Thresholds on a named query's series (every series holds them).
    let th = r["thresholds"].as_array().unwrap();
    assert_eq!(th.len(), 2, "{th:?}");
    for t in th {
        assert_eq!(t["pass"], true, "{t}");
        assert_eq!(f(&t["actual"]), 1.0, "{t}");
    }
    assert_eq!(up["name"], "targets_up");
    let _ = last;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_and_victoria_metrics_answer_for_the_runs_window_as_the_scrape_saw_it() {
    let mock = MockProc::start(&["--ttft", "20ms", "--itl", "5ms", "--output-tokens", "16"]);
    let llama = Llama::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let mut jobs = vec![(
        "mock",
        mock.url("").trim_start_matches("http://").to_string(),
    )];
    if let Some(l) = &llama {
        jobs.push((
            "llama",
            l.origin().trim_start_matches("http://").to_string(),
        ));
    }
    let config = scrape_config(dir.path(), &jobs);
    let (Some(prom), Some(vm)) = (prometheus(&config), victoria_metrics(&config)) else {
        return;
    };
    wait_scraped(&prom.base, jobs.len()).await;
    wait_scraped(&vm.base, jobs.len()).await;
    let gen = "sum(vllm:generation_tokens_total)";
    run_and_check(&mock.base(), &[], &prom.base, gen, "generation_tokens").await;
    run_and_check(&mock.base(), &[], &vm.base, gen, "generation_tokens").await;
    if let Some(l) = &llama {
        run_and_check(
            &l.base(),
            &["--model", "gemma", "--max-tokens", "8"],
            &prom.base,
            "sum(llamacpp:tokens_predicted_total)",
            "generation_tokens",
        )
        .await;
    }
}
