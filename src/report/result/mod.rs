//! The result model: `periscope.result/v1`.
//!
//! Built once at the end of a run from the plan, the collected aggregates and
//! the executor's report. Every output (the Markdown tables, the JSON file,
//! later HTML and comparisons) reads only this, never the live run.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::executor::adaptive::SearchReport;
use crate::executor::ExecReport;
use crate::metrics::counts::{encode_histograms, Counts};
use crate::metrics::{Aggregate, LatencyStats, Sample, WindowSummary};
use crate::record::Group;
use crate::report::view::PlanView;
use crate::slo::ThresholdResult;

use super::scenario::{analyze, Facts, ScenarioReport};

pub mod cost;
mod otlp;
mod server;
pub mod steady;
mod usage;

pub use usage::{generator_usage, GeneratorUsage};

pub use otlp::{MixRow, OtlpFigures, QueryRow};
pub use server::{ServerTimings, TokenizerInfo};

/// The schema name of the JSON result.
pub const SCHEMA: &str = "periscope.result/v1";

/// One run's result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    /// Always `periscope.result/v1`.
    pub schema: String,
    /// The periscope version that wrote it.
    pub periscope_version: String,
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
    /// Verdicts of the plan's thresholds (any failure: exit 99).
    pub thresholds: Vec<ThresholdResult>,
    /// `--abort-on-fail` stopped the load.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aborted: Option<Aborted>,
    /// Rows by turn, batch size or endpoint, when the workload has them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<GroupRow>,
    /// One row per stage of the load shape, when it has more than one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<StageRow>,
    /// The scenario's figure.
    pub scenario: ScenarioReport,
    /// One row per request, when the run kept them (`--csv`, `--keep-requests`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requests: Vec<Sample>,
    /// What each live output (`--out`) wrote and dropped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<crate::metrics::SinkReport>,
    /// The run ids this result was merged from (`periscope merge`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merged_from: Vec<String>,
    /// `--runs N`: every run's figures and their spread (the rest of this
    /// result is the last run's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runs: Option<crate::report::runs::Repeats>,
    /// find-and-hold: each step, the level found and held, and how.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<SearchReport>,
    /// The run at full load only (its plateau), or why it had none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steady_state: Option<steady::SteadyState>,
    /// otlp-traces: what the backend took in, and by scenario.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otlp: Option<OtlpFigures>,
    /// What counted the tokens the server's usage left out, and the tokens
    /// its chat template adds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokenizer: Option<TokenizerInfo>,
    /// What the server reported about its own handling of the requests
    /// (llama.cpp's `timings`, cached prompt tokens, TGI's timing headers);
    /// their latencies are `server_prefill`, `server_decode`,
    /// `server_queue` and `ttft_outside` in `latency`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_timings: Option<ServerTimings>,
    /// The server's own metrics over the run (`--server-metrics`,
    /// `--promql`): figures, per-scrape series and the raw samples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<crate::server_metrics::ServerMetrics>,
    /// The exact sums behind every figure, so that results merge exactly.
    pub raw: Raw,
}

/// What `merge` adds up and `compare` reads: the aggregates themselves.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Raw {
    /// The whole run (its histograms are the result's `histograms`).
    pub total: Counts,
    /// By turn, batch size or endpoint, as in `groups`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<RawGroup>,
    /// By stage of the load shape (index into the plan's stages).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub stages: BTreeMap<u16, Counts>,
    /// What the executor did.
    pub exec: ExecFacts,
}

/// A group's aggregate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RawGroup {
    pub kind: String,
    pub label: String,
    #[serde(flatten)]
    pub counts: Counts,
}

/// The executor's report, as the result keeps it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExecFacts {
    pub planned: u64,
    pub dispatched: u64,
    pub load_elapsed_s: f64,
    pub cancelled_in_flight: bool,
}

impl From<&ExecReport> for ExecFacts {
    fn from(e: &ExecReport) -> Self {
        ExecFacts {
            planned: e.planned,
            dispatched: e.dispatched,
            load_elapsed_s: e.load_elapsed.as_secs_f64(),
            cancelled_in_flight: e.cancelled_in_flight,
        }
    }
}

impl From<&ExecFacts> for ExecReport {
    fn from(e: &ExecFacts) -> Self {
        ExecReport {
            planned: e.planned,
            dispatched: e.dispatched,
            load_elapsed: std::time::Duration::try_from_secs_f64(e.load_elapsed_s)
                .unwrap_or_default(),
            cancelled_in_flight: e.cancelled_in_flight,
        }
    }
}

