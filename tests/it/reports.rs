//! Reports read from results: the HTML report opened in headless Chromium,
//! CSV against the JSON, compare's verdicts, merge's exactness, and the
//! refusals of what is not a result.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::common::*;
use serde_json::Value;

fn p(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

fn ps(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// Run periscope; assert the exit code.
async fn expect(args: Vec<String>, code: i32) -> std::process::Output {
    let out = periscope_async(args.clone()).await;
    assert_eq!(
        out.status.code(),
        Some(code),
        "{args:?}\nstdout: {}\nstderr: {}",
        stdout(&out),
        stderr(&out)
    );
    out
}

/// A short embeddings run's result: another workload than the chat runs.
async fn embeddings_result(dir: &tempfile::TempDir) -> String {
    let emb = ps(&p(dir, "emb.json"));
    let args = [
        "run",
        "embeddings",
        "--mock",
        "--vus",
        "1",
        "--duration",
        "1s",
        "--json",
        &emb,
    ];
    expect(s(&args), 0).await;
    emb
}

/// The `<figure id="chart-ID">` of a page, up to its end.
fn figure<'a>(dom: &'a str, id: &str) -> Option<&'a str> {
    let start = dom.find(&format!("id=\"chart-{id}\""))?;
    let end = dom[start..].find("</figure>")? + start;
    Some(&dom[start..end])
}

/// Coordinate pairs of the longest polyline in `svg`.
fn longest_line(svg: &str) -> usize {
    svg.split("<polyline")
        .skip(1)
        .filter_map(|p| {
            let pts = p.split("points=\"").nth(1)?.split('"').next()?;
            Some(pts.split_whitespace().filter(|xy| xy.contains(',')).count())
        })
        .max()
        .unwrap_or(0)
}

