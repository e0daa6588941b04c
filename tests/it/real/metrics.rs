//! `--server-metrics` against llama.cpp's real server (`--metrics`): the
//! run's token totals from its `llamacpp:` counters equal the deltas of
//! those counters read directly, and the client's sums of usage.

use super::servers::Llama;
use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llama_cpp_counters_over_the_run_equal_the_clients_usage() {
    let Some(llama) = Llama::start(&[]) else {
        return;
    };
    let before = llama.metrics().await;
    let (out, r) = run_ok(&[
        "run",
        "--target",
        &llama.base(),
        "--model",
        "gemma",
        "--no-preflight",
        "--vus",
        "4",
        "--iterations",
        "40",
        "--max-tokens",
        "8",
        "--server-metrics",
        "--scrape-interval",
        "250ms",
        "--threshold",
        "server.generation_tokens>0",
    ])
    .await;
    let after = llama.metrics().await;
    let direct = |k: &str| after[k] - before[k];
    let s = &r["summary"];
    assert_eq!(s["errors"], 0, "{}", r["errors"]);
    assert_eq!(s["input_token_sources"]["usage"], 40, "{s}");
    let t = &r["server"]["targets"][0];
    assert_eq!(t["server"], "llama.cpp", "{t}");
    assert_eq!(t["failed_scrapes"], 0, "{t}");
    let count = |k: &str| f(&t["figures"]["counts"][k]);
    // Generated: the server's counter over the run, read by periscope and
    // directly, and the usage it sent.
    assert_eq!(
        count("generation_tokens"),
        direct("llamacpp:tokens_predicted_total")
    );
    assert_eq!(count("generation_tokens"), f(&s["output_tokens"]));
    // Prompt: processed plus reused from its cache, as its usage counts it.
    let prompt =
        direct("llamacpp:prompt_tokens_total") + direct("llamacpp:prompt_tokens_cached_total");
    assert_eq!(count("prompt_tokens"), prompt);
    assert_eq!(count("prompt_tokens"), f(&s["input_tokens"]));
    assert_eq!(
        count("prefix_cache_hits"),
        direct("llamacpp:prompt_tokens_cached_total")
    );
    // Its 4 slots were busy while the load ran.
    assert!(f(&t["figures"]["gauges"]["running"]["max"]) >= 1.0, "{t}");
    assert!(f(&t["figures"]["decode_rate"]) > 0.0, "{t}");
    assert_eq!(r["thresholds"][0]["pass"], true);
    assert!(stdout(&out).contains("### Server metrics (llama.cpp at "));
}
