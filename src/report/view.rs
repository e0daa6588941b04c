//! The plan as the result keeps it: what a run was asked to do, secrets
//! redacted, for `--dry-run`, the JSON result and every report rendered
//! from it. `plan` builds it; reports read only it.

use serde::{Deserialize, Serialize};

use crate::executor::Load;
use crate::scenario::Kind;

/// Where the requests went: periscope's own mock, in the process, or a
/// server of the user's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TargetKind {
    #[serde(rename = "built-in mock")]
    Mock,
    #[serde(rename = "remote")]
    Remote,
}

impl std::fmt::Display for TargetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TargetKind::Mock => "built-in mock",
            TargetKind::Remote => "remote",
        })
    }
}

/// The plan as written to outputs (`--dry-run`, the JSON result).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanView {
    /// The scenario (`load` unless one was chosen) and the figure it reports.
    pub scenario: String,
    pub kind: Kind,
    /// Each stage's phase, when the scenario names them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phases: Vec<Option<String>>,
    pub workload: crate::workload::WorkloadKind,
    /// The API base URL requests went to.
    pub target: String,
    /// The URL the workload's requests went to (the base + its endpoint's
    /// path: `…/v1/chat/completions`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sent_to: String,
    /// US dollars per million input and output tokens (`--price-input`,
    /// `--price-output`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prices: Option<crate::report::result::cost::Prices>,
    /// `--jitter-ms`: each VU waited a random 0..this many ms before each
    /// request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter_ms: Option<u64>,
    /// find-and-hold: the search asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<crate::executor::adaptive::Search>,
    /// `--think-time`: the mean wait (exponential) between a session's turns, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub think_ms: Option<f64>,
    /// The proxy the requests went through (no credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<String>,
    /// `--compression`: the Accept-Encoding the requests carried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accept_encoding: Option<String>,
    /// The header each turn of a session carried its id in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_header: Option<String>,
    /// `--lora`: the adapters the requests were spread over, and how.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lora: Option<LoraView>,
    /// `built-in mock` or `remote`.
    pub target_kind: TargetKind,
    /// Flags of the in-process mock.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mock_args: Option<String>,
    pub model: String,
    /// Whether an API key was given (the key itself is never written).
    pub token_present: bool,
    /// Extra headers; values of secret-looking names are redacted.
    pub headers: Vec<(String, String)>,
    pub stream: bool,
    /// Chat streams ask for usage (`--no-stream-usage` turns it off).
    #[serde(default = "yes", skip_serializing_if = "is_yes")]
    pub stream_usage: bool,
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
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<crate::workload::Endpoint>,
    /// Each stage's endpoints, where the scenario's stages name their own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stage_endpoints: Vec<Vec<crate::workload::Endpoint>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otlp: Option<crate::otlp::OtlpView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset: Option<DatasetView>,
    /// The script a scripted run ran (`periscope run my-test.js`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
    pub thresholds: Vec<String>,
    pub abort_on_fail: bool,
    pub slos: Vec<String>,
    /// Live outputs (`--out`), without credentials.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<String>,
    /// The part of the plan this process ran (`--segment i/n`); `load` is
    /// the whole plan's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<crate::executor::Segment>,
}

/// The prompt corpus of a run: what was selected, and how many cases.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DatasetView {
    #[serde(flatten)]
    pub selection: crate::dataset::Selection,
    pub cases: usize,
    pub benign: usize,
}

fn yes() -> bool {
    true
}

fn is_yes(b: &bool) -> bool {
    *b
}

/// The LoRA adapters of a run and how sessions were spread over them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LoraView {
    pub adapters: Vec<String>,
    /// `random`, `round-robin` or `weights=3,1,1`.
    pub assignment: String,
}
