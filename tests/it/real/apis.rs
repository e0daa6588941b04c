//! The API shapes beside chat completions against llama.cpp's real server:
//! its `POST /v1/responses` and `POST /v1/messages`, streamed, 4 VUs × 50
//! requests each, with the usage it sends equal to its own counter.

use super::servers::Llama;
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

async fn shape(llama: &Llama, workload: &str) {
    let before = llama.metrics().await;
    let (_, r) = run_ok(&[
        "run",
        workload,
        "--target",
        &llama.base(),
        "--model",
        "gemma",
        "--no-preflight",
        "--vus",
        "4",
        "--iterations",
        "200",
        "--max-tokens",
        "4",
    ])
    .await;
    let after = llama.metrics().await;
    let s = &r["summary"];
    assert_eq!(s["errors"], 0, "{workload}: {}", r["errors"]);
    assert_eq!(s["ok"], 200, "{workload}");
    assert_eq!(s["output_token_sources"]["usage"], 200, "{workload}: {s}");
    assert!(f(&latency(&r, "ttft")["p50"]) > 0.0);
    // The usage it sent is what it counted.
    let predicted =
        after["llamacpp:tokens_predicted_total"] - before["llamacpp:tokens_predicted_total"];
    assert_eq!(f(&s["output_tokens"]), predicted, "{workload}");
    // And its prompt tokens, processed and from its cache.
    let prompt = after["llamacpp:prompt_tokens_total"] - before["llamacpp:prompt_tokens_total"]
        + after["llamacpp:prompt_tokens_cached_total"]
        - before["llamacpp:prompt_tokens_cached_total"];
    assert_eq!(f(&s["input_tokens"]), prompt, "{workload}");
}
