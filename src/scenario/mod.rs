//! Scenarios: named load tests written as YAML.
//!
//! The built-in ones live in `scenarios/*.yaml` and are embedded in the
//! binary; a user's file has the same keys (`periscope run my.yaml`). A
//! scenario fills in what the command line leaves out: flags win, then the
//! environment (`VUS`, `DURATION`, `OPENAI_*`), then the file, then the
//! built-in defaults. `${VAR}` and `${VAR:-default}` in the file are replaced
//! from the environment before it is read.
//!
//! Every scalar is checked while the YAML is read, so an unknown key, a bad
//! duration or a negative count is reported with the file, the line and the
//! key (`stress.yaml:6:15: stages[1].duration: 'abc' is not a duration…`).

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::time::Duration;

use clap::ValueEnum;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::executor::shape::{Level, StageSpec};
use crate::executor::Arrival;
use crate::slo::{Slo, Threshold};
use crate::values::{parse_duration, parse_header};
use crate::workload::Endpoint;

pub mod profile;

/// The built-in scenarios: name and YAML text.
pub const BUILTIN: &[(&str, &str)] = &[
    ("smoke", include_str!("../../scenarios/smoke.yaml")),
    ("load", include_str!("../../scenarios/load.yaml")),
    ("stress", include_str!("../../scenarios/stress.yaml")),
    ("spike", include_str!("../../scenarios/spike.yaml")),
    ("soak", include_str!("../../scenarios/soak.yaml")),
    ("recovery", include_str!("../../scenarios/recovery.yaml")),
    ("benchmark", include_str!("../../scenarios/benchmark.yaml")),
    (
        "find-and-hold",
        include_str!("../../scenarios/find-and-hold.yaml"),
    ),
    (
        "otlp-1x-demo",
        include_str!("../../scenarios/otlp-1x-demo.yaml"),
    ),
    (
        "otlp-1x-extra-small",
        include_str!("../../scenarios/otlp-1x-extra-small.yaml"),
    ),
    (
        "otlp-1x-small",
        include_str!("../../scenarios/otlp-1x-small.yaml"),
    ),
    (
        "otlp-1x-medium",
        include_str!("../../scenarios/otlp-1x-medium.yaml"),
    ),
    (
        "http-light",
        include_str!("../../scenarios/http-light.yaml"),
    ),
    (
        "http-medium",
        include_str!("../../scenarios/http-medium.yaml"),
    ),
    (
        "http-heavy",
        include_str!("../../scenarios/http-heavy.yaml"),
    ),
    (
        "otlp-small",
        include_str!("../../scenarios/otlp-small.yaml"),
    ),
    (
        "otlp-medium",
        include_str!("../../scenarios/otlp-medium.yaml"),
    ),
    (
        "otlp-large",
        include_str!("../../scenarios/otlp-large.yaml"),
    ),
    (
        "otlp-xlarge",
        include_str!("../../scenarios/otlp-xlarge.yaml"),
    ),
];

/// The scenario a run without `--scenario` uses.
pub const DEFAULT: &str = "load";

/// What a scenario reports: the figure its load pattern exists to find.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Constant load: throughput and latency.
    #[default]
    Load,
    /// A few requests under strict thresholds: is the service up and sane.
    Smoke,
    /// Stages rising to a peak: the highest stage that met the thresholds.
    Stress,
    /// Baseline, sudden jump, back: failures and latency during and after.
    Spike,
    /// Long moderate load: p95 drift and the generator's memory growth.
    Soak,
    /// High load then normal: time until p95 is back near the baseline.
    Recovery,
    /// VU steps 1, 2, 4, 8…: one row per step, and where throughput peaks.
    Benchmark,
    /// VUs raised until a threshold breaks, then the last passing level held.
    #[serde(rename = "find-and-hold")]
    #[value(name = "find-and-hold")]
    FindAndHold,
}

/// A scalar read from its text form, so a bad value is reported at its line.
pub trait Scalar: Sized {
    const EXPECTING: &'static str;
    fn parse(s: &str) -> std::result::Result<Self, String>;
}

/// A checked scalar of a scenario file.
#[derive(Debug, Clone, PartialEq)]
pub struct Val<T>(pub T);

