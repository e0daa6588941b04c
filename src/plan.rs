//! Args + environment + defaults → a validated `Plan`.
//!
//! Everything a run needs is resolved and checked here, before anything is
//! sent: a bad combination is a one-line usage error naming the flag.
//! Precedence: flags > environment > built-in defaults.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::cli::{parse_duration, RunArgs};
use crate::client::normalize_base;
use crate::error::{Error, Result};
use crate::executor::{Load, Stage, Stages};
use crate::mock::MockConfig;
use crate::usage;
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

/// Serialize a `Duration` as seconds (f64).
pub mod duration_secs {
    use serde::Serializer;
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

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
    pub workload: WorkloadSpec,
    pub target: Target,
    /// The flags given to the in-process mock, for the record.
    pub mock_args: Option<String>,
    pub token: Option<String>,
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
    pub http_engine: crate::client::Engine,
    pub load: Load,
    pub grace: Duration,
    pub strict_schedule: bool,
    pub preflight: bool,
    pub json: Option<PathBuf>,
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
        let mut name = match a.workload.as_str() {
            "chat" => "completions",
            other if workload::NAMES.iter().any(|(n, _)| *n == other) => other,
            other => {
                let names: Vec<&str> = workload::NAMES.iter().map(|(n, _)| *n).collect();
                return Err(usage!(
                    "unknown workload '{other}': expected one of {} (see `periscope scenarios`)",
                    names.join(", ")
                ));
            }
        }
        .to_string();
        if name == "embeddings"
            && env_var("ENABLE_BATCH_MODE")
                .is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
        {
            name = "batch-embeddings".into();
        }
        let max_tokens = match a.max_tokens {
            Some(n) => n,
            None => {
                let env = if name == "decode-heavy" {
                    env_var("MAX_OUTPUT_TOKENS").or_else(|| env_var("MAX_TOKENS"))
                } else {
                    env_var("MAX_TOKENS")
                };
                match env {
                    Some(v) => v
                        .trim()
                        .parse()
                        .map_err(|_| usage!("MAX_TOKENS='{v}' is not a whole number of tokens"))?,
                    None => workload::default_max_tokens(&name),
                }
            }
        };
        if a.batch_sizes.contains(&0) {
            return Err(usage!("--batch-sizes must all be at least 1"));
        }
        if a.input_tokens == Some(0) {
            return Err(usage!("--input-tokens must be at least 1"));
        }
        if !(a.input_tokens_stddev >= 0.0 && a.input_tokens_stddev.is_finite()) {
            return Err(usage!("--input-tokens-stddev must be 0 or more"));
        }
        if a.turns == Some(0) {
            return Err(usage!("--turns must be at least 1"));
        }
        if !a.endpoints.is_empty() && name != "http" {
            return Err(usage!("--endpoint applies to the http workload: `periscope run http --endpoint GET:/health`"));
        }

