//! The workload part of a plan: what each request is — the workload's name
//! (`completions` by default; `ENABLE_BATCH_MODE=true` makes embeddings
//! batch-embeddings), the model (its environment variable, then the file,
//! then the default), prompts (fixed, synthetic, or a dataset), output
//! length, and otlp-traces' mix, platform and query load.

use std::sync::Arc;

use crate::cli::RunArgs;
use crate::dataset::{Case, Label, Selection};
use crate::error::{Error, Result};
use crate::executor::Segment;
use crate::otlp::query::QueryPlan;
use crate::otlp::OtlpView;
use crate::report::view::DatasetView;
use crate::scenario::{Scenario, ScenarioFile};
use crate::usage;
use crate::workload::{self, WorkloadKind, WorkloadSpec};

use super::{env_var, traces};

/// What each request is.
#[derive(Debug, Clone)]
pub struct WorkloadPlan {
    pub spec: WorkloadSpec,
    /// The prompt corpus, when one drives the prompts.
    pub dataset: Option<DatasetView>,
    /// otlp-traces: where exports go and what the mix sends.
    pub otlp: Option<OtlpView>,
    /// otlp-traces: the query load sent alongside ingestion.
    pub queries: Option<Arc<QueryPlan>>,
}

/// What otlp-traces settles besides the workload: where exports go, the
/// headers every export carries, and the rate `--mb-per-s` sets.
#[derive(Default)]
pub struct Exports {
    pub url: Option<String>,
    pub headers: Vec<(String, String)>,
    pub rate: Option<f64>,
    /// Over gRPC (`--otlp-protocol grpc`).
    pub grpc: bool,
}

impl WorkloadPlan {
    pub fn from_args(a: &RunArgs, sc: &Scenario) -> Result<(Self, Exports)> {
        let f = &sc.file;
        let kind = workload_kind(a, sc)?;
        let max_tokens = max_tokens_of(a, f, kind)?;
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
        let turns = turns_of(a, f, kind)?;
        let api = api_of(a, f, kind)?;
        let images = images_of(a, f, kind)?;
        let documents = documents_of(a, f, kind)?;
        let (endpoints, stage_endpoints) = endpoints_of(a, sc, kind)?;
        let temperature = a
            .request
            .temperature
            .or(f.temperature.as_ref().map(|v| v.0 as f32));
        let dataset = dataset_of(a, f, kind)?;
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
        if !endpoints.is_empty() && kind != WorkloadKind::Http {
            return Err(usage!("--endpoint applies to the http workload: `periscope run http --endpoint GET:/health`"));
        }
        let otlp = otlp_part(a, sc, kind)?;
        if max_tokens == 0 {
            return Err(usage!("--max-tokens must be at least 1"));
        }
        if let Some(t) = temperature {
            if !(0.0..=2.0).contains(&t) {
                return Err(usage!("--temperature must be between 0 and 2, got {t}"));
            }
        }
        let stream = if a.stream {
            true
        } else if a.no_stream {
            false
        } else {
            f.stream.unwrap_or(true)
        };
        let model = model_of(a, f, kind);
        let (session_header, lora) = affinity_part(a, kind)?;
        let exports = otlp
            .as_ref()
            .map(|o| Exports {
                url: Some(o.url.clone()),
                headers: o.headers.clone(),
                rate: o.rate,
                grpc: o.grpc,
            })
            .unwrap_or_default();
        let plan = WorkloadPlan {
            spec: WorkloadSpec {
                kind,
                model,
                system: a.request.system.clone().or_else(|| f.system.clone()),
                prompt: a
                    .request
                    .prompt
                    .clone()
                    .or_else(|| f.prompt.clone())
                    .unwrap_or_else(|| kind.default_prompt().to_string()),
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
                turns: turns.unwrap_or(kind.default_turns()),
                api,
                images,
                documents: documents.unwrap_or(10),
                batch_sizes: if batch_sizes.is_empty() {
                    vec![1, 8, 32, 128]
                } else {
                    batch_sizes
                },
                endpoints,
                stage_endpoints,
                dataset: None,
                otlp: otlp.as_ref().map(|o| o.spec.clone()),
                script: None,
                block_tokens: a.block_tokens.unwrap_or(512),
                ignore_eos: a.ignore_eos,
                session_header,
                lora,
            },
            dataset: dataset.as_ref().map(|(sel, cases)| view_of(sel, cases)),
            queries: otlp.as_ref().and_then(|o| o.queries.clone()).map(Arc::new),
            otlp: otlp.map(|o| o.view),
        };
        let plan = plan.with_cases(dataset.map(|(_, c)| c));
        Ok((plan, exports))
    }

