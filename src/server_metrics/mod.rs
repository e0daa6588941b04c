//! The server's side of the run: its Prometheus metrics, scraped beside the
//! load (`--server-metrics`), and queried from a Prometheus-compatible store
//! at its end (`--prometheus`, `--promql`).
//!
//! - [`Scraper`] takes a baseline scrape of every target before the load
//!   starts, one every `--scrape-interval` while it runs, and a last one
//!   after it ends; every sample can go to `--server-csv` as it comes.
//! - [`catalog`] knows what vLLM, SGLang, llama.cpp, TGI, LiteLLM and
//!   Triton call their figures; [`figures`] derives the run's figures from
//!   the increases over its window (never from totals since the server
//!   started).
//! - A target that is down, slow or sends something that is not the
//!   Prometheus text format never stops the run: one warning, and its
//!   failed scrapes counted.
//!
//! Nothing here knows about the load: the runner starts and finishes the
//! scraper; the report reads [`ServerMetrics`].

pub mod catalog;
mod expo;
pub mod figures;
pub mod promql;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::spool::Spool;
pub use catalog::HistAt;
use expo::Exposition;
pub use figures::{Figures, GaugeStats, HistStats, RawTarget, SeriesRow};
pub use promql::{Query, QueryResult, QuerySeries};

/// After the load, the last scrape waits this long for the server to
/// count the requests it has just answered.
const SETTLE: Duration = Duration::from_millis(250);

/// What to scrape and query, as the plan resolved it.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `/metrics` URLs.
    pub targets: Vec<String>,
    pub interval: Duration,
    /// `--server-csv`: every sample, one row each.
    pub csv: Option<PathBuf>,
    /// The target's origin and API key: a `/metrics` URL on that origin is
    /// asked with the same `Authorization` (LiteLLM's needs it).
    pub auth: Option<(String, String)>,
    /// How many `--promql` queries are asked at once.
    pub query_concurrency: usize,
    /// `--prometheus` and its queries.
    pub prometheus: Option<String>,
    pub queries: Vec<Query>,
    /// How long the store is given to take in its last scrape of the run.
    pub prometheus_wait: Duration,
}

/// What one `/metrics` target said about the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetMetrics {
    pub url: String,
    /// The server its metric names are of (`vllm`, `llama.cpp`…), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    pub scrapes: u64,
    pub failed_scrapes: u64,
    /// The first failure, as it was warned about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
    pub figures: Figures,
    /// One row per scrape: gauges and rates.
    pub series: Vec<SeriesRow>,
    /// The samples the figures come from (what `merge` adds up).
    pub raw: RawTarget,
}

/// The result's `server` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerMetrics {
    pub interval_s: f64,
    #[serde(default)]
    pub targets: Vec<TargetMetrics>,
    /// `--promql` answers over the run's window.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queries: Vec<QueryResult>,
}

impl ServerMetrics {
    /// Derive every target's figures and series from its samples again;
    /// `origin` is the start of the load (Unix seconds), `client_ttft` the
    /// client's ttft (p50, mean; ms), for the gap between the two.
    pub fn refresh(&mut self, origin: f64, client_ttft: Option<(f64, f64)>) {
        for t in &mut self.targets {
            t.figures = t.raw.figures();
            t.series = t.raw.series(origin);
            let server = t.figures.latency.get("ttft");
            if let (Some((p50, mean)), Some(s)) = (client_ttft, server) {
                t.figures.ttft_gap_ms = s.p50.map(|s| p50 - s);
                t.figures.ttft_gap_mean_ms = Some(mean - s.mean);
            }
        }
    }

    /// Add another result's (a segment's): the same target's samples are
    /// joined, other targets and queries appended. Call [`Self::refresh`] after.
    pub fn merge(&mut self, other: &ServerMetrics) {
        for o in &other.targets {
            match self.targets.iter_mut().find(|t| t.url == o.url) {
                Some(t) => {
                    t.raw.merge(&o.raw);
                    t.scrapes += o.scrapes;
                    t.failed_scrapes += o.failed_scrapes;
                    t.server = t.server.take().or_else(|| o.server.clone());
                    t.first_error = t.first_error.take().or_else(|| o.first_error.clone());
                }
                None => self.targets.push(o.clone()),
            }
        }
        for q in &other.queries {
            if !self.queries.contains(q) {
                self.queries.push(q.clone());
            }
        }
    }