        let (target, mock_args) = if a.mock {
            let cfg = MockConfig::from_flag_string(a.mock_args.as_deref().unwrap_or(""))
                .map_err(Error::Usage)?;
            (Target::Mock(Box::new(cfg)), a.mock_args.clone())
        } else {
            match &a.target {
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
        if let Some(t) = a.temperature {
            if !(0.0..=2.0).contains(&t) {
                return Err(usage!("--temperature must be between 0 and 2, got {t}"));
            }
        }
        if a.timeout.is_zero() {
            return Err(usage!("--timeout must be more than 0"));
        }
        if a.abort_on_fail && a.thresholds.is_empty() {
            return Err(usage!("--abort-on-fail needs at least one --threshold"));
        }
        if a.progress_every == Some(0) {
            return Err(usage!("--progress-every must be at least 1 (seconds)"));
        }

        let batch_sizes = if a.batch_sizes.is_empty() {
            vec![1, 8, 32, 128]
        } else {
            a.batch_sizes.clone()
        };
        let mut load = resolve_load(a)?;
        if name == "batch-embeddings" && a.stages.is_none() {
            // One stage per batch size, splitting the duration evenly.
            load = split_evenly(load, batch_sizes.len());
        }
        let stream = !a.no_stream;
        let default_model = match name.as_str() {
            "embeddings" | "batch-embeddings" => DEFAULT_EMBEDDING_MODEL,
            _ => DEFAULT_MODEL,
        };
        let model = a
            .model
            .clone()
            .or_else(|| env_var(workload::model_env(&name)))
            .or_else(|| {
                (name == "prefix-caching")
                    .then(|| env_var("OPENAI_COMPLETION_MODEL"))
                    .flatten()
            })
            .unwrap_or_else(|| default_model.to_string());
        let default_prompt = match name.as_str() {
            "embeddings" | "batch-embeddings" => DEFAULT_EMBEDDING_INPUT,
            _ => DEFAULT_PROMPT,
        };
        Ok(Plan {
            workload: WorkloadSpec {
                name: name.clone(),
                model,
                system: a.system.clone(),
                prompt: a
                    .prompt
                    .clone()
                    .unwrap_or_else(|| default_prompt.to_string()),
                max_tokens,
                temperature: a.temperature,
                stream,
                input_tokens: a.input_tokens,
                input_tokens_stddev: a.input_tokens_stddev,
                shared_prefix: a.shared_prefix,
                turns: a.turns.unwrap_or(match name.as_str() {
                    "prefix-caching" => 10,
                    _ => 5,
                }),
                batch_sizes,
                endpoints: a.endpoints.clone(),
                dataset: None,
            },
            target,
            mock_args,
            token: a.token.clone().filter(|t| !t.is_empty()),
            headers: a.headers.clone(),
            timeout: a.timeout,
            http_engine: a.http_engine,
            load,
            grace: a.grace,
            strict_schedule: a.strict_schedule,
            preflight: !a.no_preflight,
            json: a.json.clone(),
            progress_every: a.progress_every,
            tags: a.tags.clone(),
            dry_run: a.dry_run,
            thresholds: a.thresholds.clone(),
            abort_on_fail: a.abort_on_fail,
            slos: a.slos.clone(),
        })
    }

    /// The workload this plan runs.
    pub fn build_workload(&self) -> std::sync::Arc<dyn Workload> {
        workload::build(&self.workload)
    }

    pub fn workload_name(&self) -> &str {
        &self.workload.name
    }

    /// What the plan is, with secrets redacted: for `--dry-run` and the result.
    pub fn view(&self, target_url: &str) -> PlanView {
        PlanView {
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
            thresholds: self.thresholds.iter().map(|t| t.expr.clone()).collect(),
            abort_on_fail: self.abort_on_fail,
            slos: self.slos.iter().map(|s| s.expr.clone()).collect(),
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

fn resolve_load(a: &RunArgs) -> Result<Load> {
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
    let vus = a.vus.or(env_vus);
    let duration = a.duration.or(env_duration);
    if a.vus.is_some() && a.rate.is_some() {
        return Err(usage!(
            "--vus (closed model) and --rate (open model) can't be combined: choose one"
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
    let stages = a.stages.as_ref().map(|s| {
        s.0.iter()
            .map(|(d, t)| Stage {
                duration: *d,
                target: *t,
            })
            .collect::<Vec<_>>()
    });
    if let Some(s) = &stages {
        if s.iter().all(|st| st.duration.is_zero()) {
            return Err(usage!("--stages: the stages add up to no time at all"));
        }
    }
    match a.rate {
        Some(rate) => {
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
            if a.max_in_flight == Some(0) {
                return Err(usage!("--max-in-flight must be at least 1"));
            }
            let rate = match stages {
                Some(stages) => Stages {
                    start: rate,
                    stages,
                },
                None => Stages::constant(rate, duration.unwrap_or(Duration::from_secs(30))),
            };
            Ok(Load::Open {
                rate,
                arrival: a.arrival,
                max_in_flight: a.max_in_flight,
            })
        }
        None => {
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
            if a.iterations == Some(0) {
                return Err(usage!("--iterations must be at least 1"));
            }
            let vus = match stages {
                Some(stages) => Stages { start: 0.0, stages },
                None => {
                    let n = vus.unwrap_or(1);
                    if n == 0 {
                        return Err(usage!("--vus must be at least 1"));
                    }
                    let d = duration.unwrap_or(if a.iterations.is_some() {
                        ITERATIONS_MAX_DURATION
                    } else {
                        Duration::from_secs(30)
                    });
                    Stages::constant(n as f64, d)
                }
            };
            if vus.peak() < 1.0 {
                return Err(usage!("--stages never reach 1 VU: nothing would be sent"));
            }
            Ok(Load::Closed {
                vus,
                iterations: a.iterations,
            })
        }
    }
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

/// The plan as written to outputs (`--dry-run`, the JSON result).
#[derive(Debug, Clone, Serialize)]
pub struct PlanView {
    pub workload: String,
    /// The API base URL requests went to.
    pub target: String,
    /// `built-in mock` or `remote`.
    pub target_kind: String,
    /// Flags of the in-process mock.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mock_args: Option<String>,
    pub model: String,
    /// Whether an API key was given (the key itself is never written).
    pub token_present: bool,
    /// Extra headers; values of secret-looking names are redacted.
    pub headers: Vec<(String, String)>,
    pub stream: bool,
    pub max_tokens: u32,
    pub temperature: Option<f32>,
    pub system: Option<String>,
    pub prompt: String,
    pub timeout_s: f64,
    pub load: Load,
    pub grace_s: f64,
    pub strict_schedule: bool,
    pub tags: std::collections::BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u32>,
    pub input_tokens_stddev: f64,
    pub shared_prefix: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub turns: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_sizes: Option<Vec<u32>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<crate::workload::Endpoint>,
    pub thresholds: Vec<String>,
    pub abort_on_fail: bool,
    pub slos: Vec<String>,
}

/// A human line describing the load, for `--dry-run` and the report.
pub fn describe_load(load: &Load) -> String {
    fn shape(s: &Stages, unit: &str) -> String {
        if s.stages.len() == 1 && s.stages[0].target == s.start {
            format!(
                "{} {unit} for {}",
                fmt_num(s.start),
                fmt_dur(s.stages[0].duration)
            )
        } else {
            let steps: Vec<String> = s
                .stages
                .iter()
                .map(|st| format!("{} over {}", fmt_num(st.target), fmt_dur(st.duration)))
                .collect();
            format!("{unit} from {} → {}", fmt_num(s.start), steps.join(" → "))
        }
    }
    match load {
        Load::Closed { vus, iterations } => {
            let mut s = format!("closed model: {}", shape(vus, "VUs"));
            if let Some(n) = iterations {
                s.push_str(&format!(", stopping after {n} requests"));
            }
            s
        }
        Load::Open {
            rate,
            arrival,
            max_in_flight,
        } => {
            let mut s = format!(
                "open model: {} ({} arrivals, ≈ {} requests)",
                shape(rate, "req/s"),
                match arrival {
                    crate::cli::Arrival::Constant => "constant",
                    crate::cli::Arrival::Poisson => "Poisson",
                },
                rate.integral().round()
            );
            if let Some(m) = max_in_flight {
                s.push_str(&format!(", at most {m} in flight"));
            }
            s
        }
    }
}

fn fmt_num(x: f64) -> String {
    if x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.2}")
    }
}

/// `90s` → `1m30s`.
pub fn fmt_dur(d: Duration) -> String {
    humantime::format_duration(Duration::from_millis(d.as_millis() as u64)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Args, Command};
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
    fn closed_model_defaults() {
        let p = plan(&["--mock"]).unwrap();
        assert_eq!(
            p.load,
            Load::Closed {
                vus: Stages::constant(1.0, Duration::from_secs(30)),
                iterations: None
            }
        );
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
        assert!(describe_load(&p.load).starts_with("closed model: VUs from 0"));
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
