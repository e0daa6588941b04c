//! Live outputs: InfluxDB line protocol, written while the run goes on.
//!
//! - `--out influxdb=http://host:8086/DB` writes to InfluxDB 1.x's `/write`
//!   (user and password from `--influx-user`/`--influx-password` or
//!   `INFLUX_USERNAME`/`INFLUX_PASSWORD`); the database is created when it
//!   does not exist, as k6 does.
//! - `--out influxdb2=http://host:8086?org=O&bucket=B` writes to
//!   `/api/v2/write` (InfluxDB 2.x and 3.x, cloud, VictoriaMetrics) with
//!   `INFLUX_TOKEN`.
//!
//! Three measurements: `periscope_window` (one point per second of the
//! run), `periscope_request` (one per request, thinned by
//! `--influx-request-sample`) and `periscope_query` (one per trace query of
//! an otlp-traces run's query load, thinned alike). The collector formats
//! points into a batch ([`Feed`]); batches go through a bounded channel to
//! one writer task per output, which gzips and POSTs them. A sink that is
//! down or slow never holds the run up: when its channel is full, or a write
//! fails, the points are dropped and counted, one warning is printed, and
//! the end of the run reports what was written and what was lost.

mod batches;
pub mod csv;
mod parquet;
pub mod rows;
pub mod tracer;

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;

pub use crate::metrics::SinkReport;
use crate::metrics::WindowSummary;
use crate::record::{Outcome, RequestRecord};

/// Batches waiting for a writer, per output; beyond this, points are dropped.
const QUEUE: usize = 64;
/// Points per batch before it is handed to the writers.
const BATCH_POINTS: usize = 2000;
/// A write that takes longer has failed.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Where to write, parsed from `--out`.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// InfluxDB 1.x: base URL and database.
    V1 { base: String, db: String },
    /// `/api/v2/write`: base URL, org and bucket.
    V2 {
        base: String,
        org: String,
        bucket: String,
    },
}

impl Output {
    /// `influxdb=http://host:8086/db` or `influxdb2=http://host:8086?org=O&bucket=B`.
    pub fn parse(s: &str) -> Result<Output, String> {
        let (kind, url) = s.split_once('=').ok_or_else(|| {
            format!("--out '{s}': expected influxdb=http://host:8086/DB or influxdb2=http://host:8086?org=O&bucket=B")
        })?;
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| format!("--out '{s}': '{url}' is not a URL: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!("--out '{s}': the URL must be http:// or https://"));
        }
        let host = parsed
            .host()
            .ok_or_else(|| format!("--out '{s}': the URL has no host"))?;
        let base = match parsed.port() {
            Some(port) => format!("{}://{host}:{port}", parsed.scheme()),
            None => format!("{}://{host}", parsed.scheme()),
        };
        match kind {
            "influxdb" => {
                let db = parsed.path().trim_matches('/').to_string();
                if db.is_empty() || db.contains('/') {
                    return Err(format!(
                        "--out '{s}': name the database in the path, e.g. influxdb=http://localhost:8086/periscope"
                    ));
                }
                Ok(Output::V1 { base, db })
            }
            "influxdb2" => {
                let q = |k: &str| {
                    parsed
                        .query_pairs()
                        .find(|(key, _)| key == k)
                        .map(|(_, v)| v.into_owned())
                        .filter(|v| !v.is_empty())
                };
                let bucket = q("bucket").ok_or_else(|| {
                    format!("--out '{s}': give the bucket, e.g. influxdb2=http://localhost:8086?org=my-org&bucket=periscope")
                })?;
                Ok(Output::V2 {
                    base,
                    org: q("org").unwrap_or_default(),
                    bucket,
                })
            }
            other => Err(format!(
                "--out '{s}': unknown output '{other}' (influxdb or influxdb2)"
            )),
        }
    }

    fn base(&self) -> &str {
        match self {
            Output::V1 { base, .. } | Output::V2 { base, .. } => base,
        }
    }

    /// For messages: the output without credentials.
    pub fn label(&self) -> String {
        match self {
            Output::V1 { base, db } => format!("influxdb {base}/{db}"),
            Output::V2 { base, bucket, .. } => format!("influxdb2 {base} bucket {bucket}"),
        }
    }
}

