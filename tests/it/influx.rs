//! Live metrics to real servers: InfluxDB 1.x (Debian's `influxdb`) with every
//! query of both Grafana dashboards, and VictoriaMetrics (Debian's
//! `victoria-metrics`) through the InfluxDB 2.x write path.

use crate::common::*;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread")]
async fn dashboards_queries_agree_with_the_result_and_victoria_metrics_gets_the_points() {
    let (Some(influx), Some(vm)) = (Server::influxdb(), Server::victoria_metrics()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let json = temp_json(&dir, "r.json");
    let out = periscope_async(s(&[
        "run",
        "--mock",
        "--vus",
        "4",
        "--duration",
        "4s",
        "--no-preflight",
        "--mock-args",
        "--error-rate 0.15 --ttft 20ms --itl 2ms --jitter 0.3",
        "--out",
        &format!("influxdb={}/periscope", influx.base),
        "--out",
        &format!("influxdb2={}?org=o&bucket=periscope", vm.base),
        "--tag",
        "env=ci",
        "--keep-requests",
        "--json",
        &json,
    ]))
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
    let r = read_json(&json);
    let run_id = r["run_id"].as_str().unwrap();
    for o in r["outputs"].as_array().unwrap() {
        assert_eq!(o["dropped"], 0, "{o}");
        assert!(o["written"].as_u64().unwrap() > 0, "{o}");
    }
    assert_eq!(r["outputs"].as_array().unwrap().len(), 2);
    assert!(
        r["summary"]["errors"].as_u64().unwrap() > 0,
        "the error panels need errors"
    );

    // Every panel query of both dashboards, variables substituted, returns data.
    let mut by_title = std::collections::BTreeMap::new();
    let mut queries = 0;
    for name in ["periscope-load-test.json", "periscope-llm-tokens.json"] {
        let d = dashboard(name);
        let vars: Vec<&str> = d["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            vars,
            ["run_id", "scenario", "endpoint", "segment"],
            "{name}"
        );
        // A run without segments has no segment tag: its variable is empty,
        // and "All" (.*) still matches the run's points.
        variable_answers(&influx.base, name, run_id).await;
        for (title, answers) in panel_answers(&influx.base, name, run_id).await {
            queries += answers.len();
            by_title.insert(title, values(&answers[0]));
        }
    }
    assert!(queries >= 20, "{queries}");
    let total = |t: &str| by_title[t].iter().sum::<f64>();
    let summary = &r["summary"];
    assert_eq!(total("OK"), summary["ok"].as_f64().unwrap());
    assert_eq!(total("Requests"), summary["requests"].as_f64().unwrap());
    assert_eq!(total("Errors"), summary["errors"].as_f64().unwrap());
    assert_eq!(
        total("Output tokens"),
        summary["output_tokens"].as_f64().unwrap()
    );
    // ttft p95 of every request: InfluxQL's percentile() is a stored value at
    // its rank; ours is the HDR histogram's, within its precision.
    let mut ttft: Vec<f64> = r["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|q| q["ok"] == true)
        .filter_map(|q| q["ttft_ms"].as_f64())
        .collect();
    ttft.sort_by(f64::total_cmp);
    let (nearest, influx_rank) = ranks(&ttft, 0.95);
    assert_eq!(by_title["ttft p95 (all requests)"], vec![influx_rank]);
    let ours = f(&r["latency"]["ttft"]["p95"]);
    assert!(
        ours >= nearest - 0.002 && ours <= nearest * 1.001 + 0.002,
        "{ours} vs {nearest}"
    );

    // VictoriaMetrics: the same points through /api/v2/write, tagged. What
    // it ingested becomes searchable within a few seconds.
    let want = (
        summary["ok"].as_f64().unwrap(),
        summary["requests"].as_u64().unwrap() as usize,
    );
    let mut got = (0.0, 0);
    let mut export = String::new();
    for _ in 0..50 {
        (got, export) = victoria_export(&vm.base, run_id, &r).await;
        if got == want {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(got, want, "{export:.2000}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_otlp_dashboard_agrees_with_the_otlp_result() {
    let Some(influx) = Server::influxdb() else {
        return;
    };
    let mock = MockProc::start(&[
        "--error-rate",
        "0.1",
        "--error-status",
        "503",
        "--otlp-reject-rate",
        "0.2",
        "--query-latency",
        "2ms",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let json = temp_json(&dir, "r.json");
    let out = periscope_async(s(&[
        "run",
        "otlp-traces",
        "--endpoint",
        &mock.url("/v1/traces"),
        "--mix",
        "simple_query:3,small:1",
        "--rate",
        "25",
        "--duration",
        "4s",
        "--no-preflight",
        "--query-endpoint",
        &format!("http://{}", mock.addr),
        "--queries-per-s",
        "10",
        "--out",
        &format!("influxdb={}/periscope", influx.base),
        "--json",
        &json,
    ]))
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let r = read_json(&json);
    let run_id = r["run_id"].as_str().unwrap();
    assert_eq!(r["outputs"][0]["dropped"], 0, "{}", r["outputs"]);
    let o = &r["otlp"];
    assert!(o["failed_exports"].as_u64().unwrap() > 0, "{o}");
    assert!(o["rejected_spans"].as_u64().unwrap() > 0, "{o}");

    let name = "periscope-otlp-traces.json";
    for (var, tags) in variable_answers(&influx.base, name, run_id).await {
        if var == "run_id" {
            // Only otlp-traces runs are offered.
            assert!(tags.iter().any(|t| t[1] == run_id), "{tags:?}");
        }
    }
    let by_title: std::collections::BTreeMap<String, Vec<_>> =
        panel_answers(&influx.base, name, run_id)
            .await
            .into_iter()
            .map(|(title, answers)| (title, answers.iter().flat_map(columns).collect()))
            .collect();
    // The totals, as the result has them.
    let total = |title: &str, col: &str| -> f64 {
        by_title[title]
            .iter()
            .flat_map(|(_, c)| c.get(col).into_iter().flatten())
            .sum()
    };
    for (title, col, key) in [
        ("Traces accepted", "sum", "traces"),
        ("Spans accepted", "sum", "spans_accepted"),
        ("Data sent", "sum", "payload_bytes"),
        ("Failed exports", "sum", "failed_exports"),
        ("Rejected spans", "sum", "rejected_spans"),
        ("Traces per second", "accepted", "traces"),
        ("Traces per second", "failed", "failed_exports"),
        ("Spans per second", "accepted", "spans_accepted"),
        ("Spans per second", "rejected", "rejected_spans"),
        ("Data rate", "payload", "payload_bytes"),
        ("Data rate", "on the wire (gzip)", "wire_bytes"),
        ("Failed exports by HTTP status", "count", "failed_exports"),
    ] {
        assert_eq!(total(title, col), f(&o[key]), "{title} / {col}");
    }
    // The mix table: one row per trace scenario, as the report's.
    let mix = &by_title["Mix"];
    for row in o["mix"].as_array().unwrap() {
        let tag = format!("trace_scenario={}", row["scenario"].as_str().unwrap());
        let cols: Vec<_> = mix.iter().filter(|(t, _)| *t == tag).collect();
        assert_eq!(cols.len(), 2, "{tag}: {mix:?}");
        let got = |c: &str| cols.iter().find_map(|(_, m)| m.get(c)).unwrap()[0];
        assert_eq!(got("exports"), f(&row["sent"]), "{tag}");
        assert_eq!(got("spans accepted"), f(&row["spans"]), "{tag}");
        assert_eq!(got("tokens"), f(&row["tokens"]), "{tag}");
        assert!(
            (got("mean bytes") - f(&row["mean_bytes"])).abs() < 0.5,
            "{tag}"
        );
        let p50 = got("p50 ms");
        assert!(
            (p50 - f(&row["p50_ms"])).abs() <= f(&row["p50_ms"]) * 0.2 + 0.5,
            "{tag}: {p50} vs {}",
            row["p50_ms"]
        );
    }
    // The query load: every query answered, by template and status.
    let sent: f64 = o["queries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| f(&q["sent"]))
        .sum();
    assert!(sent >= 20.0, "{}", o["queries"]);
    assert_eq!(total("Queries per second by status", "count"), sent);
    let templates: Vec<&String> = by_title["Query latency p95 by template"]
        .iter()
        .map(|(t, _)| t)
        .collect();
    assert_eq!(templates.len(), o["queries"].as_array().unwrap().len());
}

/// The run's ok count and request points in VictoriaMetrics, checking the tags.
async fn victoria_export(base: &str, run_id: &str, r: &Value) -> ((f64, usize), String) {
    let mut url = reqwest::Url::parse(&format!("{base}/api/v1/export")).unwrap();
    url.query_pairs_mut().append_pair(
        "match[]",
        &format!(
            "{{__name__=~\"periscope_window_ok|periscope_request_e2e_ms\",run_id=\"{run_id}\"}}"
        ),
    );
    let export: String = http().get(url).send().await.unwrap().text().await.unwrap();
    let (mut ok, mut requests) = (0.0, 0usize);
    for line in export.lines() {
        let series: Value = serde_json::from_str(line).unwrap();
        let m = &series["metric"];
        assert_eq!(m["run_id"], run_id);
        assert_eq!(m["scenario"], "load");
        assert_eq!(m["workload"], "completions");
        assert_eq!(m["env"], "ci");
        assert_eq!(m["model"], r["plan"]["model"]);
        assert_eq!(m["endpoint"], r["plan"]["target"]);
        let vals = series["values"].as_array().unwrap();
        match m["__name__"].as_str().unwrap() {
            "periscope_window_ok" => ok += vals.iter().map(|v| v.as_f64().unwrap()).sum::<f64>(),
            _ => requests += vals.len(),
        }
    }
    ((ok, requests), export)
}

#[tokio::test(flavor = "multi_thread")]
async fn influxdb_stopped_mid_run_costs_dropped_points_not_the_run() {
    let Some(mut influx) = Server::influxdb() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let json = temp_json(&dir, "r.json");
    let args = s(&[
        "run",
        "--mock",
        "--vus",
        "2",
        "--duration",
        "6s",
        "--out",
        &format!("influxdb={}/periscope", influx.base),
        "--json",
        &json,
    ]);
    let run = tokio::spawn(periscope_async(args));
    // Let points reach it for a while, then take it away.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    influx.stop();
    let out = run.await.unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.matches("warning:").count(), 1, "{err}");
    let r = read_json(&json);
    let o = &r["outputs"][0];
    assert!(o["written"].as_u64().unwrap() > 0, "{o}");
    assert!(o["dropped"].as_u64().unwrap() > 0, "{o}");
    let text = stdout(&out);
    assert!(
        text.contains(&format!(
            "{} points written, {} dropped",
            o["written"], o["dropped"]
        )),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sink_that_is_down_costs_one_warning_and_loses_no_result() {
    let dir = tempfile::tempdir().unwrap();
    let json = temp_json(&dir, "r.json");
    let port = free_port(); // nothing listens there
    let out = periscope_async(s(&[
        "run",
        "--mock",
        "--vus",
        "2",
        "--duration",
        "3s",
        "--out",
        &format!("influxdb=http://127.0.0.1:{port}/periscope"),
        "--json",
        &json,
    ]))
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.matches("warning:").count(), 1, "{err}");
    assert!(stdout(&out).contains("### Summary"));
    let r = read_json(&json);
    let o = &r["outputs"][0];
    assert_eq!(o["written"], 0, "{o}");
    assert!(
        o["dropped"].as_u64().unwrap() >= r["summary"]["requests"].as_u64().unwrap(),
        "{o}"
    );
    assert!(r["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|w| w.as_str().unwrap().contains("dropped")));
    // Bad outputs are refused before anything runs.
    for (bad, want) in [
        ("influxdb=http://127.0.0.1:8086", "name the database"),
        ("graphite=http://x", "unknown output"),
    ] {
        let out = periscope_async(s(&["run", "--mock", "--duration", "1s", "--out", bad])).await;
        assert_eq!(out.status.code(), Some(1), "{bad}: {}", stderr(&out));
        assert!(stderr(&out).contains(want), "{}", stderr(&out));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sweep_writes_one_run_id_with_direct_and_proxy_endpoints() {
    let Some(influx) = Server::influxdb() else {
        return;
    };
    let direct = MockProc::start(&["--ttft", "5ms", "--itl", "1ms"]);
    let upstream = format!("http://{}", direct.addr);
    let proxy = MockProc::start(&["--upstream", &upstream, "--added-latency", "2ms"]);
    let dir = tempfile::tempdir().unwrap();
    let json = temp_json(&dir, "sweep.json");
    let out = periscope_async(s(&[
        "sweep",
        "--direct-url",
        &direct.base(),
        "--proxy-url",
        &proxy.base(),
        "--concurrency-list",
        "1,3",
        "--requests",
        "12",
        "--blocks",
        "2",
        "--max-tokens",
        "8",
        "--out",
        &format!("influxdb={}/periscope", influx.base),
        "--tag",
        "env=ci",
        "--output-json",
        &json,
    ]))
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let r = read_json(&json);
    let run_id = r["run_id"].as_str().unwrap().to_string();
    assert!(!run_id.is_empty(), "{r}");
    assert_eq!(r["outputs"][0]["dropped"], 0, "{}", r["outputs"]);
    assert!(stdout(&out).contains(&format!("points written, 0 dropped (run_id {run_id})")));
    // Each endpoint and level's ok requests, as the sweep counted them…
    let mut want: Vec<(String, String, f64)> = r["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let level = format!("concurrency={}", row["level"]["concurrency"]);
            let ep = row["endpoint"].as_str().unwrap().to_string();
            (ep, level, row["ok"].as_f64().unwrap())
        })
        .collect();
    want.sort_by(|a, b| a.partial_cmp(b).unwrap());
    // …and as InfluxDB holds them, all under the sweep's one run_id.
    let answer = influxql(
        &influx.base,
        &format!(
            "SELECT sum(\"ok\") FROM periscope_window WHERE run_id = '{run_id}' AND env = 'ci' GROUP BY endpoint, level"
        ),
    )
    .await;
    let mut got: Vec<(String, String, f64)> = answer["results"][0]["series"]
        .as_array()
        .unwrap_or_else(|| panic!("{answer}"))
        .iter()
        .map(|sr| {
            let t = &sr["tags"];
            (
                t["endpoint"].as_str().unwrap().to_string(),
                t["level"].as_str().unwrap().to_string(),
                sr["values"][0][1].as_f64().unwrap(),
            )
        })
        .collect();
    got.sort_by(|a, b| a.partial_cmp(b).unwrap());
    assert_eq!(got, want, "{answer}");
    assert_eq!(
        got.iter().map(|g| g.0.as_str()).collect::<Vec<_>>(),
        ["direct", "direct", "proxy", "proxy"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_server_dashboards_queries_return_the_scraped_points() {
    let Some(influx) = Server::influxdb() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let json = temp_json(&dir, "r.json");
    let out = periscope_async(s(&[
        "run",
        "--mock",
        "--mock-args",
        "--max-concurrency 2 --ttft 50ms --itl 5ms",
        "--vus",
        "4",
        "--duration",
        "4s",
        "--no-preflight",
        "--server-metrics",
        "--scrape-interval",
        "500ms",
        "--out",
        &format!("influxdb={}/periscope", influx.base),
        "--json",
        &json,
    ]))
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let r = read_json(&json);
    let run_id = r["run_id"].as_str().unwrap();
    assert_eq!(r["outputs"][0]["dropped"], 0, "{}", r["outputs"]);
    // Every panel of the server dashboard answers for the run.
    let by_title = panel_answers(&influx.base, "periscope-server.json", run_id).await;
    assert_eq!(by_title.len(), 6, "{:?}", by_title.keys());
    // One point per scrape, and the queue as the result's figures have it.
    let t = &r["server"]["targets"][0];
    let q =
        |sel: &str| format!("SELECT {sel} FROM \"periscope_server\" WHERE \"run_id\" = '{run_id}'");
    let points = values(&influxql(&influx.base, &q("count(\"running\")")).await);
    assert_eq!(points, vec![f(&t["scrapes"])]);
    let waiting = values(&influxql(&influx.base, &q("max(\"waiting\")")).await);
    assert_eq!(waiting, vec![2.0]);
    assert_eq!(f(&t["figures"]["gauges"]["waiting"]["max"]), 2.0);
    // Rates between scrapes add up to the run's count.
    let gen = values(&influxql(&influx.base, &q("sum(\"generation_tokens_per_s\")")).await);
    assert!(gen[0] > 0.0, "{gen:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_script_dashboards_queries_return_the_scripts_own_metrics() {
    let Some(influx) = Server::influxdb() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let json = temp_json(&dir, "r.json");
    let script = dir.path().join("kinds.js");
    std::fs::write(
        &script,
        r#"import { check } from "k6";
import { Trend, Counter, Rate, Gauge } from "k6/metrics";
import { chat } from "periscope";
const len = new Trend("answer_length");
const tokens = new Counter("answer_tokens");
const long = new Rate("long_answer");
const last = new Gauge("last_tokens");
export default function () {
  const r = chat({ messages: [{ role: "user", content: "hi" }], max_tokens: 8 + __ITER % 5 });
  check(r, { "ok": (x) => x.ok });
  len.add(r.content.length);
  tokens.add(r.usage.output_tokens);
  long.add(r.usage.output_tokens > 10);
  last.add(r.usage.output_tokens);
}
"#,
    )
    .unwrap();
    let out = periscope_async(s(&[
        "run",
        script.to_str().unwrap(),
        "--mock",
        "--mock-args",
        "--ttft 20ms --itl 2ms",
        "--vus",
        "3",
        "--duration",
        "3s",
        "--out",
        &format!("influxdb={}/periscope", influx.base),
        "--json",
        &json,
    ]))
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let r = read_json(&json);
    let run_id = r["run_id"].as_str().unwrap();
    assert_eq!(r["outputs"][0]["dropped"], 0, "{}", r["outputs"]);
    // Every panel answers: trends, counters, rates and gauges all came.
    let by_title = panel_answers(&influx.base, "periscope-script.json", run_id).await;
    assert_eq!(by_title.len(), 5, "{:?}", by_title.keys());
    let custom = &r["raw"]["total"]["custom"]["metrics"];
    let q = |sel: &str, metric: &str| {
        format!(
            "SELECT {sel} FROM \"periscope_custom\" WHERE \"run_id\" = '{run_id}' AND \"metric\" = '{metric}'"
        )
    };
    // The points add up to the result's totals, metric by metric.
    let n = values(&influxql(&influx.base, &q("sum(\"count\")", "answer_length")).await);
    assert_eq!(n, vec![f(&custom["answer_length"]["count"])]);
    assert!(n[0] >= 3.0, "{n:?}");
    let sum = values(&influxql(&influx.base, &q("sum(\"value\")", "answer_tokens")).await);
    assert_eq!(sum, vec![f(&custom["answer_tokens"]["sum"])]);
    let reqs = values(&influxql(&influx.base, &q("sum(\"value\")", "iterations")).await);
    assert_eq!(reqs, vec![f(&r["summary"]["ok"])]);
    // The largest p95 of a second is at most the run's largest answer.
    let p95 = values(&influxql(&influx.base, &q("max(\"p95\")", "answer_length")).await);
    assert!(p95[0] <= f(&custom["answer_length"]["max"]), "{p95:?}");
    let checks = values(&influxql(&influx.base, &q("min(\"value\")", "checks")).await);
    assert_eq!(checks, vec![1.0]);
}
