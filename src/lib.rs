//! periscope: a load generator and benchmark for OpenAI-compatible LLM APIs.
//!
//! # Layout
//!
//! Data flows one way, and every module imports only the modules below it
//! (`tests/it/structure.rs` fails on an import circle):
//!
//! ```text
//! cli::Args → plan::Plan → runner → executor (load shape × workload sessions × client)
//!   → record::RequestRecord → metrics::Collector (+ live outputs: sink, progress, slo)
//!   → report::result::RunResult → report's formats (Markdown, JSON, HTML, CSV)
//! ```
//!
//! From the top down:
//! - `cmd`: one module per command (run, mock, probe, report, compare,
//!   merge, scenarios); `sweep`: the sweep command, its model and statistics.
//! - `runner`: runs a plan: the in-process mock, the preflight (target check,
//!   tokenizer), the collector and its live outputs, the executor.
//! - `plan`: the validated run, built from parts (workload, target, request,
//!   load, segment, outputs, checks); `cli`: clap structs only.
//! - `report`: the result model, its formats, merge and compare.
//! - `scenario`: built-in scenarios and scenario files.
//! - `executor`: closed (VUs) and open (arrival schedule) models, segments,
//!   and scripted VUs (a thread each).
//! - `script`: k6-style JavaScript tests (an embedded engine, k6's modules
//!   and periscope's LLM calls); `workload`: what each request is (one
//!   module per [`workload::WorkloadKind`]).
//! - `sink`: the InfluxDB feed and the span exporter; `progress`: the live
//!   line; `slo`: thresholds, per-request objectives, abort-on-fail;
//!   `dashboard`: the live page a run serves (`--dashboard`).
//! - `mock`: the built-in OpenAI-compatible server.
//! - `metrics`: HDR histograms and per-second windows, owned by a collector
//!   task, and the [`metrics::Observer`] trait of live outputs.
//! - `client`: sends one request (hyper or reqwest), parses SSE, counts tokens.
//! - `server_metrics`: the server's Prometheus metrics scraped beside the
//!   load, and `--promql` range queries at its end.
//! - Leaves: `record` (the request record), `tokenizer`, `dataset` (labelled
//!   and prompt corpora), `otlp` (trace generation), `values` (flag value
//!   parsers), `fmt` (number and duration formatting), `stats` (t and
//!   proportion intervals), `endpoint` (base or whole endpoint URLs),
//!   `dotenv` (`.env` in the working directory), `spool` (long series
//!   kept on disk during a run), `replay` (timestamped
//!   request traces), `timer` (sub-ms sleeps),
//!   `worker` (the pool's thread marks), `error` (errors, exit codes),
//!   `alloc` (mimalloc, one shared heap for scripted VUs' threads).

pub mod alloc;
pub mod cli;
pub mod client;
pub mod cmd;
pub mod dashboard;
pub mod dataset;
pub mod dotenv;
pub mod endpoint;
pub mod error;
pub mod executor;
pub mod fmt;
pub mod metrics;
pub mod mock;
pub mod otlp;
pub mod plan;
pub mod progress;
pub mod record;
pub mod replay;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod script;
pub mod server_metrics;
pub mod sink;
pub mod slo;
pub mod spool;
pub mod stats;
pub mod sweep;
pub mod timer;
pub mod tokenizer;
pub mod values;
pub mod worker;
pub mod workload;

use std::io::Write as _;

use crate::cli::{Args, Command};
use crate::error::{exit, Error, Result};

pub use runner::{execute, Executed};

/// Run a command on a new tokio runtime and return the process exit code;
/// errors are printed as one line on stderr.
pub fn main_with(args: Args) -> i32 {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return exit::USAGE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(code) => code,
        Err(e) => {
            match &e {
                Error::Other(inner) => eprintln!("error: {inner:#}"),
                other => eprintln!("error: {other}"),
            }
            e.exit_code()
        }
    }
}

/// Run one command; returns the exit code.
pub async fn run(args: Args) -> Result<i32> {
    client::proxy::install(args.proxy.as_deref()).map_err(Error::Usage)?;
    match args.command {
        Command::Run(a) => cmd::run::main(*a).await,
        Command::Mock(a) => cmd::mock::main(*a).await,
        Command::Sweep(a) if a.mode == cli::Mode::Probe => {
            cmd::probe::main(cmd::probe::from_sweep(*a)?).await
        }
        Command::Sweep(a) => sweep::run(*a).await,
        Command::Probe(a) => cmd::probe::main(*a).await,
        Command::Report(a) => cmd::report::main(*a),
        Command::Compare(a) => cmd::compare::main(*a),
        Command::Merge(a) => cmd::merge::main(*a).await,
        Command::Scenarios => cmd::scenarios::main(),
        Command::Trace(a) => cmd::trace::main(a),
    }
}

/// Print to stdout; a closed pipe (`| head`) is not an error.
pub(crate) fn print_stdout(s: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(s.as_bytes());
    let _ = out.flush();
}

/// A fresh run id: 12 characters of [0-9a-z].
pub(crate) fn new_run_id() -> String {
    let mut rng = fastrand::Rng::new();
    (0..12)
        .map(|_| char::from_digit(rng.u32(0..36), 36).unwrap_or('0'))
        .collect()
}