/// Where `--abort-on-fail` stopped the load.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Aborted {
    pub threshold: String,
    /// Seconds into the load.
    pub at_s: u64,
}

/// A slice of the run: a turn, a batch size, an endpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupRow {
    /// `turn`, `batch` or `endpoint`.
    pub kind: String,
    pub label: String,
    pub requests: u64,
    pub ok: u64,
    pub errors: u64,
    /// Mean input tokens of ok requests.
    pub input_tokens_mean: f64,
    pub ttft: LatencyStats,
    pub e2e: LatencyStats,
    /// Embeddings: inputs per request, mean e2e per input, inputs per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_text_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub texts_per_s: Option<f64>,
    /// Answers by HTTP status.
    pub statuses: BTreeMap<String, u64>,
    /// Output tokens of its ok requests.
    #[serde(default)]
    pub output_tokens: u64,
    /// Prompt tokens the server said it served from its cache, and their
    /// share of the prompt tokens of the requests that said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_hit_rate: Option<f64>,
}

/// One stage of the load shape.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageRow {
    /// Index into the plan's stages.
    pub stage: u16,
    /// The scenario's name for this part of the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// VUs (closed model) or req/s (open model) at the end of the stage.
    pub target: f64,
    /// Seconds from the start of the load.
    pub start_s: f64,
    pub duration_s: f64,
    pub requests: u64,
    pub ok: u64,
    pub errors: u64,
    pub error_rate: f64,
    pub ok_rps: f64,
    pub tokens_per_s: f64,
    pub ttft: LatencyStats,
    pub e2e: LatencyStats,
    /// Ok requests that met every SLO, per second.
    pub goodput: f64,
    /// Stress: whether this step met every threshold, and those it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pass: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<String>,
}

/// Totals and rates of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    /// What the tokens cost at the plan's prices (`--price-input`,
    /// `--price-output`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<cost::Cost>,
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
    /// Pictures the ok requests carried (`vision`), and their tokens: what
    /// the usage's prompt tokens hold beyond the text's.
    #[serde(default)]
    pub images: u64,
    #[serde(default)]
    pub image_tokens: u64,
    /// How many ok requests had their output tokens from each source.
    pub output_token_sources: BTreeMap<String, u64>,
    /// How many ok requests had their input tokens from each source.
    pub input_token_sources: BTreeMap<String, u64>,
    /// Requests whose usage was compared with a local count at the end of
    /// the run (a uniform sample of at most 256 of those that carried it).
    pub usage_checked: u64,
    /// Of those, requests whose usage and local count differ by more than 10%.
    pub usage_mismatch: u64,
    /// Requests that found their kept-alive connection closed by the server
    /// before any byte of an answer and went out again on a fresh one (not
    /// errors: a client does the same; each costs a new connection).
    #[serde(default)]
    pub reconnects: u64,
    /// Requests answered over HTTP/2 (the rest over HTTP/1.1, or not at all).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub http2: u64,
    /// Answer bodies: bytes decoded, bytes on the wire, and how many
    /// answers came compressed.
    #[serde(default, skip_serializing_if = "crate::record::Received::is_empty")]
    pub received: crate::record::Received,
    /// Ok requests that met every SLO, per second (only with SLOs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub goodput: Option<f64>,
    /// Share of ok requests that met every SLO.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub goodput_ratio: Option<f64>,
    /// Input tokens per second of ttft (prompt processing speed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefill_rate: Option<f64>,
    /// Output tokens per second of generation after the first token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decode_rate: Option<f64>,
    /// Embeddings: inputs embedded, per second, and the vector length.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub texts: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub texts_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedding_dims: Option<u32>,
}

/// A count of failed requests.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Serialize, Deserialize)]
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
    pub thresholds: &'a [crate::slo::Threshold],
    pub has_slos: bool,
    pub by_group: &'a BTreeMap<Group, Aggregate>,
    pub by_stage: &'a BTreeMap<u16, Aggregate>,
    pub stages: &'a crate::executor::Stages,
    pub aborted: Option<(String, u64)>,
    /// The generator's CPU and memory ([`generator_usage`] for a live run).
    pub generator: GeneratorUsage,
    /// Every request, when the run kept them.
    pub requests: Vec<Sample>,
    /// The run ids a merged result came from.
    pub merged_from: Vec<String>,
    /// What the live outputs wrote.
    pub outputs: Vec<crate::metrics::SinkReport>,
    /// The run's tokenizer.
    pub tokenizer: Option<TokenizerInfo>,
    /// The server's metrics, as scraped (figures are derived here).
    pub server: Option<crate::server_metrics::ServerMetrics>,
    /// The collector's plateau (a live run), or why it had none.
    pub steady: Option<Result<crate::metrics::plateau::Steady, crate::metrics::plateau::NoPlateau>>,
    /// find-and-hold: its steps, and the hold's requests and seconds at load.
    pub search: Option<(SearchReport, Option<(Aggregate, f64)>)>,
}

