//! `--csv PATH`'s per-request rows, written while the run goes on.
//!
//! The collector formats each request into a batch; batches of up to 64 KB
//! (or what one second gathered) go through a small bounded channel to a
//! writer thread, which appends each whole batch to the file with one write.
//! Memory stays bounded however long the run, and the file always ends on a
//! whole row: a run killed mid-way leaves every row up to its last second
//! or so, parseable. A full channel (a disk slower than the requests) holds
//! the collector up rather than lose a row. The row format is shared with
//! `periscope report --csv`, which writes the rows a JSON result kept.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::metrics::live::Finish;
use crate::metrics::{Aggregate, Observer, Sample, SinkReport, WindowSummary};
use crate::record::{Group, RequestRecord};

/// The columns of the per-request CSV.
pub const REQUEST_HEADER: &[&str] = &[
    "run_id",
    "timestamp",
    "t_s",
    "endpoint",
    "stage",
    "group",
    "status",
    "ok",
    "error_class",
    "ttft_ms",
    "e2e_ms",
    "tpot_ms",
    "latency_ms",
    "input_tokens",
    "output_tokens",
    "output_source",
    "reconnect",
    "protocol",
    "server_prompt_ms",
    "server_decode_ms",
    "cached_tokens",
    "server_output_tokens",
];

/// A batch is handed to the writer at this size.
const BATCH_BYTES: usize = 64 * 1024;
/// Batches waiting for the writer; beyond this the collector waits.
const QUEUE: usize = 16;

fn opt<T: ToString>(x: Option<T>) -> String {
    x.map(|v| v.to_string()).unwrap_or_default()
}

/// One request's row; `start` is the wall-clock time of the run's origin.
pub fn write_row<W: std::io::Write>(
    w: &mut csv::Writer<W>,
    run_id: &str,
    start: SystemTime,
    s: &Sample,
) -> csv::Result<()> {
    let at = start + Duration::from_secs_f64(s.t_s.max(0.0));
    let tpot = match (s.ttft_ms, s.output_tokens) {
        (Some(t), n) if n >= 2 && s.ok => Some((s.e2e_ms - t) / (n - 1) as f64),
        _ => None,
    };
    w.write_record([
        run_id,
        &humantime::format_rfc3339_micros(at).to_string(),
        &s.t_s.to_string(),
        &s.endpoint,
        &s.stage.to_string(),
        s.group.as_deref().unwrap_or_default(),
        &opt(s.status),
        &s.ok.to_string(),
        match s.error {
            Some(c) => c.as_str(),
            None if s.interrupted() => "interrupted",
            None => "",
        },
        &opt(s.ttft_ms),
        &s.e2e_ms.to_string(),
        &opt(tpot),
        &opt(s.latency_ms),
        &s.input_tokens.to_string(),
        &s.output_tokens.to_string(),
        s.output_source.as_str(),
        &s.reconnect.to_string(),
        match (s.http2, s.status) {
            (true, _) => "HTTP/2",
            (false, Some(_)) => "HTTP/1.1",
            (false, None) => "",
        },
        &opt(s.server_prompt_ms),
        &opt(s.server_decode_ms),
        &opt(s.cached_tokens),
        &opt(s.server_output_tokens),
    ])
}

/// `t` without its sub-millisecond part.
fn whole_millis(t: SystemTime) -> SystemTime {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => SystemTime::UNIX_EPOCH + Duration::from_millis(d.as_millis() as u64),
        Err(_) => t,
    }
}

/// What the writer thread did.
#[derive(Default)]
struct Written {
    rows: u64,
    /// Rows handed over after the file failed.
    lost: u64,
    error: Option<String>,
}

/// The live output of `--csv`: one row per request of the run.
pub struct RequestRows {
    path: PathBuf,
    run_id: String,
    start: SystemTime,
    open_model: bool,
    batch: csv::Writer<Vec<u8>>,
    rows_in_batch: u64,
    tx: Option<SyncSender<(Vec<u8>, u64)>>,
    writer: Option<std::thread::JoinHandle<()>>,
    written: Arc<Mutex<Written>>,
}

fn batch_writer() -> csv::Writer<Vec<u8>> {
    csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::with_capacity(BATCH_BYTES + 4096))
}