impl<'de, T: Scalar> Deserialize<'de> for Val<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<T: Scalar> V<T> {
            fn done<E: de::Error>(s: &str) -> std::result::Result<Val<T>, E> {
                T::parse(s).map(Val).map_err(E::custom)
            }
        }
        impl<T: Scalar> Visitor<'_> for V<T> {
            type Value = Val<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(T::EXPECTING)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> std::result::Result<Val<T>, E> {
                Self::done(s)
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> std::result::Result<Val<T>, E> {
                Self::done(&n.to_string())
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> std::result::Result<Val<T>, E> {
                Self::done(&n.to_string())
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> std::result::Result<Val<T>, E> {
                Self::done(&n.to_string())
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> std::result::Result<Val<T>, E> {
                Self::done(if b { "true" } else { "false" })
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

impl Scalar for Duration {
    const EXPECTING: &'static str = "a duration such as 250ms, 30s, 1m30s or 2h";
    fn parse(s: &str) -> std::result::Result<Self, String> {
        parse_duration(s)
    }
}

impl Scalar for u64 {
    const EXPECTING: &'static str = "a whole number, 0 or more";
    fn parse(s: &str) -> std::result::Result<Self, String> {
        s.trim()
            .parse()
            .map_err(|_| format!("'{s}' is not a whole number, 0 or more"))
    }
}

impl Scalar for u32 {
    const EXPECTING: &'static str = "a whole number, 0 or more";
    fn parse(s: &str) -> std::result::Result<Self, String> {
        s.trim()
            .parse()
            .map_err(|_| format!("'{s}' is not a whole number, 0 or more"))
    }
}

impl Scalar for f64 {
    const EXPECTING: &'static str = "a number, 0 or more";
    fn parse(s: &str) -> std::result::Result<Self, String> {
        match s.trim().parse::<f64>() {
            Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
            _ => Err(format!("'{s}' is not a number, 0 or more")),
        }
    }
}

impl Scalar for String {
    const EXPECTING: &'static str = "a string";
    fn parse(s: &str) -> std::result::Result<Self, String> {
        Ok(s.to_string())
    }
}

impl Scalar for Level {
    const EXPECTING: &'static str = "a number or a share of the peak, e.g. 10 or 50%";
    fn parse(s: &str) -> std::result::Result<Self, String> {
        Level::parse(s)
    }
}

impl Scalar for Threshold {
    const EXPECTING: &'static str = "a threshold such as 'ttft.p95<800ms'";
    fn parse(s: &str) -> std::result::Result<Self, String> {
        Threshold::parse(s)
    }
}

impl Scalar for Slo {
    const EXPECTING: &'static str = "an SLO such as 'ttft<500ms'";
    fn parse(s: &str) -> std::result::Result<Self, String> {
        Slo::parse(s)
    }
}

impl Scalar for Endpoint {
    const EXPECTING: &'static str = "an endpoint METHOD:PATH[:WEIGHT]";
    fn parse(s: &str) -> std::result::Result<Self, String> {
        crate::workload::parse_endpoint(s)
    }
}

/// A header in the command line's form, `Name: value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Header(pub String, pub String);

impl Scalar for Header {
    const EXPECTING: &'static str = "a header 'Name: value'";
    fn parse(s: &str) -> std::result::Result<Self, String> {
        parse_header(s).map(|(k, v)| Header(k, v))
    }
}

fn value_enum<T: ValueEnum>(s: &str, what: &str) -> std::result::Result<T, String> {
    T::from_str(s.trim(), true).map_err(|_| {
        let names: Vec<String> = T::value_variants()
            .iter()
            .filter_map(|v| v.to_possible_value().map(|p| p.get_name().to_string()))
            .collect();
        format!("'{s}' is not {what}: expected one of {}", names.join(", "))
    })
}

impl Scalar for Arrival {
    const EXPECTING: &'static str = "constant or poisson";
    fn parse(s: &str) -> std::result::Result<Self, String> {
        value_enum(s, "an arrival process")
    }
}

impl Scalar for crate::client::Engine {
    const EXPECTING: &'static str = "auto, hyper or reqwest";
    fn parse(s: &str) -> std::result::Result<Self, String> {
        value_enum(s, "an HTTP engine")
    }
}

impl Scalar for crate::workload::LlmApi {
    const EXPECTING: &'static str = "chat or responses";
    fn parse(s: &str) -> std::result::Result<Self, String> {
        value_enum(s, "an API (chat or responses)")
    }
}

/// A picture's size, `WxH`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageSize(pub u32, pub u32);

impl Scalar for ImageSize {
    const EXPECTING: &'static str = "a size WIDTHxHEIGHT such as 512x512";
    fn parse(s: &str) -> std::result::Result<Self, String> {
        crate::workload::parse_size(s).map(|(w, h)| ImageSize(w, h))
    }
}

impl Scalar for crate::workload::ImageFormat {
    const EXPECTING: &'static str = "png or jpeg";
    fn parse(s: &str) -> std::result::Result<Self, String> {
        value_enum(s, "an image format (png or jpeg)")
    }
}

impl Scalar for Kind {
    const EXPECTING: &'static str = "a scenario kind";
    fn parse(s: &str) -> std::result::Result<Self, String> {
        value_enum(s, "a scenario kind")
    }
}

/// One stage of a scenario's `stages`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageEntry {
    pub duration: Val<Duration>,
    pub target: Val<Level>,
    /// The part of the run this stage belongs to, for the scenario's figure.
    #[serde(default)]
    pub phase: Option<String>,
    /// The http workload's endpoints during this stage (else the
    /// scenario's `endpoints`); `--endpoint` replaces them all.
    #[serde(default)]
    pub endpoints: Vec<Val<Endpoint>>,
}

/// A staircase to the peak: jump to each level and hold it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Steps {
    /// The levels, e.g. [20%, 40%, 60%, 80%, 100%].
    #[serde(default)]
    pub levels: Vec<Val<Level>>,
    /// Levels 1, 2, 4, 8, … up to the peak (instead of `levels`).
    #[serde(default)]
    pub doubling: bool,
    /// How long each level is held.
    pub hold: Val<Duration>,
}

/// A scenario file. Keys mirror the `run` flags, with `_` for `-`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    pub name: Option<String>,
    pub description: Option<String>,
    pub kind: Option<Val<Kind>>,

    pub workload: Option<String>,
    pub target: Option<String>,
    pub model: Option<String>,
    #[serde(default)]
    pub headers: Vec<Val<Header>>,
    pub timeout: Option<Val<Duration>>,
    pub http_engine: Option<Val<crate::client::Engine>>,

    pub vus: Option<Val<u64>>,
    pub max_vus: Option<Val<u64>>,
    pub duration: Option<Val<Duration>>,
    pub iterations: Option<Val<u64>>,
    pub rate: Option<Val<f64>>,
    pub arrival: Option<Val<Arrival>>,
    pub max_in_flight: Option<Val<u64>>,
    pub stages: Option<Vec<StageEntry>>,
    pub steps: Option<Steps>,
    pub grace: Option<Val<Duration>>,
    /// `--duration` sets each stage's length rather than the whole run's
    /// (the API load test's presets ran each of their phases that long).
    pub duration_per_phase: Option<bool>,
    pub preflight: Option<bool>,
    /// `--compression`.
    pub compression: Option<bool>,

    pub max_tokens: Option<Val<u32>>,
    pub temperature: Option<Val<f64>>,
    pub stream: Option<bool>,
    pub system: Option<String>,
    pub prompt: Option<String>,
    pub input_tokens: Option<Val<u32>>,
    pub input_tokens_stddev: Option<Val<f64>>,
    pub shared_prefix: Option<Val<u32>>,
    pub turns: Option<Val<u32>>,
    /// tool-calls: turns of an agent's loop.
    pub tool_turns: Option<Val<u32>>,
    /// tool-calls and vision: chat or responses.
    pub api: Option<Val<crate::workload::LlmApi>>,
    /// rerank: documents per request.
    pub documents: Option<Val<u32>>,
    /// vision: pictures per request, their size (WxH) and format.
    pub images: Option<Val<u32>>,
    pub image_size: Option<Val<ImageSize>>,
    pub image_format: Option<Val<crate::workload::ImageFormat>>,
    #[serde(default)]
    pub batch_sizes: Vec<Val<u32>>,
    #[serde(default)]
    pub endpoints: Vec<Val<Endpoint>>,
    /// Settings of otlp-traces.
    pub otlp: Option<OtlpEntry>,
    pub dataset: Option<DatasetEntry>,

    #[serde(default)]
    pub thresholds: Vec<Val<Threshold>>,
    pub abort_on_fail: Option<bool>,
    #[serde(default)]
    pub slos: Vec<Val<Slo>>,
    /// US dollars per million input and output tokens: the run's cost.
    pub price_input: Option<Val<f64>>,
    pub price_output: Option<Val<f64>>,
    #[serde(default)]
    pub tags: BTreeMap<String, Val<String>>,

    /// A Tempo performance profile's load (`k6:`), read as otlp-traces
    /// settings ([`profile`]).
    pub k6: Option<profile::K6Profile>,
    /// A Tempo profile's deployment (`tempo:`): accepted, not used.
    pub tempo: Option<yaml_serde::Value>,
}

/// otlp-traces settings, as the `--mb-per-s`, `--mix`, … flags.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpEntry {
    /// The OTLP/HTTP traces URL (else `target`).
    pub endpoint: Option<String>,
    pub mb_per_s: Option<Val<f64>>,
    pub mix: Option<String>,
    pub platform: Option<String>,
    pub json: Option<bool>,
    /// grpc, http/protobuf or http/json.
    pub protocol: Option<String>,
    /// ingestion, query or combined.
    pub test_type: Option<String>,
    pub project: Option<String>,
    /// The trace backend's query API, and the query load sent to it.
    pub query_endpoint: Option<String>,
    pub queries_per_s: Option<Val<f64>>,
    #[serde(default)]
    pub queries: Vec<String>,
    /// Trace scenarios declared as workflow steps, named in `mix` (or
    /// weighed by their `weight` when there is no mix).
    #[serde(default)]
    pub scenarios: Vec<crate::otlp::ScenarioDef>,
}

/// A scenario's prompt corpus, as the `--dataset-*` flags.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetEntry {
    pub file: Option<String>,
    pub suite: Option<String>,
    pub label: Option<String>,
    pub category_contains: Option<String>,
    pub subcategory_contains: Option<String>,
    pub limit: Option<Val<u64>>,
    pub shuffle_seed: Option<Val<u64>>,
}

