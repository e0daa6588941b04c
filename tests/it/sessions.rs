//! Sessions as a router and a prefix cache see them: every turn of a
//! multi-turn session carries its id in `--session-header`, asks the same
//! LoRA adapter (`--lora`), waits `--think-time` after the turn before; the
//! report's tables by turn and by adapter agree with what the mock counted.

use std::collections::{BTreeMap, BTreeSet};

use crate::common::*;
use serde_json::Value;

/// `GET /mock/headers`: header (or `model`, `NAME+model`) → value → count.
async fn counted(m: &MockProc) -> BTreeMap<String, BTreeMap<String, u64>> {
    let v: Value = http()
        .get(m.url("/mock/headers"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    serde_json::from_value(v).unwrap()
}

fn groups<'a>(r: &'a Value, kind: &str) -> Vec<&'a Value> {
    r["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["kind"] == kind)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_session_has_one_id_and_one_adapter_and_the_tables_agree_with_the_mock() {
    let m = MockProc::start(&[
        "--count-header",
        "X-Session-ID",
        "--count-model",
        "--prefix-cache",
        "--timings",
        "--ttft",
        "20ms",
        "--itl",
        "2ms",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let json = temp_json(&dir, "r");
    let out = periscope(&[
        "run",
        "conversation",
        "--target",
        &m.base(),
        "--vus",
        "3",
        "--turns",
        "4",
        "--max-tokens",
        "16",
        "--duration",
        "3s",
        "--lora",
        "sql-lora,chat-lora",
        "--lora-assignment",
        "round-robin",
        "--json",
        &json,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let r = read_json(&json);
    let seen = counted(&m).await;

    // Every turn carried a session id; a session has `--turns` turns (the
    // last of each VU may be cut short by the end of the run).
    let mut ids = seen["x-session-id"].clone();
    // The preflight is no session's turn.
    assert_eq!(ids.remove("(none)"), Some(1), "{ids:?}");
    let short: Vec<_> = ids.values().filter(|n| **n != 4).collect();
    assert!(ids.len() > 3 && short.len() <= 3, "{ids:?}");
    assert!(ids.values().all(|n| *n <= 4), "{ids:?}");

    // One adapter per session, and the adapters go round.
    let mut adapter_of: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for pair in seen["x-session-id+model"].keys() {
        let (id, model) = pair.split_once(' ').unwrap();
        adapter_of.entry(id).or_default().insert(model);
    }
    assert!(adapter_of.values().all(|m| m.len() == 1), "{adapter_of:?}");
    let sessions_of = |a: &str| adapter_of.values().filter(|m| m.contains(a)).count();
    let (sql, chat) = (sessions_of("sql-lora"), sessions_of("chat-lora"));
    assert!(
        sql.abs_diff(chat) <= 1,
        "round-robin: {sql} and {chat} sessions"
    );

    // The table by adapter counts what the mock was asked for.
    let models = &seen["model"];
    let by_adapter = groups(&r, "adapter");
    assert_eq!(by_adapter.len(), 2, "{by_adapter:?}");
    for g in &by_adapter {
        let name = g["label"].as_str().unwrap();
        assert_eq!(g["requests"].as_u64(), models.get(name).copied(), "{name}");
    }
    let md = stdout(&out);
    assert!(
        md.contains("### By adapter (ms)") && md.contains("| sql-lora "),
        "{md}"
    );
    assert!(
        md.contains("LoRA sql-lora, chat-lora (round-robin)"),
        "{md}"
    );
    assert!(md.contains("sessions named in `X-Session-ID`"), "{md}");

    // By turn: the prompt grows with the history, and the prefix cache
    // serves more of it; the cached tokens of all turns are the mock's.
    let turns = groups(&r, "turn");
    assert_eq!(turns.len(), 4, "{turns:?}");
    let prompt = |t: &Value| f(&t["input_tokens_mean"]);
    let hits = |t: &Value| f(&t["cache_hit_rate"]);
    assert!(prompt(turns[3]) > prompt(turns[0]) * 2.0, "{turns:?}");
    assert!(hits(turns[3]) > hits(turns[0]), "{turns:?}");
    let cached: u64 = turns
        .iter()
        .map(|t| t["cached_tokens"].as_u64().unwrap())
        .sum();
    let stats = m.stats().await;
    assert_eq!(cached, stats["cached_tokens"].as_u64().unwrap());
    // Every request the mock served is in one turn's row (the preflight aside).
    let by_turn: u64 = turns.iter().map(|t| t["requests"].as_u64().unwrap()).sum();
    assert_eq!(by_turn + 1, stats["requests"].as_u64().unwrap());
    assert!(
        md.contains("| cache hits |") || md.contains("cache hits"),
        "{md}"
    );
}

#[test]
fn think_time_spaces_the_turns_of_a_session_as_asked() {
    // Two runs side by side: with a mean of 300 ms before each turn after
    // the first, a VU's session of 3 turns takes its requests' time plus
    // two waits; the requests' own time is measured in the same run.
    let m = MockProc::start(&["--ttft", "20ms", "--itl", "2ms"]);
    let dir = tempfile::tempdir().unwrap();
    let json = temp_json(&dir, "r");
    let out = periscope(&[
        "run",
        "conversation",
        "--target",
        &m.base(),
        "--vus",
        "4",
        "--turns",
        "3",
        "--max-tokens",
        "8",
        "--think-time",
        "300ms",
        "--duration",
        "6s",
        "--json",
        &json,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let r = read_json(&json);
    assert_eq!(f(&r["plan"]["think_ms"]), 300.0);
    let e2e_s = f(&latency(&r, "e2e")["mean"]) / 1000.0;
    // Per VU, each request costs its e2e plus, on 2 turns of 3, a wait.
    let per_request = e2e_s + 0.3 * 2.0 / 3.0;
    let expected = 4.0 * 6.0 / per_request;
    let got = f(&r["summary"]["requests"]);
    assert!(
        (got - expected).abs() / expected < 0.2,
        "{got} requests; {expected:.0} expected with the think time"
    );
    assert!(stdout(&out).contains("think time 300 ms (mean) between turns"));
}

#[test]
fn session_and_lora_flags_say_what_is_wrong() {
    for (args, says) in [
        (
            vec!["run", "--mock", "--think-time", "1s", "--duration", "1s"],
            "--think-time waits between a session's turns",
        ),
        (
            vec!["run", "http", "--mock", "--lora", "a,b", "--duration", "1s"],
            "--lora names adapters in the model field",
        ),
        (
            vec![
                "run",
                "--mock",
                "--lora",
                "a,b",
                "--lora-assignment",
                "weights=1",
            ],
            "gives 1 weights for 2 adapters",
        ),
        (
            vec!["run", "--mock", "--lora-assignment", "random"],
            "--lora-assignment spreads the adapters of --lora",
        ),
        (
            vec!["run", "--mock", "--session-header", "bad header"],
            "is not a header name",
        ),
    ] {
        assert_usage_error(&args, says);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_session_header_when_asked_for_none_and_none_on_single_turns() {
    let m = MockProc::start(&["--count-header", "X-Session-ID"]);
    let base = m.base();
    for workload in ["conversation", "completions"] {
        let mut args = vec!["run", workload, "--target", base.as_str()];
        args.extend(["--vus", "1", "--iterations", "3", "--max-tokens", "4"]);
        if workload == "conversation" {
            args.extend(["--session-header", "none"]);
        }
        let out = periscope(&args);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let seen = counted(&m).await;
    assert_eq!(seen["x-session-id"].keys().collect::<Vec<_>>(), ["(none)"]);
    // 3 requests and a preflight each.
    assert_eq!(seen["x-session-id"]["(none)"], 8);
}
