//! `--requests-out FILE.jsonl|FILE.parquet`: one row per request, written
//! while the run goes on, for pandas, DuckDB or Spark.
//!
//! The collector gathers rows (the [`Sample`] of each request, no prompt or
//! answer text) into batches of at most [`BATCH_ROWS`] or one second, for a
//! writer thread (`batches`), so memory stays bounded however long the run. JSONL appends each batch as lines: a run killed
//! mid-way leaves every whole line written so far. Parquet writes each batch
//! as a row group (gzip) and its footer at the end of the run, Ctrl-C and
//! SIGTERM included; a run killed outright leaves no footer (JSONL is the
//! format for that).

use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::batches::{BatchSink, BatchWriter};
use crate::metrics::live::Finish;
use crate::metrics::{Aggregate, Observer, Sample, WindowSummary};
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

struct Jsonl {
    file: std::fs::File,
    run_id: String,
    start: SystemTime,
}

impl BatchSink<Vec<Sample>> for Jsonl {
    fn write(&mut self, rows: Vec<Sample>) -> Result<(), String> {
        let mut buf = Vec::with_capacity(rows.len() * 320);
        for s in &rows {
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

/// The live output of `--requests-out`.
pub struct RequestFile {
    open_model: bool,
    batch: Vec<Sample>,
    writer: BatchWriter<Vec<Sample>>,
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
        let sink: Box<dyn BatchSink<Vec<Sample>>> = match format {
            Format::Jsonl => Box::new(Jsonl {
                file,
                run_id: run_id.to_string(),
                start,
            }),
            Format::Parquet => {
                Box::new(super::parquet::Parquet::new(file, run_id, start).map_err(|e| fail(&e))?)
            }
        };
        let writer = BatchWriter::spawn(format!("requests-out={}", path.display()), QUEUE, sink)
            .map_err(|e| fail(&e))?;
        Ok(RequestFile {
            open_model,
            batch: Vec::new(),
            writer,
        })
    }

    fn hand_over(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let rows = std::mem::take(&mut self.batch);
        let n = rows.len() as u64;
        self.writer.send(rows, n);
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
        self.writer.finish()
    }
}
