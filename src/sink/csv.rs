//! `--csv PATH`'s per-request rows, written while the run goes on.
//!
//! The collector formats each request into a batch; batches of up to 64 KB
//! (or what one second gathered) go to a writer thread (`batches`), which
//! appends each whole batch to the file with one write. Memory stays
//! bounded however long the run, and the file always ends on a whole row: a
//! run killed mid-way leaves every row up to its last second or so,
//! parseable. The row format is shared with
//! `periscope report --csv`, which writes the rows a JSON result kept.

use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::batches::{BatchSink, BatchWriter};
use crate::metrics::live::Finish;
use crate::metrics::{Aggregate, Observer, Sample, WindowSummary};
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

/// The file's end of `--csv`: each batch appended with one write.
struct CsvFile(std::fs::File);

impl BatchSink<Vec<u8>> for CsvFile {
    fn write(&mut self, bytes: Vec<u8>) -> Result<(), String> {
        self.0.write_all(&bytes).map_err(|e| e.to_string())
    }
}

/// The live output of `--csv`: one row per request of the run.
pub struct RequestRows {
    run_id: String,
    start: SystemTime,
    open_model: bool,
    batch: csv::Writer<Vec<u8>>,
    rows_in_batch: u64,
    writer: BatchWriter<Vec<u8>>,
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
        let writer = BatchWriter::spawn(
            format!("csv={}", path.display()),
            QUEUE,
            Box::new(CsvFile(file)),
        )
        .map_err(|e| fail(&e))?;
        Ok(RequestRows {
            run_id: run_id.to_string(),
            // The result states its start to the millisecond; the rows'
            // timestamps are that start plus `t_s`, as `report --csv` writes
            // them from the JSON.
            start: whole_millis(start),
            open_model,
            batch: batch_writer(),
            rows_in_batch: 0,
            writer,
        })
    }

    /// Give the rows gathered so far to the writer.
    fn hand_over(&mut self) {
        if self.rows_in_batch == 0 {
            return;
        }
        let full = std::mem::replace(&mut self.batch, batch_writer());
        let rows = std::mem::take(&mut self.rows_in_batch);
        self.writer
            .send(full.into_inner().unwrap_or_default(), rows);
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
        self.writer.finish()
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
