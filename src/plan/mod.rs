//! Args + environment + defaults → a validated `Plan`.
//!
//! Everything a run needs is resolved and checked here, before anything is
//! sent: a bad combination is a one-line usage error naming the flag.
//! Precedence: flags > environment > built-in defaults.

mod traces;

use std::path::PathBuf;
use std::time::Duration;

use crate::cli::RunArgs;
use crate::client::normalize_base;
use crate::error::{Error, Result};
use crate::executor::shape::{Level, StageSpec};
use crate::executor::Arrival;
use crate::executor::{Load, Stage, Stages};
use crate::mock::MockConfig;
use crate::report::view::{DatasetView, PlanView};
use crate::scenario::{self, Kind, Scenario};
use crate::usage;
use crate::values::parse_duration;
use crate::workload::{self, Workload, WorkloadSpec};

/// Default model, as in the k6 suite periscope replaces.
pub const DEFAULT_MODEL: &str = "gpt-3.5-turbo";
/// Default prompt of the completions workloads.
pub const DEFAULT_PROMPT: &str =
    "Explain in a few sentences how a load balancer spreads requests across a pool of servers.";
/// Default model of the embeddings workloads.
pub const DEFAULT_EMBEDDING_MODEL: &str = "text-embedding-3-small";
/// Default input of the embeddings workloads.
pub const DEFAULT_EMBEDDING_INPUT: &str =
    "A load balancer spreads incoming requests across a pool of servers.";
/// How long a run with `--iterations` and no `--duration` may take at most.
pub const ITERATIONS_MAX_DURATION: Duration = Duration::from_secs(600);

/// Where requests go.
#[derive(Debug, Clone)]
pub enum Target {
    /// The built-in mock, started in-process.
    Mock(Box<MockConfig>),
    /// A base URL, normalized to end in the API root (e.g. `/v1`).
    Remote(String),
}