/// Open `page` in headless Chromium: every chart in `charts` is present and
/// drawn, nothing reaches the console (the page has no script: any message
/// is an error or a blocked load), and nothing in it points off the page.
fn check_page(page: &Path, charts: &[&str]) {
    let html = std::fs::read_to_string(page).unwrap();
    for banned in [
        "src=", "href=", "url(", "@import", "<script", "<link", "<iframe",
    ] {
        assert!(
            !html.contains(banned),
            "{}: contains {banned}",
            page.display()
        );
    }
    assert!(html.contains("Content-Security-Policy\" content=\"default-src 'none'"));
    let (dom, log) = chromium_run(page, &["--dump-dom"]);
    assert!(
        dom.contains("</html>"),
        "chromium did not render {}: {log}",
        page.display()
    );
    let console: Vec<&str> = log.lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(
        console.is_empty(),
        "{}: console: {console:?}",
        page.display()
    );
    for id in charts {
        let fig = figure(&dom, id).unwrap_or_else(|| panic!("{}: no chart {id}", page.display()));
        assert!(fig.contains("<svg"), "{id}: no svg");
        assert!(longest_line(fig) >= 2, "{id}: no line drawn: {fig:.600}");
    }
    let found = dom.matches("<figure class=\"chart\"").count();
    assert_eq!(
        found,
        charts.len(),
        "{}: charts {found} vs {charts:?}",
        page.display()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_html_report_renders_offline_in_chromium_with_every_chart() {
    let Some(_) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    // A streaming chat run, straight from `run --html`.
    let (a_json, a_html) = (p(&dir, "a.json"), p(&dir, "a.html"));
    expect(
        s(&[
            "run",
            "--mock",
            "--vus",
            "4",
            "--duration",
            "4s",
            "--json",
            &ps(&a_json),
            "--html",
            &ps(&a_html),
        ]),
        0,
    )
    .await;
    let chat_charts = [
        "rps",
        "vus",
        "latency-ttft",
        "latency-itl",
        "latency-tpot",
        "latency-e2e",
        "dist-ttft",
        "dist-e2e",
        "tokens",
    ];
    check_page(&a_html, &chat_charts);
    // `report` reads only the result: the same page.
    let a2 = p(&dir, "a2.html");
    expect(s(&["report", &ps(&a_json), "--html", &ps(&a2)]), 0).await;
    assert_eq!(std::fs::read(&a_html).unwrap(), std::fs::read(&a2).unwrap());

    // The server's metrics: its queue and KV-cache usage beside the
    // client's ttft, and its tables.
    let sm = p(&dir, "sm.html");
    expect(
        s(&[
            "run",
            "--mock",
            "--mock-args",
            "--max-concurrency 2",
            "--vus",
            "4",
            "--duration",
            "3s",
            "--server-metrics",
            "--scrape-interval",
            "250ms",
            "--html",
            &ps(&sm),
        ]),
        0,
    )
    .await;
    let mut server_charts = chat_charts.to_vec();
    server_charts.extend(["server-queue", "server-kv"]);
    check_page(&sm, &server_charts);
    let page = std::fs::read_to_string(&sm).unwrap();
    assert!(page.contains("Server metrics (vllm at"), "{page:.2000}");
    let order: Vec<usize> = [
        "chart-latency-ttft",
        "chart-server-queue",
        "chart-server-kv",
    ]
    .iter()
    .map(|id| page.find(id).unwrap())
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");

    // Multi-turn: ttft by turn. Batch embeddings: per-text latency by size.
    let b = p(&dir, "b.html");
    expect(
        s(&[
            "run",
            "conversation",
            "--mock",
            "--vus",
            "2",
            "--duration",
            "3s",
            "--turns",
            "3",
            "--html",
            &ps(&b),
        ]),
        0,
    )
    .await;
    let mut turn_charts = chat_charts.to_vec();
    turn_charts.push("by-turn");
    check_page(&b, &turn_charts);
    let c = p(&dir, "c.html");
    expect(
        s(&[
            "run",
            "batch-embeddings",
            "--mock",
            "--vus",
            "2",
            "--duration",
            "4s",
            "--batch-sizes",
            "1,8",
            "--html",
            &ps(&c),
        ]),
        0,
    )
    .await;
    check_page(
        &c,
        &[
            "rps",
            "vus",
            "latency-e2e",
            "dist-e2e",
            "tokens",
            "by-batch",
        ],
    );

    // A sweep, direct vs a delaying proxy.
    let direct = MockProc::start(&["--ttft", "5ms", "--itl", "1ms"]);
    let upstream = format!("http://{}", direct.addr);
    let proxy = MockProc::start(&["--upstream", &upstream, "--added-latency", "2ms"]);
    let (d_json, d_html) = (p(&dir, "d.json"), p(&dir, "d.html"));
    expect(
        s(&[
            "sweep",
            "--direct-url",
            &direct.base(),
            "--proxy-url",
            &proxy.base(),
            "--concurrency-list",
            "1,2",
            "--requests",
            "12",
            "--max-tokens",
            "8",
            "--output-json",
            &ps(&d_json),
            "--html",
            &ps(&d_html),
        ]),
        0,
    )
    .await;
    check_page(&d_html, &["sweep-latency", "sweep-rps", "sweep-overhead"]);
    let d2 = p(&dir, "d2.html");
    expect(s(&["report", &ps(&d_json), "--html", &ps(&d2)]), 0).await;
    assert_eq!(std::fs::read(&d_html).unwrap(), std::fs::read(&d2).unwrap());

    // The check can fail: a page that loads something is caught by its
    // policy, and the refusal shows on the console.
    let html = std::fs::read_to_string(&a_html).unwrap();
    let leaky = p(&dir, "leaky.html");
    std::fs::write(
        &leaky,
        html.replace(
            "<main>",
            "<main><img alt=\"x\" src=\"http://127.0.0.1:9/x.png\">",
        ),
    )
    .unwrap();
    let (_, log) = chromium_run(&leaky, &["--dump-dom"]);
    assert!(
        log.lines()
            .any(|l| l.contains(":CONSOLE") && l.contains("Content Security Policy")),
        "a blocked load must reach the console: {log}"
    );

    // It reads on a phone and on a desktop screen.
    for (w, h) in [(390, 2400), (1200, 2400)] {
        let shot = p(&dir, &format!("shot-{w}.png"));
        chromium_run(
            &a_html,
            &[
                &format!("--window-size={w},{h}"),
                &format!("--screenshot={}", shot.display()),
            ],
        );
        let png = std::fs::read(&shot).expect("a screenshot");
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 20_000,
            "{w}: {} bytes",
            png.len()
        );
    }
}

fn csv_rows(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<String> = lines.next().unwrap().split(',').map(String::from).collect();
    // Periscope's own fields have no commas but the timestamp-free ones; the
    // group column ("endpoint GET /x") has none either.
    let rows = lines
        .map(|l| l.split(',').map(String::from).collect())
        .collect();
    (header, rows)
}

#[tokio::test(flavor = "multi_thread")]
async fn csv_has_a_row_per_request_and_a_summary_that_agrees_with_the_json() {
    let dir = tempfile::tempdir().unwrap();
    let (json, csv) = (p(&dir, "r.json"), p(&dir, "r.csv"));
    expect(
        s(&[
            "run",
            "--mock",
            "--vus",
            "4",
            "--duration",
            "3s",
            "--no-preflight",
            "--mock-args",
            "--error-rate 0.2 --ttft 20ms --itl 2ms",
            "--json",
            &ps(&json),
            "--csv",
            &ps(&csv),
            // The rows stream to the CSV during the run; the JSON keeps
            // them only on request, for `report --csv` below.
            "--keep-requests",
        ]),
        0,
    )
    .await;
    let r = read_json(&ps(&json));
    let (header, rows) = csv_rows(&csv);
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    assert_eq!(
        rows.len() as u64,
        r["summary"]["requests"].as_u64().unwrap()
    );
    let ok = rows.iter().filter(|row| row[col("ok")] == "true").count() as u64;
    assert_eq!(ok, r["summary"]["ok"].as_u64().unwrap());
    let mut by_class: BTreeMap<String, u64> = BTreeMap::new();
    for row in &rows {
        if !row[col("error_class")].is_empty() {
            *by_class.entry(row[col("error_class")].clone()).or_default() += 1;
        }
    }
    let mut want: BTreeMap<String, u64> = BTreeMap::new();
    for e in r["errors"].as_array().unwrap() {
        *want
            .entry(e["class"].as_str().unwrap().to_string())
            .or_default() += e["count"].as_u64().unwrap();
    }
    assert!(!want.is_empty(), "the mock's errors");
    assert_eq!(by_class, want);
    // Every row names its run and has a timestamp and an e2e.
    for row in &rows {
        assert_eq!(row[col("run_id")], r["run_id"].as_str().unwrap());
        assert!(row[col("timestamp")].ends_with('Z'));
        assert!(row[col("e2e_ms")].parse::<f64>().unwrap() > 0.0);
    }

    // The summary CSV says what the JSON says, figure by figure.
    let (_, summary) = csv_rows(&csv.with_file_name("r-summary.csv"));
    let mut checked = 0;
    for row in &summary {
        let (scope, metric, value) = (&row[1], &row[2], row[3].parse::<f64>().unwrap());
        if scope != "total" {
            continue;
        }
        let json = match metric.split_once('.') {
            Some(("errors", _)) => continue,
            Some((m, stat)) => r["latency"][m][stat].clone(),
            None if metric == "duration_s" => r["duration_s"].clone(),
            None => r["summary"][metric.as_str()].clone(),
        };
        assert_eq!(Some(value), json.as_f64(), "{metric}");
        checked += 1;
    }
    assert!(checked >= 40, "{checked} figures checked");

    // `report --csv` writes the same files from the JSON alone.
    let again = p(&dir, "again.csv");
    expect(s(&["report", &ps(&json), "--csv", &ps(&again)]), 0).await;
    // The same rows; the run writes them as requests end, the JSON keeps
    // them in the order they were collected.
    let sorted = |path: &Path| {
        let text = std::fs::read_to_string(path).unwrap();
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        lines.sort();
        lines
    };
    let (live, again_rows) = (sorted(&csv), sorted(&again));
    assert_eq!(live.len(), again_rows.len());
    assert!(live == again_rows, "the rows of `report --csv` differ");
    assert_eq!(
        std::fs::read(csv.with_file_name("r-summary.csv")).unwrap(),
        std::fs::read(again.with_file_name("again-summary.csv")).unwrap()
    );

    // A result that did not keep its requests says how to get them.
    let plain = p(&dir, "plain.json");
    expect(
        s(&[
            "run",
            "--mock",
            "--vus",
            "1",
            "--duration",
            "1s",
            "--json",
            &ps(&plain),
        ]),
        0,
    )
    .await;
    let none = p(&dir, "none.csv");
    let out = expect(s(&["report", &ps(&plain), "--csv", &ps(&none)]), 1).await;
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("plain.json") && err.contains("--keep-requests"),
        "{err}"
    );
    assert!(!none.exists());
}