fn group_row(g: &Group, a: &Aggregate) -> GroupRow {
    let e2e = LatencyStats::of(&a.hist["e2e"]);
    let per_text = (a.texts > 0 && a.ok > 0).then(|| e2e.mean / (a.texts as f64 / a.ok as f64));
    let server = server::ServerTimings::of(&a.server);
    GroupRow {
        kind: g.kind().to_string(),
        label: g.label(),
        requests: a.requests,
        ok: a.ok,
        errors: a.errors,
        input_tokens_mean: if a.ok > 0 {
            a.input_tokens as f64 / a.ok as f64
        } else {
            0.0
        },
        ttft: LatencyStats::of(&a.hist["ttft"]),
        e2e,
        per_text_ms: per_text,
        texts_per_s: (a.texts > 0).then(|| a.texts as f64 / a.span_s().max(1e-9)),
        statuses: a
            .statuses
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect(),
        output_tokens: a.output_tokens,
        cached_tokens: server
            .as_ref()
            .and_then(|s| s.cache_hit_rate.map(|_| s.cached_tokens)),
        cache_hit_rate: server.and_then(|s| s.cache_hit_rate),
    }
}

fn stage_rows(
    by_stage: &BTreeMap<u16, Aggregate>,
    stages: &crate::executor::Stages,
    phases: &[Option<String>],
) -> Vec<StageRow> {
    if stages.stages.len() < 2 {
        return Vec::new();
    }
    let mut start = 0.0;
    let mut rows = Vec::new();
    for (i, st) in stages.stages.iter().enumerate() {
        let d = st.duration.as_secs_f64();
        let s0 = start;
        start += d;
        if d == 0.0 {
            continue; // a jump, not a stage
        }
        let empty = Aggregate::default();
        let a = by_stage.get(&(i as u16)).unwrap_or(&empty);
        rows.push(StageRow {
            stage: i as u16,
            phase: phases.get(i).cloned().flatten(),
            target: st.target,
            start_s: s0,
            duration_s: d,
            requests: a.requests,
            ok: a.ok,
            errors: a.errors,
            error_rate: a.error_rate(),
            ok_rps: a.ok as f64 / d,
            tokens_per_s: a.output_tokens as f64 / d,
            ttft: LatencyStats::of(&a.hist["ttft"]),
            e2e: LatencyStats::of(&a.hist["e2e"]),
            goodput: a.good as f64 / d,
            pass: None,
            failed: Vec::new(),
        });
    }
    rows
}

