//! Argument groups flattened into `run`, `sweep` and `probe`: segments,
//! OTLP, sinks, server metrics, datasets, and the sweep and probe commands'
//! own arguments. Raw clap structs, as in the parent module.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args as ClapArgs, ValueEnum};

use super::*;
/// One plan run by several processes (machines, pods), each driving its share.
#[derive(Debug, Clone, Default, ClapArgs)]
pub struct SegmentArgs {
    /// Run segment I of N of the plan: its share of the VUs, arrivals,
    /// iterations and dataset cases. Every segment needs the same plan, --run-id
    /// and --start-at; `periscope merge` joins their results.
    #[arg(long, env = "PERISCOPE_SEGMENT", value_name = "I/N", value_parser = crate::executor::Segment::parse)]
    pub segment: Option<crate::executor::Segment>,
    /// The number of segments, this one's index taken from JOB_COMPLETION_INDEX
    /// (from 0, set by a Kubernetes Indexed Job).
    #[arg(long, allow_negative_numbers = true, value_parser = count::<u32>, value_name = "N")]
    pub segments: Option<u32>,
    /// The run's id, shared by every segment (tags, results, the Poisson
    /// arrivals' seed); default: a new random one. Letters, digits, '.', '_', '-'.
    #[arg(long, env = "PERISCOPE_RUN_ID", value_name = "ID")]
    pub run_id: Option<String>,
    /// Start the load at this wall-clock time (RFC 3339 in UTC, e.g.
    /// 2026-11-23T12:00:00Z), after the preflight: the start barrier of segments.
    #[arg(long, env = "PERISCOPE_START_AT", value_name = "TIME", value_parser = parse_rfc3339)]
    pub start_at: Option<std::time::SystemTime>,
}

/// The otlp-traces workload.
#[derive(Debug, Clone, Default, ClapArgs)]
pub struct OtlpArgs {
    /// otlp-traces: megabytes (10^6 bytes) of encoded traces per second;
    /// arrivals are paced by each trace's size (instead of --rate).
    #[arg(long, allow_negative_numbers = true, value_name = "MB")]
    pub mb_per_s: Option<f64>,
    /// otlp-traces: trace scenarios and weights, e.g.
    /// simple_query:40,single_service_search:30,delegated_booking:20,multi_service_complex:10
    /// (the default); size profiles small, medium, large, xlarge.
    #[arg(long, value_name = "NAME:W,…")]
    pub mix: Option<String>,
    /// otlp-traces: dress the spans and headers for a backend.
    #[arg(long, value_enum, value_name = "PLATFORM")]
    pub platform: Option<crate::otlp::Platform>,
    /// otlp-traces: send OTLP/JSON instead of protobuf.
    #[arg(long)]
    pub otlp_json: bool,
    /// otlp-traces and --trace-requests: grpc (Export calls, e.g. to
    /// http://host:4317), http/protobuf (the default) or http/json. Else
    /// OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, OTEL_EXPORTER_OTLP_PROTOCOL.
    #[arg(long, value_name = "PROTOCOL")]
    pub otlp_protocol: Option<String>,
    /// otlp-traces: ingestion (exports only), query (queries only, at
    /// --queries-per-s, of the traces the backend has) or combined (both;
    /// the default when a query endpoint is given).
    #[arg(long, value_enum, value_name = "TYPE")]
    pub test_type: Option<crate::otlp::TestType>,
    /// otlp-traces: the backend's project (Phoenix, LangSmith, Braintrust; default periscope).
    #[arg(long, value_name = "NAME")]
    pub project: Option<String>,
    /// otlp-traces: the trace backend's query API, queried alongside
    /// ingestion, e.g. Tempo's http://tempo:3200 (with --mock: the mock's).
    #[arg(long, value_name = "URL")]
    pub query_endpoint: Option<String>,
    /// otlp-traces: queries per second to the query endpoint (open model).
    #[arg(long, allow_negative_numbers = true, value_name = "N")]
    pub queries_per_s: Option<f64>,
    /// otlp-traces: a query under --query-endpoint, repeatable (sent in
    /// turn): a path (GET), or 'POST PATH JSON'; placeholders {{service}},
    /// {{project}}, {{trace_id}} (a trace of the run), {{start}}/{{end}} (Unix
    /// s; _ms, _ns), e.g. '/api/search?q={ resource.service.name = "{{service}}" }'
    /// or 'POST /graphql {"query": "…"}'. Default: Tempo's search and trace by
    /// id (Phoenix: its span and trace lists).
    #[arg(long = "query", value_name = "TEMPLATE")]
    pub queries: Vec<String>,
}

