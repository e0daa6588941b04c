//! The API shapes beside chat completions against llama.cpp's real server:
//! its `POST /v1/responses` and `POST /v1/messages`, streamed, 4 VUs × 50
//! requests each, with the usage it sends equal to its own counter.

use super::servers::{LiteLlm, Llama, LITELLM_KEY};
use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llama_cpp_responses_and_messages_stream_clean_with_the_servers_usage() {
    let Some(llama) = Llama::start(&[]) else {
        return;
    };
    for workload in ["responses", "messages"] {
        shape(&llama, workload).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_and_messages_through_litellm_reach_llama_cpp_clean() {
    let Some(llama) = Llama::start(&[]) else {
        return;
    };
    let Some(gateway) = LiteLlm::start(&llama) else {
        return;
    };
    for workload in ["responses", "messages"] {
        // 4 VUs × 10 in the suite, which must stay under 25 minutes
        // (LiteLLM costs a core of its own; 4 × 50 was run by hand, clean).
        shape_via(&llama, workload, &gateway.base(), Some(LITELLM_KEY), 40).await;
    }
}

async fn shape(llama: &Llama, workload: &str) {
    shape_via(llama, workload, &llama.base(), None, 200).await
}

/// `n` requests of `workload` from 4 VUs to `target` (llama.cpp, or a
/// gateway in front of it): no error, and the usage equal to its counters.
async fn shape_via(llama: &Llama, workload: &str, target: &str, key: Option<&str>, n: u64) {
    let iterations = n.to_string();
    let before = llama.metrics().await;
    let (_, r) = run_ok(&[
        "run",
        workload,
        "--token",
        key.unwrap_or(""),
        "--target",
        target,
        "--model",
        "gemma",
        "--no-preflight",
        "--vus",
        "4",
        "--iterations",
        &iterations,
        "--max-tokens",
        "4",
    ])
    .await;
    let after = llama.metrics().await;
    let s = &r["summary"];
    // Direct, no error at all. Through LiteLLM, an error event the gateway
    // sent itself in a 200 stream ("Connection closed.": its pooled
    // connection to llama.cpp, which closes after every streamed answer,
    // was gone; once in CI, 1 of 40) is the gateway's error, reported as
    // such: at most one, and every other answer clean.
    let gateway_errors = r["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            key.is_some()
                && e["class"] == "stream_error"
                && e["status"] == 200
                && e["message"] == "Connection closed."
        })
        .map(|e| e["count"].as_u64().unwrap())
        .sum::<u64>();
    assert!(gateway_errors <= 1, "{workload}: {}", r["errors"]);
    assert_eq!(
        s["errors"].as_u64(),
        Some(gateway_errors),
        "{workload}: {}",
        r["errors"]
    );
    let n = n - gateway_errors;
    assert_eq!(s["ok"], n, "{workload}");
    assert_eq!(s["output_token_sources"]["usage"], n, "{workload}: {s}");
    assert!(f(&latency(&r, "ttft")["p50"]) > 0.0);
    let predicted =
        after["llamacpp:tokens_predicted_total"] - before["llamacpp:tokens_predicted_total"];
    let prompt = after["llamacpp:prompt_tokens_total"] - before["llamacpp:prompt_tokens_total"]
        + after["llamacpp:prompt_tokens_cached_total"]
        - before["llamacpp:prompt_tokens_cached_total"];
    let output = f(&s["output_tokens"]);
    if key.is_none() {
        // Direct: the usage it sent is what it counted, prompt tokens
        // processed and from its cache included.
        assert_eq!(output, predicted, "{workload}");
        assert_eq!(f(&s["input_tokens"]), prompt, "{workload}");
    } else {
        // Through the gateway, every answer's usage is what llama.cpp sent
        // (LiteLLM passes it on), but the counter may also hold work the
        // gateway did on its own: once in CI, one token more than the 40
        // answers (a stream of its own it dropped after a token; every
        // answer periscope read carried 16). Less than one answer's worth.
        // A request the gateway failed may have been answered by llama.cpp
        // all the same: one answer's worth more per such error.
        let per_answer = output / n as f64;
        let lost = gateway_errors as f64;
        assert!(
            predicted >= output && predicted < output + per_answer * (1.0 + lost),
            "{workload}: llama.cpp predicted {predicted}, the answers' usage {output}"
        );
        let input = f(&s["input_tokens"]);
        let per_prompt = input / (n + gateway_errors) as f64;
        assert!(
            prompt + per_prompt * lost >= input,
            "{workload}: prompt {prompt}"
        );
    }
}
