//! The command line: clap derive structs, nothing else.
//!
//! These are raw arguments; `plan` validates them and resolves defaults and
//! environment into a `Plan`. The value parsers they use belong to the
//! modules that own the values (`values`, `executor::shape`, `mock`), whose
//! errors show the expected syntax. This module imports downward only.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args as ClapArgs, Parser, Subcommand, ValueEnum};

mod groups;

use crate::executor::shape::{parse_stages, StageList};
use crate::executor::Arrival;
use crate::mock::MockArgs;
use crate::values::{
    count, parse_duration, parse_every_requests, parse_every_seconds, parse_header, parse_percent,
    parse_rfc3339, parse_tag, Every,
};

/// periscope — load generator and benchmark for OpenAI-compatible LLM APIs.
#[derive(Debug, Parser)]
#[command(name = "periscope", version, about, propagate_version = true)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
    /// Send every request through this proxy (http://[user:pass@]host:port;
    /// CONNECT for https:// targets), whatever HTTPS_PROXY, HTTP_PROXY and
    /// ALL_PROXY say; NO_PROXY still applies. Credentials are never printed.
    #[arg(long, global = true, value_name = "URL")]
    pub proxy: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a load test of a workload against a target (or the built-in mock).
    Run(Box<RunArgs>),
    /// Serve the built-in OpenAI-compatible mock (or a delaying proxy).
    Mock(Box<MockArgs>),
    /// List the built-in workloads and scenarios.
    Scenarios,
    /// Sweep concurrency (or rate) levels: direct vs proxy overhead with
    /// confidence intervals, or one endpoint's saturation point.
    Sweep(Box<SweepArgs>),
    /// Send each case of a labelled prompt corpus once and show, case by
    /// case, whether the service blocked it.
    Probe(Box<ProbeArgs>),
    /// Read a JSON result (run or sweep): print its tables, or write an HTML
    /// report or CSV files.
    Report(Box<ReportArgs>),
    /// Compare a result with a baseline: each metric's change, whether it is
    /// beyond run-to-run noise, and exit 99 on a regression beyond the bound.
    Compare(Box<CompareArgs>),
    /// Merge the results of one plan run as several processes: histograms
    /// added exactly, series summed per second, thresholds judged on the whole.
    Merge(Box<MergeArgs>),
    /// Timestamped request traces (`run --replay FILE`): `periscope trace
    /// summarize FILE` shows a trace's rate over time, lengths and prefix reuse.
    Trace(TraceArgs),
}

