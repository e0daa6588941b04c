//! The live progress line: an indicatif bar on a terminal, plain lines when
//! stderr is not a terminal or with `--progress-every N` (every N seconds,
//! or every N completed requests). A live output of
//! the collector: it is handed every closed second and never measures
//! anything itself.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::metrics::{Aggregate, Observer, WindowSummary};
use crate::values::Every;

/// What the progress line shows.
#[derive(Debug, Clone, Default)]
struct Live {
    elapsed: Duration,
    ok: u64,
    errors: u64,
    active_vus: u64,
    in_flight: u64,
    /// Of the last closed window.
    rps: u64,
    tokens_per_s: u64,
    ttft_p50_ms: Option<f64>,
    /// OTLP exports of the last window: payload bytes and spans.
    payload_bytes: u64,
    spans: u64,
    e2e_p50_ms: Option<f64>,
}

/// The collector's side of the progress line.
struct Feed {
    tx: watch::Sender<Live>,
    origin: Instant,
}

impl Observer for Feed {
    fn window(&mut self, w: &WindowSummary, total: &Aggregate) {
        let _ = self.tx.send(Live {
            elapsed: self.origin.elapsed(),
            ok: total.ok,
            errors: total.errors,
            active_vus: w.active_vus,
            in_flight: w.in_flight,
            rps: w.requests,
            tokens_per_s: w.output_tokens,
            ttft_p50_ms: w.ttft_p50,
            payload_bytes: w.payload_bytes,
            spans: w.spans,
            e2e_p50_ms: w.e2e_p50,
        });
    }
}

/// How far a run has to go: the bar's end.
#[derive(Debug, Clone, Copy)]
pub enum Goal {
    /// It lasts this long.
    Time(Duration),
    /// It ends after this many requests (at most, for `probe`'s retries).
    Requests(u64),
}

impl Goal {
    fn end(self) -> u64 {
        match self {
            Goal::Time(d) => d.as_secs().max(1),
            Goal::Requests(n) => n.max(1),
        }
    }

    fn position(self, l: &Live) -> u64 {
        match self {
            Goal::Time(_) => l.elapsed.as_secs(),
            Goal::Requests(_) => l.ok + l.errors,
        }
        .min(self.end())
    }
}

/// The progress line of a run that started at `origin` and goes to `goal`:
/// the live output to give the collector, and the task that draws the line
/// until the collector has finished it.
pub fn start(
    origin: Instant,
    goal: Goal,
    every: Option<Every>,
) -> (Box<dyn Observer>, JoinHandle<()>) {
    let (tx, rx) = watch::channel(Live::default());
    (Box::new(Feed { tx, origin }), spawn(rx, goal, every))
}

/// Plain-line interval when stderr is not a terminal and none was asked for.
const DEFAULT_PLAIN_EVERY: u64 = 10;

fn line(l: &Live, goal: Goal) -> String {
    let ttft = l
        .ttft_p50_ms
        .map(|t| format!("{t:.1} ms"))
        .unwrap_or_else(|| "-".into());
    let at = match goal {
        Goal::Time(d) => format!("{:>4}s/{}s", l.elapsed.as_secs(), d.as_secs()),
        Goal::Requests(n) => format!(
            "{}/{n} requests in {}s",
            l.ok + l.errors,
            l.elapsed.as_secs()
        ),
    };
    // Trace exports: the data they carry, not tokens.
    let figures = if l.payload_bytes > 0 {
        let e2e = l
            .e2e_p50_ms
            .map(|t| format!("{t:.1} ms"))
            .unwrap_or_else(|| "-".into());
        format!(
            "{:.3} MB/s · {} spans/s · e2e p50 {e2e}",
            l.payload_bytes as f64 / 1e6,
            l.spans
        )
    } else {
        format!("ttft p50 {ttft} · {} tok/s", l.tokens_per_s)
    };
    format!(
        "{at} · vus {} · in flight {} · {} req/s · ok {} err {} · {figures}",
        l.active_vus, l.in_flight, l.rps, l.ok, l.errors
    )
}

/// Show progress until the collector drops its sender.
fn spawn(mut live: watch::Receiver<Live>, goal: Goal, every: Option<Every>) -> JoinHandle<()> {
    let terminal = std::io::stderr().is_terminal();
    tokio::spawn(async move {
        if terminal && every.is_none() {
            let bar = ProgressBar::new(goal.end());
            bar.set_style(
                ProgressStyle::with_template("{bar:24.cyan/blue} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            while live.changed().await.is_ok() {
                let l = live.borrow_and_update().clone();
                bar.set_position(goal.position(&l));
                bar.set_message(line(&l, goal));
            }
            bar.finish_and_clear();
        } else {
            let every = every.unwrap_or(Every::Seconds(DEFAULT_PLAIN_EVERY));
            let mut last_printed = 0u64;
            while live.changed().await.is_ok() {
                let l = live.borrow_and_update().clone();
                let (at, n) = match every {
                    Every::Seconds(n) => (l.elapsed.as_secs(), n.max(1)),
                    Every::Requests(n) => (l.ok + l.errors, n.max(1)),
                };
                if at >= last_printed + n {
                    last_printed = at - at % n;
                    eprintln!("{}", line(&l, goal));
                }
            }
        }
    })
}