impl RunResult {
    pub fn build(mut i: Inputs<'_>) -> Self {
        let t = i.total;
        let dur = i.duration_s.max(1e-9);
        let latency = t
            .hist
            .iter()
            .filter(|(_, h)| !h.is_empty())
            .map(|(name, h)| (name.to_string(), LatencyStats::of(h)))
            .collect();
        let histograms = encode_histograms(t);
        let errors = error_rows(t);
        let mut warnings = Vec::new();
        let mut server = i.server.take();
        if let Some(s) = server.as_mut() {
            let origin = i
                .started_at
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            let ttft = t.stats("ttft");
            s.refresh(origin, (ttft.count > 0).then_some((ttft.p50, ttft.mean)));
            warnings.extend(s.warnings());
        }
        let schedule = schedule_check(&i, &mut warnings);
        warnings.extend(count_warnings(&i));
        let mut stages = stage_rows(i.by_stage, i.stages, &i.plan.phases);
        let (scenario, stage_verdicts) = analyze(Facts {
            name: &i.plan.scenario,
            kind: i.plan.kind,
            phases: &i.plan.phases,
            stages: i.stages,
            by_stage: i.by_stage,
            rows: &mut stages,
            windows: &i.windows,
            thresholds: i.thresholds,
            total: t,
            by_group: i.by_group,
            duration_s: dur,
            streaming: i.plan.stream,
            includes_mock: i.includes_mock,
            open: i.plan.load.is_open(),
            search: i
                .search
                .as_ref()
                .map(|(r, h)| (r, h.as_ref().map(|(a, d)| (a, *d)))),
        });
        let raw = raw_counts(&i);
        let mut requests = std::mem::take(&mut i.requests);
        requests.sort_by(|a, b| a.t_s.total_cmp(&b.t_s));
        let summary = summary(&i, dur);
        let thresholds = verdicts(&i, dur, stage_verdicts, server.as_ref());
        RunResult {
            schema: SCHEMA.to_string(),
            periscope_version: env!("CARGO_PKG_VERSION").to_string(),
            run_id: i.run_id,
            started_at: humantime::format_rfc3339_millis(i.started_at).to_string(),
            duration_s: (i.duration_s * 1000.0).round() / 1000.0,
            plan: i.plan,
            summary,
            latency,
            errors,
            schedule,
            series: i.windows,
            histograms,
            generator: i.generator,
            warnings,
            interrupted_by_user: i.interrupted_by_user,
            thresholds,
            aborted: i
                .aborted
                .map(|(threshold, at_s)| Aborted { threshold, at_s }),
            groups: i.by_group.iter().map(|(g, a)| group_row(g, a)).collect(),
            stages,
            scenario,
            requests,
            merged_from: i.merged_from,
            runs: None,
            steady_state: i.steady.map(|p| steady::SteadyState::of(p, i.has_slos)),
            search: i.search.map(|(r, _)| r),
            // An otlp-traces run's: exports carry payloads; a query-only
            // run's queries are its groups.
            otlp: (!t.payload.is_empty() || i.by_group.keys().any(|g| g.kind() == "query"))
                .then(|| OtlpFigures::of(t, i.by_group, dur)),
            tokenizer: i.tokenizer,
            server_timings: ServerTimings::of(&t.server),
            server,
            outputs: i.outputs,
            raw,
        }
    }
}

/// The errors by class and status, each with its first message.
fn error_rows(t: &Aggregate) -> Vec<ErrorRow> {
    t.errors_by
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
        .collect()
}

/// An open model's schedule, asked for and kept; what fell behind goes to
/// the warnings.
fn schedule_check(i: &Inputs<'_>, warnings: &mut Vec<String>) -> Option<ScheduleCheck> {
    let t = i.total;
    i.requested_rate.map(|requested| {
        let lag = t.stats("schedule_lag");
        let load_s = i.exec.load_elapsed.as_secs_f64().max(1e-9);
        let achieved = i.exec.dispatched as f64 / load_s;
        let lag_behind = lag.p99 > 10.0;
        // Paced by bytes, the trace count follows the mix's draws: the
        // byte rate is what was asked for.
        let paced_mb = i.plan.otlp.as_ref().and_then(|o| o.mb_per_s);
        let sent_mb = t.payload.sent_bytes as f64 / load_s / 1e6;
        let short = match paced_mb {
            Some(mb) => sent_mb < 0.95 * mb,
            None => achieved < 0.95 * requested,
        };
        let rate_behind = short && t.queued == 0 && !i.interrupted_by_user;
        let behind = lag_behind || rate_behind;
        if lag_behind {
            warnings.push(format!(
                "the generator fell behind its schedule: schedule_lag p99 {:.1} ms > 10 ms; latency figures are suspect",
                lag.p99
            ));
        }
        if rate_behind {
            warnings.push(match paced_mb {
                Some(mb) => format!(
                    "the generator fell behind its schedule: it sent {sent_mb:.3} MB/s of the {mb:.3} requested (< 95%); figures are suspect"
                ),
                None => format!(
                    "the generator fell behind its schedule: it sent {achieved:.1} req/s of the {requested:.1} requested (< 95%); figures are suspect"
                ),
            });
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
    })
}

/// What the counts say the user should know: tokens counted locally,
/// reconnects, usage that disagrees, requests cancelled, outputs that
/// dropped or failed.
fn count_warnings(i: &Inputs<'_>) -> Vec<String> {
    let t = i.total;
    let mut warnings = Vec::new();
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
        let by = i
            .tokenizer
            .as_ref()
            .map_or("cl100k_base".to_string(), |t| t.name.clone());
        let how = if by.starts_with("server") {
            format!("counted with the server's own tokenizer ({by})")
        } else {
            format!("estimated locally with the {by} tokenizer")
        };
        warnings.push(format!(
            "the server sent no usage for {tokenizer_count} of {} ok requests: their output tokens are {how}",
            t.ok
        ));
    }
    if t.reconnects > 0 {
        warnings.push(format!(
            "{} of {} requests found their kept-alive connection closed by the server and were sent again on a fresh one (reconnects, not errors): the server advertises keep-alive and then closes connections, after its answers or when idle (llama.cpp's server closes after every streamed answer); each costs the user a new connection",
            t.reconnects, t.requests
        ));
    }
    if let Some(n) = i.tokenizer.as_ref().and_then(|t| t.note.as_ref()) {
        warnings.push(n.clone());
    }
    if t.usage_mismatch > 0 {
        warnings.push(format!(
            "for {} of {} checked requests the server's usage and the local token count disagree by more than 10% and more than one token",
            t.usage_mismatch, t.usage_checked
        ));
    }
    if i.exec.cancelled_in_flight && t.interrupted > 0 {
        warnings.push(format!(
            "{} requests were still in flight at the end and were cancelled (interrupted, not errors)",
            t.interrupted
        ));
    }
    for o in &i.outputs {
        if o.dropped > 0 || o.error.is_some() {
            warnings.push(format!(
                "{}{}",
                o.summary(),
                o.error
                    .as_ref()
                    .map(|e| format!(" (first failure: {e})"))
                    .unwrap_or_default()
            ));
        }
    }
    warnings
}