#[derive(Debug, Clone, ClapArgs)]
pub struct TraceArgs {
    #[command(subcommand)]
    pub command: TraceCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum TraceCommand {
    /// A trace's rate over time, its prompt and output lengths, and how much
    /// of its prompts a prefix cache could serve.
    Summarize {
        /// A JSONL trace (Mooncake's fields).
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Write the summary as JSON to this path too.
        #[arg(long, value_name = "PATH")]
        json: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, ClapArgs)]
pub struct ReportArgs {
    /// A JSON result written by `run --json` or `sweep --json`.
    #[arg(value_name = "RESULT.json", required_unless_present = "from_vllm")]
    pub result: Option<PathBuf>,
    /// A vLLM benchmark result (`vllm bench serve --save-result`): its
    /// figures as tables.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["result", "html", "csv"])]
    pub from_vllm: Option<PathBuf>,
    /// More run results: all of them printed side by side (workload,
    /// model, throughput, latency; stage by stage when their stages match).
    #[arg(value_name = "MORE.json")]
    pub more: Vec<PathBuf>,
    /// Write a self-contained HTML report to this path.
    #[arg(long, value_name = "PATH")]
    pub html: Option<PathBuf>,
    /// Write one CSV row per request to PATH (the run must have kept them:
    /// `run --keep-requests`), the summary to PATH-summary.csv and the
    /// per-second series to PATH-series.csv.
    #[arg(long, value_name = "PATH")]
    pub csv: Option<PathBuf>,
}

#[derive(Debug, Clone, ClapArgs)]
pub struct CompareArgs {
    /// The reference result.
    #[arg(value_name = "BASELINE.json")]
    pub baseline: PathBuf,
    /// The result to judge.
    #[arg(value_name = "CURRENT.json")]
    pub current: PathBuf,
    /// A change for the worse beyond this is a regression (exit 99).
    #[arg(long, allow_negative_numbers = true, value_name = "PCT", default_value = "10%", value_parser = parse_percent)]
    pub max_regression: f64,
    /// Metrics to compare, repeatable (as in thresholds: ttft.p95, e2e.p99,
    /// ok_rps, tokens_per_s, error_rate). Default: the usual latency
    /// percentiles, throughput and error rate.
    #[arg(long = "metric", value_name = "METRIC")]
    pub metrics: Vec<String>,
    /// Changes smaller than this are never called significant.
    #[arg(long, allow_negative_numbers = true, value_name = "PCT", default_value = "2%", value_parser = parse_percent)]
    pub noise: f64,
    /// Compare even when the workload or the target differ.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Clone, ClapArgs)]
pub struct MergeArgs {
    /// Results of the same plan, one per process.
    #[arg(value_name = "RESULT.json", required = true)]
    pub inputs: Vec<PathBuf>,
    /// Where to write the merged result.
    #[arg(short, long, visible_alias = "json", value_name = "PATH")]
    pub output: PathBuf,
    /// Merge even when the plans differ.
    #[arg(long)]
    pub force: bool,
    /// Also write the merged HTML report.
    #[arg(long, value_name = "PATH")]
    pub html: Option<PathBuf>,
    /// Wait up to this long for every input to be a whole result (segments
    /// still running elsewhere, e.g. a Kubernetes merge Job), checking every 2s.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub wait: Option<Duration>,
}

/// The request flags `sweep` and `probe` share with `run`.
#[derive(Debug, Clone, Default, ClapArgs)]
pub struct RequestArgs {
    /// Model name sent in each request [env: OPENAI_COMPLETION_MODEL; for run also
    /// OPENAI_EMBEDDING_MODEL for embeddings, OPENAI_CODING_MODEL for prefix-caching].
    #[arg(long)]
    pub model: Option<String>,
    /// API key, sent as `Authorization: Bearer …` (never printed or stored).
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true)]
    pub token: Option<String>,
    /// Extra request header, repeatable: --header 'X-LLMTrace-Agent-ID: bench'.
    #[arg(long = "header", value_name = "'K: V'", value_parser = parse_header)]
    pub headers: Vec<(String, String)>,
    /// Per-request timeout (default 60s; a bare number is seconds).
    #[arg(long, alias = "timeout-seconds", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Send `X-LLMTrace-Agent-ID: ID` with every request (the LLMTrace
    /// bench's flag; any header goes with --header).
    #[arg(long, value_name = "ID")]
    pub agent_id: Option<String>,
    /// Request defaults of the tool a comparison is made with: `llmtrace`
    /// (its overhead bench's: max_tokens 16, temperature 0.0, system "You
    /// are a helpful assistant.", prompt "Return a one-word response: OK.",
    /// no streaming). Flags still win.
    #[arg(long, value_enum, value_name = "TOOL")]
    pub seed_defaults: Option<SeedDefaults>,
    /// Maximum output tokens per request (default 64; run: prefill-heavy 16,
    /// decode-heavy 1024 or MAX_OUTPUT_TOKENS) [env: MAX_TOKENS].
    #[arg(long, allow_negative_numbers = true, value_parser = count::<u32>)]
    pub max_tokens: Option<u32>,
    /// The user prompt when no dataset is given.
    #[arg(long)]
    pub prompt: Option<String>,
    /// System message prepended to each request.
    #[arg(long)]
    pub system: Option<String>,
    /// Sampling temperature (omitted from requests when not set).
    #[arg(long, allow_negative_numbers = true)]
    pub temperature: Option<f32>,
    /// What counts tokens the server's usage leaves out, and makes
    /// synthetic prompts of exactly --input-tokens: `server` (the target's
    /// /tokenize: llama.cpp, vLLM, SGLang), the URL of the server behind a
    /// gateway, a Hugging Face tokenizer.json, or cl100k_base / o200k_base.
    /// Default: the server's when its usage disagrees with cl100k at the
    /// preflight and it answers /tokenize.
    #[arg(long, value_name = "server|URL|PATH|ENCODING")]
    pub tokenizer: Option<crate::tokenizer::Choice>,
    /// Do not ask chat streams for usage (`stream_options.include_usage`),
    /// as some gateways strip it: output tokens are then counted by the
    /// tokenizer.
    #[arg(long)]
    pub no_stream_usage: bool,
}