/// Credentials, never printed.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    pub user: Option<String>,
    pub password: Option<String>,
    pub token: Option<String>,
}

/// What every point is tagged with.
#[derive(Debug, Clone, Default)]
pub struct Tags {
    pub pairs: Vec<(String, String)>,
}

/// Escape a tag key or value, or a measurement name.
fn tag_escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            ',' | '=' | ' ' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
}

impl Tags {
    /// `,k=v,k2=v2` (sorted by key, as InfluxDB prefers; empty values left out).
    fn render(&self) -> String {
        let mut pairs: Vec<&(String, String)> = self
            .pairs
            .iter()
            .filter(|(k, v)| !k.is_empty() && !v.is_empty())
            .collect();
        pairs.sort();
        let mut out = String::new();
        for (k, v) in pairs {
            out.push(',');
            tag_escape(k, &mut out);
            out.push('=');
            tag_escape(v, &mut out);
        }
        out
    }
}

/// Counts of one output, shared with its writer.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) written: AtomicU64,
    pub(crate) dropped: AtomicU64,
}

/// One output's writer task.
struct Writer {
    label: String,
    tx: mpsc::Sender<Arc<Batch>>,
    counters: Arc<Counters>,
    task: tokio::task::JoinHandle<Option<String>>,
}

/// Points in line protocol.
#[derive(Debug, Default)]
struct Batch {
    body: String,
    points: u64,
}

/// The collector's side: formats points and hands batches to the writers.
pub struct Feed {
    writers: Vec<Writer>,
    window_tags: String,
    request_tags: String,
    /// The same, for trace queries (`periscope_query`).
    query_tags: String,
    /// Wall-clock ns of the load's origin.
    origin_ns: u128,
    sample: f64,
    rng: fastrand::Rng,
    seq: u64,
    batch: Batch,
}

/// Wait (up to `wait`) for an output's task to end, and report its counts
/// and first failure. `names` are the task's noun and verb ("writer",
/// "writing").
pub(crate) async fn report_of_task(
    label: String,
    task: tokio::task::JoinHandle<Option<String>>,
    counters: &Counters,
    wait: Duration,
    names: (&str, &str),
) -> SinkReport {
    let error = match tokio::time::timeout(wait, task).await {
        Ok(Ok(e)) => e,
        Ok(Err(e)) => Some(format!("the {} failed: {e}", names.0)),
        Err(_) => Some(format!(
            "still {} after {}s at the end of the run",
            names.1,
            wait.as_secs()
        )),
    };
    SinkReport {
        label,
        written: counters.written.load(Ordering::Relaxed),
        dropped: counters.dropped.load(Ordering::Relaxed),
        error,
    }
}

/// Warns once per output and process: a sweep's many runs share the warning.
pub(crate) fn warn_once(label: &str, msg: &str) {
    static WARNED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut warned = WARNED.lock().unwrap_or_else(|e| e.into_inner());
    if !warned.iter().any(|l| l == label) {
        warned.push(label.to_string());
        eprintln!("\nwarning: {label}: {msg}; the run goes on, points are dropped and counted");
    }
}

/// `STATUS: the first 200 characters of the body`, of an answer that
/// refused a write.
pub(crate) async fn refusal(resp: reqwest::Response) -> String {
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    format!(
        "{status}: {}",
        text.trim().chars().take(200).collect::<String>()
    )
}

