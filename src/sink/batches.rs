//! A writer thread fed batches of rows through a small bounded channel,
//! shared by the per-request files (`--csv`, `--requests-out`).
//!
//! The collector hands a batch over (at a size, or each second); the thread
//! writes it with the sink it owns. A full channel (a disk slower than the
//! requests) holds the collector up rather than lose a row. The first
//! failure is printed once and every later row counted as lost; at the end
//! the sink is closed and the thread joined, and what was written is told.

use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex};

use crate::metrics::live::Finish;
use crate::metrics::SinkReport;

/// What a batch writer writes into.
pub trait BatchSink<B>: Send {
    fn write(&mut self, batch: B) -> Result<(), String>;
    /// The end of the run: flush, write a footer.
    fn close(self: Box<Self>) -> Result<(), String> {
        Ok(())
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

/// The collector's end of a writer thread.
pub struct BatchWriter<B: Send + 'static> {
    label: String,
    tx: Option<SyncSender<(B, u64)>>,
    thread: Option<std::thread::JoinHandle<()>>,
    written: Arc<Mutex<Written>>,
}

impl<B: Send + 'static> BatchWriter<B> {
    /// Start the thread; `label` names the output (`csv=PATH`) in the report
    /// and in the warning of a failure.
    pub fn spawn(
        label: String,
        queue: usize,
        mut sink: Box<dyn BatchSink<B>>,
    ) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel::<(B, u64)>(queue);
        let written = Arc::new(Mutex::new(Written::default()));
        let w = written.clone();
        let name = label.clone();
        let thread = std::thread::Builder::new()
            .name("periscope-rows".into())
            .spawn(move || {
                let fail = |w: &mut Written, e: String| {
                    if w.error.is_none() {
                        eprintln!("warning: {name}: {e}; later rows are lost");
                        w.error = Some(e);
                    }
                };
                for (batch, rows) in rx {
                    let failed = w.lock().is_ok_and(|w| w.error.is_some());
                    let result = if failed { Ok(()) } else { sink.write(batch) };
                    let mut w = w.lock().unwrap_or_else(|p| p.into_inner());
                    match result {
                        Ok(()) if !failed => w.rows += rows,
                        Ok(()) => w.lost += rows,
                        Err(e) => {
                            fail(&mut w, e);
                            w.lost += rows;
                        }
                    }
                }
                if let Err(e) = sink.close() {
                    fail(&mut w.lock().unwrap_or_else(|p| p.into_inner()), e);
                }
            })?;
        Ok(BatchWriter {
            label,
            tx: Some(tx),
            thread: Some(thread),
            written,
        })
    }

    /// Hand over a batch of `rows` rows.
    pub fn send(&self, batch: B, rows: u64) {
        if let Some(tx) = &self.tx {
            if tx.send((batch, rows)).is_err() {
                self.written.lock().unwrap_or_else(|p| p.into_inner()).lost += rows;
            }
        }
    }

    /// No more batches: wait for the thread and tell what it wrote.
    pub fn finish(mut self) -> Finish {
        drop(self.tx.take());
        let thread = self.thread.take();
        let written = self.written.clone();
        let label = std::mem::take(&mut self.label);
        Box::pin(async move {
            if let Some(t) = thread {
                let _ = tokio::task::spawn_blocking(move || t.join()).await;
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