/// A loaded scenario: where it came from, and what it says.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The built-in name, or the file's `name`, or its file name.
    pub name: String,
    /// How errors name it: `scenario 'stress'` or the path.
    pub origin: String,
    pub kind: Kind,
    pub file: ScenarioFile,
}

impl Scenario {
    /// The staged shape the file describes, if any: `stages`, or `steps`
    /// expanded against `peak` (doubling needs it).
    pub fn shape(&self, peak: Option<f64>) -> Result<Option<Vec<StageSpec>>> {
        let f = &self.file;
        if let Some(stages) = &f.stages {
            return Ok(Some(
                stages
                    .iter()
                    .map(|s| StageSpec {
                        duration: s.duration.0,
                        target: s.target.0,
                        phase: s.phase.clone(),
                    })
                    .collect(),
            ));
        }
        let Some(steps) = &f.steps else {
            return Ok(None);
        };
        let levels: Vec<Level> = if steps.doubling {
            let Some(peak) = peak.filter(|p| *p >= 1.0) else {
                return Err(self.error("steps: doubling needs a peak: pass --max-vus N"));
            };
            let mut v = Vec::new();
            let mut n = 1.0;
            while n < peak {
                v.push(Level::Abs(n));
                n *= 2.0;
            }
            v.push(Level::Abs(peak.floor()));
            v
        } else {
            steps.levels.iter().map(|l| l.0).collect()
        };
        let mut out = Vec::new();
        for l in levels {
            out.push(StageSpec {
                duration: Duration::ZERO,
                target: l,
                phase: None,
            });
            out.push(StageSpec {
                duration: steps.hold.0,
                target: l,
                phase: None,
            });
        }
        Ok(Some(out))
    }