async fn write_loop(
    out: Output,
    creds: Credentials,
    mut rx: mpsc::Receiver<Arc<Batch>>,
    counters: Arc<Counters>,
) -> Option<String> {
    let client = match crate::client::http_builder().timeout(WRITE_TIMEOUT).build() {
        Ok(c) => c,
        Err(e) => return Some(format!("cannot build the HTTP client: {e}")),
    };
    let label = out.label();
    let url = |path: &str, query: &[(&str, &str)]| -> String {
        let mut u = reqwest::Url::parse(&format!("{}{path}", out.base()))
            .expect("the base URL was parsed by --out");
        {
            let mut q = u.query_pairs_mut();
            for (k, v) in query.iter().filter(|(_, v)| !v.is_empty()) {
                q.append_pair(k, v);
            }
        }
        u.to_string()
    };
    let write_url = match &out {
        Output::V1 { db, .. } => url("/write", &[("db", db), ("precision", "ns")]),
        Output::V2 { org, bucket, .. } => url(
            "/api/v2/write",
            &[("org", org), ("bucket", bucket), ("precision", "ns")],
        ),
    };
    let request = |body: Vec<u8>| {
        let r = client.post(&write_url);
        let req = match (&out, &creds) {
            (
                Output::V1 { .. },
                Credentials {
                    user: Some(u),
                    password,
                    ..
                },
            ) => r.basic_auth(u, password.as_deref()),
            (Output::V2 { .. }, Credentials { token: Some(t), .. }) => {
                r.header("Authorization", format!("Token {t}"))
            }
            _ => r,
        };
        req.header("Content-Encoding", "gzip")
            .header("Content-Type", "text/plain; charset=utf-8")
            .body(body)
    };
    if let Output::V1 { db, .. } = &out {
        // Create the database when it is missing (needs admin rights; a
        // failure here shows at the first write).
        let create = format!("CREATE DATABASE \"{}\"", db.replace('"', ""));
        let mut r = client.post(url("/query", &[("q", &create)]));
        if let Some(u) = &creds.user {
            r = r.basic_auth(u, creds.password.as_deref());
        }
        let _ = r.send().await;
    }
    let mut first_error: Option<String> = None;
    while let Some(batch) = rx.recv().await {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let body = gz
            .write_all(batch.body.as_bytes())
            .and_then(|_| gz.finish())
            .unwrap_or_default();
        let failure = match request(body).send().await {
            Ok(resp) if resp.status().is_success() => None,
            Ok(resp) => Some(refusal(resp).await),
            Err(e) => Some(format!("{e}")),
        };
        match failure {
            None => {
                counters.written.fetch_add(batch.points, Ordering::Relaxed);
            }
            Some(msg) => {
                counters.dropped.fetch_add(batch.points, Ordering::Relaxed);
                warn_once(&label, &format!("write failed ({msg})"));
                first_error.get_or_insert(msg);
            }
        }
    }
    first_error
}