    /// The dataset's cases as prompts.
    fn with_cases(mut self, cases: Option<Vec<Case>>) -> Self {
        self.spec.dataset = cases.map(|c| Arc::new(c.into_iter().map(|c| c.text).collect()));
        self
    }

    /// Keep the dataset's cases of `segment` only (case k goes to the
    /// segment that owns arrival k).
    pub fn keep_segment(&mut self, segment: Segment) -> Result<()> {
        let Some(prompts) = self.spec.dataset.as_ref().filter(|_| !segment.is_whole()) else {
            return Ok(());
        };
        let n = prompts.len();
        let mine: Vec<String> = prompts
            .iter()
            .enumerate()
            .filter(|(k, _)| segment.owns(*k as u64))
            .map(|(_, c)| c.clone())
            .collect();
        if mine.is_empty() {
            return Err(usage!(
                "--segment {segment}: the dataset has {n} case(s), fewer than the {} segments; use at most {n} segments",
                segment.count
            ));
        }
        self.spec.dataset = Some(Arc::new(mine));
        Ok(())
    }
}

/// The turns of a conversation, or a tool-calls loop's (`--tool-turns`).
fn turns_of(a: &RunArgs, f: &ScenarioFile, kind: WorkloadKind) -> Result<Option<u32>> {
    let name = kind.name();
    let tool_turns = a.tool_turns.or(f.tool_turns.as_ref().map(|v| v.0));
    if tool_turns.is_some() && kind != WorkloadKind::ToolCalls {
        return Err(usage!(
            "--tool-turns applies to the tool-calls workload, not {name}"
        ));
    }
    if tool_turns == Some(0) {
        return Err(usage!("--tool-turns must be at least 1"));
    }
    Ok(tool_turns.or(a.turns).or(f.turns.as_ref().map(|v| v.0)))
}

/// `--api` of the workloads that take one (tool-calls, vision).
fn api_of(a: &RunArgs, f: &ScenarioFile, kind: WorkloadKind) -> Result<workload::LlmApi> {
    let api = a.api.or(f.api.as_ref().map(|v| v.0));
    if api.is_some() && !kind.takes_api() {
        return Err(usage!(
            "--api applies to tool-calls and vision (the other workloads name their API: completions, responses, messages), not {}",
            kind.name()
        ));
    }
    Ok(api.unwrap_or_default())
}

/// Rerank's documents per request.
fn documents_of(a: &RunArgs, f: &ScenarioFile, kind: WorkloadKind) -> Result<Option<u32>> {
    let documents = a.documents.or(f.documents.as_ref().map(|v| v.0));
    if documents.is_some() && kind != WorkloadKind::Rerank {
        return Err(usage!(
            "--documents applies to the rerank workload, not {}",
            kind.name()
        ));
    }
    if documents == Some(0) {
        return Err(usage!("--documents must be at least 1"));
    }
    Ok(documents)
}

/// `--max-tokens`, else `MAX_TOKENS` (decode-heavy: `MAX_OUTPUT_TOKENS`
/// first), else the scenario file's, else the workload's default.
fn max_tokens_of(a: &RunArgs, f: &ScenarioFile, kind: WorkloadKind) -> Result<u32> {
    Ok(match a.request.max_tokens {
        Some(n) => n,
        None => {
            let env = if kind == WorkloadKind::DecodeHeavy {
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
                (None, None) => kind.default_max_tokens(),
            }
        }
    })
}

/// The pictures of the vision workload: `--images`, `--image-size`,
/// `--image-format` (or the file's), each refused for another workload.
fn images_of(a: &RunArgs, f: &ScenarioFile, kind: WorkloadKind) -> Result<workload::Images> {
    let name = kind.name();
    let images = a.images.or(f.images.as_ref().map(|v| v.0));
    let image_size = a
        .image_size
        .or(f.image_size.as_ref().map(|v| (v.0 .0, v.0 .1)));
    let image_format = a.image_format.or(f.image_format.as_ref().map(|v| v.0));
    if (images.is_some() || image_size.is_some() || image_format.is_some())
        && kind != WorkloadKind::Vision
    {
        return Err(usage!(
            "--images, --image-size and --image-format apply to the vision workload, not {name}"
        ));
    }
    if images == Some(0) {
        return Err(usage!("--images must be at least 1"));
    }
    let d = workload::Images::default();
    let (width, height) = image_size.unwrap_or((d.width, d.height));
    Ok(workload::Images {
        count: images.unwrap_or(d.count),
        width,
        height,
        format: image_format.unwrap_or(d.format),
    })
}