    /// What the reader must know: targets that failed, queries that did.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        for t in &self.targets {
            if t.failed_scrapes > 0 {
                w.push(format!(
                    "server metrics at {}: {} of {} scrapes failed (first: {})",
                    t.url,
                    t.failed_scrapes,
                    t.scrapes + t.failed_scrapes,
                    t.first_error.as_deref().unwrap_or("unknown")
                ));
            } else if t.server.is_none() && t.scrapes > 0 {
                w.push(format!(
                    "server metrics at {}: no metric names periscope knows (vLLM, SGLang, llama.cpp, TGI, LiteLLM, Triton); only process figures and the CSV",
                    t.url
                ));
            }
        }
        for q in &self.queries {
            if let Some(e) = &q.error {
                w.push(format!("--promql {} ({}): {e}", q.name, q.expr));
            }
        }
        w
    }

    /// A figure's value at every target that has it (thresholds: `name`
    /// as [`check_figure`] accepts it, without `server.`).
    pub fn values(&self, name: &str) -> Vec<f64> {
        if let Some((q, stat)) = name
            .strip_prefix("promql.")
            .and_then(|r| r.rsplit_once('.'))
        {
            // One value per series of the query: each must hold.
            return self
                .queries
                .iter()
                .filter(|r| r.name == q && r.error.is_none())
                .flat_map(|r| &r.series)
                .filter(|s| !s.samples.is_empty())
                .map(|s| {
                    let v = s.samples.iter().map(|p| p[1]);
                    match stat {
                        "min" => v.fold(f64::INFINITY, f64::min),
                        "max" => v.fold(f64::NEG_INFINITY, f64::max),
                        "last" => s.samples.last().map_or(0.0, |p| p[1]),
                        _ => v.sum::<f64>() / s.samples.len() as f64,
                    }
                })
                .collect();
        }
        self.targets
            .iter()
            .filter_map(|t| figure(&t.figures, name))
            .collect()
    }
}

fn figure(f: &Figures, name: &str) -> Option<f64> {
    match name.split_once('.') {
        Some((m, stat)) => {
            if let Some(g) = f.gauges.get(m) {
                return match stat {
                    "mean" => Some(g.mean),
                    "min" => Some(g.min),
                    "max" => Some(g.max),
                    _ => None,
                };
            }
            let h = f.latency.get(m)?;
            match stat {
                "mean" => Some(h.mean),
                "p50" => h.p50,
                "p90" => h.p90,
                "p95" => h.p95,
                "p99" => h.p99,
                _ => None,
            }
        }
        None => match name {
            "prefix_cache_hit_rate" => f.prefix_cache_hit_rate,
            "spec_acceptance" => f.spec_acceptance,
            "prefill_rate" => f.prefill_rate,
            "decode_rate" => f.decode_rate,
            "cpu_cores" => f.cpu_cores,
            "ttft_gap" => f.ttft_gap_ms,
            "ttft_gap_mean" => f.ttft_gap_mean_ms,
            n => match n.strip_suffix("_per_s") {
                Some(c) => f.per_s.get(c).copied(),
                None => f.counts.get(n).copied(),
            },
        },
    }
}