/// `--format` of `--json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum JsonFormat {
    /// periscope.result/v1: every figure, mergeable and comparable.
    #[default]
    Periscope,
    /// vLLM's benchmark result JSON.
    Vllm,
}

/// `--seed-defaults`: another tool's request defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SeedDefaults {
    /// LLMTrace's direct-vs-proxy overhead bench.
    Llmtrace,
}

impl SeedDefaults {
    /// Fill what the flags left unset with the tool's defaults; whether
    /// it asks for whole (non-streamed) answers.
    pub fn apply(self, r: &mut RequestArgs) -> bool {
        match self {
            SeedDefaults::Llmtrace => {
                r.max_tokens.get_or_insert(16);
                r.temperature.get_or_insert(0.0);
                r.system
                    .get_or_insert_with(|| "You are a helpful assistant.".into());
                r.prompt
                    .get_or_insert_with(|| "Return a one-word response: OK.".into());
                true
            }
        }
    }
}

#[derive(Debug, Clone, Default, ClapArgs)]
pub struct RunArgs {
    /// The workload (see `periscope scenarios`): completions (chat, the default),
    /// responses, messages, tool-calls, vision, text-completions, embeddings, batch-embeddings, prefix-caching,
    /// conversation, prefill-heavy, decode-heavy, http; or a scenario file (my.yaml).
    #[arg(value_name = "WORKLOAD|FILE")]
    pub workload: Option<String>,
    /// A built-in scenario (smoke, load, stress, spike, soak, recovery,
    /// benchmark; see `periscope scenarios`) or a scenario file.
    #[arg(long, value_name = "NAME|FILE")]
    pub scenario: Option<String>,

