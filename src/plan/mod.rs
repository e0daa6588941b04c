//! Args + scenario file + environment + defaults → a validated [`Plan`].
//!
//! Everything a run needs is resolved and checked here, before anything is
//! sent: a bad combination is a one-line usage error naming the flag.
//! Precedence: flags > environment > scenario file > built-in defaults.
//! A plan is made of parts, each resolved by a module of its own: what
//! each request is ([`workload`]), where it goes ([`target`]) and how it is
//! sent ([`request`]), the load shape ([`load`]), this process's share of
//! it ([`segment`]), what is written ([`outputs`]) and what the run is
//! judged by ([`checks`]); otlp-traces' settings are in [`traces`].

mod checks;
mod load;
mod outputs;
mod request;
mod segment;
mod target;
#[cfg(test)]
mod tests;
mod traces;
mod workload;

use std::sync::Arc;
use std::time::Duration;

pub use checks::Checks;
pub use load::LoadPlan;
pub use outputs::Outputs;
pub use request::RequestPlan;
pub use segment::SegmentPlan;
pub use target::Target;
pub use workload::WorkloadPlan;

use crate::cli::RunArgs;
use crate::error::{Error, Result};
use crate::report::view::{PlanView, TargetKind};
use crate::scenario::{self, Kind};
use crate::tokenizer::Tokenizer;
use crate::usage;

/// How long a run with `--iterations` and no `--duration` may take at most.
pub const ITERATIONS_MAX_DURATION: Duration = Duration::from_secs(600);

/// The scenario a plan follows: its name (`load` unless one was chosen) and
/// what it reports.
#[derive(Debug, Clone)]
pub struct ScenarioRef {
    pub name: String,
    pub kind: Kind,
}

/// A resolved, validated run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub scenario: ScenarioRef,
    pub workload: WorkloadPlan,
    pub target: Target,
    pub request: RequestPlan,
    pub load: LoadPlan,
    pub segment: SegmentPlan,
    pub outputs: Outputs,
    pub checks: Checks,
    /// `--dry-run`: print the plan, send nothing.
    pub dry_run: bool,
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// An otlp-traces run on the console platform with nowhere to send to.
fn console_without_endpoint(a: &RunArgs, f: &scenario::ScenarioFile) -> bool {
    let otlp = a.workload.as_deref().or(f.workload.as_deref()) == Some("otlp-traces");
    let platform = a
        .otlp
        .platform
        .map(|p| p == crate::otlp::Platform::Console)
        .or_else(|| env_var("OTEL_PLATFORM").map(|p| p.trim().eq_ignore_ascii_case("console")))
        .or_else(|| {
            f.otlp
                .as_ref()
                .and_then(|o| o.platform.as_deref())
                .map(|p| p.eq_ignore_ascii_case("console"))
        })
        .unwrap_or(false);
    let somewhere = a.mock
        || !a.endpoints.is_empty()
        || a.target.is_some()
        || f.target.is_some()
        || f.otlp.as_ref().is_some_and(|o| o.endpoint.is_some())
        || env_var("OTEL_EXPORTER_OTLP_ENDPOINT").is_some()
        || env_var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some();
    otlp && platform && !somewhere
}

