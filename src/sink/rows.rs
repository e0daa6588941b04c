//! `--requests-out FILE.jsonl|FILE.parquet`: one row per request, written
//! while the run goes on, for pandas, DuckDB or Spark.
//!
//! The collector gathers rows (the [`Sample`] of each request, no prompt or
//! answer text) into batches of at most [`BATCH_ROWS`] or one second; a
//! bounded channel hands them to a writer thread, so memory stays bounded
//! however long the run. JSONL appends each batch as lines: a run killed
//! mid-way leaves every whole line written so far. Parquet writes each batch
//! as a row group (gzip) and its footer at the end of the run.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::metrics::live::Finish;
use crate::metrics::{Aggregate, Observer, Sample, SinkReport, WindowSummary};
use crate::record::{Group, RequestRecord};

/// A batch goes to the writer at this many rows (or each second).
pub const BATCH_ROWS: usize = 8192;
/// Batches waiting for the writer; beyond this the collector waits.
const QUEUE: usize = 8;

/// The file's format, from its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jsonl,
    Parquet,
}

impl Format {
    pub fn of(path: &Path) -> Result<Format, String> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("jsonl" | "ndjson") => Ok(Format::Jsonl),
            Some("parquet") => Ok(Format::Parquet),
            _ => Err(format!(
                "--requests-out {}: name a .jsonl or a .parquet file",
                path.display()
            )),
        }
    }
}

/// One row: the run, its wall-clock time, and the request's sample.
#[derive(serde::Serialize)]
struct Row<'a> {
    run_id: &'a str,
    timestamp: String,
    #[serde(flatten)]
    sample: &'a Sample,
    #[serde(skip_serializing_if = "Option::is_none")]
    tpot_ms: Option<f64>,
}

pub(super) fn tpot(s: &Sample) -> Option<f64> {
    match (s.ttft_ms, s.output_tokens) {
        (Some(t), n) if n >= 2 && s.ok => Some((s.e2e_ms - t) / (n - 1) as f64),
        _ => None,
    }
}

/// What the writer thread does with batches.
pub(super) trait Sink: Send {
    fn batch(&mut self, rows: &[Sample]) -> Result<(), String>;
    fn close(self: Box<Self>) -> Result<(), String>;
}

struct Jsonl {
    file: std::fs::File,
    run_id: String,
    start: SystemTime,
}

impl Sink for Jsonl {
    fn batch(&mut self, rows: &[Sample]) -> Result<(), String> {
        let mut buf = Vec::with_capacity(rows.len() * 320);
        for s in rows {
            let at = self.start + Duration::from_secs_f64(s.t_s.max(0.0));
            let row = Row {
                run_id: &self.run_id,
                timestamp: humantime::format_rfc3339_micros(at).to_string(),
                sample: s,
                tpot_ms: tpot(s),
            };
            serde_json::to_writer(&mut buf, &row).map_err(|e| e.to_string())?;
            buf.push(b'\n');
        }
        self.file.write_all(&buf).map_err(|e| e.to_string())
    }

    fn close(self: Box<Self>) -> Result<(), String> {
        self.file.sync_data().map_err(|e| e.to_string())
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

/// The live output of `--requests-out`.
pub struct RequestFile {
    path: PathBuf,
    open_model: bool,
    batch: Vec<Sample>,
    tx: Option<SyncSender<Vec<Sample>>>,
    writer: Option<std::thread::JoinHandle<()>>,
    written: Arc<Mutex<Written>>,
}

impl RequestFile {
    /// Create (truncate) `path`: before the load, so a failure costs nothing.
    pub fn create(
        path: &Path,
        run_id: &str,
        start: SystemTime,
        open_model: bool,
    ) -> Result<Self, String> {
        let fail = |e: &dyn std::fmt::Display| {
            format!("--requests-out: cannot write {}: {e}", path.display())
        };
        let format = Format::of(path)?;
        let file = std::fs::File::create(path).map_err(|e| fail(&e))?;
        let mut sink: Box<dyn Sink> = match format {
            Format::Jsonl => Box::new(Jsonl {
                file,
                run_id: run_id.to_string(),
                start,
            }),
            Format::Parquet => {
                Box::new(super::parquet::Parquet::new(file, run_id, start).map_err(|e| fail(&e))?)
            }
        };
        let (tx, rx) = sync_channel::<Vec<Sample>>(QUEUE);
        let written = Arc::new(Mutex::new(Written::default()));
        let w = written.clone();
        let label = path.display().to_string();
        let writer = std::thread::Builder::new()
            .name("periscope-rows".into())
            .spawn(move || {
                let note = |w: &mut Written, e: String| {
                    if w.error.is_none() {
                        eprintln!("warning: --requests-out {label}: {e}; later rows are lost");
                        w.error = Some(e);
                    }
                };
                for rows in rx {
                    let failed = w.lock().is_ok_and(|w| w.error.is_some());
                    let result = if failed { Ok(()) } else { sink.batch(&rows) };
                    let mut w = w.lock().unwrap_or_else(|p| p.into_inner());
                    match result {
                        Ok(()) if !failed => w.rows += rows.len() as u64,
                        Ok(()) => w.lost += rows.len() as u64,
                        Err(e) => {
                            note(&mut w, e);
                            w.lost += rows.len() as u64;
                        }
                    }
                }
                if let Err(e) = sink.close() {
                    note(&mut w.lock().unwrap_or_else(|p| p.into_inner()), e);
                }
            })
            .map_err(|e| fail(&e))?;
        Ok(RequestFile {
            path: path.to_path_buf(),
            open_model,
            batch: Vec::new(),
            tx: Some(tx),
            writer: Some(writer),
            written,
        })
    }

    fn hand_over(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let rows = std::mem::take(&mut self.batch);
        let n = rows.len() as u64;
        if let Some(tx) = &self.tx {
            if tx.send(rows).is_err() {
                self.written.lock().unwrap_or_else(|p| p.into_inner()).lost += n;
            }
        }
    }
}

impl Observer for RequestFile {
    fn record(&mut self, r: &RequestRecord) {
        if r.group.as_ref().is_some_and(Group::is_side) {
            return;
        }
        self.batch.push(Sample::of(r, self.open_model));
        if self.batch.len() >= BATCH_ROWS {
            self.hand_over();
        }
    }

    fn window(&mut self, _w: &WindowSummary, _total: &Aggregate) {
        self.hand_over();
    }

    fn finish(mut self: Box<Self>, _wait: Duration) -> Finish {
        self.hand_over();
        drop(self.tx.take());
        let writer = self.writer.take();
        let written = self.written.clone();
        let label = format!("requests-out={}", self.path.display());
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