/// Tags and live outputs (`run`, `sweep`).
#[derive(Debug, Clone, Default, ClapArgs)]
pub struct SinkArgs {
    /// Tag the run's points and result, repeatable: --tag env=staging.
    #[arg(long = "tag", value_name = "K=V", value_parser = parse_tag)]
    pub tags: Vec<(String, String)>,
    /// Stream live metrics, repeatable: influxdb=http://localhost:8086/periscope
    /// (InfluxDB 1.x) or influxdb2=http://host:8086?org=O&bucket=B (2.x, 3.x,
    /// cloud, VictoriaMetrics; token from INFLUX_TOKEN).
    #[arg(long = "out", value_name = "OUTPUT", value_parser = crate::sink::Output::parse)]
    pub outs: Vec<crate::sink::Output>,
    /// InfluxDB 1.x user.
    #[arg(long, env = "INFLUX_USERNAME")]
    pub influx_user: Option<String>,
    /// InfluxDB 1.x password (never printed or stored).
    #[arg(long, env = "INFLUX_PASSWORD", hide_env_values = true)]
    pub influx_password: Option<String>,
    /// Share of requests written as periscope_request points, 0 to 1 (default 1).
    #[arg(long, allow_negative_numbers = true, value_name = "RATIO")]
    pub influx_request_sample: Option<f64>,
    /// Export every request as an OpenTelemetry client span (GenAI conventions,
    /// ttft as an event) to this OTLP/HTTP traces URL, e.g.
    /// http://localhost:4318/v1/traces, and send each span's W3C traceparent
    /// to the target so its server-side spans join (--platform and --project dress them).
    #[arg(long, value_name = "OTLP_URL")]
    pub trace_requests: Option<String>,
    /// The `endpoint` tag of live points instead of the target's URL (a
    /// sweep's `direct` and `proxy`); not a flag.
    #[arg(skip)]
    pub endpoint_tag: Option<String>,
}

/// `--dashboard`: a live page of the run, served by the run itself (`run`,
/// `sweep`, `probe`).
#[derive(Debug, Clone, Default, ClapArgs)]
pub struct DashboardArgs {
    /// Serve a live page of the run at this address (default
    /// 127.0.0.1:5665; PERISCOPE_DASHBOARD=true or an address): the same
    /// per-second figures as the JSON series, the server's metrics beside
    /// them, pushed as they close. Beyond loopback it needs --dashboard-token.
    #[arg(long, env = "PERISCOPE_DASHBOARD", value_name = "ADDR", num_args = 0..=1, default_missing_value = "")]
    pub dashboard: Option<String>,
    /// The token the page asks for (?token=… or Authorization: Bearer);
    /// required to listen beyond loopback.
    #[arg(
        long,
        env = "PERISCOPE_DASHBOARD_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub dashboard_token: Option<String>,
    /// Keep the page up this long after the end, with the HTML report
    /// (Ctrl-C leaves earlier).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub dashboard_linger: Option<Duration>,
}

impl DashboardArgs {
    /// The board these flags ask for, bound now (None: no dashboard;
    /// PERISCOPE_DASHBOARD=false or 0 is none).
    pub fn board(&self) -> Result<Option<crate::dashboard::Board>, String> {
        let Some(addr) = self
            .dashboard
            .as_deref()
            .filter(|a| !matches!(a.trim(), "false" | "0" | "off" | "no"))
        else {
            if self.dashboard_token.is_some()
                && std::env::var_os("PERISCOPE_DASHBOARD_TOKEN").is_none()
            {
                return Err("--dashboard-token needs --dashboard [ADDR]".into());
            }
            if self.dashboard_linger.is_some() {
                return Err("--dashboard-linger needs --dashboard [ADDR]".into());
            }
            return Ok(None);
        };
        let cfg = crate::dashboard::Config::parse(
            addr,
            self.dashboard_token.clone(),
            self.dashboard_linger.unwrap_or_default(),
        )?;
        crate::dashboard::Board::bind(&cfg).map(Some)
    }
}