/// A resolved, validated run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The scenario's name (`load` unless one was chosen) and what it reports.
    pub scenario: String,
    pub kind: Kind,
    /// Each stage's phase (`baseline`, `spike`, …), aligned with the load's stages.
    pub phases: Vec<Option<String>>,
    pub workload: WorkloadSpec,
    /// The prompt corpus, when one drives the prompts.
    pub dataset_view: Option<DatasetView>,
    pub target: Target,
    /// The flags given to the in-process mock, for the record.
    pub mock_args: Option<String>,
    pub token: Option<String>,
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
    pub http_engine: crate::client::Engine,
    /// What counts tokens (`--tokenizer`).
    pub tokenizer: crate::tokenizer::Choice,
    pub load: Load,
    pub grace: Duration,
    pub strict_schedule: bool,
    pub preflight: bool,
    pub json: Option<PathBuf>,
    /// Live outputs, their credentials and the share of requests they get.
    pub outputs: Vec<crate::sink::Output>,
    pub sink_credentials: crate::sink::Credentials,
    pub request_sample: f64,
    /// The `endpoint` tag of live points (the sweep's endpoint name; else the target).
    pub endpoint_tag: Option<String>,
    /// The run's id when a caller sets it (`--run-id`; a sweep's runs share
    /// one); else new.
    pub run_id: Option<String>,
    /// This process's share of the plan (`--segment i/n`).
    pub segment: crate::executor::Segment,
    /// When the load starts (`--start-at`), else as soon as it is ready.
    pub start_at: Option<std::time::SystemTime>,
    /// otlp-traces: where exports go and what the mix sends.
    pub otlp_view: Option<crate::otlp::OtlpView>,
    /// otlp-traces: the query load sent alongside ingestion.
    pub otlp_queries: Option<std::sync::Arc<crate::otlp::query::QueryPlan>>,
    /// Where request spans go (`--trace-requests`).
    pub trace_requests: Option<crate::sink::tracer::TraceTarget>,
    pub html: Option<PathBuf>,
    pub csv: Option<PathBuf>,
    /// Keep one row per request in the result.
    pub keep_requests: bool,
    pub progress_every: Option<u64>,
    pub tags: Vec<(String, String)>,
    pub dry_run: bool,
    pub thresholds: Vec<crate::slo::Threshold>,
    pub abort_on_fail: bool,
    pub slos: Vec<crate::slo::Slo>,
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Plan {
    pub fn from_args(a: &RunArgs) -> Result<Plan> {
        let (file_arg, workload_arg) = match a.workload.as_deref() {
            Some(w) if scenario::is_file_arg(w) => (Some(w), None),
            w => (None, w),
        };
        if file_arg.is_some() && a.scenario.is_some() {
            return Err(usage!(
                "a scenario file was given both as the first argument and with --scenario: choose one"
            ));
        }
        let sc = scenario::load(
            file_arg
                .or(a.scenario.as_deref())
                .unwrap_or(scenario::DEFAULT),
        )?;
        let f = &sc.file;
        let requested = workload_arg
            .or(f.workload.as_deref())
            .unwrap_or("completions");
        let mut name = match requested {
            "chat" => "completions",
            other if workload::NAMES.iter().any(|(n, _)| *n == other) => other,
            other => {
                let names: Vec<&str> = workload::NAMES.iter().map(|(n, _)| *n).collect();
                let msg = format!(
                    "unknown workload '{other}': expected one of {} (see `periscope scenarios`)",
                    names.join(", ")
                );
                return Err(if workload_arg.is_some() {
                    Error::Usage(msg)
                } else {
                    sc.error(format!("workload: {msg}"))
                });
            }
        }
        .to_string();
        if name == "embeddings"
            && env_var("ENABLE_BATCH_MODE")
                .is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
        {
            name = "batch-embeddings".into();
        }
        let max_tokens = match a.request.max_tokens {
            Some(n) => n,
            None => {
                let env = if name == "decode-heavy" {
                    env_var("MAX_OUTPUT_TOKENS").or_else(|| env_var("MAX_TOKENS"))
                } else {
                    env_var("MAX_TOKENS")
                };
                match (env, &f.max_tokens) {
                    (Some(v), _) => v
                        .trim()
                        .parse()
                        .map_err(|_| usage!("MAX_TOKENS='{v}' is not a whole number of tokens"))?,
                    (None, Some(n)) => n.0,
                    (None, None) => workload::default_max_tokens(&name),
                }
            }
        };
        let batch_sizes: Vec<u32> = if a.batch_sizes.is_empty() {
            f.batch_sizes.iter().map(|v| v.0).collect()
        } else {
            a.batch_sizes.clone()
        };
        let input_tokens = a.input_tokens.or(f.input_tokens.as_ref().map(|v| v.0));
        let input_tokens_stddev = a
            .input_tokens_stddev
            .or(f.input_tokens_stddev.as_ref().map(|v| v.0))
            .unwrap_or(0.0);
        let turns = a.turns.or(f.turns.as_ref().map(|v| v.0));
        let endpoints: Vec<workload::Endpoint> = if a.endpoints.is_empty() {
            f.endpoints.iter().map(|v| v.0.clone()).collect()
        } else if name == "otlp-traces" {
            Vec::new()
        } else {
            a.endpoints
                .iter()
                .map(|e| workload::parse_endpoint(e).map_err(|m| usage!("--endpoint {m}")))
                .collect::<Result<_>>()?
        };
        let temperature = a
            .request
            .temperature
            .or(f.temperature.as_ref().map(|v| v.0 as f32));
        let timeout = a
            .request
            .timeout
            .or(f.timeout.as_ref().map(|v| v.0))
            .unwrap_or(Duration::from_secs(60));
        let mut thresholds: Vec<crate::slo::Threshold> =
            f.thresholds.iter().map(|v| v.0.clone()).collect();
        for t in &a.thresholds {
            if !thresholds.iter().any(|x| x.expr == t.expr) {
                thresholds.push(t.clone());
            }
        }
        let mut slos: Vec<crate::slo::Slo> = f.slos.iter().map(|v| v.0.clone()).collect();
        for s in &a.slos {
            if !slos.iter().any(|x| x.expr == s.expr) {
                slos.push(s.clone());
            }
        }
        let abort_on_fail = a.abort_on_fail || f.abort_on_fail == Some(true);
        let selection = a
            .dataset
            .selection(f.dataset.as_ref())
            .map_err(Error::Usage)?;
        let dataset = if selection.is_set() {
            if !matches!(
                name.as_str(),
                "completions"
                    | "text-completions"
                    | "conversation"
                    | "prefill-heavy"
                    | "decode-heavy"
            ) {
                return Err(usage!(
                    "a dataset drives the prompts of completions, text-completions, conversation, prefill-heavy and decode-heavy, not {name}"
                ));
            }
            let cases = selection.load().map_err(Error::Usage)?;
            Some((selection, cases))
        } else {
            None
        };
        let dataset_view = dataset.as_ref().map(|(sel, cases)| DatasetView {
            selection: sel.clone(),
            cases: cases.len(),
            benign: cases
                .iter()
                .filter(|c| c.label == crate::dataset::Label::Benign)
                .count(),
        });
        if batch_sizes.contains(&0) {
            return Err(usage!("--batch-sizes must all be at least 1"));
        }
        if input_tokens == Some(0) {
            return Err(usage!("--input-tokens must be at least 1"));
        }
        if !(input_tokens_stddev >= 0.0 && input_tokens_stddev.is_finite()) {
            return Err(usage!("--input-tokens-stddev must be 0 or more"));
        }
        if turns == Some(0) {
            return Err(usage!("--turns must be at least 1"));
        }
        if !endpoints.is_empty() && name != "http" {
            return Err(usage!("--endpoint applies to the http workload: `periscope run http --endpoint GET:/health`"));
        }

        let otlp = if name == "otlp-traces" {
            if a.endpoints.len() > 1 {
                return Err(usage!("otlp-traces sends to one --endpoint URL"));
            }
            Some(
                traces::resolve(
                    &a.otlp,
                    f.otlp.as_ref(),
                    a.endpoints.first().map(String::as_str),
                    a.target.as_deref().or(f.target.as_deref()),
                    a.mock,
                )
                .map_err(Error::Usage)?,
            )
        } else {
            let o = &a.otlp;
            let dressing =
                (o.platform.is_some() || o.project.is_some()) && a.sink.trace_requests.is_none();
            if o.mb_per_s.is_some()
                || o.mix.is_some()
                || o.otlp_json
                || dressing
                || o.query_endpoint.is_some()
                || o.queries_per_s.is_some()
                || !o.queries.is_empty()
                || f.otlp.is_some()
            {
                return Err(usage!(
                    "--mb-per-s, --mix, --platform, --otlp-json, --project and the --query flags apply to otlp-traces: `periscope run otlp-traces --endpoint URL …` (--platform and --project also dress --trace-requests)"
                ));
            }
            None
        };
        let trace_requests = a
            .sink
            .trace_requests
            .as_deref()
            .map(|u| {
                crate::sink::tracer::TraceTarget::resolve(
                    u,
                    a.otlp.platform.unwrap_or_default(),
                    a.otlp.project.clone(),
                )
            })
            .transpose()
            .map_err(Error::Usage)?;
        let (target, mock_args) = if a.mock {
            let cfg = MockConfig::from_flag_string(a.mock_args.as_deref().unwrap_or(""))
                .map_err(Error::Usage)?;
            (Target::Mock(Box::new(cfg)), a.mock_args.clone())
        } else {
            let otlp_origin = otlp.as_ref().map(|o| o.url.clone());
            match otlp_origin.as_ref().or(a.target.as_ref()).or(f.target.as_ref()) {
                Some(t) => (Target::Remote(normalize_base(t).map_err(Error::Usage)?), None),
                None => {
                    return Err(usage!(
                        "no target: pass --target URL (or set OPENAI_BASE_URL), or --mock for the built-in mock"
                    ))
                }
            }
        };

        if max_tokens == 0 {
            return Err(usage!("--max-tokens must be at least 1"));
        }
        if let Some(t) = temperature {
            if !(0.0..=2.0).contains(&t) {
                return Err(usage!("--temperature must be between 0 and 2, got {t}"));
            }
        }
        if timeout.is_zero() {
            return Err(usage!("--timeout must be more than 0"));
        }
        if abort_on_fail && thresholds.is_empty() {
            return Err(usage!("--abort-on-fail needs at least one --threshold"));
        }
        if a.progress_every == Some(0) {
            return Err(usage!("--progress-every must be at least 1 (seconds)"));
        }

        let batch_sizes = if batch_sizes.is_empty() {
            vec![1, 8, 32, 128]
        } else {
            batch_sizes
        };
        let (mut load, mut phases) = match otlp.as_ref().and_then(|o| o.rate) {
            Some(rate) => {
                if a.rate.is_some() || f.rate.is_some() {
                    return Err(usage!("--mb-per-s sets the rate: drop --rate"));
                }
                if a.vus.is_some() || a.stages.is_some() {
                    return Err(usage!(
                        "--mb-per-s is an arrival rate (open model): drop --vus and --stages"
                    ));
                }
                let paced = RunArgs {
                    rate: Some(rate),
                    ..a.clone()
                };
                resolve_load(&paced, &sc)?
            }
            None => resolve_load(a, &sc)?,
        };
        let shaped = load.stages().stages.len() > 1;
        if name == "batch-embeddings" && !(shaped && batch_sizes.len() == 1) {
            if shaped {
                return Err(usage!(
                    "batch-embeddings runs one stage per batch size: with the stages of --stages or of the {} scenario, give one size (--batch-sizes 32)",
                    sc.name
                ));
            }
            // One stage per batch size, splitting the duration evenly.
            load = split_evenly(load, batch_sizes.len());
            phases = vec![None; batch_sizes.len()];
        } else if sc.kind == Kind::Soak && !shaped {
            // Tenths of the run, to compare the first with the last.
            load = split_evenly(load, 10);
            phases = vec![None; 10];
        }
        let stream = if a.stream {
            true
        } else if a.no_stream {
            false
        } else {
            f.stream.unwrap_or(true)
        };
        let default_model = match name.as_str() {
            "embeddings" | "batch-embeddings" => DEFAULT_EMBEDDING_MODEL,
            _ => DEFAULT_MODEL,
        };
        let model = a
            .request
            .model
            .clone()
            .or_else(|| env_var(workload::model_env(&name)))
            .or_else(|| {
                (name == "prefix-caching")
                    .then(|| env_var("OPENAI_COMPLETION_MODEL"))
                    .flatten()
            })
            .or_else(|| f.model.clone())
            .unwrap_or_else(|| default_model.to_string());
        let mut headers: Vec<(String, String)> = f
            .headers
            .iter()
            .map(|h| (h.0 .0.clone(), h.0 .1.clone()))
            .collect();
        if let Some(o) = &otlp {
            headers.splice(0..0, o.headers.iter().cloned());
        }
        headers.extend(a.request.headers.iter().cloned());
        let mut tags: Vec<(String, String)> = f
            .tags
            .iter()
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .filter(|(k, _)| !a.sink.tags.iter().any(|(ak, _)| ak == k))
            .collect();
        tags.extend(a.sink.tags.iter().cloned());
        let (segment, run_id) = resolve_segment(&a.segments, abort_on_fail, &load)?;
        let dataset = match (dataset, segment.is_whole()) {
            (Some((sel, cases)), false) => {
                let n = cases.len();
                let mine: Vec<_> = cases
                    .into_iter()
                    .enumerate()
                    .filter(|(k, _)| segment.owns(*k as u64))
                    .map(|(_, c)| c)
                    .collect();
                if mine.is_empty() {
                    return Err(usage!(
                        "--segment {segment}: the dataset has {n} case(s), fewer than the {} segments; use at most {n} segments",
                        segment.count
                    ));
                }
                Some((sel, mine))
            }
            (d, _) => d,
        };
        let default_prompt = match name.as_str() {
            "embeddings" | "batch-embeddings" => DEFAULT_EMBEDDING_INPUT,
            _ => DEFAULT_PROMPT,
        };
        Ok(Plan {
            scenario: sc.name.clone(),
            kind: sc.kind,
            phases,
            workload: WorkloadSpec {
                name: name.clone(),
                model,
                system: a.request.system.clone().or_else(|| f.system.clone()),
                prompt: a
                    .request
                    .prompt
                    .clone()
                    .or_else(|| f.prompt.clone())
                    .unwrap_or_else(|| default_prompt.to_string()),
                max_tokens,
                temperature,
                stream,
                stream_usage: !a.request.no_stream_usage,
                input_tokens,
                input_tokens_stddev,
                shared_prefix: a
                    .shared_prefix
                    .or(f.shared_prefix.as_ref().map(|v| v.0))
                    .unwrap_or(0),
                turns: turns.unwrap_or(match name.as_str() {
                    "prefix-caching" => 10,
                    _ => 5,
                }),
                batch_sizes,
                endpoints,
                dataset: dataset.map(|(_, cases)| {
                    std::sync::Arc::new(cases.into_iter().map(|c| c.text).collect())
                }),
                otlp: otlp.as_ref().map(|o| o.spec.clone()),
            },
            otlp_queries: otlp
                .as_ref()
                .and_then(|o| o.queries.clone())
                .map(std::sync::Arc::new),
            otlp_view: otlp.map(|o| o.view),
            trace_requests,
            dataset_view,
            target,
            mock_args,
            token: a.request.token.clone().filter(|t| !t.is_empty()),
            headers,
            timeout,
            http_engine: a
                .http_engine
                .or(f.http_engine.as_ref().map(|v| v.0))
                .unwrap_or_default(),
            tokenizer: a.request.tokenizer.clone().unwrap_or_default(),
            load,
            grace: a
                .grace
                .or(f.grace.as_ref().map(|v| v.0))
                .unwrap_or(Duration::from_secs(30)),
            strict_schedule: a.strict_schedule,
            preflight: !a.no_preflight && f.preflight != Some(false),
            json: a.json.clone(),
            outputs: a.sink.outs.clone(),
            sink_credentials: crate::sink::Credentials {
                user: a.sink.influx_user.clone(),
                password: a.sink.influx_password.clone(),
                token: env_var("INFLUX_TOKEN"),
            },
            request_sample: match a.sink.influx_request_sample {
                Some(x) if !(0.0..=1.0).contains(&x) => {
                    return Err(usage!(
                        "--influx-request-sample must be between 0 and 1 (0.1 keeps one request in ten)"
                    ))
                }
                Some(x) => x,
                None => 1.0,
            },
            endpoint_tag: None,
            run_id,
            segment,
            start_at: a.segments.start_at,
            html: a.html.clone(),
            csv: a.csv.clone(),
            keep_requests: a.keep_requests || a.csv.is_some(),
            progress_every: a.progress_every,
            tags,
            dry_run: a.dry_run,
            thresholds,
            abort_on_fail,
            slos,
        })
    }

    /// The workload this plan runs.
    pub fn build_workload(
        &self,
        tok: &std::sync::Arc<crate::tokenizer::Tokenizer>,
    ) -> std::sync::Arc<dyn Workload> {
        workload::build(&self.workload, tok)
    }

    pub fn workload_name(&self) -> &str {
        &self.workload.name
    }

    /// What the plan is, with secrets redacted: for `--dry-run` and the result.
    pub fn view(&self, target_url: &str) -> PlanView {
        PlanView {
            scenario: self.scenario.clone(),
            kind: self.kind,
            phases: if self.phases.iter().any(Option::is_some) {
                self.phases.clone()
            } else {
                Vec::new()
            },
            workload: self.workload_name().to_string(),
            target: target_url.to_string(),
            target_kind: match self.target {
                Target::Mock(_) => "built-in mock",
                Target::Remote(_) => "remote",
            }
            .to_string(),
            mock_args: self.mock_args.clone(),
            model: self.workload.model.clone(),
            token_present: self.token.is_some(),
            headers: self
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), redact_header(k, v)))
                .collect(),
            stream: self.workload.stream,
            stream_usage: self.workload.stream_usage,
            max_tokens: self.workload.max_tokens,
            temperature: self.workload.temperature,
            system: self.workload.system.clone(),
            prompt: self.workload.prompt.clone(),
            timeout_s: self.timeout.as_secs_f64(),
            load: self.load.clone(),
            grace_s: self.grace.as_secs_f64(),
            strict_schedule: self.strict_schedule,
            tags: self.tags.iter().cloned().collect(),
            input_tokens: self.workload.input_tokens,
            input_tokens_stddev: self.workload.input_tokens_stddev,
            shared_prefix: self.workload.shared_prefix,
            turns: matches!(
                self.workload.name.as_str(),
                "conversation" | "prefix-caching"
            )
            .then_some(self.workload.turns),
            batch_sizes: (self.workload.name == "batch-embeddings")
                .then(|| self.workload.batch_sizes.clone()),
            endpoints: self.workload.endpoints.clone(),
            otlp: self.otlp_view.clone().map(|mut o| {
                // The mock's port is known once it listens: its origin, the
                // spec's path.
                if let (Target::Mock(_), Some(w)) = (&self.target, &self.workload.otlp) {
                    if let Ok(mut u) = reqwest::Url::parse(target_url) {
                        u.set_path(&w.path);
                        o.url = u.to_string();
                    }
                    if let (Some(plan), Some(view)) = (&self.otlp_queries, o.queries.as_mut()) {
                        view.endpoint = Some(plan.endpoint_for(target_url));
                    }
                }
                o
            }),
            dataset: self.dataset_view.clone(),
            thresholds: self.thresholds.iter().map(|t| t.expr.clone()).collect(),
            abort_on_fail: self.abort_on_fail,
            slos: self.slos.iter().map(|s| s.expr.clone()).collect(),
            outputs: self
                .outputs
                .iter()
                .map(|o| o.label())
                .chain(self.trace_requests.iter().map(|t| t.label()))
                .collect(),
            segment: (!self.segment.is_whole()).then_some(self.segment),
        }
    }
}

