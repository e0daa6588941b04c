//! Before the load: one request checks the target (it answers, takes the
//! key, knows the model), and its answer settles how tokens are counted.
//!
//! With `--tokenizer auto` (the default) the preflight's `usage` is compared
//! with the local count of the same request (`cl100k_base` and OpenAI's chat
//! accounting). When they agree, the server counts as OpenAI does and
//! nothing more is asked. When they differ, or the server sent no usage,
//! the target's `/tokenize` is tried; if it answers, the server's tokenizer
//! counts from then on, the workload is built again with its words, and a
//! second preflight measures what the server's chat template adds. So
//! against a server whose tokenizer is not cl100k (llama.cpp, vLLM, SGLang
//! with any open model), prompts of `--input-tokens N` are N of *its*
//! tokens and local counts agree with its usage.

use std::sync::Arc;

use crate::client::{Client, Expect, Prepared};
use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::record::{ErrorClass, Outcome, RequestRecord, TokenSource};
use crate::report::result::TokenizerInfo;
use crate::tokenizer::{self, Choice, Tokenizer};
use crate::workload::{self, Workload};

/// What a preflight learned of a target: the run's value, handed by its
/// caller to the next run against the same target that has no preflight of
/// its own (a sweep's later blocks). Nothing of it is kept in the process.
#[derive(Clone)]
pub struct TargetProfile {
    /// What counts the tokens the server's usage leaves out.
    pub tokenizer: Arc<Tokenizer>,
    /// What the server's chat template adds beyond OpenAI's accounting.
    pub template_delta: i64,
    /// How the report names the tokenizer, the template's tokens, notes.
    pub info: TokenizerInfo,
    /// Whether the output tokens are counted here (the server's usage does
    /// not give them): the vocabulary is then built before the load.
    pub counts_output: bool,
}

/// What the run goes on with.
pub struct Ready {
    pub workload: Arc<dyn Workload>,
    pub profile: TargetProfile,
}

/// Check the target, find the tokenizer, build the workload, and tell the
/// client how the server's template counts. Without a preflight, `known`
/// (what an earlier run against the target learned) counts, if given.
pub async fn prepare(
    plan: &Plan,
    client: &mut Client,
    known_profile: Option<&TargetProfile>,
) -> Result<Ready> {
    let choice = &plan.request.tokenizer;
    let known = workload::known_texts(&plan.workload.spec);
    let model = plan.workload.spec.model.as_str();
    if let (false, Some(p)) = (plan.request.preflight, known_profile) {
        client.set_tokenizer(p.tokenizer.clone());
        client.set_template_delta(p.template_delta);
        if p.counts_output {
            p.tokenizer.warm_up();
        }
        return Ok(Ready {
            workload: plan.build_workload(&p.tokenizer),
            profile: p.clone(),
        });
    }
    let failed = |e: String| match choice {
        Choice::File(_) => Error::Usage(e),
        _ => Error::Start(e),
    };
    let mut note = None;
    let mut tok = match choice {
        // auto decides at the preflight; the rest now.
        Choice::Auto | Choice::AutoAt(_) => tokenizer::default_tokenizer(),
        c => {
            let r = client
                .resolve_tokenizer(c, model, &known)
                .await
                .map_err(failed)?;
            note = r.note;
            r.tokenizer
        }
    };
    client.set_tokenizer(tok.clone());
    let mut workload = plan.build_workload(&tok);
    let mut template = None;
    let mut delta = 0;
    // Unless the preflight shows the server's usage giving the output
    // tokens, the run counts them with the tokenizer: its vocabulary is
    // built now, before the load (built during it, its ~30 ms of a core
    // would make requests late). Where usage gives them, it is built only
    // for the check at the end of the run.
    let mut counts_output = true;
    if plan.request.preflight {
        let mut pre = workload.preflight();
        let mut rec = check(client, &pre).await?;
        let counted = matches!(
            pre.expect,
            Expect::Completion | Expect::Responses | Expect::Messages | Expect::Embeddings
        );
        if !choice.strict() && counted && !agrees(client, &pre, &rec) {
            let r = client
                .resolve_tokenizer(choice, model, &known)
                .await
                .map_err(failed)?;
            if r.tokenizer.server_api().is_some() {
                tok = r.tokenizer;
                client.set_tokenizer(tok.clone());
                workload = plan.build_workload(&tok);
                pre = workload.preflight();
                rec = check(client, &pre).await?;
            }
            note = r.note.or_else(|| {
                (tok.server_api().is_none() && rec.input_source == TokenSource::Usage).then(|| {
                    format!(
                        "the server counts prompts differently from {} (its preflight prompt: {} tokens, {} by the local count) and has no /tokenize: local counts are estimates; --tokenizer PATH/tokenizer.json counts as it does",
                        tok.label(),
                        rec.input_tokens,
                        client.local_prompt_tokens(&pre)
                    )
                })
            });
        }
        counts_output = matches!(
            pre.expect,
            Expect::Completion | Expect::Responses | Expect::Messages
        ) && rec.output_source != TokenSource::Usage;
        if counted && rec.input_source == TokenSource::Usage && rec.is_ok() {
            let t = rec.input_tokens.saturating_sub(pre.prompt_tokens);
            delta = t as i64 - pre.framing as i64;
            client.set_template_delta(delta);
            template = matches!(
                pre.expect,
                Expect::Completion | Expect::Responses | Expect::Messages
            )
            .then_some(t);
        }
    }
    if counts_output {
        tok.warm_up();
    }
    let info = TokenizerInfo {
        name: tok.label(),
        template_tokens: template,
        note,
    };
    Ok(Ready {
        workload,
        profile: TargetProfile {
            tokenizer: tok,
            template_delta: delta,
            info,
            counts_output,
        },
    })
}

