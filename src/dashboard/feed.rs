//! What a run tells its dashboard: every closed second (the same window the
//! JSON series keeps, with the run so far and its thresholds as they stand)
//! and every scrape of the server's metrics, with the client's mean ttft
//! over the same stretch beside the server's.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};

use super::Board;
use crate::metrics::{Aggregate, Observer, WindowSummary};
use crate::record::{Outcome, RequestRecord};
use crate::server_metrics::LivePoint;
use crate::slo::Threshold;

/// The client's ttft since the last scrape: sum (µs) and count, added by
/// the collector and taken by the scraper (a record that lands between the
/// two takes counts in the next stretch's count or sum alone: one in
/// thousands, at worst).
#[derive(Default)]
struct TtftSince {
    sum_us: AtomicU64,
    count: AtomicU64,
}

/// One run's feed of its board: an observer of the collector, and (with
/// [`Feed::server_hook`]) of the scraper.
pub struct Feed {
    board: Board,
    run: u64,
    origin: Instant,
    thresholds: Vec<Threshold>,
    ttft: Arc<TtftSince>,
}

impl Feed {
    /// A run starts: `meta` says what it runs (no secrets: the caller
    /// gives the target's URL without credentials).
    pub fn start(board: &Board, meta: Value, thresholds: Vec<Threshold>, origin: Instant) -> Feed {
        let run = board.start_run(meta);
        Feed {
            board: board.clone(),
            run,
            origin,
            thresholds,
            ttft: Arc::default(),
        }
    }

    /// What the scraper calls with each scrape's points.
    pub fn server_hook(&self) -> impl FnMut(&[LivePoint]) + Send + 'static {
        let (board, run, ttft) = (self.board.clone(), self.run, self.ttft.clone());
        move |points: &[LivePoint]| {
            let n = ttft.count.swap(0, Ordering::Relaxed);
            let sum = ttft.sum_us.swap(0, Ordering::Relaxed);
            let client = (n > 0).then(|| sum as f64 / n as f64 / 1000.0);
            for p in points {
                board.push("server", &server_event(run, board.at(), p, client));
            }
        }
    }
}

fn server_event(run: u64, at: f64, p: &LivePoint, client_ttft_ms: Option<f64>) -> Value {
    let fields: serde_json::Map<String, Value> = p
        .fields
        .iter()
        .filter(|(_, v)| v.is_finite())
        .map(|(k, v)| (k.clone(), json!(round(*v))))
        .collect();
    let server_ttft = p
        .fields
        .iter()
        .find(|(k, _)| k == "ttft_mean_ms")
        .map(|(_, v)| *v);
    json!({
        "run": run,
        "at": at,
        "url": p.url,
        "server": p.server,
        "fields": fields,
        "client_ttft_mean_ms": client_ttft_ms.map(round),
        "ttft_gap_ms": client_ttft_ms.zip(server_ttft).map(|(c, s)| round(c - s)),
    })
}

fn round(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

impl Observer for Feed {
    fn record(&mut self, r: &RequestRecord) {
        if let (Outcome::Ok, Some(t)) = (&r.outcome, r.ttft_us) {
            self.ttft.sum_us.fetch_add(t, Ordering::Relaxed);
            self.ttft.count.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn window(&mut self, w: &WindowSummary, total: &Aggregate) {
        let elapsed = self.origin.elapsed().as_secs_f64();
        let thresholds: Vec<Value> = self
            .thresholds
            .iter()
            .map(|t| {
                // The server's figures and a group's are judged at the end.
                if t.is_server() || t.group().is_some() {
                    return json!({"threshold": t.expr, "actual": null, "pass": null});
                }
                let c = t.check(total, elapsed);
                json!({
                    "threshold": c.threshold,
                    "actual": c.actual.map(round),
                    "unit": c.unit,
                    "pass": (total.requests > 0).then_some(c.pass),
                })
            })
            .collect();
        let event = json!({
            "run": self.run,
            "at": self.board.at(),
            "window": w,
            "total": {
                "requests": total.requests,
                "ok": total.ok,
                "errors": total.errors,
                "output_tokens": total.output_tokens,
                "input_tokens": total.input_tokens,
            },
            "thresholds": thresholds,
        });
        self.board.push("window", &event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dashboard::Config;
    use std::time::Duration;

    fn board() -> Board {
        Board::bind(&Config::parse("127.0.0.1:0", None, Duration::ZERO).unwrap()).unwrap()
    }

    fn last(b: &Board) -> Value {
        let (h, _) = b.subscribe();
        let ev = std::str::from_utf8(h.last().unwrap()).unwrap();
        serde_json::from_str(ev.split_once("data: ").unwrap().1.trim()).unwrap()
    }

    #[test]
    fn a_window_carries_the_run_so_far_and_each_threshold_as_it_stands() {
        let b = board();
        let mut f = Feed::start(
            &b,
            json!({"scenario": "x"}),
            vec![
                Threshold::parse("error_rate<0.5").unwrap(),
                Threshold::parse("ttft.p50<10ms").unwrap(),
            ],
            Instant::now(),
        );
        let mut total = Aggregate::default();
        let mut r = RequestRecord::new(0, 0);
        r.end_us = 100_000;
        r.ttft_us = Some(50_000);
        r.output_tokens = 3;
        total.add(&r, false);
        f.record(&r);
        let w = WindowSummary {
            t: 0,
            requests: 1,
            ok: 1,
            ..WindowSummary::default()
        };
        f.window(&w, &total);
        let e = last(&b);
        assert_eq!(e["run"], 0);
        assert_eq!(e["window"]["requests"], 1);
        assert_eq!(e["total"]["output_tokens"], 3);
        assert_eq!(e["thresholds"][0]["pass"], true);
        assert_eq!(e["thresholds"][1]["pass"], false);
        // The run's p50 so far, as its histogram has it (3 digits).
        let p50 = e["thresholds"][1]["actual"].as_f64().unwrap();
        assert!((p50 - 50.0).abs() < 0.1, "{p50}");
    }

    #[test]
    fn a_scrape_shows_the_client_and_server_ttft_over_the_same_stretch() {
        let b = board();
        let mut f = Feed::start(&b, json!({}), Vec::new(), Instant::now());
        for t in [40_000, 60_000] {
            let mut r = RequestRecord::new(0, 0);
            r.ttft_us = Some(t);
            f.record(&r);
        }
        let mut hook = f.server_hook();
        let p = LivePoint {
            url: "http://127.0.0.1:1/metrics".into(),
            server: Some("vllm"),
            t: 0.0,
            fields: vec![("ttft_mean_ms".into(), 45.0), ("running".into(), 3.0)],
        };
        hook(std::slice::from_ref(&p));
        let e = last(&b);
        assert_eq!(e["client_ttft_mean_ms"], 50.0);
        assert_eq!(e["ttft_gap_ms"], 5.0);
        assert_eq!(e["fields"]["running"], 3.0);
        // The next scrape sees only what came after this one.
        hook(std::slice::from_ref(&p));
        assert_eq!(last(&b)["client_ttft_mean_ms"], Value::Null);
    }
}