/// The same load, its duration cut into `n` equal stages (one per step of
/// a workload that changes by stage).
fn split_evenly(load: Load, n: usize) -> Load {
    let split = |s: Stages| {
        let total = s.total();
        let level = s.at(Duration::ZERO);
        Stages {
            start: level,
            stages: (0..n.max(1))
                .map(|_| Stage {
                    duration: total / n.max(1) as u32,
                    target: level,
                })
                .collect(),
        }
    };
    match load {
        Load::Closed { vus, iterations } => Load::Closed {
            vus: split(vus),
            iterations,
        },
        Load::Open {
            rate,
            arrival,
            max_in_flight,
        } => Load::Open {
            rate: split(rate),
            arrival,
            max_in_flight,
        },
    }
}

/// The load and each stage's phase, from the flags, the environment and the
/// scenario (in that order of precedence).
/// This process's segment and the run id, from --segment, or --segments
/// with Kubernetes' JOB_COMPLETION_INDEX, and --run-id.
fn resolve_segment(
    a: &crate::cli::SegmentArgs,
    abort_on_fail: bool,
    load: &Load,
) -> Result<(crate::executor::Segment, Option<String>)> {
    use crate::executor::Segment;
    let segment = match (a.segment, a.segments) {
        (Some(_), Some(_)) => {
            return Err(usage!(
                "give --segment I/N (or PERISCOPE_SEGMENT) or --segments N with JOB_COMPLETION_INDEX, not both"
            ))
        }
        (Some(s), None) => s,
        (None, Some(n)) => {
            let Some(index) = env_var("JOB_COMPLETION_INDEX") else {
                return Err(usage!(
                    "--segments {n} takes this process's index from JOB_COMPLETION_INDEX (set by a Kubernetes Indexed Job), which is not set: elsewhere give --segment I/{n}"
                ));
            };
            let i: u32 = index.trim().parse().map_err(|_| {
                usage!("JOB_COMPLETION_INDEX='{index}' is not a whole number")
            })?;
            Segment::new(i.saturating_add(1), n).ok_or_else(|| {
                usage!(
                    "JOB_COMPLETION_INDEX={i} does not fit --segments {n}: the indices of {n} segments run from 0 to {}",
                    n.saturating_sub(1)
                )
            })?
        }
        (None, None) => Segment::WHOLE,
    };
    let run_id = a.run_id.as_deref().map(str::trim).map(|id| {
        let ok = (1..=64).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(id.to_string())
        } else {
            Err(usage!(
                "--run-id '{id}': use 1 to 64 letters, digits, '.', '_' or '-'"
            ))
        }
    });
    let run_id = run_id.transpose()?;
    if !segment.is_whole() {
        if run_id.is_none() {
            return Err(usage!(
                "--segment {segment} needs --run-id ID, the same for every segment: it ties their results and points together and seeds their shared arrivals"
            ));
        }
        if let Load::Closed { vus, .. } = load {
            let peak = vus.peak().round() as u64;
            if peak < u64::from(segment.count) {
                return Err(usage!(
                    "--segment {segment}: the plan peaks at {peak} VUs, fewer than its {} segments; use at most {peak} segments",
                    segment.count
                ));
            }
        }
        if abort_on_fail {
            return Err(usage!(
                "--abort-on-fail judges one process's requests: with --segment it would stop one segment, not the run; drop it (the merge judges the thresholds)"
            ));
        }
        if a.start_at.is_none() {
            eprintln!(
                "warning: --segment {segment} without --start-at: each segment starts when it is ready, not together with the others"
            );
        }
    }
    Ok((segment, run_id))
}