    /// A usage error naming this scenario.
    /// This scenario as a script's: named by its file, running the
    /// `script` workload, with no preflight (the script's calls are its own).
    pub fn scripted(mut self, path: &str) -> Scenario {
        self.name = std::path::Path::new(path)
            .file_name()
            .map_or_else(|| path.to_string(), |n| n.to_string_lossy().to_string());
        self.file.workload = Some("script".into());
        self.file.preflight = Some(false);
        self
    }

    pub fn error(&self, msg: impl std::fmt::Display) -> Error {
        Error::Usage(format!("{}: {msg}", self.origin))
    }
}

/// Does `arg` name a scenario file rather than a workload?
pub fn is_file_arg(arg: &str) -> bool {
    let lower = arg.to_ascii_lowercase();
    lower.ends_with(".yaml") || lower.ends_with(".yml") || arg.contains('/')
}

/// Load a built-in scenario by name, or a scenario file by path.
pub fn load(spec: &str) -> Result<Scenario> {
    // The API load test's presets, by the names its `--scenario` took.
    let spec = match spec {
        "light" | "medium" | "heavy" => &format!("http-{spec}"),
        s => s,
    };
    if let Some((name, text)) = BUILTIN.iter().find(|(n, _)| *n == spec) {
        let scenario = parse(text, &format!("scenarios/{name}.yaml"))?;
        return Ok(Scenario {
            name: name.to_string(),
            ..scenario
        });
    }
    if !is_file_arg(spec) && !std::path::Path::new(spec).is_file() {
        let names: Vec<&str> = BUILTIN.iter().map(|(n, _)| *n).collect();
        return Err(Error::Usage(format!(
            "unknown scenario '{spec}': expected one of {} or a YAML file (see `periscope scenarios`)",
            names.join(", ")
        )));
    }
    let text = std::fs::read_to_string(spec)
        .map_err(|e| Error::Usage(format!("cannot read the scenario file {spec}: {e}")))?;
    parse(&text, spec)
}