/// The rows of compare's table: metric → (beyond noise, verdict).
fn compare_rows(text: &str) -> BTreeMap<String, (String, String)> {
    text.lines()
        .filter(|l| l.starts_with('|') && !l.contains("---") && !l.contains("| metric"))
        .map(|l| {
            let c: Vec<&str> = l.split('|').map(str::trim).collect();
            let metric = c[1].split(' ').next().unwrap().to_string();
            (metric, (c[5].to_string(), c[6].to_string()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn compare_flags_a_slowed_mock_and_not_the_same_mock_twice() {
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, ttft: &str| {
        s(&[
            "run",
            "--mock",
            "--vus",
            "6",
            "--duration",
            "4s",
            "--max-tokens",
            "16",
            "--mock-args",
            &format!("--ttft {ttft} --itl 4ms --jitter 0.05"),
            "--json",
            &ps(&p(&dir, name)),
        ])
    };
    expect(run("base.json", "60ms"), 0).await;
    expect(run("same.json", "60ms"), 0).await;
    expect(run("slow.json", "90ms"), 0).await;
    let base = ps(&p(&dir, "base.json"));

    // The same mock twice. Only metrics the mock's settings dominate: an
    // itl tail of a few ms is this machine's scheduling, which does change
    // between two runs on a loaded 2-core box (seen: itl.p95 4.6 → 5.6 ms).
    let stable = ["ttft.p50", "ttft.p95", "e2e.p50", "ok_rps", "error_rate"];
    let mut args = s(&["compare", &base, &ps(&p(&dir, "same.json"))]);
    for m in stable {
        args.extend(s(&["--metric", m]));
    }
    let out = expect(args, 0).await;
    let text = stdout(&out);
    assert!(text.contains("No regression beyond 10%"), "{text}");
    let rows = compare_rows(&text);
    for m in stable {
        let (noise, verdict) = &rows[m];
        assert_eq!(verdict, "ok", "{m}: {text}");
        assert_ne!(noise, "yes", "{m}: {text}");
    }

    let out = expect(s(&["compare", &base, &ps(&p(&dir, "slow.json"))]), 99).await;
    let text = stdout(&out);
    let rows = compare_rows(&text);
    for m in ["ttft.p50", "ttft.p95"] {
        assert_eq!(
            rows[m],
            ("yes".to_string(), "**regression**".to_string()),
            "{m}: {text}"
        );
    }
    let err = stderr(&out);
    assert!(err.contains("regression(s) beyond 10%: ttft.p50"), "{err}");
    // The bound is the user's: at 100% the same slowdown passes. Only the
    // metrics the mock's +50% ttft sets: a p99 tail on a loaded 2-core box
    // is the machine's scheduling (seen: ttft.p99 63 → 132 ms).
    let mut args = s(&[
        "compare",
        &base,
        &ps(&p(&dir, "slow.json")),
        "--max-regression",
        "100%",
    ]);
    for m in ["ttft.p50", "ttft.p95", "e2e.p50"] {
        args.extend(s(&["--metric", m]));
    }
    expect(args, 0).await;
    // Fewer answers per second from the same VUs, too.
    assert_eq!(rows["ok_rps"].1, "**regression**", "{text}");
    // One metric, on request.
    let out = expect(
        s(&[
            "compare",
            &base,
            &ps(&p(&dir, "slow.json")),
            "--metric",
            "error_rate",
        ]),
        0,
    )
    .await;
    assert_eq!(compare_rows(&stdout(&out)).len(), 1);

    // Another workload is not comparable, unless forced.
    let emb = embeddings_result(&dir).await;
    let out = expect(s(&["compare", &base, &emb]), 1).await;
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("emb.json") && err.contains("workload"),
        "{err}"
    );
    let forced = periscope_async(s(&["compare", &base, &emb, "--force"])).await;
    assert_ne!(forced.status.code(), Some(1), "{}", stderr(&forced));

    // Bad input: one line naming the file.
    let junk = p(&dir, "junk.json");
    std::fs::write(&junk, "{\"schema\": \"periscope.result/v9\"}").unwrap();
    let out = expect(s(&["compare", &base, &ps(&junk)]), 1).await;
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("junk.json") && err.contains("periscope.result/v9"),
        "{err}"
    );
    let out = expect(s(&["compare", &base, &base, "--max-regression", "10"]), 1).await;
    assert!(stderr(&out).contains("needs a % sign"));
}

/// The exact nearest-rank quantile of sorted values.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[tokio::test(flavor = "multi_thread")]
async fn four_processes_merge_into_the_sums_and_the_union_percentiles() {
    let dir = tempfile::tempdir().unwrap();
    let parts: Vec<String> = (1..=4)
        .map(|i| ps(&p(&dir, &format!("part{i}.json"))))
        .collect();
    let runs = parts.iter().map(|json| {
        periscope_async(s(&[
            "run",
            "--mock",
            "--vus",
            "2",
            "--duration",
            "3s",
            "--max-tokens",
            "24",
            "--mock-args",
            "--ttft 30ms --itl 3ms --jitter 0.3",
            "--threshold",
            "ttft.p95<10s",
            "--keep-requests",
            "--json",
            json,
        ]))
    });
    for out in futures_join(runs).await {
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let docs: Vec<Value> = parts.iter().map(|p| read_json(p)).collect();
    let merged = ps(&p(&dir, "merged.json"));
    let mut args = vec!["merge".to_string()];
    args.extend(parts.iter().cloned());
    args.extend(s(&["-o", &merged]));
    let out = expect(args.clone(), 0).await;
    assert!(stdout(&out).contains("### Summary"));
    let m = read_json(&merged);

    let sum = |f: &dyn Fn(&Value) -> u64| docs.iter().map(f).sum::<u64>();
    for key in ["requests", "ok", "errors", "input_tokens", "output_tokens"] {
        assert_eq!(
            m["summary"][key].as_u64().unwrap(),
            sum(&|d: &Value| d["summary"][key].as_u64().unwrap()),
            "{key}"
        );
    }
    assert_eq!(
        m["requests"].as_array().unwrap().len() as u64,
        m["summary"]["requests"].as_u64().unwrap()
    );
    assert_eq!(m["merged_from"].as_array().unwrap().len(), 4);
    // The merged plan is the whole: 4 × 2 VUs.
    assert_eq!(
        m["plan"]["load"]["vus"]["stages"][0]["target"].as_f64(),
        Some(8.0)
    );
    // Percentiles are those of the union of every part's requests.
    for metric in ["ttft", "e2e"] {
        let mut union: Vec<f64> = docs
            .iter()
            .flat_map(|d| d["requests"].as_array().unwrap().clone())
            .filter(|r| r["ok"] == true)
            .filter_map(|r| r[format!("{metric}_ms")].as_f64())
            .collect();
        union.sort_by(f64::total_cmp);
        assert_eq!(
            union.len() as u64,
            m["latency"][metric]["count"].as_u64().unwrap()
        );
        for (stat, q) in [
            ("p50", 0.5),
            ("p90", 0.9),
            ("p95", 0.95),
            ("p99", 0.99),
            ("max", 1.0),
        ] {
            let exact = quantile(&union, q);
            let got = f(&m["latency"][metric][stat]);
            // HDR, 3 significant digits: the bucket's top value.
            assert!(
                got >= exact - 0.002 && got <= exact * 1.001 + 0.002,
                "{metric}.{stat}: merged {got} vs union {exact}"
            );
        }
    }
    // Thresholds are judged again on the whole.
    assert_eq!(m["thresholds"][0]["pass"], true);
    let mut strict = docs[0].clone();
    strict["plan"]["thresholds"] = serde_json::json!(["ttft.p50<1ms"]);
    std::fs::write(&parts[0], serde_json::to_string(&strict).unwrap()).unwrap();
    let out = expect(args, 99).await;
    assert!(
        stderr(&out).contains("thresholds failed: ttft.p50<1ms"),
        "{}",
        stderr(&out)
    );

    // Not a result: one line naming the file; another workload: refused.
    let junk = p(&dir, "junk.json");
    std::fs::write(&junk, "[1, 2]").unwrap();
    let out = expect(s(&["merge", &parts[1], &ps(&junk), "-o", &merged]), 1).await;
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("junk.json") && err.contains("not a periscope result"),
        "{err}"
    );
    let emb = embeddings_result(&dir).await;
    let out = expect(s(&["merge", &parts[1], &emb, "-o", &merged]), 1).await;
    assert!(
        stderr(&out).contains("workload differs"),
        "{}",
        stderr(&out)
    );
}

async fn futures_join<F>(fs: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = fs.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn the_summary_is_appended_to_the_github_job_summary() {
    let dir = tempfile::tempdir().unwrap();
    let summary = p(&dir, "step-summary.md");
    std::fs::write(&summary, "# earlier step\n").unwrap();
    let out = std::process::Command::new(BIN)
        .args(["run", "--mock", "--vus", "1", "--duration", "1s"])
        .env("GITHUB_STEP_SUMMARY", &summary)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(&summary).unwrap();
    assert!(text.starts_with("# earlier step\n"), "{text}");
    assert!(
        text.contains("### Summary") && text.contains("### Latency (ms)"),
        "{text}"
    );
    assert_eq!(text.matches("### Summary").count(), 1);
}
