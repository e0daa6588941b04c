//! The mock's answers to the API: chat and text completions (whole or
//! streamed on the latency model's schedule, with the faults asked for)
//! and embeddings.

use super::*;

pub(super) fn early(status: u16, fault: Fault, resp: Resp) -> Early {
    Box::new((status, fault, resp))
}

pub(super) fn parse_error(e: serde_json::Error) -> Early {
    let msg = format!(
        "We could not parse the JSON body of your request: {e}. (HINT: send a JSON object with the required fields.)"
    );
    early(400, Fault::BadRequest, bad_request(&msg))
}

pub(super) fn require_model(state: &State, model: Option<String>) -> Result<String, Early> {
    let model = match model {
        Some(m) if !m.is_empty() => m,
        _ => {
            return Err(early(
                400,
                Fault::BadRequest,
                bad_request("you must provide a model parameter"),
            ));
        }
    };
    if !state.config.models.is_empty() && !state.config.models.contains(&model) {
        let msg = format!("The model `{model}` does not exist or you do not have access to it.");
        return Err(early(
            404,
            Fault::BadRequest,
            error_response(
                StatusCode::NOT_FOUND,
                &msg,
                "invalid_request_error",
                Some("model_not_found"),
            ),
        ));
    }
    Ok(model)
}

/// Rate limit, then injected errors: the faults that answer before any work.
pub(super) fn early_faults(state: &State, rng: &mut fastrand::Rng) -> Result<(), Early> {
    if let Some(limiter) = &state.limiter {
        if let Err(not_until) = limiter.check() {
            let wait = not_until.wait_time_from(limiter.clock().now());
            let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
            let mut r = error_response(
                StatusCode::TOO_MANY_REQUESTS,
                "Rate limit reached for requests. Please try again later.",
                "requests",
                Some("rate_limit_exceeded"),
            );
            r.headers_mut().insert(RETRY_AFTER, HeaderValue::from(secs));
            r.headers_mut().insert(
                "retry-after-ms",
                HeaderValue::from((wait.as_millis() as u64).max(1)),
            );
            return Err(early(429, Fault::RateLimited, r));
        }
    }
    let f = &state.config.faults;
    if f.error_rate > 0.0 && rng.f64() < f.error_rate {
        let status = f.error_status[rng.usize(..f.error_status.len())];
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let kind = if status >= 500 {
            "server_error"
        } else {
            "invalid_request_error"
        };
        let r = error_response(
            code,
            "The mock injected this error (--error-rate).",
            kind,
            None,
        );
        return Err(early(status, Fault::Error, r));
    }
    Ok(())
}

pub(super) fn jittered(d: Duration, jitter: f64, rng: &mut fastrand::Rng) -> Duration {
    if jitter > 0.0 {
        d.mul_f64((1.0 + jitter * (rng.f64() * 2.0 - 1.0)).max(0.0))
    } else {
        d
    }
}

pub(super) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// What a completion request asks for, read and checked.
struct Asked<'a> {
    model: String,
    /// The prompt's texts: one per message, or the prompt's items.
    texts: Vec<Cow<'a, str>>,
    /// Counted as a chat's messages (priming and per-message overhead).
    chat_accounting: bool,
    stream: bool,
    include_usage: bool,
    max: Option<u32>,
    tools: tools::ToolsIn<'a>,
    image_tokens: u32,
}

fn bad(e: String) -> Early {
    early(400, Fault::BadRequest, bad_request(&e))
}

/// `POST /v1/chat/completions`.
fn asked_chat<'a>(state: &State, body: &'a [u8]) -> Result<Asked<'a>, Early> {
    let r: openai::ChatRequest = serde_json::from_slice(body).map_err(parse_error)?;
    let model = require_model(state, r.model.map(Cow::into_owned))?;
    let messages = match r.messages {
        Some(m) if !m.is_empty() => m,
        Some(_) => return Err(bad("'messages' must contain at least one message".into())),
        None => return Err(bad("'messages' is a required property".into())),
    };
    let mut texts = Vec::with_capacity(messages.len());
    let mut image_tokens = 0;
    for m in &messages {
        texts.push(m.text().map_err(bad)?);
        image_tokens += m.image_tokens().map_err(bad)?;
    }
    Ok(Asked {
        model,
        texts,
        chat_accounting: true,
        stream: r.stream.unwrap_or(false),
        include_usage: r.stream_options.is_some_and(|o| o.include_usage),
        max: r.max_completion_tokens.or(r.max_tokens),
        tools: tools::ToolsIn {
            tools: r.tools,
            tool_choice: r.tool_choice,
        },
        image_tokens,
    })
}