/// Parse scenario YAML; `origin` names it in errors.
pub fn parse(text: &str, origin: &str) -> Result<Scenario> {
    let text = interpolate(text, origin)?;
    let file: ScenarioFile = if text.trim().is_empty() {
        ScenarioFile::default()
    } else {
        yaml_serde::from_str(&text).map_err(|e| {
            let msg = e.to_string();
            // yaml_serde appends " at line L column C": say it first, as compilers do.
            let msg = match msg.rfind(" at line ") {
                Some(i) => msg[..i].to_string(),
                None => msg,
            };
            match e.location() {
                Some(l) => Error::Usage(format!("{origin}:{}:{}: {msg}", l.line(), l.column())),
                None => Error::Usage(format!("{origin}: {msg}")),
            }
        })?
    };
    let file = file
        .with_tempo_profile()
        .map_err(|e| Error::Usage(format!("{origin}: {e}")))?;
    let sc = Scenario {
        name: file.name.clone().unwrap_or_else(|| {
            std::path::Path::new(origin)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| origin.to_string())
        }),
        origin: origin.to_string(),
        kind: file.kind.as_ref().map(|k| k.0).unwrap_or_default(),
        file,
    };
    validate(&sc)?;
    Ok(sc)
}

/// What can only be checked across keys.
fn validate(sc: &Scenario) -> Result<()> {
    let f = &sc.file;
    if f.vus.is_some() && f.rate.is_some() {
        return Err(
            sc.error("`vus` (closed model) and `rate` (open model) can't be combined: choose one")
        );
    }
    if f.stages.is_some() && f.steps.is_some() {
        return Err(sc.error("`stages` and `steps` both set the load over time: choose one"));
    }
    if let Some(steps) = &f.steps {
        if steps.doubling != steps.levels.is_empty() {
            return Err(sc.error("`steps` needs either `levels: [...]` or `doubling: true`"));
        }
    }
    if f.vus.as_ref().is_some_and(|v| v.0 == 0) {
        return Err(sc.error("vus: must be at least 1"));
    }
    if f.rate.as_ref().is_some_and(|r| r.0 <= 0.0) {
        return Err(sc.error("rate: must be more than 0"));
    }
    if f.abort_on_fail == Some(true) && f.thresholds.is_empty() {
        return Err(sc.error("abort_on_fail needs at least one threshold"));
    }
    Ok(())
}