/// The server's own metrics, beside the client's (`run`, `sweep`).
#[derive(Debug, Clone, Default, ClapArgs)]
pub struct ServerMetricsArgs {
    /// Scrape the server's Prometheus metrics during the run, repeatable: a
    /// /metrics URL, or none for the target's origin + /metrics. vLLM,
    /// SGLang, llama.cpp (--metrics), TGI, LiteLLM and Triton are read.
    #[arg(long = "server-metrics", value_name = "URL", num_args = 0..=1, default_missing_value = "")]
    pub server_metrics: Vec<String>,
    /// Time between scrapes (default 1s).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub scrape_interval: Option<Duration>,
    /// Write every scraped and queried sample to this CSV, one row each.
    #[arg(long, value_name = "PATH")]
    pub server_csv: Option<PathBuf>,
    /// A Prometheus-compatible query API (Prometheus, Thanos,
    /// VictoriaMetrics), asked the --promql queries over the run's window.
    #[arg(long, value_name = "URL")]
    pub prometheus: Option<String>,
    /// A PromQL expression, repeatable: `EXPR`, `NAME: EXPR` (thresholds name it:
    /// server.promql.NAME.max<50), or @FILE of `name: EXPR` lines.
    #[arg(long, value_name = "EXPR|@FILE")]
    pub promql: Vec<String>,
    /// How many --promql queries are asked at once (default 5).
    #[arg(long, env = "TEMPO_PERF_MAX_CONCURRENT_QUERIES", value_parser = count::<usize>, value_name = "N")]
    pub promql_concurrency: Option<usize>,
    /// How long --prometheus is given, after the run, to take in its last
    /// scrape (default 2s).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub prometheus_wait: Option<Duration>,
}

/// A prompt corpus: labelled cases cycled as the prompts of the requests.
#[derive(Debug, Clone, Default, ClapArgs)]
pub struct DatasetArgs {
    /// Prompts from a file: a JSON array of {id, text, label, category,
    /// subcategory}, JSON Lines, or ShareGPT conversations; or a folder of
    /// such files (all of them, in name order).
    #[arg(long, value_name = "PATH", conflicts_with = "dataset_suite")]
    pub dataset_file: Option<String>,
    /// Prompts from a built-in corpus: core, external or all.
    #[arg(long, value_name = "SUITE")]
    pub dataset_suite: Option<String>,
    /// Only the cases with this label.
    #[arg(long, value_enum, value_name = "LABEL")]
    pub dataset_label: Option<LabelFilter>,
    /// Only categories containing one of these comma-separated substrings.
    #[arg(long, value_name = "A,B")]
    pub category_contains: Option<String>,
    /// Only subcategories containing one of these, e.g. role_injection,system_override.
    #[arg(long, value_name = "A,B")]
    pub subcategory_contains: Option<String>,
    /// At most N cases (after filtering and shuffling).
    #[arg(long, allow_negative_numbers = true, value_parser = count::<u64>, value_name = "N")]
    pub dataset_limit: Option<u64>,
    /// Shuffle the cases deterministically with this seed (0: file order).
    #[arg(long, allow_negative_numbers = true, value_parser = count::<u64>, value_name = "SEED")]
    pub dataset_shuffle_seed: Option<u64>,
}

/// `--dataset-label`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LabelFilter {
    Benign,
    Malicious,
    All,
}