impl Plan {
    pub fn from_args(a: &RunArgs) -> Result<Plan> {
        if let Some(seed) = a.request.seed_defaults {
            let mut a = a.clone();
            a.request.seed_defaults = None;
            if seed.apply(&mut a.request) && !a.stream {
                a.no_stream = true;
            }
            return Plan::from_args(&a);
        }
        let script_arg = a
            .workload
            .as_deref()
            .filter(|w| crate::script::is_script_arg(w));
        let file_arg = a
            .workload
            .as_deref()
            .filter(|w| scenario::is_file_arg(w) && script_arg.is_none());
        if file_arg.is_some() && a.scenario.is_some() {
            return Err(usage!(
                "a scenario file was given both as the first argument and with --scenario: choose one"
            ));
        }
        let script = match script_arg {
            Some(path) => Some(Arc::new(
                crate::script::Script::load(path).map_err(|e| usage!("{e}"))?,
            )),
            None => None,
        };
        let sc = match &script {
            // The script's options, as a scenario file's keys (under the flags).
            Some(s) => {
                if a.scenario.is_some() {
                    return Err(usage!(
                        "a script sets its load in `export const options` (or the flags), not --scenario"
                    ));
                }
                scenario::parse(
                    &crate::script::options::to_scenario(&s.path, &s.options)
                        .map_err(|e| usage!("{e}"))?,
                    &s.path,
                )?
                .scripted(&s.path)
            }
            None => scenario::load(
                file_arg
                    .or(a.scenario.as_deref())
                    .unwrap_or(scenario::DEFAULT),
            )?,
        };
        if console_without_endpoint(a, &sc.file) {
            // Traces printed, not sent anywhere: the built-in mock takes them.
            let mut a = a.clone();
            a.mock = true;
            return Plan::from_args(&a);
        }
        // The OTLP suites' variables, as flags of an otlp-traces run.
        let with_env;
        let a = if a.workload.as_deref().or(sc.file.workload.as_deref()) == Some("otlp-traces") {
            with_env = traces::env_args(a, &sc.file).map_err(Error::Usage)?;
            &with_env
        } else {
            a
        };
        let (mut workload, exports) = WorkloadPlan::from_args(a, &sc)?;
        {
            use crate::workload::WorkloadKind as K;
            let k = workload.spec.kind;
            if a.replay.is_some()
                && !matches!(
                    k,
                    K::Completions | K::Responses | K::Messages | K::TextCompletions
                )
            {
                return Err(usage!(
                    "--replay replays chat completions, responses, messages or text-completions, not {}",
                    k.name()
                ));
            }
        }
        workload.spec.script = script;
        let checks = Checks::from_args(a, &sc.file, workload.spec.script.is_some())?;
        let outputs = Outputs::from_args(a, &sc.file)?;
        if let Some(t) = checks
            .thresholds
            .iter()
            .find(|t| t.expr.starts_with("server.promql."))
        {
            if outputs
                .server
                .as_ref()
                .is_none_or(|s| s.prometheus.is_none())
            {
                return Err(usage!(
                    "threshold '{}' is on a --promql query: add --prometheus URL --promql 'NAME: EXPR'",
                    t.expr
                ));
            }
        }
        if let Some(t) = checks
            .thresholds
            .iter()
            .find(|t| t.is_server() && !t.expr.starts_with("server.promql."))
        {
            if outputs.server.as_ref().is_none_or(|s| s.targets.is_empty()) {
                return Err(usage!(
                    "threshold '{}' is on the server's metrics: add --server-metrics [URL]",
                    t.expr
                ));
            }
        }
        let anthropic = workload.spec.kind == crate::workload::WorkloadKind::Messages;
        // Anthropic's variables, read for the Messages API as OpenAI's are
        // for the others (an explicit --target or --token still wins).
        let base_url = match (anthropic, env_var("ANTHROPIC_BASE_URL")) {
            (true, Some(u)) if a.target.is_none() || a.target == env_var("OPENAI_BASE_URL") => {
                Some(u)
            }
            _ => None,
        };
        let target = Target::from_args(
            a,
            &sc.file,
            exports.url.as_ref(),
            base_url.as_ref(),
            workload.spec.kind.apis(workload.spec.api),
            &format!("the {} workload", workload.spec.kind.name()),
        )?;
        let mut request = RequestPlan::from_args(a, &sc.file, &exports.headers)?;
        request.connect.grpc = exports.grpc;
        if anthropic {
            request.anthropic(env_var("ANTHROPIC_API_KEY").filter(|_| {
                a.request.token.is_none() || a.request.token == env_var("OPENAI_API_KEY")
            }));
        }
        let mut load = LoadPlan::from_args(
            a,
            &sc,
            workload.spec.kind,
            exports.rate,
            workload.spec.batch_sizes.len(),
        )?;
        if let Some(t) = a.think_time.filter(|_| a.replay.is_none()) {
            if !workload.spec.kind.has_turns() || load.shape.is_open() {
                return Err(usage!(
                    "--think-time waits between a session's turns: conversation, prefix-caching or tool-calls run by VUs (--vus, --stages), or a --replay trace's sessions"
                ));
            }
            load.think = Some(t).filter(|t| !t.is_zero());
        }
        if load.search.is_some() && checks.step_thresholds().is_empty() {
            return Err(usage!(
                "find-and-hold raises the load until a bound breaks: give one, e.g. --threshold 'ttft.p95<500ms' (or --slo 'ttft<500ms')"
            ));
        }
        if load.search.is_some() && a.segments.segment.is_some() {
            return Err(usage!(
                "find-and-hold steps by what one process sees: run it without --segment"
            ));
        }
        if workload.spec.script.is_some() && load.shape.is_open() {
            return Err(usage!(
                "a script runs VUs (the closed model): use --vus, --stages or --iterations, not --rate"
            ));
        }
        let segment = SegmentPlan::from_args(&a.segments, checks.abort_on_fail, &load.shape)?;
        workload.keep_segment(segment.segment)?;
        Ok(Plan {
            // --adaptive makes any scenario's load a find-and-hold.
            scenario: match &load.search {
                Some(_) if sc.kind != Kind::FindAndHold => ScenarioRef {
                    name: "find-and-hold".to_string(),
                    kind: Kind::FindAndHold,
                },
                _ => ScenarioRef {
                    name: sc.name.clone(),
                    kind: sc.kind,
                },
            },
            workload,
            target,
            request,
            load,
            segment,
            outputs,
            checks,
            dry_run: a.dry_run,
        })
    }