impl RequestRows {
    /// Create (truncate) `path` and write the header; the load has not
    /// started yet, so a failure here costs nothing.
    pub fn create(
        path: &Path,
        run_id: &str,
        start: SystemTime,
        open_model: bool,
    ) -> Result<Self, String> {
        let fail =
            |e: &dyn std::fmt::Display| format!("--csv: cannot write {}: {e}", path.display());
        let mut file = std::fs::File::create(path).map_err(|e| fail(&e))?;
        let mut header = csv::Writer::from_writer(Vec::new());
        header.write_record(REQUEST_HEADER).map_err(|e| fail(&e))?;
        let header = header.into_inner().map_err(|e| fail(&e.error()))?;
        file.write_all(&header).map_err(|e| fail(&e))?;
        let (tx, rx) = sync_channel::<(Vec<u8>, u64)>(QUEUE);
        let written = Arc::new(Mutex::new(Written::default()));
        let w = written.clone();
        let label = path.display().to_string();
        let writer = std::thread::Builder::new()
            .name("periscope-csv".into())
            .spawn(move || {
                for (bytes, rows) in rx {
                    let result = file.write_all(&bytes);
                    let mut w = w.lock().unwrap_or_else(|p| p.into_inner());
                    match (result, w.error.is_some()) {
                        (Ok(()), false) => w.rows += rows,
                        (Err(e), false) => {
                            eprintln!("warning: --csv {label}: {e}; later rows are lost");
                            w.error = Some(e.to_string());
                            w.lost += rows;
                        }
                        (_, true) => w.lost += rows,
                    }
                }
            })
            .map_err(|e| fail(&e))?;
        Ok(RequestRows {
            path: path.to_path_buf(),
            run_id: run_id.to_string(),
            // The result states its start to the millisecond; the rows'
            // timestamps are that start plus `t_s`, as `report --csv` writes
            // them from the JSON.
            start: whole_millis(start),
            open_model,
            batch: batch_writer(),
            rows_in_batch: 0,
            tx: Some(tx),
            writer: Some(writer),
            written,
        })
    }

    /// Give the rows gathered so far to the writer.
    fn hand_over(&mut self) {
        if self.rows_in_batch == 0 {
            return;
        }
        let full = std::mem::replace(&mut self.batch, batch_writer());
        let rows = std::mem::take(&mut self.rows_in_batch);
        let bytes = full.into_inner().unwrap_or_default();
        if let Some(tx) = &self.tx {
            if tx.send((bytes, rows)).is_err() {
                self.written.lock().unwrap_or_else(|p| p.into_inner()).lost += rows;
            }
        }
    }
}

impl Observer for RequestRows {
    fn record(&mut self, r: &RequestRecord) {
        if r.group.as_ref().is_some_and(Group::is_side) {
            return;
        }
        let s = Sample::of(r, self.open_model);
        // Writing into a Vec cannot fail.
        let _ = write_row(&mut self.batch, &self.run_id, self.start, &s);
        self.rows_in_batch += 1;
        if self.batch.get_ref().len() >= BATCH_BYTES {
            self.hand_over();
        }
    }

    fn window(&mut self, _w: &WindowSummary, _total: &Aggregate) {
        // At most about a second of rows is ever only in memory.
        self.hand_over();
    }

    fn finish(mut self: Box<Self>, _wait: Duration) -> Finish {
        self.hand_over();
        drop(self.tx.take());
        let writer = self.writer.take();
        let written = self.written.clone();
        let label = format!("csv={}", self.path.display());
        Box::pin(async move {
            if let Some(w) = writer {
                let _ = tokio::task::spawn_blocking(move || w.join()).await;
            }
            let w = written.lock().unwrap_or_else(|p| p.into_inner());
            vec![SinkReport {
                label,
                written: w.rows,
                dropped: w.lost,
                error: w.error.clone(),
            }]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_row_reaches_the_file_whole_and_batches_stay_small() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.csv");
        let mut rows =
            Box::new(RequestRows::create(&path, "run1", SystemTime::UNIX_EPOCH, false).unwrap());
        for i in 0..5000u64 {
            let mut r = RequestRecord::new(0, i * 1000);
            r.end_us = i * 1000 + 500;
            r.status = Some(200);
            rows.record(&r);
            assert!(rows.batch.get_ref().len() < BATCH_BYTES + 1024);
        }
        let report = rows.finish(Duration::from_secs(1)).await;
        assert_eq!(report[0].written, 5000);
        assert_eq!(report[0].dropped, 0);
        let mut reader = csv::Reader::from_path(&path).unwrap();
        assert_eq!(reader.headers().unwrap().len(), REQUEST_HEADER.len());
        let n = reader
            .records()
            .inspect(|r| assert!(r.is_ok(), "{r:?}"))
            .count();
        assert_eq!(n, 5000);
    }
}