/// Whether a threshold may name this server figure (without `server.`);
/// `Ok(true)` for figures in ms.
pub fn check_figure(name: &str) -> Result<bool, String> {
    use catalog::FAMILIES;
    // A --promql query's series: `promql.NAME.max` (min, mean, max, last).
    if let Some(rest) = name.strip_prefix("promql.") {
        return match rest.rsplit_once('.') {
            Some((q, "min" | "mean" | "max" | "last")) if !q.is_empty() => Ok(false),
            _ => Err(format!(
                "server.{name}: name a --promql query and say min, mean, max or last, e.g. server.promql.db_connections.max"
            )),
        };
    }
    let mut gauges: Vec<&str> = vec!["memory_bytes"];
    let mut hists: Vec<&str> = Vec::new();
    let mut counters: Vec<&str> = vec!["cpu_seconds"];
    for f in FAMILIES {
        counters.extend(f.counters.iter().map(|c| c.0));
        gauges.extend(f.gauges.iter().map(|g| g.0));
        hists.extend(f.histograms.iter().map(|h| h.0));
    }
    let plain = [
        "prefix_cache_hit_rate",
        "spec_acceptance",
        "prefill_rate",
        "decode_rate",
        "cpu_cores",
    ];
    match name.split_once('.') {
        Some((m, stat)) if gauges.contains(&m) => match stat {
            "mean" | "min" | "max" => Ok(false),
            _ => Err(format!(
                "server.{m}: say mean, min or max, e.g. server.{m}.max"
            )),
        },
        Some((m, stat)) if hists.contains(&m) => match stat {
            "mean" | "p50" | "p90" | "p95" | "p99" => Ok(true),
            _ => Err(format!(
                "server.{m}: say mean, p50, p90, p95 or p99, e.g. server.{m}.p95"
            )),
        },
        None if name == "ttft_gap" || name == "ttft_gap_mean" => Ok(true),
        None if plain.contains(&name) => Ok(false),
        None if counters.contains(&name.strip_suffix("_per_s").unwrap_or(name)) => Ok(false),
        None if gauges.contains(&name) => Err(format!(
            "server.{name}: say mean, min or max, e.g. server.{name}.max"
        )),
        None if hists.contains(&name) => Err(format!(
            "server.{name}: say which statistic, e.g. server.{name}.p95"
        )),
        _ => {
            counters.sort_unstable();
            counters.dedup();
            gauges.sort_unstable();
            gauges.dedup();
            hists.sort_unstable();
            hists.dedup();
            Err(format!(
                "unknown server figure '{name}': one of {}, {} (per run or with _per_s); {} (.mean/.max); {} (.p95…, ms); ttft_gap (ms)",
                plain.join(", "),
                counters.join(", "),
                gauges.join(", "),
                hists.join(", ")
            ))
        }
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// One target's scrape as a live point: its gauges, and since the scrape
/// before, its counters per second (`requests_per_s`…) and its
/// histograms' means (`ttft_mean_ms`…).
#[derive(Debug, Clone, PartialEq)]
pub struct LivePoint {
    pub url: String,
    pub server: Option<&'static str>,
    /// Unix seconds.
    pub t: f64,
    pub fields: Vec<(String, f64)>,
}

/// Where live points go (the InfluxDB feed).
pub type Hook = Box<dyn FnMut(&[LivePoint]) + Send>;

/// A target's samples while the run goes on: counters and gauges at every
/// scrape spooled to disk (an hour's soak keeps its memory flat),
/// histograms' first and last scrape.
#[derive(Default)]
struct Kept {
    counters: BTreeMap<String, Spool<[f64; 2]>>,
    gauges: BTreeMap<String, Spool<[f64; 2]>>,
    histograms: BTreeMap<String, Vec<HistAt>>,
}

impl Kept {
    fn into_raw(self) -> RawTarget {
        let all = |m: BTreeMap<String, Spool<[f64; 2]>>| {
            m.into_iter().map(|(k, s)| (k, s.into_vec())).collect()
        };
        RawTarget {
            counters: all(self.counters),
            gauges: all(self.gauges),
            histograms: self.histograms,
        }
    }
}

/// One target while the run goes on.
struct Target {
    url: String,
    /// The run's API key, when the URL is on the target's origin.
    bearer: Option<String>,
    family: Option<&'static catalog::Family>,
    raw: Kept,
    scrapes: u64,
    failed: u64,
    first_error: Option<String>,
    /// The scrape before: counters, and histograms' (sum, count).
    before: Option<(f64, catalog::Reading)>,
}

impl Target {
    /// The live point of a reading taken at `t`, against the one before.
    fn live(&mut self, t: f64, r: catalog::Reading) -> LivePoint {
        let mut fields: Vec<(String, f64)> =
            r.gauges.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        if let Some((t0, r0)) = &self.before {
            let dt = t - t0;
            for (k, v) in &r.counters {
                if let (Some(v0), true) = (r0.counters.get(k), dt > 0.0) {
                    fields.push((
                        format!("{k}_per_s"),
                        figures::increase(&[[0.0, *v0], [dt, *v]]) / dt,
                    ));
                }
            }
            for (k, h) in &r.histograms {
                if let Some(h0) = r0.histograms.get(k).filter(|h0| h.count > h0.count) {
                    fields.push((
                        format!("{k}_mean_ms"),
                        (h.sum - h0.sum) / (h.count - h0.count) * 1000.0,
                    ));
                }
            }
        }
        let p = LivePoint {
            url: self.url.clone(),
            server: self.family.map(|f| f.server),
            t,
            fields,
        };
        self.before = Some((t, r));
        p
    }

    async fn scrape(
        &mut self,
        client: &reqwest::Client,
        timeout: Duration,
    ) -> Option<(Exposition, f64, LivePoint)> {
        let sent = unix_now();
        let mut req = client.get(&self.url).timeout(timeout);
        if let Some(t) = &self.bearer {
            req = req.bearer_auth(t);
        }
        let got = async {
            let resp = req
                .send()
                .await
                .map_err(|e| crate::client::error_chain(&e))?;
            let status = resp.status();
            if !status.is_success() {
                return Err(format!("HTTP {status}"));
            }
            let body = resp
                .text()
                .await
                .map_err(|e| crate::client::error_chain(&e))?;
            Exposition::parse(&body)
        }
        .await;
        // The middle of the exchange: when the server most likely read its counters.
        let t = (sent + unix_now()) / 2.0;
        match got {
            Ok(e) => {
                self.scrapes += 1;
                if self.family.is_none() {
                    self.family = catalog::detect(&e);
                }
                let r = catalog::read(&e, self.family, t);
                for (k, v) in &r.counters {
                    self.raw
                        .counters
                        .entry(k.to_string())
                        .or_default()
                        .push([t, *v]);
                }
                for (k, v) in &r.gauges {
                    self.raw
                        .gauges
                        .entry(k.to_string())
                        .or_default()
                        .push([t, *v]);
                }
                for (k, h) in &r.histograms {
                    let kept = self.raw.histograms.entry(k.to_string()).or_default();
                    if kept.len() == 2 {
                        kept.pop();
                    }
                    kept.push(h.clone());
                }
                let live = self.live(t, r);
                Some((e, t, live))
            }
            Err(msg) => {
                self.failed += 1;
                if self.first_error.is_none() {
                    eprintln!(
                        "warning: server metrics at {}: {msg} (the run goes on; failed scrapes are counted)",
                        self.url
                    );
                    self.first_error = Some(msg);
                }
                None
            }
        }
    }
}

/// Every scraped sample as a CSV row.
struct Rows {
    w: csv::Writer<std::fs::File>,
    run_id: String,
    first: Option<f64>,
}

impl Rows {
    fn create(path: &std::path::Path, run_id: &str) -> Result<Rows, String> {
        let f = std::fs::File::create(path)
            .map_err(|e| format!("--server-csv {}: cannot create it: {e}", path.display()))?;
        let mut w = csv::Writer::from_writer(f);
        w.write_record([
            "run_id",
            "source",
            "target",
            "metric",
            "labels",
            "timestamp",
            "elapsed_s",
            "value",
        ])
        .map_err(|e| format!("--server-csv {}: {e}", path.display()))?;
        Ok(Rows {
            w,
            run_id: run_id.to_string(),
            first: None,
        })
    }

    fn row(&mut self, source: &str, target: &str, metric: &str, labels: &str, t: f64, v: f64) {
        let first = *self.first.get_or_insert(t);
        let _ = self.w.write_record([
            self.run_id.as_str(),
            source,
            target,
            metric,
            labels,
            &format!("{t:.3}"),
            &format!("{:.3}", t - first),
            &v.to_string(),
        ]);
    }

    fn scrape(&mut self, target: &str, e: &Exposition, t: f64) {
        for name in &e.order {
            for p in e.get(name).unwrap_or_default() {
                self.row("scrape", target, name, &p.labels_text(), t, p.value);
            }
        }
        let _ = self.w.flush();
    }
}

/// Scrapes running beside the load.
pub struct Scraper {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<(Vec<Target>, Outs)>,
    cfg: Config,
    client: reqwest::Client,
    hooks: Arc<Mutex<Vec<Hook>>>,
}

/// Where each scrape goes besides the targets' samples.
#[derive(Default)]
struct Outs {
    rows: Option<Rows>,
    hooks: Arc<Mutex<Vec<Hook>>>,
    /// The baseline's points, taken before there was a hook (the feed
    /// starts with the load), sent with the first scrape after.
    pending: Vec<LivePoint>,
}

impl Scraper {
    /// Take the baseline scrape of every target, then scrape each
    /// interval until [`Scraper::finish`]. Fails only on a CSV that cannot
    /// be created: a target that cannot be scraped is warned about.
    pub async fn start(cfg: Config, run_id: &str) -> Result<Scraper, String> {
        let hooks = Arc::new(Mutex::new(Vec::new()));
        let mut outs = Outs {
            rows: cfg
                .csv
                .as_deref()
                .map(|p| Rows::create(p, run_id))
                .transpose()?,
            hooks: hooks.clone(),
            pending: Vec::new(),
        };
        let client = crate::client::http_builder()
            .build()
            .map_err(|e| format!("cannot build the scrape client: {e}"))?;
        let origin_of = |u: &str| {
            reqwest::Url::parse(u)
                .ok()
                .map(|u| u.origin().ascii_serialization())
        };
        let mut targets: Vec<Target> = cfg
            .targets
            .iter()
            .map(|url| Target {
                url: url.clone(),
                bearer: cfg
                    .auth
                    .as_ref()
                    .filter(|(origin, _)| origin_of(url).as_deref() == Some(origin.as_str()))
                    .map(|(_, key)| key.clone()),
                family: None,
                raw: Kept::default(),
                scrapes: 0,
                failed: 0,
                first_error: None,
                before: None,
            })
            .collect();
        let timeout = cfg
            .interval
            .clamp(Duration::from_millis(500), Duration::from_secs(10));
        outs.pending = scrape_all(&mut targets, &client, timeout, &mut outs).await;
        let stop = CancellationToken::new();
        let (s, c, interval) = (stop.clone(), client.clone(), cfg.interval);
        let task = tokio::spawn(async move {
            let mut tick =
                tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = s.cancelled() => break,
                    _ = tick.tick() => {
                        scrape_all(&mut targets, &c, timeout, &mut outs).await;
                    }
                }
            }
            tokio::time::sleep(SETTLE).await;
            scrape_all(&mut targets, &c, timeout, &mut outs).await;
            (targets, outs)
        });
        Ok(Scraper {
            stop,
            task,
            cfg,
            client,
            hooks,
        })
    }

    /// Send every scrape from now on to `hook` as live points (beside the
    /// hooks added before).
    pub fn add_hook(&self, hook: Hook) {
        self.hooks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(hook);
    }

    /// Take the last scrape, ask the `--promql` queries over `window`
    /// (Unix seconds of the load's start and end), and build the section.
    pub async fn finish(self, window: (f64, f64)) -> ServerMetrics {
        self.stop.cancel();
        let (targets, outs) = self.task.await.unwrap_or_default();
        let mut rows = outs.rows;
        let mut out = ServerMetrics {
            interval_s: self.cfg.interval.as_secs_f64(),
            targets: targets
                .into_iter()
                .map(|t| TargetMetrics {
                    url: t.url,
                    server: t.family.map(|f| f.server.to_string()),
                    scrapes: t.scrapes,
                    failed_scrapes: t.failed,
                    first_error: t.first_error,
                    figures: Figures::default(),
                    series: Vec::new(),
                    raw: t.raw.into_raw(),
                })
                .collect(),
            queries: Vec::new(),
        };
        if let Some(base) = &self.cfg.prometheus {
            if !self.cfg.queries.is_empty() {
                tokio::time::sleep(self.cfg.prometheus_wait).await;
            }
            let step = self.cfg.interval.as_secs_f64().max(0.001);
            // Asked a few at a time, answers kept in the queries' order.
            use futures_util::StreamExt as _;
            let client = &self.client;
            let answers: Vec<_> = futures_util::stream::iter(&self.cfg.queries)
                .map(|q| promql::range(client, base, q, window, step))
                .buffered(self.cfg.query_concurrency.max(1))
                .collect()
                .await;
            for (q, r) in self.cfg.queries.iter().zip(answers) {
                if let Some(rows) = rows.as_mut() {
                    for s in &r.series {
                        let text = expo::labels_text(s.labels.iter());
                        for p in &s.samples {
                            rows.row("promql", base, &q.name, &text, p[0], p[1]);
                        }
                    }
                    let _ = rows.w.flush();
                }
                out.queries.push(r);
            }
        }
        out
    }
}

async fn scrape_all(
    targets: &mut [Target],
    client: &reqwest::Client,
    timeout: Duration,
    outs: &mut Outs,
) -> Vec<LivePoint> {
    let got =
        futures_util::future::join_all(targets.iter_mut().map(|t| t.scrape(client, timeout))).await;
    let mut live = Vec::new();
    for (t, g) in targets.iter().zip(got) {
        if let Some((e, at, point)) = g {
            if let Some(rows) = outs.rows.as_mut() {
                rows.scrape(&t.url, &e, at);
            }
            live.push(point);
        }
    }
    let mut hooks = outs.hooks.lock().unwrap_or_else(|p| p.into_inner());
    if !hooks.is_empty() {
        let pending = std::mem::take(&mut outs.pending);
        for hook in hooks.iter_mut() {
            if !pending.is_empty() {
                hook(&pending);
            }
            hook(&live);
        }
    }
    drop(hooks);
    live
}

/// The series the figures and HTML charts read, by name, for a quick look.
pub fn gauge_series(t: &TargetMetrics, name: &str) -> Vec<(f64, f64)> {
    t.series
        .iter()
        .filter_map(|r| r.gauges.get(name).map(|v| (r.t_s, *v)))
        .collect()
}