    /// The workload this plan runs.
    pub fn build_workload(&self, tok: &Arc<Tokenizer>) -> Arc<dyn crate::workload::Workload> {
        crate::workload::build(&self.workload.spec, tok)
    }

    /// The URL the workload's requests go to (its first API's endpoint
    /// under the target's base; the base itself for plain HTTP and
    /// scripts; the mock's, once it listens, as `base`).
    pub fn sent_to_at(&self, base: &str) -> String {
        let w = &self.workload.spec;
        match w.kind.apis(w.api).first() {
            _ if w.otlp.is_some() => base.to_string(),
            // Plain HTTP paths are from the origin's root.
            _ if w.kind == crate::workload::WorkloadKind::Http => {
                crate::endpoint::origin(base).unwrap_or_else(|| base.to_string())
            }
            Some(api) => format!("{base}/{}", api.path()),
            None => base.to_string(),
        }
    }

    /// [`Plan::sent_to_at`] the target's base (a remote target's).
    pub fn sent_to(&self) -> String {
        match &self.target {
            Target::Remote(base) => self.sent_to_at(base),
            Target::Mock { .. } => self.sent_to_at("http://127.0.0.1:<free port>/v1"),
        }
    }

    pub fn workload_name(&self) -> &'static str {
        self.workload.spec.kind.name()
    }

    /// What the plan is, with secrets redacted: for `--dry-run` and the result.
    pub fn view(&self, target_url: &str) -> PlanView {
        let w = &self.workload.spec;
        PlanView {
            scenario: self.scenario.name.clone(),
            kind: self.scenario.kind,
            phases: if self.load.phases.iter().any(Option::is_some) {
                self.load.phases.clone()
            } else {
                Vec::new()
            },
            workload: self.workload.spec.kind,
            target: target_url.to_string(),
            sent_to: self.sent_to_at(target_url),
            jitter_ms: self.load.jitter.map(|j| j.as_millis() as u64),
            search: self.load.search.clone(),
            think_ms: self.load.think.map(|t| t.as_secs_f64() * 1000.0),
            proxy: match &self.target {
                Target::Remote(_) => reqwest::Url::parse(target_url).ok().and_then(|u| {
                    crate::client::proxy::proxies()
                        .for_url(&u)
                        .map(crate::client::proxy::Proxy::shown)
                }),
                Target::Mock { .. } => None,
            },
            accept_encoding: self
                .request
                .connect
                .compression
                .then(|| crate::client::ACCEPT_CODINGS.to_string()),
            session_header: w.session_header.clone().filter(|_| {
                w.kind.has_turns()
                    || matches!(
                        self.load.shape,
                        crate::executor::Load::Open {
                            replay: Some(_),
                            ..
                        }
                    )
            }),
            lora: w.lora.as_ref().map(|l| crate::report::view::LoraView {
                adapters: l.adapters.iter().map(|a| a.to_string()).collect(),
                assignment: match &l.assignment {
                    crate::workload::Assignment::Random => "random".into(),
                    crate::workload::Assignment::RoundRobin => "round-robin".into(),
                    crate::workload::Assignment::Weights(w) => format!(
                        "weights={}",
                        w.iter()
                            .map(|x| x.to_string())
                            .collect::<Vec<_>>()
                            .join(",")
                    ),
                },
            }),
            prices: self.checks.prices,
            target_kind: match self.target {
                Target::Mock { .. } => TargetKind::Mock,
                Target::Remote(_) => TargetKind::Remote,
            },
            mock_args: match &self.target {
                Target::Mock { flags, .. } => flags.clone(),
                Target::Remote(_) => None,
            },
            model: w.model.clone(),
            token_present: self.request.token.is_some(),
            headers: self
                .request
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), redact_header(k, v)))
                .collect(),
            stream: w.stream,
            stream_usage: w.stream_usage,
            max_tokens: w.max_tokens,
            temperature: w.temperature,
            system: w.system.clone(),
            prompt: w.prompt.clone(),
            timeout_s: self.request.timeout.as_secs_f64(),
            load: self.load.shape.clone(),
            grace_s: self.load.grace.as_secs_f64(),
            strict_schedule: self.load.strict_schedule,
            tags: self.outputs.tags.iter().cloned().collect(),
            input_tokens: w.input_tokens,
            input_tokens_stddev: w.input_tokens_stddev,
            shared_prefix: w.shared_prefix,
            turns: w.kind.has_turns().then_some(w.turns),
            batch_sizes: (w.kind == crate::workload::WorkloadKind::BatchEmbeddings)
                .then(|| w.batch_sizes.clone()),
            endpoints: w.endpoints.clone(),
            stage_endpoints: w.stage_endpoints.clone(),
            otlp: self.workload.otlp.clone().map(|mut o| {
                // The mock's port is known once it listens: its origin, the
                // spec's path.
                if let (true, Some(spec)) = (self.target.is_mock(), &w.otlp) {
                    if let Ok(mut u) = reqwest::Url::parse(target_url) {
                        u.set_path(&spec.path);
                        o.url = u.to_string();
                    }
                    if let (Some(plan), Some(view)) = (&self.workload.queries, o.queries.as_mut()) {
                        view.endpoint = Some(plan.endpoint_for(target_url));
                    }
                }
                o
            }),
            dataset: self.workload.dataset.clone(),
            script: w.script.as_ref().map(|s| s.path.clone()),
            thresholds: self
                .checks
                .thresholds
                .iter()
                .map(|t| t.expr.clone())
                .collect(),
            abort_on_fail: self.checks.abort_on_fail,
            slos: self.checks.slos.iter().map(|s| s.expr.clone()).collect(),
            outputs: self
                .outputs
                .live
                .iter()
                .map(|o| o.label())
                .chain(self.outputs.trace_requests.iter().map(|t| t.label()))
                .collect(),
            segment: (!self.segment.segment.is_whole()).then_some(self.segment.segment),
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