impl DatasetArgs {
    /// The selection these flags make, over `file`'s (a scenario's) where they are silent.
    pub fn selection(
        &self,
        file: Option<&crate::scenario::DatasetEntry>,
    ) -> Result<crate::dataset::Selection, String> {
        use crate::dataset::Label;
        let f = file.cloned().unwrap_or_default();
        let label = match self.dataset_label {
            Some(LabelFilter::Benign) => Some(Label::Benign),
            Some(LabelFilter::Malicious) => Some(Label::Malicious),
            Some(LabelFilter::All) => None,
            None => match f.label.as_deref() {
                None | Some("all") => None,
                Some("benign") => Some(Label::Benign),
                Some("malicious") => Some(Label::Malicious),
                Some(other) => {
                    return Err(format!(
                        "dataset.label '{other}': expected benign, malicious or all"
                    ))
                }
            },
        };
        // The command line's corpus replaces the file's.
        let (file_path, suite) = if self.dataset_file.is_some() || self.dataset_suite.is_some() {
            (self.dataset_file.clone(), self.dataset_suite.clone())
        } else {
            (f.file.clone(), f.suite.clone())
        };
        Ok(crate::dataset::Selection {
            file: file_path,
            suite,
            label,
            category_contains: self.category_contains.clone().or(f.category_contains),
            subcategory_contains: self.subcategory_contains.clone().or(f.subcategory_contains),
            limit: self.dataset_limit.or(f.limit.map(|v| v.0)),
            shuffle_seed: self.dataset_shuffle_seed.or(f.shuffle_seed.map(|v| v.0)),
        })
    }
}

#[derive(Debug, Clone, ClapArgs)]
pub struct SweepArgs {
    /// The workload of every level (completions by default; responses,
    /// messages, tool-calls, vision, text-completions, … — an LLM API's).
    #[arg(long, default_value = "completions", value_name = "WORKLOAD")]
    pub workload: String,
    /// One endpoint: find the level after which ok_rps stops growing.
    #[arg(long, value_name = "URL", conflicts_with_all = ["direct_url", "proxy_url"])]
    pub url: Option<String>,
    /// The endpoint without the proxy.
    #[arg(long, value_name = "URL", requires = "proxy_url")]
    pub direct_url: Option<String>,
    /// The same endpoint behind the proxy.
    #[arg(long, value_name = "URL", requires = "direct_url")]
    pub proxy_url: Option<String>,
    /// Concurrency levels (closed model: VUs), e.g. 1,2,5,10,20.
    #[arg(
        allow_negative_numbers = true, value_parser = count::<u64>,
        long,
        value_delimiter = ',',
        value_name = "N,N,…",
        conflicts_with = "rate_list"
    )]
    pub concurrency_list: Vec<u64>,
    /// One concurrency level (the LLMTrace bench's fixed concurrency); with
    /// neither this nor a list, the sweep runs one level of 10.
    #[arg(long, allow_negative_numbers = true, value_parser = count::<u64>, value_name = "N",
          conflicts_with_all = ["concurrency_list", "rate_list"])]
    pub concurrency: Option<u64>,
    /// Arrival rates (open model: req/s) instead of concurrency levels.
    #[arg(
        long,
        allow_negative_numbers = true,
        value_delimiter = ',',
        value_name = "R,R,…"
    )]
    pub rate_list: Vec<f64>,
    /// Requests per endpoint per level.
    #[arg(long, allow_negative_numbers = true, value_parser = count::<u64>, default_value_t = 100)]
    pub requests: u64,
    /// Keep each level running (more blocks of its requests) until it has
    /// lasted this long, so that its ok_rps is a rate and not a burst; a
    /// level shorter than 1s is not judged for saturation.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub min_level_duration: Option<Duration>,
    /// Ask for whole (non-streamed) responses (streaming is the default).
    #[arg(long)]
    pub no_stream: bool,
    #[command(flatten)]
    pub request: RequestArgs,
    #[command(flatten)]
    pub dataset: DatasetArgs,
    /// Blocks each level's requests are split into, the endpoints taking
    /// turns block by block (drift then hits both alike).
    #[arg(long, allow_negative_numbers = true, value_parser = count::<u64>, default_value_t = 4, value_name = "N")]
    pub blocks: u64,
    /// Resamples of the bootstrap behind the 95% intervals.
    #[arg(long, allow_negative_numbers = true, value_parser = count::<u32>, default_value_t = 2000, value_name = "N")]
    pub bootstrap: u32,
    /// Write the inputs, raw latencies and status counts to this path.
    #[arg(long = "json", visible_alias = "output-json", value_name = "PATH")]
    pub output_json: Option<PathBuf>,
    /// Write a self-contained HTML report (latency, ok_rps and overhead by level).
    #[arg(long, value_name = "PATH")]
    pub html: Option<PathBuf>,
    #[command(flatten)]
    pub sink: SinkArgs,
    #[command(flatten)]
    pub dashboard: DashboardArgs,
    /// Print a plain progress line every N completed requests (or `Ns`:
    /// every N seconds) instead of the live bar.
    #[arg(long, value_parser = parse_every_requests, value_name = "N")]
    pub progress_every: Option<Every>,
    /// Wait a random 0..N ms before each request, so that the workers do
    /// not move in lockstep (the wait is not in any latency).
    #[arg(long, allow_negative_numbers = true, value_parser = count::<u64>, value_name = "N")]
    pub jitter_ms: Option<u64>,
    /// `load` (the sweep: aggregate figures, the default) or `probe` (each
    /// case of the corpus once, judged: `periscope probe`), as the LLMTrace
    /// bench's --mode.
    #[arg(long, value_enum, default_value_t = Mode::Load)]
    pub mode: Mode,
    #[command(flatten)]
    pub probe: ProbeTableArgs,
}