/// The http workload's endpoints (`--endpoint`, or the file's), and each
/// stage's own when a scenario's stages name them.
#[allow(clippy::type_complexity)]
fn endpoints_of(
    a: &RunArgs,
    sc: &Scenario,
    kind: WorkloadKind,
) -> Result<(Vec<workload::Endpoint>, Vec<Vec<workload::Endpoint>>)> {
    let f = &sc.file;
    let endpoints: Vec<workload::Endpoint> = if a.endpoints.is_empty() {
        f.endpoints.iter().map(|v| v.0.clone()).collect()
    } else if kind == WorkloadKind::OtlpTraces {
        Vec::new()
    } else {
        a.endpoints
            .iter()
            .map(|e| workload::parse_endpoint(e).map_err(|m| usage!("--endpoint {m}")))
            .collect::<Result<_>>()?
    };
    // A scenario's stages may each name their endpoints (the AIOps
    // presets: the health check, then the mixed set); the command line's
    // --endpoint or --stages replace them.
    let mut stage_endpoints: Vec<Vec<workload::Endpoint>> = Vec::new();
    if a.endpoints.is_empty() && a.stages.is_none() {
        if let Some(stages) = &f.stages {
            stage_endpoints = stages
                .iter()
                .map(|s| s.endpoints.iter().map(|v| v.0.clone()).collect())
                .collect();
        }
    }
    if stage_endpoints.iter().all(Vec::is_empty) {
        stage_endpoints.clear();
    }
    if !stage_endpoints.is_empty() && kind != WorkloadKind::Http {
        return Err(sc.error("a stage's endpoints apply to the http workload"));
    }
    Ok((endpoints, stage_endpoints))
}

/// The dataset asked for (`--dataset…`, or the file's) and its cases.
fn dataset_of(
    a: &RunArgs,
    f: &ScenarioFile,
    kind: WorkloadKind,
) -> Result<Option<(crate::dataset::Selection, Vec<Case>)>> {
    let name = kind.name();
    let selection = a
        .dataset
        .selection(f.dataset.as_ref())
        .map_err(Error::Usage)?;
    Ok(if selection.is_set() {
        if !kind.takes_dataset() {
            return Err(usage!(
                "a dataset drives the prompts of completions, responses, messages, tool-calls, text-completions, conversation, prefill-heavy and decode-heavy, not {name}"
            ));
        }
        let cases = selection.load().map_err(Error::Usage)?;
        Some((selection, cases))
    } else {
        None
    })
}

/// `--model`, else the workload's environment variable, else the file's,
/// else the workload's default.
fn model_of(a: &RunArgs, f: &ScenarioFile, kind: WorkloadKind) -> String {
    a.request
        .model
        .clone()
        .or_else(|| env_var(kind.model_env()))
        .or_else(|| {
            (kind == WorkloadKind::PrefixCaching)
                .then(|| env_var("OPENAI_COMPLETION_MODEL"))
                .flatten()
        })
        .or_else(|| f.model.clone())
        .unwrap_or_else(|| kind.default_model().to_string())
}

/// The workload the first argument or the scenario file names.
fn workload_kind(a: &RunArgs, sc: &Scenario) -> Result<WorkloadKind> {
    let arg = a
        .workload
        .as_deref()
        .filter(|w| !crate::scenario::is_file_arg(w) && !crate::script::is_script_arg(w));
    let requested = arg.or(sc.file.workload.as_deref()).unwrap_or("completions");
    let kind = WorkloadKind::parse(requested).ok_or_else(|| {
        let msg = format!(
            "unknown workload '{requested}': expected one of {} (see `periscope scenarios`)",
            WorkloadKind::ALL
                .iter()
                .map(|k| k.name())
                .collect::<Vec<_>>()
                .join(", ")
        );
        if arg.is_some() {
            Error::Usage(msg)
        } else {
            sc.error(format!("workload: {msg}"))
        }
    })?;
    let batch_mode =
        env_var("ENABLE_BATCH_MODE").is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
    Ok(match kind {
        WorkloadKind::Embeddings if batch_mode => WorkloadKind::BatchEmbeddings,
        k => k,
    })
}