fn ns_since_epoch(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

impl Feed {
    /// Start one writer per output. `tags` go on every point.
    pub fn start(
        outputs: &[Output],
        creds: &Credentials,
        tags: &Tags,
        origin: SystemTime,
        request_sample: f64,
    ) -> Feed {
        let writers = outputs
            .iter()
            .map(|o| {
                let (tx, rx) = mpsc::channel(QUEUE);
                let counters = Arc::new(Counters::default());
                let task = tokio::spawn(write_loop(o.clone(), creds.clone(), rx, counters.clone()));
                Writer {
                    label: o.label(),
                    tx,
                    counters,
                    task,
                }
            })
            .collect();
        let tags = tags.render();
        Feed {
            writers,
            window_tags: format!("periscope_window{tags}"),
            request_tags: format!("periscope_request{tags}"),
            query_tags: format!("periscope_query{tags}"),
            origin_ns: ns_since_epoch(origin),
            sample: request_sample.clamp(0.0, 1.0),
            rng: fastrand::Rng::new(),
            seq: 0,
            batch: Batch::default(),
        }
    }

    /// One request's point (when sampled).
    pub fn request(&mut self, r: &RequestRecord) {
        if self.sample < 1.0 && self.rng.f64() >= self.sample {
            return;
        }
        // ns resolution plus a sequence: two requests sent in the same µs
        // with the same tags must not overwrite each other.
        self.seq += 1;
        let ts = self.origin_ns + r.start_us as u128 * 1000 + (self.seq % 1000) as u128;
        let b = &mut self.batch.body;
        let side = r.group.as_ref().is_some_and(crate::record::Group::is_side);
        b.push_str(if side {
            &self.query_tags
        } else {
            &self.request_tags
        });
        b.push_str(",error_class=");
        b.push_str(match r.outcome {
            Outcome::Ok => "none",
            Outcome::Interrupted => "interrupted",
            Outcome::Error(c) => c.as_str(),
        });
        if let Some(g) = &r.group {
            b.push(',');
            b.push_str(g.kind());
            b.push('=');
            tag_escape(&g.label(), b);
        }
        let _ = write!(
            b,
            ",stage={},status={} ok={},e2e_ms={}",
            r.stage,
            r.status.map_or("none".to_string(), |s| s.to_string()),
            r.is_ok(),
            r.e2e_us() as f64 / 1000.0
        );
        if side {
            // Queries leave on a schedule: their latency counts from it.
            let _ = write!(b, ",latency_ms={}", r.latency_us() as f64 / 1000.0);
        }
        if let Some(t) = r.ttft_us {
            let _ = write!(b, ",ttft_ms={}", t as f64 / 1000.0);
        }
        if let Some(t) = r.tpot_us() {
            let _ = write!(b, ",tpot_ms={}", t as f64 / 1000.0);
        }
        if r.reconnect {
            b.push_str(",reconnect=1i");
        }
        if let Some(st) = &r.server_timing {
            for (k, v) in [
                ("server_prefill_ms", st.prompt_ms),
                ("server_decode_ms", st.decode_ms),
                ("server_queue_ms", st.queue_ms),
            ] {
                if let Some(v) = v {
                    let _ = write!(b, ",{k}={v}");
                }
            }
            if let Some(o) = r.ttft_outside_us() {
                let _ = write!(b, ",ttft_outside_ms={}", o as f64 / 1000.0);
            }
            if let Some(c) = st.cached_tokens {
                let _ = write!(b, ",cached_tokens={c}i");
            }
        }
        if !r.payload.is_empty() {
            let _ = write!(
                b,
                ",payload_bytes={}i,wire_bytes={}i,spans={}i,rejected_spans={}i,trace_tokens={}i",
                r.payload.sent_bytes,
                r.payload.wire_bytes,
                if r.is_ok() { r.payload.spans } else { 0 },
                r.payload.rejected_spans,
                if r.is_ok() { r.payload.tokens } else { 0 }
            );
        }
        let _ = writeln!(
            b,
            ",input_tokens={}i,output_tokens={}i {ts}",
            r.input_tokens, r.output_tokens
        );
        self.batch.points += 1;
        if self.batch.points as usize >= BATCH_POINTS {
            self.flush();
        }
    }

    /// One second's point; the batch goes out with it.
    pub fn window(&mut self, w: &WindowSummary) {
        let ts = self.origin_ns + w.t as u128 * 1_000_000_000;
        let b = &mut self.batch.body;
        b.push_str(&self.window_tags);
        let _ = write!(
            b,
            " rps={}i,ok={}i,err={}i,active_vus={}i,in_flight={}i,tokens_per_s={}i,input_tokens_per_s={}i",
            w.requests, w.ok, w.errors, w.active_vus, w.in_flight, w.output_tokens, w.input_tokens
        );
        if w.reconnects > 0 {
            let _ = write!(b, ",reconnects={}i", w.reconnects);
        }
        if w.payload_bytes > 0 || w.spans > 0 {
            let _ = write!(
                b,
                ",payload_bytes_per_s={}i,wire_bytes_per_s={}i,spans_per_s={}i,rejected_spans_per_s={}i",
                w.payload_bytes, w.wire_bytes, w.spans, w.rejected_spans
            );
        }
        for (name, v) in [
            ("ttft_p50", w.ttft_p50),
            ("ttft_p95", w.ttft_p95),
            ("ttft_p99", w.ttft_p99),
            ("itl_p50", w.itl_p50),
            ("itl_p95", w.itl_p95),
            ("itl_p99", w.itl_p99),
            ("tpot_p50", w.tpot_p50),
            ("tpot_p95", w.tpot_p95),
            ("tpot_p99", w.tpot_p99),
            ("e2e_p50", w.e2e_p50),
            ("e2e_p95", w.e2e_p95),
            ("e2e_p99", w.e2e_p99),
        ] {
            if let Some(v) = v {
                let _ = write!(b, ",{name}={v}");
            }
        }
        let _ = writeln!(b, " {ts}");
        self.batch.points += 1;
        // A script's own metrics: one point each (`periscope_custom`).
        for c in &w.custom {
            b.push_str(
                &self
                    .window_tags
                    .replacen("periscope_window", "periscope_custom", 1),
            );
            b.push_str(",metric=");
            tag_escape(&c.name, b);
            let _ = write!(b, ",kind={} count={}i,value={}", c.kind, c.count, c.value);
            if let Some(p) = c.p95 {
                let _ = write!(b, ",p95={p}");
            }
            if let Some(m) = c.max {
                let _ = write!(b, ",max={m}");
            }
            let _ = writeln!(b, " {ts}");
            self.batch.points += 1;
        }
        self.flush();
    }

    /// Hand the batch to every writer; a full queue drops it (counted).
    pub fn flush(&mut self) {
        if self.batch.points == 0 {
            return;
        }
        let batch = Arc::new(std::mem::take(&mut self.batch));
        for w in &self.writers {
            if w.tx.try_send(batch.clone()).is_err() {
                w.counters
                    .dropped
                    .fetch_add(batch.points, Ordering::Relaxed);
                warn_once(&w.label, "it does not keep up (its queue is full)");
            }
        }
    }

    /// A handle that writes points the collector does not make (the
    /// server's metrics, `periscope_server`) through the same writers.
    pub fn side(&self) -> SideFeed {
        SideFeed {
            writers: self
                .writers
                .iter()
                .map(|w| (w.label.clone(), w.tx.clone(), w.counters.clone()))
                .collect(),
            server_tags: self
                .window_tags
                .replacen("periscope_window", "periscope_server", 1),
        }
    }

    /// Send what is left and wait (up to `wait`) for the writers to finish.
    pub async fn finish(mut self, wait: Duration) -> Vec<SinkReport> {
        self.flush();
        let mut reports = Vec::new();
        for w in self.writers {
            drop(w.tx);
            reports.push(
                report_of_task(w.label, w.task, &w.counters, wait, ("writer", "writing")).await,
            );
        }
        reports
    }
}

/// Points written beside the collector's, through its writers; dropped
/// with the writers' queues when they are gone or full.
pub struct SideFeed {
    writers: Vec<(String, mpsc::Sender<Arc<Batch>>, Arc<Counters>)>,
    server_tags: String,
}

impl SideFeed {
    /// One point per target of a scrape: `periscope_server`, tagged with
    /// the run's tags, the `/metrics` URL and the server it speaks for;
    /// fields as the scraper named them.
    pub fn server(&self, points: &[crate::server_metrics::LivePoint]) {
        let mut batch = Batch::default();
        for p in points.iter().filter(|p| !p.fields.is_empty()) {
            let b = &mut batch.body;
            b.push_str(&self.server_tags);
            b.push_str(",metrics_url=");
            tag_escape(&p.url, b);
            if let Some(s) = p.server {
                b.push_str(",server=");
                tag_escape(s, b);
            }
            for (i, (k, v)) in p.fields.iter().enumerate() {
                let _ = write!(b, "{}{k}={v}", if i == 0 { ' ' } else { ',' });
            }
            let _ = writeln!(b, " {}", (p.t * 1e9) as u128);
            batch.points += 1;
        }
        if batch.points == 0 {
            return;
        }
        let batch = Arc::new(batch);
        for (label, tx, counters) in &self.writers {
            if tx.try_send(batch.clone()).is_err() {
                counters.dropped.fetch_add(batch.points, Ordering::Relaxed);
                warn_once(label, "it does not keep up (its queue is full)");
            }
        }
    }
}

impl crate::metrics::Observer for Feed {
    fn record(&mut self, r: &RequestRecord) {
        Feed::request(self, r);
    }

    fn window(&mut self, w: &WindowSummary, _total: &crate::metrics::Aggregate) {
        Feed::window(self, w);
    }

    fn finish(self: Box<Self>, wait: Duration) -> crate::metrics::live::Finish {
        Box::pin(Feed::finish(*self, wait))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_parse_and_bad_ones_say_what_to_fix() {
        assert_eq!(
            Output::parse("influxdb=http://localhost:8086/periscope").unwrap(),
            Output::V1 {
                base: "http://localhost:8086".into(),
                db: "periscope".into()
            }
        );
        assert_eq!(
            Output::parse("influxdb2=https://h:9999?org=o&bucket=b").unwrap(),
            Output::V2 {
                base: "https://h:9999".into(),
                org: "o".into(),
                bucket: "b".into()
            }
        );
        for (bad, want) in [
            ("influxdb", "expected influxdb="),
            ("influxdb=localhost:8086/x", "http:// or https://"),
            ("influxdb=http://h:8086", "name the database"),
            ("influxdb2=http://h:8086?org=o", "give the bucket"),
            ("prometheus=http://h", "unknown output 'prometheus'"),
        ] {
            let e = Output::parse(bad).unwrap_err();
            assert!(e.contains(want), "{bad}: {e}");
        }
    }

    #[test]
    fn tags_are_escaped_sorted_and_empty_ones_left_out() {
        let t = Tags {
            pairs: vec![
                ("scenario".into(), "load".into()),
                ("model".into(), "my model,v=2".into()),
                ("empty".into(), String::new()),
            ],
        };
        assert_eq!(t.render(), ",model=my\\ model\\,v\\=2,scenario=load");
    }

    #[tokio::test]
    async fn points_are_line_protocol_with_unique_timestamps() {
        let mut feed = Feed::start(
            &[],
            &Credentials::default(),
            &Tags {
                pairs: vec![("run_id".into(), "r1".into())],
            },
            UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            1.0,
        );
        let mut r = RequestRecord::new(0, 1500);
        r.end_us = 101_500;
        r.ttft_us = Some(20_000);
        r.output_tokens = 5;
        r.status = Some(200);
        feed.request(&r);
        feed.request(&r);
        let w = WindowSummary {
            t: 2,
            requests: 2,
            ok: 2,
            ttft_p95: Some(20.0),
            ..WindowSummary::default()
        };
        let lines: Vec<String> = feed.batch.body.lines().map(String::from).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(
            lines[0],
            "periscope_request,run_id=r1,error_class=none,stage=0,status=200 ok=true,e2e_ms=100,ttft_ms=20,tpot_ms=20,input_tokens=0i,output_tokens=5i 1700000000001500001"
        );
        assert!(lines[1].ends_with(" 1700000000001500002"), "{}", lines[1]);
        // A trace query is a point of its own measurement, with its latency
        // from the schedule.
        let mut q = RequestRecord::new(1000, 1500);
        q.end_us = 21_500;
        q.status = Some(200);
        q.group = Some(crate::record::Group::Query("/api/search?q=a b".into()));
        feed.request(&q);
        let last = feed.batch.body.lines().last().unwrap().to_string();
        assert!(
            last.starts_with(
                "periscope_query,run_id=r1,error_class=none,query=/api/search?q\\=a\\ b,stage=0,status=200 ok=true,e2e_ms=20,latency_ms=20.5,"
            ),
            "{last}"
        );
        // A reconnect, and what the server said of its own timings.
        let mut t = RequestRecord::new(0, 1500);
        t.end_us = 101_500;
        t.ttft_us = Some(20_000);
        t.status = Some(200);
        t.reconnect = true;
        t.server_timing = Some(crate::record::ServerTiming {
            prompt_ms: Some(15.5),
            decode_ms: Some(70.0),
            cached_tokens: Some(12),
            ..Default::default()
        });
        feed.request(&t);
        let last = feed.batch.body.lines().last().unwrap().to_string();
        assert!(
            last.contains(",reconnect=1i,server_prefill_ms=15.5,server_decode_ms=70,ttft_outside_ms=4.5,cached_tokens=12i,"),
            "{last}"
        );
        let mut w2 = w.clone();
        w2.reconnects = 3;
        feed.window(&w2);
        assert!(
            feed.batch.body.is_empty(),
            "the window flushed the batch (to no one)"
        );
        feed.window(&w);
        // With no writer the batch is simply handed over (to no one).
        assert!(feed.batch.body.is_empty());
        let reports = feed.finish(Duration::from_secs(1)).await;
        assert!(reports.is_empty());
    }
}