/// `--mode` of the LLMTrace bench.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Aggregate latency and throughput (`periscope sweep`).
    Load,
    /// One judged request per case (`periscope probe`).
    Probe,
}

/// How a probe sends its cases and shows them (`probe`, `sweep --mode probe`).
#[derive(Debug, Clone, Default, ClapArgs)]
pub struct ProbeTableArgs {
    /// probe: cases in flight at once (default 8; sweep --mode probe: its
    /// --concurrency, 10 unless given; 0 means that too).
    #[arg(long, allow_negative_numbers = true, value_parser = count::<usize>)]
    pub workers: Option<usize>,
    /// probe: tries again on a transport error or a non-2xx answer that is
    /// not a block (default 0).
    #[arg(long, allow_negative_numbers = true, value_parser = count::<u32>, default_value_t = 0)]
    pub retries: u32,
    /// probe: characters of each answer shown (default 90).
    #[arg(long, allow_negative_numbers = true, value_parser = count::<usize>, default_value_t = 90)]
    pub preview_chars: usize,
    /// probe: add a column with the start of each prompt.
    #[arg(long)]
    pub show_prompt: bool,
}

#[derive(Debug, Clone, ClapArgs)]
pub struct ProbeArgs {
    /// Base URL of the service, or its whole endpoint
    /// (http://host/v1/chat/completions) (or OPENAI_BASE_URL).
    #[arg(long, env = "OPENAI_BASE_URL", value_name = "URL")]
    pub url: Option<String>,
    /// The API the cases are sent to: chat completions (the default),
    /// OpenAI's Responses API or Anthropic's Messages API.
    #[arg(long, value_enum, default_value_t = crate::workload::probe::ProbeApi::Chat)]
    pub api: crate::workload::probe::ProbeApi,
    #[command(flatten)]
    pub request: RequestArgs,
    #[command(flatten)]
    pub dataset: DatasetArgs,
    #[command(flatten)]
    pub table: ProbeTableArgs,
    /// Write every case and try to this path.
    #[arg(long = "json", visible_alias = "output-json", value_name = "PATH")]
    pub output_json: Option<PathBuf>,
    #[command(flatten)]
    pub dashboard: DashboardArgs,
    /// Print a progress line every N completed cases (or `Ns`: every N
    /// seconds).
    #[arg(long, value_parser = parse_every_requests, value_name = "N")]
    pub progress_every: Option<Every>,
    /// Wait a random 0..N ms before each request.
    #[arg(long, allow_negative_numbers = true, value_parser = count::<u64>, value_name = "N")]
    pub jitter_ms: Option<u64>,
    /// Accepted as the LLMTrace bench's `--mode probe` (this command);
    /// `--mode load` is `periscope sweep`.
    #[arg(long, value_enum, hide = true)]
    pub mode: Option<Mode>,
    /// The cases in flight when --workers is not given (the LLMTrace
    /// bench's --concurrency).
    #[arg(long, allow_negative_numbers = true, value_parser = count::<usize>, hide = true)]
    pub concurrency: Option<usize>,
}
