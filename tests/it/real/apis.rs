//! The API shapes beside chat completions against llama.cpp's real server:
//! its `POST /v1/responses`, streamed, with the usage it sends.

use super::servers::Llama;
use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llama_cpp_responses_stream_clean_with_the_servers_usage() {
    let Some(llama) = Llama::start(&[]) else {
        return;
    };
    let before = llama.metrics().await;
    let (_, r) = run_ok(&[
        "run",
        "responses",
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
        "8",
    ])
    .await;
    let after = llama.metrics().await;
    let s = &r["summary"];
    assert_eq!(s["errors"], 0, "{}", r["errors"]);
    assert_eq!(s["ok"], 200);
    assert_eq!(s["output_token_sources"]["usage"], 200, "{s}");
    assert!(f(&latency(&r, "ttft")["p50"]) > 0.0);
    // The usage it sent is what it counted.
    let predicted =
        after["llamacpp:tokens_predicted_total"] - before["llamacpp:tokens_predicted_total"];
    assert_eq!(f(&s["output_tokens"]), predicted);
}