/// Ask what the workload needs to know before the load (a query-only run's
/// trace ids, from the backend's searches); say what it did not find.
pub async fn discover(client: &Client, w: &dyn Workload) {
    for p in w.discovery() {
        if let Some(body) = client.send(&p, None).await.body {
            w.discovered(&body);
        }
    }
    if let Some(m) = w.missing() {
        eprintln!("warning: {m}");
    }
}

/// The server's usage of the preflight equals the local count of it.
fn agrees(client: &Client, pre: &Prepared, rec: &RequestRecord) -> bool {
    rec.input_source == TokenSource::Usage && rec.input_tokens == client.local_prompt_tokens(pre)
}

/// Send the preflight: an answer that says the run cannot work stops it.
async fn check(client: &Client, pre: &Prepared) -> Result<RequestRecord> {
    let rec = client.send(pre, None).await;
    let via = client
        .proxy()
        .map(|p| format!(" (through the proxy {p})"))
        .unwrap_or_default();
    let base = format!("{}{via}", client.base());
    match rec.outcome {
        Outcome::Ok | Outcome::Interrupted => Ok(rec),
        Outcome::Error(class) => {
            let msg = rec.error_message.clone().unwrap_or_default();
            Err(Error::Start(match rec.status {
                Some(407) if client.proxy().is_some() => format!(
                    "the proxy {} asks for credentials (407): give them in its URL, http://user:password@host:port",
                    client.proxy().unwrap_or_default()
                ),
                Some(status) if !(200..300).contains(&status) => {
                    format!("{base} answered {status}: {msg}")
                }
                _ => match class {
                    ErrorClass::Connect | ErrorClass::Dns | ErrorClass::ConnectionLost => {
                        format!("cannot reach {base}: {msg}")
                    }
                    ErrorClass::Timeout => {
                        format!("{base} did not answer the preflight request in time: {msg}")
                    }
                    _ => {
                        // It answered 2xx but not as the API does: say so, don't refuse to run.
                        eprintln!(
                            "warning: the preflight answer of {base} was not well-formed ({}): {msg}",
                            class.as_str()
                        );
                        return Ok(rec);
                    }
                },
            }))
        }
    }
}