    /// Base URL of the target, e.g. http://localhost:8000 or
    /// http://localhost:8000/v1, or its whole endpoint
    /// (http://localhost:8000/v1/chat/completions).
    #[arg(long, visible_alias = "url", env = "OPENAI_BASE_URL")]
    pub target: Option<String>,
    /// The flag the target came from, for messages (`--url` of sweep and
    /// probe); not a flag.
    #[arg(skip)]
    pub target_flag: Option<&'static str>,
    /// Start the built-in mock in-process on a free loopback port and target
    /// it (over an OPENAI_BASE_URL in the environment).
    #[arg(long)]
    pub mock: bool,
    /// Settings of the in-process mock, as `periscope mock` flags, e.g. "--ttft 100ms --itl 20ms".
    #[arg(
        long,
        value_name = "FLAGS",
        allow_hyphen_values = true,
        requires = "mock"
    )]
    pub mock_args: Option<String>,

    /// Synthetic prompts of this many tokens, different on every request.
    #[arg(long, allow_negative_numbers = true, value_parser = count::<u32>, value_name = "N")]
    pub input_tokens: Option<u32>,
    /// Standard deviation of the synthetic prompt length, in tokens (default 0).
    #[arg(long, allow_negative_numbers = true, value_name = "N")]
    pub input_tokens_stddev: Option<f64>,
    /// Tokens every synthetic prompt shares at its start (default 0: none).
    #[arg(long, allow_negative_numbers = true, value_parser = count::<u32>, value_name = "N")]
    pub shared_prefix: Option<u32>,
    /// Turns of a conversation / prefix-caching session before it starts over.
    #[arg(long, allow_negative_numbers = true, value_parser = count::<u32>, value_name = "N")]
    pub turns: Option<u32>,
    /// tool-calls: turns of an agent's loop; each answers the last one's
    /// calls with a synthetic result (default 1).
    #[arg(long, allow_negative_numbers = true, value_parser = count::<u32>, value_name = "N")]
    pub tool_turns: Option<u32>,
    /// rerank: documents in every request (default 10).
    #[arg(long, allow_negative_numbers = true, value_parser = count::<u32>, value_name = "N")]
    pub documents: Option<u32>,
    /// vision: pictures in every request (default 1), new each time.
    #[arg(long, allow_negative_numbers = true, value_parser = count::<u32>, value_name = "N")]
    pub images: Option<u32>,
    /// vision: the pictures' size, WIDTHxHEIGHT (default 512x512).
    #[arg(long, value_parser = crate::workload::parse_size, value_name = "WxH")]
    pub image_size: Option<(u32, u32)>,
    /// vision: png (stored, its size exact: the default) or jpeg.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub image_format: Option<crate::workload::ImageFormat>,
    /// tool-calls and vision: the API, chat completions (the default) or OpenAI's Responses API.
    #[arg(long, value_enum, value_name = "API")]
    pub api: Option<crate::workload::LlmApi>,
    /// Inputs per request of batch-embeddings, one stage per size.
    #[arg(long, allow_negative_numbers = true, value_parser = count::<u32>, value_delimiter = ',', value_name = "N,N,…")]
    pub batch_sizes: Vec<u32>,
    /// Endpoint of the http workload, repeatable: METHOD:PATH[:WEIGHT], e.g.
    /// GET:/health:3; of otlp-traces, the OTLP/HTTP traces URL
    /// (http://host:4318/v1/traces).
    #[arg(long = "endpoint", value_name = "METHOD:PATH[:WEIGHT]|URL")]
    pub endpoints: Vec<String>,
    #[command(flatten)]
    pub otlp: OtlpArgs,
    #[command(flatten)]
    pub request: RequestArgs,
    #[command(flatten)]
    pub dataset: DatasetArgs,
    /// Stream responses (the default).
    #[arg(long, overrides_with = "no_stream")]
    pub stream: bool,
    /// Ask for whole (non-streamed) responses.
    #[arg(long = "no-stream", overrides_with = "stream")]
    pub no_stream: bool,
    /// HTTP stack: auto (hyper HTTP/1.1 for http://, reqwest for https://; the default), hyper or reqwest.
    #[arg(long, value_enum)]
    pub http_engine: Option<crate::client::Engine>,
    /// Speak HTTP/2 to the target: prior knowledge on http:// (h2c), ALPN
    /// h2 on https://; the streams share --connections connections.
    #[arg(long)]
    pub http2: bool,
    /// With --http2: how many connections the streams are spread over
    /// (default 1).
    #[arg(long, value_parser = count::<usize>, value_name = "N")]
    pub connections: Option<usize>,
    /// Trust the certificate(s) in this PEM file besides the system's (a
    /// server with a self-signed certificate).
    #[arg(long, value_name = "PEM")]
    pub cacert: Option<std::path::PathBuf>,
    /// Ask for compressed answers (Accept-Encoding: gzip, br, zstd,
    /// deflate). Off by default: servers send SSE plain. A compressed
    /// answer is decoded as it arrives either way.
    #[arg(long)]
    pub compression: bool,

    /// Virtual users (closed model), constant for --duration; with a staged
    /// scenario, its peak [env: VUS].
    #[arg(long, allow_negative_numbers = true, value_parser = count::<u64>)]
    pub vus: Option<u64>,
    /// The peak of a staged scenario (stress, spike, recovery, benchmark): its
    /// stages in % are shares of it.
    #[arg(long, allow_negative_numbers = true, value_parser = count::<u64>, value_name = "N")]
    pub max_vus: Option<u64>,
    /// How long to run, e.g. 30s, 5m, 1h30m (default 30s); a scenario's stages
    /// are scaled to fit it [env: DURATION].
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Stop after this many requests in total (shared by all VUs).
    #[arg(long, allow_negative_numbers = true, value_parser = count::<u64>)]
    pub iterations: Option<u64>,
    /// Load stages DURATION:TARGET[:PHASE],…, ramping linearly, e.g. 30s:10,1m:10,10s:0
    /// (VUs, or req/s with --rate; TARGET may be a share of the peak, e.g. 50%).
    #[arg(long, value_parser = parse_stages)]
    pub stages: Option<StageList>,
    /// Requests per second (open model: latency is measured from the scheduled send time).
    #[arg(long, visible_alias = "rps", allow_negative_numbers = true)]
    pub rate: Option<f64>,
    /// Replay a timestamped trace (JSONL: `timestamp` ms, `input_length`,
    /// `output_length`, `hash_ids`, `session_id`; Mooncake's format): each
    /// record sent at its time, as an open model.
    #[arg(long, value_name = "FILE")]
    pub replay: Option<PathBuf>,
    /// With --replay: play the trace this many times faster (0.5: slower).
    #[arg(long, value_name = "X", requires = "replay")]
    pub replay_speed: Option<f64>,
    /// With --replay: tokens of each `hash_ids` block of a prompt (default 512).
    #[arg(long, value_parser = count::<u32>, value_name = "N", requires = "replay")]
    pub block_tokens: Option<u32>,
    /// Ask the server to generate every requested token (`ignore_eos`, as
    /// vLLM, SGLang and llama.cpp take it): output lengths as asked.
    #[arg(long)]
    pub ignore_eos: bool,
    /// Mean wait between a session's turns (exponential), e.g. 2s: a
    /// replayed trace's sessions, conversation, prefix-caching, tool-calls.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub think_time: Option<Duration>,
    /// The header that names a multi-turn session on each of its turns,
    /// for a router's affinity (a replayed trace's sessions carry their own
    /// ids): X-Session-ID unless given; `none` sends none.
    #[arg(long, value_name = "NAME")]
    pub session_header: Option<String>,
    /// LoRA adapters to spread the requests over, by name in the body's
    /// `model`: sql-lora,chat-lora. Every turn of a session asks the same one.
    #[arg(long, value_name = "A,B,…")]
    pub lora: Option<String>,
    /// How sessions are spread over --lora: random (the default),
    /// round-robin, or weights=3,1,1 (one per adapter).
    #[arg(long, value_name = "HOW")]
    pub lora_assignment: Option<String>,
    /// Find the boundary and hold it (as --scenario find-and-hold): raise
    /// the VUs in steps until a --threshold (or 90% --slo attainment)
    /// breaks, then hold the last level that passed.
    #[arg(long)]
    pub adaptive: bool,
    /// find-and-hold by rate (from --rate): the highest rate tried
    /// (default 64 × --rate).
    #[arg(long, value_name = "REQ_PER_S")]
    pub max_rate: Option<f64>,
    /// find-and-hold: how long each step lasts (default 10s).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub step_duration: Option<Duration>,
    /// find-and-hold: how long the level found is held (default 60s).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub hold: Option<Duration>,
    /// Run the same test N times, each on fresh connections: the report
    /// gives every run's figures with their mean, sd, CV and 95% interval.
    #[arg(long, value_parser = count::<u32>, value_name = "N")]
    pub runs: Option<u32>,
    /// With --runs: a shell command run between runs (to reset a prefix
    /// cache, restart a server); its failure stops the runs.
    #[arg(long, value_name = "CMD", requires = "runs")]
    pub between_runs: Option<String>,
    /// Closed model: wait a random 0..N ms before each request, so that VUs
    /// do not move in lockstep (the wait is not in any latency).
    #[arg(long, allow_negative_numbers = true, value_parser = count::<u64>, value_name = "N")]
    pub jitter_ms: Option<u64>,
    /// Arrival process of the open model (default constant).
    #[arg(long, value_enum)]
    pub arrival: Option<Arrival>,
    /// Most requests in flight at once in the open model (default: unbounded).
    #[arg(long, allow_negative_numbers = true, value_parser = count::<u64>)]
    pub max_in_flight: Option<u64>,
    /// How long in-flight requests may finish after the end before they are cancelled (default 30s).
    #[arg(long, value_parser = parse_duration)]
    pub grace: Option<Duration>,
    /// Fail the run (exit 99) when the generator could not keep the open-model schedule.
    #[arg(long)]
    pub strict_schedule: bool,
    /// Skip the preflight request that checks the target before the load.
    #[arg(long)]
    pub no_preflight: bool,

    /// Pass/fail bound on the run, repeatable: 'ttft.p95<800ms', 'error_rate<0.01',
    /// 'tokens_per_s>100'. Any failure exits 99.
    #[arg(long = "threshold", value_name = "EXPR", value_parser = crate::slo::Threshold::parse)]
    pub thresholds: Vec<crate::slo::Threshold>,
    /// Check the thresholds every second and stop the load at the first failure.
    #[arg(long)]
    pub abort_on_fail: bool,
    /// US dollars per million input tokens: the run's cost in the report
    /// (with --price-output).
    #[arg(long, value_name = "USD", allow_negative_numbers = true)]
    pub price_input: Option<f64>,
    /// US dollars per million output tokens.
    #[arg(long, value_name = "USD", allow_negative_numbers = true)]
    pub price_output: Option<f64>,
    /// Per-request objective, repeatable: 'ttft<500ms', 'tpot<50ms'. Defines goodput.
    #[arg(long = "slo", value_name = "EXPR", value_parser = crate::slo::Slo::parse)]
    pub slos: Vec<crate::slo::Slo>,

    /// Write the JSON result (periscope.result/v1) to this path.
    #[arg(long, visible_alias = "output-json", value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// The --json file's format: periscope's result (the default), or
    /// vLLM's benchmark JSON (`vllm bench serve --save-result`'s fields).
    #[arg(long, value_enum, value_name = "FORMAT", requires = "json")]
    pub format: Option<JsonFormat>,
    /// Write a self-contained HTML report (charts; views offline) to this path.
    #[arg(long, value_name = "PATH")]
    pub html: Option<PathBuf>,
    /// Write one CSV row per request to PATH during the run (bounded memory;
    /// a killed run leaves the rows so far), then the summary to
    /// PATH-summary.csv and the per-second series to PATH-series.csv.
    #[arg(long, value_name = "PATH")]
    pub csv: Option<PathBuf>,
    /// Write one row per request during the run to FILE.jsonl or
    /// FILE.parquet (bounded memory; no prompt or answer text).
    #[arg(long, value_name = "FILE")]
    pub requests_out: Option<PathBuf>,
    /// With --requests-out: each row also carries the request's body (the
    /// prompt) and the answer's text.
    #[arg(long)]
    pub requests_text: bool,
    /// Keep one row per request in the JSON result (for `periscope report --csv`).
    #[arg(long)]
    pub keep_requests: bool,
    /// Print a plain progress line every N seconds (or `Nreq`: every N
    /// completed requests) instead of the live bar.
    #[arg(long, value_parser = parse_every_seconds, value_name = "N")]
    pub progress_every: Option<Every>,
    #[command(flatten)]
    pub sink: SinkArgs,
    #[command(flatten)]
    pub dashboard: DashboardArgs,
    #[command(flatten)]
    pub server: ServerMetricsArgs,
    #[command(flatten)]
    pub segments: SegmentArgs,
    /// Print the resolved plan and the planned load, and send nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub use groups::*;

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn verify_cli() {
        Args::command().debug_assert();
    }

    #[test]
    fn stream_flags_resolve() {
        let a = Args::parse_from(["periscope", "run", "--no-stream"]);
        let Command::Run(r) = a.command else { panic!() };
        assert!(r.no_stream);
    }
}