/// `POST /v1/completions`.
fn asked_text<'a>(state: &State, body: &'a [u8]) -> Result<Asked<'a>, Early> {
    let r: openai::TextRequest = serde_json::from_slice(body).map_err(parse_error)?;
    let model = require_model(state, r.model)?;
    let prompt = r
        .prompt
        .ok_or_else(|| bad("'prompt' is a required property".into()))?;
    Ok(Asked {
        model,
        texts: prompt
            .items()
            .into_iter()
            .map(|(t, _)| Cow::Owned(t))
            .collect(),
        chat_accounting: false,
        stream: r.stream.unwrap_or(false),
        include_usage: r.stream_options.is_some_and(|o| o.include_usage),
        max: r.max_tokens,
        tools: tools::ToolsIn::default(),
        image_tokens: 0,
    })
}

/// `POST /v1/responses`: the usage always comes with `response.completed`.
fn asked_responses<'a>(state: &State, body: &'a [u8]) -> Result<Asked<'a>, Early> {
    let r: super::responses::ResponsesRequest =
        serde_json::from_slice(body).map_err(parse_error)?;
    let model = require_model(state, r.model.clone().map(Cow::into_owned))?;
    Ok(Asked {
        model,
        texts: r.texts().map_err(bad)?,
        chat_accounting: true,
        stream: r.stream.unwrap_or(false),
        include_usage: true,
        max: r.max_output_tokens,
        image_tokens: r.image_tokens().map_err(bad)?,
        tools: tools::ToolsIn {
            tools: r.tools,
            tool_choice: r.tool_choice,
        },
    })
}

/// `POST /v1/messages` (Anthropic's): `max_tokens` is required.
fn asked_messages<'a>(state: &State, body: &'a [u8]) -> Result<Asked<'a>, Early> {
    let r: super::messages::MessagesRequest = serde_json::from_slice(body).map_err(parse_error)?;
    let model = require_model(state, r.model.clone().map(Cow::into_owned))?;
    let texts = r.texts().map_err(bad)?;
    let Some(max) = r.max_tokens else {
        return Err(bad("max_tokens: Field required".into()));
    };
    Ok(Asked {
        model,
        texts,
        chat_accounting: true,
        stream: r.stream.unwrap_or(false),
        include_usage: true,
        max: Some(max),
        tools: tools::ToolsIn::default(),
        image_tokens: 0,
    })
}

/// Prompt tokens as servers count them (a chat's priming and per-message
/// overhead, tool definitions, pictures), and how many of them a recent
/// prompt already prefilled (`--prefix-cache`).
fn prompt_tokens(
    state: &State,
    texts: &[Cow<'_, str>],
    chat_accounting: bool,
    tools: &tools::ToolsIn<'_>,
    image_tokens: u32,
) -> (u32, u32) {
    let mut prompt_tokens = if chat_accounting {
        tokenizer::REPLY_PRIMING
    } else {
        0
    };
    let mut ids = Vec::new();
    for t in texts {
        if chat_accounting {
            prompt_tokens += tokenizer::PER_MESSAGE_OVERHEAD;
        }
        if state.prefix.is_some() {
            let enc = tokenizer::encode(t);
            prompt_tokens += enc.len() as u32;
            ids.extend(enc);
        } else {
            prompt_tokens += tokenizer::count(t);
        }
    }
    // The tool definitions are prompt too, as servers count them.
    prompt_tokens += tokenizer::count(tools.text()) + image_tokens;
    let cached = match &state.prefix {
        Some(cache) => cache
            .lock()
            .map(|mut c| c.lookup_and_insert(&ids))
            .unwrap_or(0),
        None => 0,
    };

    (prompt_tokens, cached)
}

/// An answer decided, before it is sent whole or streamed.
struct Answer<'a> {
    api: Api,
    id: u64,
    created: u64,
    model: &'a str,
    /// Output tokens, and where their words start in the mock's vocabulary.
    tokens: u32,
    offset: u32,
    refused: bool,
    tool: Option<&'a str>,
    finish_reason: &'static str,
    usage: Usage,
    endpoint: Endpoint,
    fault: Fault,
    arrival: Instant,
    queued: Duration,
    first_due: Instant,
}