/// The run's counts as `merge` reads them back.
fn raw_counts(i: &Inputs<'_>) -> Raw {
    Raw {
        total: i.total.to_counts(false),
        groups: i
            .by_group
            .iter()
            .map(|(g, a)| RawGroup {
                kind: g.kind().to_string(),
                label: g.label(),
                counts: a.to_counts(true),
            })
            .collect(),
        stages: i
            .by_stage
            .iter()
            .map(|(k, a)| (*k, a.to_counts(true)))
            .collect(),
        exec: ExecFacts::from(i.exec),
    }
}

/// The summary's figures over `dur` seconds.
fn summary(i: &Inputs<'_>, dur: f64) -> Summary {
    let t = i.total;
    let prices = i.plan.prices;
    let src = |m: &BTreeMap<crate::record::TokenSource, u64>| {
        m.iter()
            .map(|(k, v)| (k.as_str().to_string(), *v))
            .collect()
    };
    Summary {
        cost: prices.map(|p| cost::Cost::of(p, t.input_tokens, t.output_tokens, t.ok)),
        requests: t.requests,
        ok: t.ok,
        errors: t.errors,
        interrupted: t.interrupted,
        error_rate: t.error_rate(),
        ok_rps: t.ok as f64 / dur,
        tokens_per_s: t.output_tokens as f64 / dur,
        input_tokens: t.input_tokens,
        output_tokens: t.output_tokens,
        reasoning_tokens: t.reasoning_tokens,
        images: t.images,
        image_tokens: t.image_tokens,
        output_token_sources: src(&t.output_sources),
        input_token_sources: src(&t.input_sources),
        usage_checked: t.usage_checked,
        usage_mismatch: t.usage_mismatch,
        reconnects: t.reconnects,
        http2: t.http2,
        received: t.received,
        goodput: i.has_slos.then(|| t.good as f64 / dur),
        goodput_ratio: (i.has_slos && t.ok > 0).then(|| t.good as f64 / t.ok as f64),
        prefill_rate: t.prefill_rate(),
        decode_rate: t.decode_rate(),
        texts: (t.texts > 0).then_some(t.texts),
        texts_per_s: (t.texts > 0).then(|| t.texts as f64 / dur),
        embedding_dims: t.dims,
    }
}

/// Every threshold's verdict: a stress run's capacity step's (`stage`),
/// else the whole run's; the server's on its scraped figures.
fn verdicts(
    i: &Inputs<'_>,
    dur: f64,
    stage: Option<Vec<ThresholdResult>>,
    server: Option<&crate::server_metrics::ServerMetrics>,
) -> Vec<ThresholdResult> {
    let t = i.total;
    match stage {
        // Stress: the capacity step's verdicts, then the bounds on
        // a group (judged on the whole run).
        Some(v) => v
            .into_iter()
            .chain(
                i.thresholds
                    .iter()
                    .filter(|th| !th.is_server() && th.group().is_some())
                    .map(|th| th.check_in(t, i.by_group, dur)),
            )
            .collect::<Vec<_>>(),
        None => i
            .thresholds
            .iter()
            .filter(|th| !th.is_server())
            .map(|th| th.check_in(t, i.by_group, dur))
            .collect(),
    }
    .into_iter()
    .chain(
        i.thresholds
            .iter()
            .filter(|th| th.is_server())
            .map(|th| th.check_server(server)),
    )
    .collect()
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}