fn resolve_load(a: &RunArgs, sc: &Scenario) -> Result<(Load, Vec<Option<String>>)> {
    let f = &sc.file;
    let env_vus = match env_var("VUS") {
        Some(v) if a.rate.is_none() && a.stages.is_none() => Some(
            v.trim()
                .parse::<u64>()
                .map_err(|_| usage!("VUS='{v}' is not a whole number of virtual users"))?,
        ),
        _ => None,
    };
    let env_duration = match env_var("DURATION") {
        Some(v) if a.stages.is_none() => {
            Some(parse_duration(&v).map_err(|e| usage!("DURATION: {e}"))?)
        }
        _ => None,
    };
    let cli_vus = a.vus.or(env_vus);
    let duration = a.duration.or(env_duration);
    if a.vus.is_some() && a.rate.is_some() {
        return Err(usage!(
            "--vus (closed model) and --rate (open model) can't be combined: choose one"
        ));
    }
    if a.max_vus.is_some() && a.rate.is_some() {
        return Err(usage!(
            "--max-vus is the peak of the closed model; with --rate, the rate is the peak: drop one"
        ));
    }
    if a.stages.is_some() && a.duration.is_some() {
        return Err(usage!("--stages sets the duration: drop --duration"));
    }
    if a.stages.is_some() && a.vus.is_some() {
        return Err(usage!("--stages sets the VUs over time: drop --vus"));
    }
    if duration.is_some_and(|d| d.is_zero()) {
        return Err(usage!("--duration must be more than 0"));
    }
    if cli_vus == Some(0) || a.max_vus == Some(0) {
        return Err(usage!("--vus must be at least 1"));
    }
    if let Some(rate) = a.rate {
        if !(rate > 0.0 && rate.is_finite()) {
            return Err(usage!(
                "--rate must be a positive number of requests per second, got {rate}"
            ));
        }
        if a.iterations.is_some() {
            return Err(usage!(
                "--iterations counts requests of the closed model (--vus); with --rate, use --duration"
            ));
        }
    }
    if a.max_in_flight == Some(0) {
        return Err(usage!("--max-in-flight must be at least 1"));
    }
    if a.iterations == Some(0) {
        return Err(usage!("--iterations must be at least 1"));
    }

    let open = a.rate.is_some() || (f.rate.is_some() && cli_vus.is_none() && a.max_vus.is_none());
    // The peak asked for on the command line, and the scenario's own.
    let cli_peak = if open {
        a.rate
    } else {
        a.max_vus.or(cli_vus).map(|v| v as f64)
    };
    let file_peak = if open {
        f.rate.as_ref().map(|r| r.0)
    } else {
        f.max_vus.as_ref().or(f.vus.as_ref()).map(|v| v.0 as f64)
    };

    // The shape over time: --stages as given, or the scenario's, fitted to
    // the peak and the duration asked for.
    let shape: Option<Vec<(Duration, f64, Option<String>)>> = match &a.stages {
        Some(list) => {
            let peak = if open {
                a.rate
            } else {
                a.max_vus.map(|v| v as f64)
            };
            let mut out = Vec::new();
            for st in &list.0 {
                let level = match (st.target, peak) {
                    (Level::Pct(_), None) => {
                        return Err(usage!(
                            "--stages in % are shares of a peak: pass --max-vus N (or --rate R)"
                        ))
                    }
                    (l, p) => l.resolve(p.unwrap_or(0.0)),
                };
                out.push((st.duration, level, st.phase.clone()));
            }
            Some(out)
        }
        None => match sc.shape(cli_peak.or(file_peak))? {
            None => None,
            Some(specs) => Some(fit_shape(sc, &specs, open, cli_peak, file_peak, duration)?),
        },
    };
    if let Some(shape) = &shape {
        if shape.iter().all(|(d, _, _)| d.is_zero()) {
            return Err(usage!("--stages: the stages add up to no time at all"));
        }
    }
    let phases = shape
        .as_ref()
        .map(|s| s.iter().map(|(_, _, p)| p.clone()).collect())
        .unwrap_or_else(|| vec![None]);
    let to_stages = |start: f64, shape: Vec<(Duration, f64, Option<String>)>| Stages {
        start,
        stages: shape
            .into_iter()
            .map(|(duration, target, _)| Stage { duration, target })
            .collect(),
    };

    if open {
        let rate = a.rate.or(f.rate.as_ref().map(|r| r.0)).unwrap_or(1.0);
        let rate = match shape {
            Some(shape) => {
                // --stages ramps from --rate; a scenario from its first level.
                let start = if a.stages.is_some() {
                    rate
                } else {
                    shape.first().map(|s| s.1).unwrap_or(rate)
                };
                to_stages(start, shape)
            }
            None => Stages::constant(
                rate,
                duration
                    .or(f.duration.as_ref().map(|d| d.0))
                    .unwrap_or(Duration::from_secs(30)),
            ),
        };
        if rate.peak() <= 0.0 {
            return Err(usage!(
                "the rate never rises above 0: nothing would be sent"
            ));
        }
        let load = Load::Open {
            rate,
            arrival: a
                .arrival
                .or(f.arrival.as_ref().map(|v| v.0))
                .unwrap_or(Arrival::Constant),
            max_in_flight: a.max_in_flight.or(f.max_in_flight.as_ref().map(|v| v.0)),
        };
        return Ok((load, phases));
    }

    if a.max_in_flight.is_some() {
        return Err(usage!(
            "--max-in-flight applies to the open model (--rate); in the closed model, --vus is the concurrency"
        ));
    }
    if a.strict_schedule {
        return Err(usage!(
            "--strict-schedule applies to the open model (--rate)"
        ));
    }
    let iterations = a.iterations.or(f.iterations.as_ref().map(|v| v.0));
    if iterations == Some(0) {
        return Err(sc.error("iterations: must be at least 1"));
    }
    let vus = match shape {
        Some(shape) => to_stages(0.0, shape),
        None => {
            let n = cli_vus
                .or(a.max_vus)
                .or(f.vus.as_ref().map(|v| v.0))
                .or(f.max_vus.as_ref().map(|v| v.0))
                .unwrap_or(1);
            if n == 0 {
                return Err(usage!("--vus must be at least 1"));
            }
            // --iterations alone runs until the count, within a bound.
            let d = duration
                .or_else(|| {
                    a.iterations
                        .is_none()
                        .then(|| f.duration.as_ref().map(|d| d.0))
                        .flatten()
                })
                .unwrap_or(if iterations.is_some() {
                    ITERATIONS_MAX_DURATION
                } else {
                    Duration::from_secs(30)
                });
            Stages::constant(n as f64, d)
        }
    };
    if vus.peak() < 1.0 {
        return Err(usage!("the stages never reach 1 VU: nothing would be sent"));
    }
    Ok((Load::Closed { vus, iterations }, phases))
}