/// The whole answer, sent when its last token would have been.
async fn whole(state: &State, a: &Answer<'_>, latency: &Latency, rng: &mut fastrand::Rng) -> Resp {
    let Answer {
        api,
        id,
        created,
        model,
        tokens: n,
        offset,
        refused,
        tool,
        finish_reason,
        usage,
        endpoint,
        fault,
        arrival,
        queued,
        first_due,
    } = *a;
    let (prompt_tokens, cached, generated) = (usage.prompt, usage.cached, usage.completion);
    // The whole answer leaves when its last token would have.
    let tokens_after_first = if refused { 0 } else { n.saturating_sub(1) };
    let gen = latency.itl.saturating_mul(tokens_after_first);
    let done = (first_due + jittered(gen, latency.jitter, rng)).max(arrival + latency.slow_headers);
    let text: String = if refused {
        openai::REFUSAL.to_string()
    } else {
        (0..n).map(|i| openai::token_text(i, offset)).collect()
    };
    let text = match tool {
        Some(_) => tools::arguments(&text),
        None => text,
    };
    let body = openai::Completion {
        api,
        id,
        created,
        model,
        text: &text,
        refusal: refused,
        finish_reason,
        tool,
        usage: latency.usage.then_some(usage),
        timings: state.config.timings.then(|| openai::Timings {
            prompt_ms: first_due.saturating_duration_since(arrival).as_secs_f64() * 1000.0,
            predicted_ms: done.saturating_duration_since(first_due).as_secs_f64() * 1000.0,
            prompt_n: prompt_tokens.saturating_sub(cached),
            predicted_n: generated,
            cache_n: cached,
        }),
    }
    .body();
    crate::timer::sleep_until(done).await;
    let mut rec = state.simple_record(endpoint, 200, fault, arrival);
    rec.queued = queued;
    rec.first_token = Some((rec.headers_at, done));
    rec.token_lags
        .push(rec.headers_at.saturating_duration_since(done).as_micros() as u32);
    rec.output_tokens = generated;
    rec.prompt_tokens = prompt_tokens;
    rec.cached_tokens = cached;
    state.stats.record(rec);
    json_response(StatusCode::OK, body)
}

