//! The result model: `periscope.result/v1`.
//!
//! Built once at the end of a run from the plan, the collected aggregates and
//! the executor's report. Every output (the Markdown tables, the JSON file,
//! later HTML and comparisons) reads only this, never the live run.

use std::collections::BTreeMap;

use base64::Engine as _;
use hdrhistogram::serialization::{Serializer as _, V2DeflateSerializer};
use serde::Serialize;

use crate::executor::ExecReport;
use crate::metrics::{Aggregate, LatencyStats, WindowSummary};
use crate::plan::PlanView;

/// The schema name of the JSON result.
pub const SCHEMA: &str = "periscope.result/v1";

/// One run's result.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    /// Always `periscope.result/v1`.
    pub schema: &'static str,
    /// The periscope version that wrote it.
    pub periscope_version: &'static str,
    /// A random id shared by every output of this run.
    pub run_id: String,
    /// When the load started (RFC 3339, UTC).
    pub started_at: String,
    /// Seconds from the start of the load to the last response.
    pub duration_s: f64,
    /// The resolved plan, secrets redacted.
    pub plan: PlanView,
    /// Totals and rates.
    pub summary: Summary,
    /// Latency metrics in ms (`ttft`, `ttfo`, `itl`, `tpot`, `e2e`; open model:
    /// `latency` from the scheduled send, `schedule_lag`, `queue_wait`).
    pub latency: BTreeMap<String, LatencyStats>,
    /// Failed requests by class and HTTP status.
    pub errors: Vec<ErrorRow>,
    /// The open model's self-check; absent in the closed model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleCheck>,
    /// Per-second windows.
    pub series: Vec<WindowSummary>,
    /// HDR histograms (µs), V2 deflate-compressed, base64: these merge exactly.
    pub histograms: BTreeMap<String, String>,
    /// What the load generator itself used.
    pub generator: GeneratorUsage,
    /// Things the reader must know before trusting the figures.
    pub warnings: Vec<String>,
    /// The run was stopped early by Ctrl-C.
    pub interrupted_by_user: bool,
}

/// Totals and rates of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Requests finished (ok + errors + interrupted).
    pub requests: u64,
    /// 2xx answers with a well-formed body.
    pub ok: u64,
    /// Failed requests (see `errors`).
    pub errors: u64,
    /// Cancelled at the end of the grace period or by Ctrl-C.
    pub interrupted: u64,
    /// errors / (ok + errors).
    pub error_rate: f64,
    /// ok requests per second of the run.
    pub ok_rps: f64,
    /// Output tokens of ok requests per second of the run.
    pub tokens_per_s: f64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Reasoning tokens, when the server's usage reports them.
    pub reasoning_tokens: u64,
    /// How many ok requests had their output tokens from each source.
    pub output_token_sources: BTreeMap<String, u64>,
    /// How many ok requests had their input tokens from each source.
    pub input_token_sources: BTreeMap<String, u64>,
    /// Requests whose usage was compared with a local count (all of the first
    /// 64, then one in 16).
    pub usage_checked: u64,
    /// Of those, requests whose usage and local count differ by more than 10%.
    pub usage_mismatch: u64,
}

/// A count of failed requests.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorRow {
    /// `http_4xx`, `http_429`, `http_5xx`, `timeout`, `connect`, `stream_cut`, `bad_body`, `stream_error`.
    pub class: String,
    /// The HTTP status, when there was one.
    pub status: Option<u16>,
    pub count: u64,
    /// The first message seen (the server's `error.message`, or the transport error).
    pub message: String,
}

/// Whether the generator kept the open model's schedule.
#[derive(Debug, Clone, Serialize)]
pub struct ScheduleCheck {
    /// Arrivals per second the plan asked for, on average.
    pub requested_rate: f64,
    /// Requests started per second of the load.
    pub achieved_rate: f64,
    /// p99 of actual send − scheduled send (less any wait for an in-flight slot), ms.
    pub lag_p99_ms: f64,
    /// Arrivals that waited for a `--max-in-flight` slot.
    pub queued: u64,
    /// The generator fell behind: its numbers are suspect.
    pub behind: bool,
}

/// CPU and memory of the periscope process.
#[derive(Debug, Clone, Serialize)]
pub struct GeneratorUsage {
    /// User + system CPU seconds of the process.
    pub cpu_seconds: f64,
    /// Peak resident memory, MiB.
    pub peak_rss_mib: f64,
    /// The built-in mock ran in the same process, so these include it.
    pub includes_mock: bool,
}

/// Read the process's CPU time and peak RSS.
pub fn generator_usage(includes_mock: bool) -> GeneratorUsage {
    // SAFETY: getrusage writes into the zeroed struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } == 0;
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    GeneratorUsage {
        cpu_seconds: if ok {
            secs(ru.ru_utime) + secs(ru.ru_stime)
        } else {
            0.0
        },
        // ru_maxrss is in KiB on Linux.
        peak_rss_mib: if ok {
            ru.ru_maxrss as f64 / 1024.0
        } else {
            0.0
        },
        includes_mock,
    }
}