/// Replace `${VAR}` and `${VAR:-default}` from the environment.
fn interpolate(text: &str, origin: &str) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    for (n, line) in text.split_inclusive('\n').enumerate() {
        let mut rest = line;
        while let Some(i) = rest.find("${") {
            out.push_str(&rest[..i]);
            let after = &rest[i + 2..];
            let Some(end) = after.find('}') else {
                return Err(Error::Usage(format!(
                    "{origin}:{}: '${{' without a closing '}}'",
                    n + 1
                )));
            };
            let inner = &after[..end];
            let (var, default) = match inner.split_once(":-") {
                Some((v, d)) => (v.trim(), Some(d)),
                None => (inner.trim(), None),
            };
            let value = std::env::var(var).ok().filter(|v| !v.is_empty());
            match (value, default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {
                    return Err(Error::Usage(format!(
                        "{origin}:{}: ${{{var}}} is not set (set it, or write ${{{var}:-default}})",
                        n + 1
                    )))
                }
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
    }
    Ok(out)
}

/// `periscope scenarios`: the built-in scenarios, one line each.
pub fn listing() -> String {
    let mut out = String::new();
    for (name, _) in BUILTIN {
        let desc = load(name)
            .ok()
            .and_then(|s| s.file.description)
            .unwrap_or_default();
        out.push_str(&format!(
            "  {name:<20} {}\n",
            desc.split_whitespace().collect::<Vec<_>>().join(" ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_scenario_parses() {
        for (name, _) in BUILTIN {
            let sc = load(name).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(sc.name, *name);
            assert!(sc.file.description.is_some(), "{name} has a description");
        }
        assert_eq!(load("stress").unwrap().kind, Kind::Stress);
    }

    #[test]
    fn errors_name_the_file_line_and_key() {
        let cases = [
            ("vus: 3\nfoo: 1\n", "my.yaml:2:1: unknown field `foo`"),
            ("vus: -3\n", "my.yaml:1:6: vus: '-3' is not a whole number"),
            (
                "stages:\n  - duration: 10s\n    target: 1\n  - target: 2\n    duration: abc\n",
                "my.yaml:5:15: stages[1].duration: 'abc' is not a duration",
            ),
            (
                "thresholds:\n  - 'ttft.p95<800ms'\n  - 'ttft.p97<1s'\n",
                "my.yaml:3:5: thresholds[1]:",
            ),
            (
                "duration: ${NOPE_NOT_SET_X}\n",
                "my.yaml:1: ${NOPE_NOT_SET_X} is not set",
            ),
            (
                "vus: 2\nrate: 5\n",
                "my.yaml: `vus` (closed model) and `rate`",
            ),
        ];
        for (yaml, want) in cases {
            let e = parse(yaml, "my.yaml").unwrap_err().to_string();
            assert!(e.starts_with(want), "{yaml:?}: got {e}");
            assert!(!e.contains('\n'), "one line: {e}");
        }
    }

    #[test]
    fn interpolation_uses_the_default_when_unset() {
        let sc = parse("duration: ${PERISCOPE_TEST_UNSET_D:-2m}\n", "x.yaml").unwrap();
        assert_eq!(sc.file.duration.unwrap().0, Duration::from_secs(120));
    }

    #[test]
    fn doubling_steps_reach_the_peak() {
        let sc = parse("steps:\n  doubling: true\n  hold: 10s\n", "b.yaml").unwrap();
        let shape = sc.shape(Some(12.0)).unwrap().unwrap();
        let holds: Vec<Level> = shape
            .iter()
            .filter(|s| !s.duration.is_zero())
            .map(|s| s.target)
            .collect();
        assert_eq!(
            holds,
            [1.0, 2.0, 4.0, 8.0, 12.0].map(Level::Abs).to_vec(),
            "powers of two, then the peak"
        );
        assert!(sc.shape(None).is_err());
    }
}