/// A scenario's stages, in levels: shares resolved against its peak, then
/// scaled to the peak and stretched to the duration the command line asks for.
fn fit_shape(
    sc: &Scenario,
    specs: &[StageSpec],
    open: bool,
    cli_peak: Option<f64>,
    file_peak: Option<f64>,
    duration: Option<Duration>,
) -> Result<Vec<(Duration, f64, Option<String>)>> {
    let base = file_peak.or(cli_peak);
    let mut levels = Vec::with_capacity(specs.len());
    for st in specs {
        levels.push(match (st.target, base) {
            (Level::Pct(_), None) => {
                return Err(sc.error(
                    "its stages are shares of a peak: set max_vus (or rate), or pass --max-vus N",
                ))
            }
            (l, b) => l.resolve(b.unwrap_or(0.0)),
        });
    }
    let top = levels.iter().copied().fold(0.0, f64::max);
    if let (Some(peak), true) = (cli_peak, top > 0.0) {
        for l in &mut levels {
            *l *= peak / top;
        }
    }
    if !open {
        // Whole VUs, and never a step of none where the scenario asked for some.
        for (l, st) in levels.iter_mut().zip(specs) {
            let r = l.round();
            *l = if r == 0.0 && *l > 0.0 && st.target != Level::Abs(0.0) {
                1.0
            } else {
                r
            };
        }
    }
    let total: Duration = specs.iter().map(|s| s.duration).sum();
    let stretch = match duration {
        Some(d) if !total.is_zero() => d.as_secs_f64() / total.as_secs_f64(),
        _ => 1.0,
    };
    Ok(specs
        .iter()
        .zip(levels)
        .map(|(st, level)| {
            (
                Duration::from_secs_f64(st.duration.as_secs_f64() * stretch),
                level,
                st.phase.clone(),
            )
        })
        .collect())
}

