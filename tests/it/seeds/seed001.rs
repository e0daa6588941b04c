//! The LLMTrace direct-vs-proxy overhead bench: its five documented
//! commands, with whole endpoint URLs and its own flag names, against a
//! mock (direct) and a mock proxy in front of it that adds 5 ms.

use super::{command, text, Shell};
use crate::common::{f, MockProc};

/// The README's examples, as written (its hosts: 8082 the model, 8081 the proxy).
const EXAMPLE_1: &str = r#"python3 perf_test/llmtrace_e2e_overhead_bench.py \
  --url http://192.168.1.107:8081/v1/chat/completions \
  --model glm-4.7-flash \
  --token "$LLMTRACE_TOKEN" \
  --agent-id laptop-test-user \
  --dataset-suite core \
  --requests 1000 \
  --concurrency 3"#;

const EXAMPLE_1A: &str = r#"PYTHONUNBUFFERED=1 python3 perf_test/llmtrace_e2e_overhead_bench.py \
  --mode probe \
  --url http://192.168.1.107:8081/v1/chat/completions \
  --model glm-4.7-flash \
  --token "$LLMTRACE_TOKEN" \
  --agent-id laptop-test-user \
  --dataset-suite all \
  --workers 8 \
  --preview-chars 120 \
  --show-prompt"#;

const EXAMPLE_2: &str = r#"python3 perf_test/llmtrace_e2e_overhead_bench.py \
  --direct-url http://192.168.1.107:8082/v1/chat/completions \
  --proxy-url  http://192.168.1.107:8081/v1/chat/completions \
  --model glm-4.7-flash \
  --token "$LLMTRACE_TOKEN" \
  --agent-id laptop-test-user \
  --dataset-suite core \
  --concurrency-list 1,2,5,10,20 \
  --requests 500"#;

const EXAMPLE_3: &str = r#"python3 perf_test/llmtrace_e2e_overhead_bench.py \
  --url http://192.168.1.107:8081/v1/chat/completions \
  --model glm-4.7-flash \
  --token "$LLMTRACE_TOKEN" \
  --dataset-suite core \
  --dataset-label malicious \
  --subcategory-contains role_injection \
  --requests 300 \
  --concurrency 10"#;

const EXAMPLE_4: &str = r#"PYTHONUNBUFFERED=1 python3 perf_test/llmtrace_e2e_overhead_bench.py \
  --direct-url http://192.168.1.107:8082/v1/chat/completions \
  --proxy-url  http://192.168.1.107:8081/v1/chat/completions \
  --model glm-4.7-flash \
  --token "$LLMTRACE_TOKEN" \
  --dataset-suite all \
  --concurrency-list 1,2,5,10,20 \
  --requests 1500 \
  --progress-every 100"#;

struct Bench {
    shell: Shell,
    direct: MockProc,
    proxy: MockProc,
}

impl Bench {
    fn start(added: &str) -> Bench {
        let common = [
            "--api-key",
            "secret-token",
            "--count-header",
            "X-LLMTrace-Agent-ID",
        ];
        let mut d = vec!["--ttft", "1ms", "--itl", "0ms", "--output-tokens", "4"];
        d.extend(common);
        let direct = MockProc::start(&d);
        let upstream = format!("http://{}", direct.addr);
        let mut p = vec!["--upstream", &upstream, "--added-latency", added];
        p.extend(common);
        let proxy = MockProc::start(&p);
        Bench {
            shell: Shell::new(),
            direct,
            proxy,
        }
    }

    /// The seed's command: its entry point periscope's, its hosts ours.
    fn run(&self, example: &str) -> (String, std::process::Output) {
        let cmd = command(example)
            .replace(
                "python3 perf_test/llmtrace_e2e_overhead_bench.py",
                "periscope sweep",
            )
            .replace(
                "http://192.168.1.107:8081",
                &format!("http://{}", self.proxy.addr),
            )
            .replace(
                "http://192.168.1.107:8082",
                &format!("http://{}", self.direct.addr),
            );
        let out = self
            .shell
            .run(&cmd, &[("LLMTRACE_TOKEN", "secret-token".to_string())]);
        assert!(out.status.success(), "{cmd}: {}", text(&out));
        (String::from_utf8_lossy(&out.stdout).into_owned(), out)
    }
}

