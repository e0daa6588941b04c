//! Live outputs: what the collector feeds while the run goes on — every
//! request as it ends, every second as it closes, and the end of the run.
//! The InfluxDB writer, the span exporter, the progress line,
//! `--abort-on-fail` and the trace-query load's list of accepted traces are
//! each one [`Observer`]; the collector holds a list of them and knows
//! nothing else about any.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use super::{Aggregate, WindowSummary};
use crate::record::RequestRecord;

/// The end of an observer: what it wrote, once it has flushed.
pub type Finish = Pin<Box<dyn Future<Output = Vec<SinkReport>> + Send>>;

/// Something fed during the run.
pub trait Observer: Send {
    /// A request, as it ended; side-load requests (trace queries) too, which
    /// `Group::is_side` tells apart.
    fn record(&mut self, _r: &RequestRecord) {}
    /// The second `w` closed; `total` is the run so far.
    fn window(&mut self, _w: &WindowSummary, _total: &Aggregate) {}
    /// The run is over: flush, waiting up to `wait`, and say what was
    /// written and dropped (nothing for an output that writes nothing).
    fn finish(self: Box<Self>, _wait: Duration) -> Finish {
        Box::pin(async { Vec::new() })
    }
}

/// What the outputs did, for the end of the run.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SinkReport {
    pub label: String,
    pub written: u64,
    pub dropped: u64,
    /// The first failure, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl SinkReport {
    /// `LABEL: N points written, M dropped` (spans for `--trace-requests`,
    /// rows for `--csv`).
    pub fn summary(&self) -> String {
        let unit = if self.label.starts_with("trace-requests=") {
            "spans"
        } else if self.label.starts_with("csv=") || self.label.starts_with("requests-out=") {
            "rows"
        } else {
            "points"
        };
        format!(
            "{}: {} {unit} written, {} dropped",
            self.label, self.written, self.dropped
        )
    }
}