/// The answer streamed: headers now (or after `--slow-headers`), each
/// token when due, with the faults asked for.
async fn streamed(
    state: &State,
    a: &Answer<'_>,
    latency: &Latency,
    include_usage: bool,
    rng: &mut fastrand::Rng,
) -> Resp {
    let Answer {
        api,
        id,
        created,
        model,
        tokens: n,
        offset,
        refused,
        tool,
        finish_reason,
        usage,
        endpoint,
        fault,
        arrival,
        queued,
        first_due,
    } = *a;
    let (prompt_tokens, cached, generated) = (usage.prompt, usage.cached, usage.completion);
    let f = &state.config.faults;
    let cut_at = (f.cut_stream_rate > 0.0 && rng.f64() < f.cut_stream_rate).then_some(n / 2);
    let malformed_at = (cut_at.is_none() && f.malformed_rate > 0.0 && rng.f64() < f.malformed_rate)
        .then(|| rng.u32(..n.max(1)));
    let plan = StreamPlan {
        api,
        templates: if api == Api::Messages {
            openai::Templates::messages(id, model, usage)
        } else {
            let mut t = openai::Templates::new(api, id, created, model);
            if let Some(name) = tool {
                t.call_tool(name.to_string(), id, n);
            }
            t
        },
        first_due,
        itl: latency.itl,
        jitter: latency.jitter,
        tokens: n,
        offset,
        refusal: refused.then_some(openai::REFUSAL),
        cut_at,
        malformed_at,
        finish_reason,
        usage: (latency.usage && include_usage).then_some(usage),
        timings: state.config.timings,
        rng: rng.fork(),
    };
    if latency.slow_headers > Duration::ZERO {
        crate::timer::sleep_until(arrival + latency.slow_headers).await;
    }
    let mut rec = state.simple_record(endpoint, 200, fault, arrival);
    rec.queued = queued;
    rec.stream = true;
    rec.output_tokens = generated;
    rec.prompt_tokens = prompt_tokens;
    rec.cached_tokens = cached;
    rec.itl_gaps.reserve(n as usize);
    rec.token_lags.reserve(n as usize);
    let stream = TokenStream::new(plan, state.stats.clone(), rec);
    let mut r = Response::new(MockBody::Tokens(Box::new(stream)));
    let h = r.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    h.insert("cache-control", HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    r
}

/// How many tokens the answer has, and why it ends: its length asked of
/// the mock, cut at `max`; a refusal's own; a chat that calls a tool ends
/// in `tool_calls`.
fn output_length(
    latency: &Latency,
    max: Option<u32>,
    refused: bool,
    calls_tool: bool,
    rng: &mut fastrand::Rng,
) -> (u32, &'static str) {
    let desired = match latency.output_tokens {
        Some(TokenRange::Fixed(n)) => n,
        Some(TokenRange::Range(a, b)) => rng.u32(a..=b),
        None => max.unwrap_or(64),
    };
    let n = max
        .map_or(desired, |m| desired.min(m))
        .min(MAX_OUTPUT_TOKENS);
    let finish_reason = if max.is_some_and(|m| desired >= m) {
        "length"
    } else {
        "stop"
    };
    if refused {
        (tokenizer::count(openai::REFUSAL), "stop")
    } else if calls_tool && finish_reason == "stop" {
        (n, "tool_calls")
    } else {
        (n, finish_reason)
    }
}

/// When a request's service began, and how long it waited in line for a
/// slot before (zero without `--max-concurrency`).
pub(super) struct Admitted {
    pub at: Instant,
    pub queued: Duration,
}

pub(super) async fn completion(
    state: &State,
    api: Api,
    body: &[u8],
    latency: Latency,
    admitted: Admitted,
    id: u64,
    rng: &mut fastrand::Rng,
) -> Result<Resp, Early> {
    let Admitted {
        at: arrival,
        queued,
    } = admitted;
    let Asked {
        model,
        texts,
        chat_accounting,
        stream,
        include_usage,
        max,
        tools,
        image_tokens,
    } = match api {
        Api::Chat => asked_chat(state, body)?,
        Api::Text => asked_text(state, body)?,
        Api::Responses => asked_responses(state, body)?,
        Api::Messages => asked_messages(state, body)?,
    };
    if max == Some(0) {
        return Err(early(
            400,
            Fault::BadRequest,
            bad_request("max_tokens must be at least 1"),
        ));
    }
    let tool = tools
        .call()
        .map_err(|e| early(400, Fault::BadRequest, bad_request(&e)))?;
    early_faults(state, rng)?;

    let (prompt_tokens, cached) =
        prompt_tokens(state, &texts, chat_accounting, &tools, image_tokens);

    let refused = state
        .config
        .guardrail
        .as_ref()
        .is_some_and(|re| texts.iter().any(|t| re.is_match(t)));
    let (n, finish_reason) = output_length(
        &latency,
        max,
        refused,
        tool.is_some() && api == Api::Chat,
        rng,
    );
    // A call of the tool is not a refusal: the guardrail wins.
    let tool = tool.filter(|_| !refused);

    let prefill = latency
        .prefill_per_token
        .saturating_mul(prompt_tokens.saturating_sub(cached));
    let ttft = jittered(latency.ttft + prefill, latency.jitter, rng);
    let first_due = arrival + ttft;
    let offset = rng.u32(..);
    // A call's arguments hold the tokens in a JSON object: the usage counts
    // what was sent, braces and key included.
    let generated = match tool {
        Some(_) => tokenizer::count(&tools::arguments(
            &(0..n)
                .map(|i| openai::token_text(i, offset))
                .collect::<String>(),
        )),
        None => n,
    };
    let usage = Usage {
        prompt: prompt_tokens,
        completion: generated,
        cached,
    };
    let created = unix_now();
    let endpoint = match api {
        Api::Chat => Endpoint::Chat,
        Api::Text => Endpoint::Text,
        Api::Responses => Endpoint::Responses,
        Api::Messages => Endpoint::Messages,
    };
    let fault = if refused { Fault::Refused } else { Fault::None };

    let a = Answer {
        api,
        id,
        created,
        model: &model,
        tokens: n,
        offset,
        refused,
        tool: tool.as_deref(),
        finish_reason,
        usage,
        endpoint,
        fault,
        arrival,
        queued,
        first_due,
    };
    if stream {
        Ok(streamed(state, &a, &latency, include_usage, rng).await)
    } else {
        Ok(whole(state, &a, &latency, rng).await)
    }
}

pub(super) async fn embeddings(
    state: &State,
    body: &[u8],
    latency: Latency,
    arrival: Instant,
    rng: &mut fastrand::Rng,
) -> Result<Resp, Early> {
    let r: openai::EmbeddingsRequest = serde_json::from_slice(body).map_err(parse_error)?;
    let model = require_model(state, r.model)?;
    let input = r.input.ok_or_else(|| {
        (
            400,
            Fault::BadRequest,
            bad_request("'input' is a required property"),
        )
    })?;
    let items = input.items();
    if items.is_empty() {
        return Err(early(
            400,
            Fault::BadRequest,
            bad_request("'input' must not be empty"),
        ));
    }
    let base64 = match r.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            let msg = format!("'{other}' is not one of ['float', 'base64'] - 'encoding_format'");
            return Err(early(400, Fault::BadRequest, bad_request(&msg)));
        }
    };
    let dims = r.dimensions.unwrap_or(state.config.dims);
    if dims == 0 || dims > 65_536 {
        return Err(early(
            400,
            Fault::BadRequest,
            bad_request("'dimensions' must be between 1 and 65536"),
        ));
    }
    early_faults(state, rng)?;
    let due = embed_due(&latency, items.len(), arrival, rng);
    let vectors: Vec<Vec<f32>> = items
        .iter()
        .map(|(t, _)| openai::embedding(t, dims))
        .collect();
    let prompt_tokens: u32 = items.iter().map(|(_, n)| *n).sum();
    let body = openai::embeddings_body(&model, &vectors, base64, prompt_tokens);
    crate::timer::sleep_until(due).await;
    let mut rec = state.simple_record(Endpoint::Embeddings, 200, Fault::None, arrival);
    rec.prompt_tokens = prompt_tokens;
    state.stats.record(rec);
    Ok(json_response(StatusCode::OK, body))
}