/// otlp-traces' settings, or a refusal of its flags for another workload.
fn otlp_part(a: &RunArgs, sc: &Scenario, kind: WorkloadKind) -> Result<Option<traces::Resolved>> {
    let f = &sc.file;
    if kind == WorkloadKind::OtlpTraces {
        if a.endpoints.len() > 1 {
            return Err(usage!("otlp-traces sends to one --endpoint URL"));
        }
        return traces::resolve(
            &a.otlp,
            f.otlp.as_ref(),
            a.endpoints.first().map(String::as_str),
            a.target.as_deref().or(f.target.as_deref()),
            a.mock,
        )
        .map(Some)
        .map_err(Error::Usage);
    }
    let o = &a.otlp;
    let dressing = (o.platform.is_some() || o.project.is_some()) && a.sink.trace_requests.is_none();
    if o.mb_per_s.is_some()
        || o.mix.is_some()
        || o.otlp_json
        || o.otlp_protocol.is_some() && a.sink.trace_requests.is_none()
        || o.test_type.is_some()
        || dressing
        || o.query_endpoint.is_some()
        || o.queries_per_s.is_some()
        || !o.queries.is_empty()
        || f.otlp.is_some()
    {
        return Err(usage!(
            "--mb-per-s, --mix, --platform, --otlp-json, --otlp-protocol, --test-type, --project and the --query flags apply to otlp-traces: `periscope run otlp-traces --endpoint URL …` (--platform, --project and --otlp-protocol also apply to --trace-requests)"
        ));
    }
    Ok(None)
}

fn view_of(selection: &Selection, cases: &[Case]) -> DatasetView {
    DatasetView {
        selection: selection.clone(),
        cases: cases.len(),
        benign: cases.iter().filter(|c| c.label == Label::Benign).count(),
    }
}

/// `--session-header` (on unless `none`) and `--lora` with its assignment.
fn affinity_part(
    a: &RunArgs,
    kind: WorkloadKind,
) -> Result<(Option<String>, Option<crate::workload::LoraSpec>)> {
    let header = match a.session_header.as_deref().map(str::trim) {
        Some("none" | "") => None,
        Some(h) => {
            reqwest::header::HeaderName::from_bytes(h.as_bytes()).map_err(|_| {
                usage!("--session-header '{h}' is not a header name: e.g. X-Session-ID, or none")
            })?;
            Some(h.to_string())
        }
        None => Some("X-Session-ID".to_string()),
    };
    let Some(list) = &a.lora else {
        if a.lora_assignment.is_some() {
            return Err(usage!(
                "--lora-assignment spreads the adapters of --lora: give them, e.g. --lora a,b,c"
            ));
        }
        return Ok((header, None));
    };
    if matches!(
        kind,
        WorkloadKind::Http | WorkloadKind::OtlpTraces | WorkloadKind::Script
    ) {
        return Err(usage!(
            "--lora names adapters in the model field of an LLM API's requests; {} has none",
            kind.name()
        ));
    }
    let adapters: Vec<String> = list
        .split(',')
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    if adapters.is_empty() {
        return Err(usage!(
            "--lora takes adapter names: --lora sql-lora,chat-lora"
        ));
    }
    let assignment = crate::workload::Assignment::parse(
        a.lora_assignment.as_deref().unwrap_or("random"),
        adapters.len(),
    )
    .map_err(Error::Usage)?;
    Ok((
        header,
        Some(crate::workload::LoraSpec {
            adapters,
            assignment,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use crate::plan::tests::{plan, usage_error};
    use crate::workload::{WorkloadKind, DEFAULT_EMBEDDING_MODEL};

    #[test]
    fn each_kind_gets_its_defaults_and_the_flags_win() {
        for &kind in WorkloadKind::ALL {
            if kind == WorkloadKind::OtlpTraces || kind == WorkloadKind::Http {
                continue; // they need an endpoint (tests/it/otlp.rs, workloads.rs)
            }
            let p = plan(&[kind.name(), "--mock"]).unwrap();
            let w = &p.workload.spec;
            assert_eq!(w.kind, kind);
            assert_eq!(w.max_tokens, kind.default_max_tokens(), "{}", kind.name());
            assert_eq!(w.model, kind.default_model(), "{}", kind.name());
            assert!(w.stream);
        }
        let p = plan(&["embeddings", "--mock"]).unwrap();
        assert_eq!(p.workload.spec.model, DEFAULT_EMBEDDING_MODEL);
        let p = plan(&[
            "chat",
            "--mock",
            "--model",
            "m",
            "--max-tokens",
            "7",
            "--no-stream",
            "--input-tokens",
            "100",
            "--shared-prefix",
            "20",
        ])
        .unwrap();
        let w = &p.workload.spec;
        assert_eq!(w.kind, WorkloadKind::Completions, "chat is completions");
        assert_eq!((w.model.as_str(), w.max_tokens, w.stream), ("m", 7, false));
        assert_eq!((w.input_tokens, w.shared_prefix), (Some(100), 20));
        let p = plan(&["--mock", "--dataset-suite", "core"]).unwrap();
        assert!(p.workload.dataset.is_some() && p.workload.spec.dataset.is_some());
        assert!(usage_error(&["embeddingz", "--mock"]).contains("unknown workload"));
    }
}
