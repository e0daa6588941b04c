//! A soak: 200 streams against the mock (a process of its own) with every
//! output on — CSV rows, JSONL rows, InfluxDB points, the mock's metrics
//! scraped, a client span per request exported to a second mock's OTLP
//! receiver — checked for flat memory and for every request in every
//! output. The suite runs it for 40 s; `make soak` for 60 minutes
//! (`PERISCOPE_SOAK=60m`).

use crate::common::*;

/// `40s`, `60m`, `1h`: seconds.
fn seconds(d: &str) -> u64 {
    let (n, unit) = d.split_at(d.find(|c: char| !c.is_ascii_digit()).unwrap_or(d.len()));
    let n: u64 = n
        .parse()
        .unwrap_or_else(|_| panic!("PERISCOPE_SOAK={d}: say 40s, 60m or 1h"));
    n * match unit {
        "s" | "" => 1,
        "m" => 60,
        "h" => 3600,
        _ => panic!("PERISCOPE_SOAK={d}: say 40s, 60m or 1h"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_streams_keep_memory_flat_and_every_request_in_every_output() {
    let Some(influx) = Server::influxdb() else {
        return;
    };
    let soak = std::env::var("PERISCOPE_SOAK").unwrap_or_else(|_| "40s".into());
    let secs = seconds(&soak);
    // Memory is compared from the end of the warm-up: a minute, or a
    // quarter of a short run.
    let settle = (secs / 4).min(60);
    let target = MockProc::start(&[]);
    let receiver = MockProc::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let (csv, rows, json) = (
        dir.path().join("r.csv"),
        dir.path().join("rows.jsonl"),
        temp_json(&dir, "r.json"),
    );
    let out = periscope_async(s(&[
        "run",
        "--target",
        &target.base(),
        "--vus",
        "200",
        "--duration",
        &soak,
        "--no-preflight",
        "--csv",
        csv.to_str().unwrap(),
        "--requests-out",
        rows.to_str().unwrap(),
        "--out",
        &format!("influxdb={}/periscope", influx.base),
        "--server-metrics",
        "--trace-requests",
        &receiver.url("/v1/traces"),
        "--json",
        &json,
    ]))
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let r = read_json(&json);
    let requests = r["summary"]["requests"].as_u64().unwrap();
    assert!(
        requests >= secs * 100,
        "200 streams of ~0.7 s answers: {requests} in {secs} s"
    );
    assert_eq!(r["summary"]["errors"], 0, "{}", r["summary"]);

    // Memory: flat after the warm-up, by the run's own per-second series.
    let rss: Vec<(u64, f64)> = r["series"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| Some((w["t"].as_u64()?, w["rss_mib"].as_f64()?)))
        .collect();
    let at_settle = rss
        .iter()
        .find(|(t, _)| *t >= settle)
        .map(|(_, m)| *m)
        .expect("a window after the warm-up");
    let peak_after = rss
        .iter()
        .filter(|(t, _)| *t >= settle)
        .map(|(_, m)| *m)
        .fold(0.0, f64::max);
    let end = rss.last().map_or(0.0, |(_, m)| *m);
    eprintln!(
        "soak {soak}: {requests} requests, RSS {at_settle:.1} MiB at {settle} s, peak after it {peak_after:.1} (+{:.1}), {end:.1} at the end",
        peak_after - at_settle
    );
    assert!(
        peak_after - at_settle < 5.0,
        "RSS grew {:.1} MiB after {settle} s (from {at_settle:.1} MiB): {rss:?}",
        peak_after - at_settle
    );

    // Every request in every output.
    let csv_rows = std::fs::read_to_string(&csv).unwrap().lines().count() as u64 - 1;
    assert_eq!(csv_rows, requests, "CSV rows");
    let jsonl = std::fs::read_to_string(&rows).unwrap().lines().count() as u64;
    assert_eq!(jsonl, requests, "JSONL rows");
    for o in r["outputs"].as_array().unwrap() {
        assert_eq!(o["dropped"], 0, "{o}");
    }
    let run_id = r["run_id"].as_str().unwrap();
    let points = values(
        &influxql(
            &influx.base,
            &format!("SELECT count(\"e2e_ms\") FROM periscope_request WHERE run_id = '{run_id}'"),
        )
        .await,
    );
    assert_eq!(points, vec![requests as f64], "InfluxDB request points");
    let spans = receiver.stats().await["otlp"]["spans"].as_u64();
    assert_eq!(spans, Some(requests), "client spans exported");
    // The server's metrics were scraped all along.
    let t = &r["server"]["targets"][0];
    let scrapes = t["scrapes"].as_u64().unwrap_or(0);
    assert!(
        scrapes >= secs / 2 && t["failed_scrapes"] == 0,
        "scrapes {scrapes}: {t}"
    );
}