/// `POST /v1/rerank`: a query and documents (strings, or `{text}`), scored
/// by the share of the query's words each contains, best first, `top_n`
/// kept; on the embeddings latency model (a base and a cost per document).
pub(super) async fn rerank(
    state: &State,
    body: &[u8],
    latency: Latency,
    arrival: Instant,
    rng: &mut fastrand::Rng,
) -> Result<Resp, Early> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Doc {
        Text(String),
        Object { text: String },
    }
    #[derive(serde::Deserialize)]
    struct Req {
        model: Option<String>,
        query: Option<String>,
        documents: Option<Vec<Doc>>,
        top_n: Option<usize>,
    }
    let r: Req = serde_json::from_slice(body).map_err(parse_error)?;
    let model = require_model(state, r.model)?;
    let required = |what: &str| {
        early(
            400,
            Fault::BadRequest,
            bad_request(&format!("'{what}' is a required property")),
        )
    };
    let query = r.query.ok_or_else(|| required("query"))?;
    let docs: Vec<String> = r
        .documents
        .ok_or_else(|| required("documents"))?
        .into_iter()
        .map(|d| match d {
            Doc::Text(t) | Doc::Object { text: t } => t,
        })
        .collect();
    if docs.is_empty() {
        return Err(early(
            400,
            Fault::BadRequest,
            bad_request("'documents' must not be empty"),
        ));
    }
    early_faults(state, rng)?;
    let words: Vec<String> = query
        .split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect();
    let mut scored: Vec<(usize, f64)> = docs
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let d = d.to_lowercase();
            let hits = words.iter().filter(|w| d.contains(w.as_str())).count();
            (i, hits as f64 / words.len().max(1) as f64)
        })
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scored.truncate(r.top_n.unwrap_or(docs.len()).max(1));
    let prompt_tokens: u32 = tokenizer::count(&query) * docs.len() as u32
        + docs.iter().map(|d| tokenizer::count(d)).sum::<u32>();
    let results: Vec<serde_json::Value> = scored
        .iter()
        .map(|(i, s)| serde_json::json!({"index": i, "relevance_score": s}))
        .collect();
    let body = serde_json::json!({
        "id": format!("rerank-{:016x}", rng.u64(..)),
        "model": model,
        "results": results,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    });
    let due = embed_due(&latency, docs.len(), arrival, rng);
    crate::timer::sleep_until(due).await;
    let mut rec = state.simple_record(Endpoint::Rerank, 200, Fault::None, arrival);
    rec.prompt_tokens = prompt_tokens;
    state.stats.record(rec);
    Ok(json_response(StatusCode::OK, Bytes::from(body.to_string())))
}

/// When an answer on the embeddings latency model (a base, and a cost per
/// text) of `texts` texts is due.
fn embed_due(
    latency: &Latency,
    texts: usize,
    arrival: Instant,
    rng: &mut fastrand::Rng,
) -> Instant {
    let d = latency.embed_latency + latency.embed_per_text.saturating_mul(texts as u32);
    arrival + jittered(d, latency.jitter, rng)
}