/// The cells of the Markdown row whose first cells are `start`.
fn row(md: &str, start: &[&str]) -> Vec<String> {
    md.lines()
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect::<Vec<_>>()
        })
        .find(|cells| cells.len() > start.len() && cells.iter().zip(start).all(|(c, s)| c == s))
        .unwrap_or_else(|| panic!("no row {start:?} in:\n{md}"))
}

async fn agent_ids(m: &MockProc) -> serde_json::Value {
    crate::common::get_json(&m.url("/mock/headers")).await["x-llmtrace-agent-id"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_1_proxy_only_load_with_its_flags_and_a_whole_endpoint_url() {
    let b = Bench::start("2ms");
    let (md, _) = b.run(EXAMPLE_1);
    // `Results` at concurrency 3: every request ok.
    let r = row(&md, &["target", "3", "1000"]);
    assert_eq!((r[3].as_str(), r[4].as_str()), ("1000", "0"), "{md}");
    assert!(md.contains("agent `laptop-test-user`"), "{md}");
    // The proxy saw every request with the agent's header, the token
    // accepted; its own e2e is ours less the loopback hop.
    let st = b.proxy.stats().await;
    assert_eq!(st["by_status"]["200"], st["requests"], "{st}");
    let ids = agent_ids(&b.proxy).await;
    assert!(ids["laptop-test-user"].as_u64().unwrap() >= 1000, "{ids}");
    let ours_p50: f64 = r[7].parse().unwrap();
    let theirs = f(&st["e2e_us"]["p50"]) / 1000.0;
    assert!(
        (ours_p50 - theirs).abs() < 1.5,
        "e2e p50 {ours_p50} ms vs the proxy's own {theirs} ms"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_1a_probe_table_through_mode_probe() {
    let b = Bench::start("1ms");
    let (md, _) = b.run(EXAMPLE_1A);
    // core (124) and external (40): each case once.
    assert!(
        md.contains("## periscope probe: 164 cases → http://"),
        "{md}"
    );
    assert!(md.contains("/v1/chat/completions"), "{md}");
    for needle in [
        "agent `laptop-test-user`",
        "Token present: true",
        "8 workers",
        "| Case ",
        "| Prompt ",
        "| Preview ",
    ] {
        assert!(md.contains(needle), "{needle}: {md}");
    }
    let st = b.proxy.stats().await;
    assert_eq!(f(&st["requests"]), 164.0, "{st}");
    assert_eq!(agent_ids(&b.proxy).await["laptop-test-user"], 164);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_2_direct_vs_proxy_overhead_by_level() {
    let b = Bench::start("5ms");
    let (md, _) = b.run(EXAMPLE_2);
    assert!(
        md.contains("### Estimated Overhead (proxy - direct)"),
        "{md}"
    );
    assert!(md.contains("### Sweep Results"), "{md}");
    for level in ["1", "2", "5", "10", "20"] {
        for ep in ["direct", "proxy"] {
            let r = row(&md, &[ep, level, "500"]);
            assert_eq!(
                (r[3].as_str(), r[4].as_str()),
                ("500", "0"),
                "{ep} {level}: {md}"
            );
        }
    }
    // The overhead by level: Δp50 is the proxy's 5 ms (its stamps say how
    // long it held each request), and through it fewer requests a second.
    let o = md
        .split("### Overhead by level")
        .nth(1)
        .expect("overhead by level");
    for level in ["1", "2", "5", "10", "20"] {
        let r = row(o, &[level]);
        let dp50: f64 = r[2].trim_start_matches('+').parse().unwrap();
        assert!(
            (3.5..=6.5).contains(&dp50),
            "level {level}: Δp50 {dp50}: {o}"
        );
    }
    let l1 = row(o, &["1"]);
    assert!(
        l1[7].starts_with('-'),
        "Δok_rps at concurrency 1 is a drop: {o}"
    );
    let hold = f(&b.proxy.stats().await["proxy_hold_us"]["p50"]) / 1000.0;
    assert!(
        (4.9..5.6).contains(&hold),
        "the proxy held requests {hold} ms"
    );
    // Both legs carried the agent's header.
    assert!(
        agent_ids(&b.direct).await["laptop-test-user"]
            .as_u64()
            .unwrap()
            >= 5000
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_3_malicious_role_injection_only() {
    let b = Bench::start("1ms");
    let (md, _) = b.run(EXAMPLE_3);
    let r = row(&md, &["target", "10", "300"]);
    assert_eq!((r[3].as_str(), r[4].as_str()), ("300", "0"), "{md}");
    let st = b.proxy.stats().await;
    // 300 requests and the preflight.
    assert!((300.0..=302.0).contains(&f(&st["requests"])), "{st}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_4_long_sweep_shows_progress_every_100_requests() {
    let b = Bench::start("0ms");
    let (md, out) = b.run(EXAMPLE_4);
    for level in ["1", "2", "5", "10", "20"] {
        let r = row(&md, &["proxy", level, "1500"]);
        assert_eq!(r[4], "0", "{md}");
    }
    // A plain line per 100 completed requests (at the collector's
    // one-second beat: at least one per block of a level).
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.contains(" requests in "))
        .collect();
    assert!(lines.len() >= 40, "{} progress lines: {err}", lines.len());
    let st = b.direct.stats().await;
    assert!(f(&st["requests"]) >= 15_000.0, "{st}");
}

/// `run`, `sweep` and `probe` given the whole endpoint or its base: no
/// error either way, and the same figures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_endpoint_url_gives_the_base_urls_figures() {
    let m = MockProc::start(&["--ttft", "3ms", "--itl", "1ms", "--output-tokens", "8"]);
    let sh = Shell::new();
    let base = format!("http://{}/v1", m.addr);
    let whole = format!("{base}/chat/completions");
    let mut p50 = Vec::new();
    for url in [&base, &whole] {
        let cmd = format!("periscope run --target {url} --vus 4 --iterations 200 --json r.json");
        let out = sh.run(&cmd, &[]);
        assert!(out.status.success(), "{cmd}: {}", text(&out));
        let r = crate::common::read_json(sh.path().join("r.json").to_str().unwrap());
        assert_eq!(r["summary"]["errors"], 0, "{url}: {}", r["errors"]);
        assert_eq!(r["summary"]["ok"], 200, "{url}");
        assert_eq!(r["plan"]["target"], base, "{url}");
        assert_eq!(r["plan"]["sent_to"], whole, "{url}");
        p50.push(f(&crate::common::latency(&r, "ttft")["p50"]));
    }
    assert!((p50[0] - p50[1]).abs() < 1.0, "ttft p50 {p50:?}");
    let mock_ttft = f(&m.stats().await["ttft_us"]["p50"]) / 1000.0;
    assert!(
        (p50[1] - mock_ttft).abs() < 2.0,
        "{p50:?} vs the mock's {mock_ttft}"
    );
    for url in [&base, &whole] {
        let cmd = format!("periscope sweep --url {url} --concurrency-list 2 --requests 50");
        let out = sh.run(&cmd, &[]);
        assert!(out.status.success(), "{cmd}: {}", text(&out));
        let md = String::from_utf8_lossy(&out.stdout);
        let r = row(&md, &["target", "2", "50"]);
        assert_eq!((r[3].as_str(), r[4].as_str()), ("50", "0"), "{url}: {md}");
        let cmd = format!("periscope probe --url {url} --dataset-suite core --dataset-limit 10");
        let out = sh.run(&cmd, &[]);
        assert!(out.status.success(), "{cmd}: {}", text(&out));
        let md = String::from_utf8_lossy(&out.stdout);
        assert!(md.contains(&format!("10 cases → {whole}")), "{md}");
        let answered = md
            .lines()
            .filter(|l| l.starts_with("| core-") && l.contains("| 200 "))
            .count();
        assert_eq!(answered, 10, "{md}");
    }
    // An endpoint of another API is refused, naming both.
    let out = sh.run(
        &format!("periscope run embeddings --target {whole} --dry-run"),
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("names the /chat/completions (chat completions) endpoint, but the embeddings workload sends to /embeddings"),
        "{}",
        text(&out)
    );
}