/// Header names whose values are secrets.
pub fn is_secret_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "authorization",
        "api-key",
        "apikey",
        "token",
        "secret",
        "cookie",
        "password",
        "auth",
    ]
    .iter()
    .any(|s| n.contains(s))
}

fn redact_header(name: &str, value: &str) -> String {
    if is_secret_header(name) {
        "<redacted>".to_string()
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Args, Command};
    use crate::executor::describe_load;
    use clap::Parser;

    fn plan(args: &[&str]) -> Result<Plan> {
        let mut v = vec!["periscope", "run"];
        v.extend_from_slice(args);
        let Command::Run(a) = Args::try_parse_from(v).unwrap().command else {
            panic!()
        };
        Plan::from_args(&a)
    }

    #[test]
    fn segments_partition_the_dataset_and_keep_the_whole_load() {
        let whole = plan(&["--mock", "--dataset-suite", "core"]).unwrap();
        let all = whole.workload.dataset.clone().unwrap();
        let mut union: Vec<String> = Vec::new();
        for i in 1..=4 {
            let seg = format!("{i}/4");
            let p = plan(&[
                "--mock",
                "--dataset-suite",
                "core",
                "--segment",
                &seg,
                "--run-id",
                "r1",
                "--start-at",
                "2030-01-01T00:00:00Z",
            ])
            .unwrap();
            assert_eq!(p.segment.to_string(), seg);
            assert_eq!(p.run_id.as_deref(), Some("r1"));
            // Every segment carries the whole plan's load.
            assert_eq!(p.load, whole.load);
            let mine = p.workload.dataset.unwrap();
            assert_eq!(mine.len() as u64, p.segment.share(all.len() as u64));
            union.extend(mine.iter().cloned());
        }
        // No case runs twice, and none is left out.
        let mut want: Vec<String> = all.to_vec();
        want.sort();
        union.sort();
        assert_eq!(union, want);
    }

    #[test]
    fn segment_flags_say_what_to_fix() {
        for (args, needle) in [
            (vec!["--segment", "2/4"], "needs --run-id"),
            (vec!["--segment", "5/4", "--run-id", "r"], "i/n"),
            (
                vec!["--segment", "1/4", "--segments", "4", "--run-id", "r"],
                "not both",
            ),
            (
                vec!["--segment", "1/4", "--run-id", "r", "--vus", "3"],
                "use at most 3 segments",
            ),
            (vec!["--run-id", "a/b"], "letters, digits"),
            (
                vec![
                    "--segment",
                    "1/2",
                    "--run-id",
                    "r",
                    "--threshold",
                    "ttft.p95<1s",
                    "--abort-on-fail",
                ],
                "drop it",
            ),
        ] {
            let mut v = vec!["--mock"];
            v.extend(args.iter());
            let e = match Args::try_parse_from(
                ["periscope", "run"].into_iter().chain(v.iter().copied()),
            ) {
                Err(e) => e.to_string(),
                Ok(a) => {
                    let Command::Run(a) = a.command else { panic!() };
                    Plan::from_args(&a).unwrap_err().to_string()
                }
            };
            assert!(e.contains(needle), "{args:?}: {e}");
        }
    }

    #[test]
    fn closed_model_defaults() {
        let p = plan(&["--mock"]).unwrap();
        assert_eq!(
            p.load,
            Load::Closed {
                vus: Stages::constant(10.0, Duration::from_secs(30)),
                iterations: None
            },
            "the load scenario: 10 VUs for 30s"
        );
        assert_eq!(p.scenario, "load");
        assert!(p.workload.stream);
        assert_eq!(p.workload.max_tokens, 64);
    }

    #[test]
    fn bad_combinations_are_usage_errors() {
        for (args, needle) in [
            (
                vec!["--mock", "--rate", "5", "--vus", "2"],
                "can't be combined",
            ),
            (
                vec!["--mock", "--stages", "10s:5", "--duration", "5s"],
                "drop --duration",
            ),
            (vec!["--mock", "--rate", "0"], "positive"),
            (vec!["--mock", "--vus", "0"], "at least 1"),
            (vec!["--mock", "--max-in-flight", "4"], "open model"),
            (vec!["--mock", "--stages", "10s:0"], "never reach 1 VU"),
            (
                vec!["embeddingz", "--mock"],
                "unknown workload 'embeddingz'",
            ),
            (vec!["--target", "localhost:8000"], "http://"),
        ] {
            let e = plan(&args).unwrap_err();
            assert!(matches!(e, Error::Usage(_)), "{args:?}");
            assert!(e.to_string().contains(needle), "{args:?}: {e}");
            assert!(!e.to_string().contains('\n'), "one line: {e}");
        }
    }

    #[test]
    fn open_model_and_stages() {
        let p = plan(&[
            "--mock",
            "--rate",
            "50",
            "--duration",
            "10s",
            "--max-in-flight",
            "5",
        ])
        .unwrap();
        assert!(describe_load(&p.load).contains("≈ 500 requests"));
        let p = plan(&["--mock", "--stages", "10s:10,20s:10,10s:0"]).unwrap();
        assert_eq!(p.load.duration(), Duration::from_secs(40));
        assert_eq!(
            describe_load(&p.load),
            "closed model: VUs 0→10 over 10s, 10 for 20s, 10→0 over 10s"
        );
    }

    fn holds(p: &Plan) -> Vec<(u64, f64)> {
        p.load
            .stages()
            .stages
            .iter()
            .filter(|s| !s.duration.is_zero())
            .map(|s| (s.duration.as_secs(), s.target))
            .collect()
    }

    #[test]
    fn scenarios_fit_the_peak_and_duration_asked_for() {
        // stress: 5 steps of 20%, scaled to --max-vus and stretched to --duration.
        let p = plan(&[
            "--mock",
            "--scenario",
            "stress",
            "--max-vus",
            "10",
            "--duration",
            "20s",
        ])
        .unwrap();
        assert_eq!(p.kind, Kind::Stress);
        assert_eq!(
            holds(&p),
            vec![(4, 2.0), (4, 4.0), (4, 6.0), (4, 8.0), (4, 10.0)]
        );
        assert_eq!(
            p.thresholds[0].expr, "error_rate<0.01",
            "the file's thresholds"
        );
        // --vus is the peak of a staged scenario too.
        let p = plan(&["--mock", "--scenario", "stress", "--vus", "5"]).unwrap();
        assert_eq!(
            holds(&p).iter().map(|h| h.1).collect::<Vec<_>>(),
            vec![1.0, 2.0, 3.0, 4.0, 5.0]
        );
        // benchmark doubles up to the peak.
        let p = plan(&[
            "--mock",
            "--scenario",
            "benchmark",
            "--max-vus",
            "8",
            "--duration",
            "8s",
        ])
        .unwrap();
        assert_eq!(holds(&p), vec![(2, 1.0), (2, 2.0), (2, 4.0), (2, 8.0)]);
        // With --rate the same shape is an arrival rate, and phases follow their stages.
        let p = plan(&[
            "--mock",
            "--scenario",
            "spike",
            "--rate",
            "100",
            "--duration",
            "10s",
        ])
        .unwrap();
        assert!(p.load.is_open());
        assert_eq!(p.load.stages().peak(), 100.0);
        let named: Vec<&str> = p.phases.iter().flatten().map(String::as_str).collect();
        assert_eq!(named, ["before", "spike", "after"]);
        // soak compares tenths.
        let p = plan(&["--mock", "--scenario", "soak", "--duration", "20s"]).unwrap();
        assert_eq!(holds(&p), vec![(2, 10.0); 10]);
        // --stages in % need a peak.
        let e = plan(&["--mock", "--stages", "5s:50%"]).unwrap_err();
        assert!(e.to_string().contains("--max-vus"), "{e}");
        let p = plan(&["--mock", "--stages", "5s:50%", "--max-vus", "8"]).unwrap();
        assert_eq!(p.load.stages().peak(), 4.0);
        // batch-embeddings owns its stages.
        let e = plan(&["batch-embeddings", "--mock", "--scenario", "stress"]).unwrap_err();
        assert!(e.to_string().contains("one stage per batch size"), "{e}");
        let p = plan(&[
            "batch-embeddings",
            "--mock",
            "--scenario",
            "stress",
            "--batch-sizes",
            "32",
        ])
        .unwrap();
        assert_eq!(holds(&p).len(), 5, "one size, the scenario's steps");
    }

    #[test]
    fn flags_win_over_a_scenario_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("my.yaml");
        std::fs::write(
            &path,
            "workload: embeddings\nmodel: m-file\nvus: 3\nduration: 7s\nmax_tokens: 9\nstream: false\n\
             thresholds: ['error_rate<0.5']\ntags: {team: a, build: 12}\nheaders: ['X-From: file']\n",
        )
        .unwrap();
        let file = path.to_str().unwrap();
        let p = plan(&[file, "--mock"]).unwrap();
        assert_eq!(p.workload.name, "embeddings");
        assert_eq!(p.workload.model, "m-file");
        assert_eq!(p.load.stages().peak(), 3.0);
        assert_eq!(p.load.duration(), Duration::from_secs(7));
        assert!(!p.workload.stream);
        assert_eq!(
            p.tags,
            vec![("build".into(), "12".into()), ("team".into(), "a".into())]
        );
        assert_eq!(p.headers, vec![("X-From".into(), "file".into())]);
        let p = plan(&[
            file,
            "--mock",
            "--model",
            "m-cli",
            "--vus",
            "2",
            "--stream",
            "--threshold",
            "ok>1",
            "--tag",
            "team=b",
        ])
        .unwrap();
        assert_eq!(p.workload.model, "m-cli");
        assert_eq!(p.load.stages().peak(), 2.0);
        assert_eq!(
            p.load.duration(),
            Duration::from_secs(7),
            "the file's duration stays"
        );
        assert!(p.workload.stream);
        let exprs: Vec<&str> = p.thresholds.iter().map(|t| t.expr.as_str()).collect();
        assert_eq!(
            exprs,
            ["error_rate<0.5", "ok>1"],
            "the file's thresholds and the flag's"
        );
        assert!(p.tags.contains(&("team".into(), "b".into())));
        assert!(!p.tags.contains(&("team".into(), "a".into())));
        // A file and --scenario at once is ambiguous.
        let e = plan(&[file, "--mock", "--scenario", "smoke"]).unwrap_err();
        assert!(e.to_string().contains("choose one"), "{e}");
        let e = plan(&["--mock", "--scenario", "nope"]).unwrap_err();
        assert!(e.to_string().contains("unknown scenario 'nope'"), "{e}");
    }

    #[test]
    fn secrets_are_redacted_in_the_view() {
        let p = plan(&[
            "--mock",
            "--token",
            "sk-secret",
            "--header",
            "X-Api-Key: k1",
            "--header",
            "X-Agent: a",
        ])
        .unwrap();
        let v = serde_json::to_string(&p.view("http://x/v1")).unwrap();
        assert!(!v.contains("sk-secret"));
        assert!(!v.contains("k1"));
        assert!(v.contains("\"token_present\":true"));
        assert!(v.contains("X-Agent"));
    }
}
