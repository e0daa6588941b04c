//! The per-second series describe the second they are labelled with, in
//! every output alike: a stage change from 2 to 10 VUs at 3 s shows first in
//! the window `t = 3` of the JSON series, `PATH-series.csv`, the InfluxDB
//! `periscope_window` points and the HTML chart's data.

use std::collections::BTreeMap;

use crate::common::*;
use serde_json::Value;

/// `t → active VUs`, from the JSON series.
fn json_vus(r: &Value) -> BTreeMap<u64, f64> {
    r["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["t"].as_u64().unwrap(), f(&w["active_vus"])))
        .collect()
}

/// `t → active VUs`, from the series CSV.
fn csv_vus(path: &str) -> BTreeMap<u64, f64> {
    let mut r = csv::Reader::from_path(path).unwrap();
    let h = r.headers().unwrap().clone();
    let col = |name: &str| h.iter().position(|c| c == name).unwrap();
    let (t, v) = (col("t_s"), col("active_vus"));
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            (rec[t].parse().unwrap(), rec[v].parse().unwrap())
        })
        .collect()
}

/// `t → active VUs`, from the data behind the HTML's VU chart.
fn html_vus(path: &str) -> BTreeMap<u64, f64> {
    let html = std::fs::read_to_string(path).unwrap();
    let fig = html
        .split("<figure")
        .find(|f| f.contains("id=\"chart-vus\""))
        .expect("the VU chart");
    let attr = fig
        .split("data-points=\"")
        .nth(1)
        .and_then(|a| a.split('"').next())
        .expect("its data");
    let json = attr.replace("&quot;", "\"").replace("&amp;", "&");
    let v: Value = serde_json::from_str(&json).unwrap();
    v["active VUs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_f64().unwrap() as u64, p[1].as_f64().unwrap()))
        .collect()
}

/// `t → active VUs`, from InfluxDB: a point's time less the run's start.
async fn influx_vus(base: &str, run_id: &str, started_ms: i64) -> BTreeMap<u64, f64> {
    let a = influxql(
        base,
        &format!("SELECT active_vus FROM periscope_window WHERE run_id = '{run_id}'"),
    )
    .await;
    a["results"][0]["series"][0]["values"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|row| {
            let ms = row[0].as_i64().unwrap() - started_ms;
            assert_eq!(ms % 1000, 0, "a point on a whole second of the run: {row}");
            ((ms / 1000) as u64, row[1].as_f64().unwrap())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_change_shows_in_the_window_it_happened_in_everywhere() {
    let influx = Server::influxdb();
    let dir = tempfile::tempdir().unwrap();
    let (json, csv, html) = (
        temp_json(&dir, "r.json"),
        temp_json(&dir, "r.csv"),
        temp_json(&dir, "r.html"),
    );
    let mut args = s(&[
        "run",
        "--mock",
        "--mock-args",
        "--ttft 20ms --itl 2ms --output-tokens 8",
        "--no-preflight",
        "--stages",
        "0s:2,3s:2,0s:10,2s:10",
        "--json",
        &json,
        "--csv",
        &csv,
        "--html",
        &html,
    ]);
    if let Some(i) = &influx {
        args.extend(s(&["--out", &format!("influxdb={}/periscope", i.base)]));
    }
    let out = periscope_async(args).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let r = read_json(&json);
    let want = json_vus(&r);
    // Windows that end at or before 3 s: 2 VUs; the window from 3 s: 10.
    for t in 0..3 {
        assert_eq!(want[&t], 2.0, "t = {t}: {want:?}");
    }
    assert_eq!(want[&3], 10.0, "{want:?}");
    assert_eq!(csv_vus(&csv.replace(".csv", "-series.csv")), want, "CSV");
    assert_eq!(html_vus(&html), want, "HTML");
    if let Some(i) = &influx {
        let started = humantime::parse_rfc3339(r["started_at"].as_str().unwrap()).unwrap();
        let started_ms = started
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let got = influx_vus(&i.base, r["run_id"].as_str().unwrap(), started_ms).await;
        assert_eq!(got, want, "InfluxDB");
    }
}