/// Serialize a histogram in HdrHistogram's standard V2 deflate form, base64.
pub fn encode_histogram(h: &hdrhistogram::Histogram<u64>) -> String {
    let mut buf = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut buf)
        .expect("serializing to memory cannot fail");
    base64::engine::general_purpose::STANDARD.encode(buf)
}

/// Everything `RunResult::build` needs.
pub struct Inputs<'a> {
    pub plan: PlanView,
    pub total: &'a Aggregate,
    pub windows: Vec<WindowSummary>,
    pub exec: &'a ExecReport,
    pub run_id: String,
    pub started_at: std::time::SystemTime,
    pub duration_s: f64,
    pub requested_rate: Option<f64>,
    pub includes_mock: bool,
    pub interrupted_by_user: bool,
}

impl RunResult {
    pub fn build(i: Inputs<'_>) -> Self {
        let t = i.total;
        let dur = i.duration_s.max(1e-9);
        let mut latency = BTreeMap::new();
        let mut histograms = BTreeMap::new();
        for (name, h) in &t.hist {
            if h.is_empty() {
                continue;
            }
            latency.insert(name.to_string(), LatencyStats::of(h));
            histograms.insert(name.to_string(), encode_histogram(h));
        }
        let errors = t
            .errors_by
            .iter()
            .map(|((class, status), n)| ErrorRow {
                class: class.as_str().to_string(),
                status: *status,
                count: *n,
                message: t
                    .error_messages
                    .get(&(*class, *status))
                    .cloned()
                    .unwrap_or_default(),
            })
            .collect();
        let mut warnings = Vec::new();
        let schedule = i.requested_rate.map(|requested| {
            let lag = t.stats("schedule_lag");
            let load_s = i.exec.load_elapsed.as_secs_f64().max(1e-9);
            let achieved = i.exec.dispatched as f64 / load_s;
            let lag_behind = lag.p99 > 10.0;
            let rate_behind = achieved < 0.95 * requested && t.queued == 0 && !i.interrupted_by_user;
            let behind = lag_behind || rate_behind;
            if lag_behind {
                warnings.push(format!(
                    "the generator fell behind its schedule: schedule_lag p99 {:.1} ms > 10 ms; latency figures are suspect",
                    lag.p99
                ));
            }
            if rate_behind {
                warnings.push(format!(
                    "the generator fell behind its schedule: it sent {achieved:.1} req/s of the {requested:.1} requested (< 95%); figures are suspect"
                ));
            }
            if t.queued > 0 {
                warnings.push(format!(
                    "{} arrivals waited for a --max-in-flight slot (the target's backlog): see queue_wait; latency counts from the scheduled time",
                    t.queued
                ));
            }
            ScheduleCheck {
                requested_rate: requested,
                achieved_rate: achieved,
                lag_p99_ms: lag.p99,
                queued: t.queued,
                behind,
            }
        });
        let tokenizer_count = t
            .output_sources
            .get(&crate::record::TokenSource::Tokenizer)
            .copied()
            .unwrap_or(0)
            + t.output_sources
                .get(&crate::record::TokenSource::Chunks)
                .copied()
                .unwrap_or(0);
        if tokenizer_count > 0 {
            warnings.push(format!(
                "the server sent no usage for {tokenizer_count} of {} ok requests: their output tokens are estimated locally (cl100k_base tokenizer)",
                t.ok
            ));
        }
        if t.usage_mismatch > 0 {
            warnings.push(format!(
                "for {} of {} checked requests the server's usage and the local token count disagree by more than 10%",
                t.usage_mismatch, t.usage_checked
            ));
        }
        if i.exec.cancelled_in_flight && t.interrupted > 0 {
            warnings.push(format!(
                "{} requests were still in flight at the end and were cancelled (interrupted, not errors)",
                t.interrupted
            ));
        }
        let src = |m: &BTreeMap<crate::record::TokenSource, u64>| {
            m.iter()
                .map(|(k, v)| (k.as_str().to_string(), *v))
                .collect()
        };
        let answered = (t.ok + t.errors).max(1) as f64;
        RunResult {
            schema: SCHEMA,
            periscope_version: env!("CARGO_PKG_VERSION"),
            run_id: i.run_id,
            started_at: humantime::format_rfc3339_millis(i.started_at).to_string(),
            duration_s: (i.duration_s * 1000.0).round() / 1000.0,
            plan: i.plan,
            summary: Summary {
                requests: t.requests,
                ok: t.ok,
                errors: t.errors,
                interrupted: t.interrupted,
                error_rate: t.errors as f64 / answered,
                ok_rps: t.ok as f64 / dur,
                tokens_per_s: t.output_tokens as f64 / dur,
                input_tokens: t.input_tokens,
                output_tokens: t.output_tokens,
                reasoning_tokens: t.reasoning_tokens,
                output_token_sources: src(&t.output_sources),
                input_token_sources: src(&t.input_sources),
                usage_checked: t.usage_checked,
                usage_mismatch: t.usage_mismatch,
            },
            latency,
            errors,
            schedule,
            series: i.windows,
            histograms,
            generator: generator_usage(i.includes_mock),
            warnings,
            interrupted_by_user: i.interrupted_by_user,
        }
    }
}
