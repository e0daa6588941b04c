//! `--replay FILE`: a timestamped trace sent as it arrived. By the mock's
//! own arrival stamps every request starts on its (scaled) timestamp; a
//! trace of 100 000 records is checked and started in under a second; a bad
//! record stops the run before it starts, naming its line; against
//! llama.cpp, prompts are `input_length` of the server's tokens and its
//! prefix cache reuses what the trace's `hash_ids` share.

use std::io::Write as _;
use std::time::Instant;

use crate::common::*;

/// A trace file of `lines` in `dir`.
fn trace(dir: &tempfile::TempDir, name: &str, lines: impl IntoIterator<Item = String>) -> String {
    let path = dir.path().join(name);
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
    f.flush().unwrap();
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_records_a_second_start_on_their_timestamps_by_the_mocks_stamps() {
    let mock = MockProc::start_ahead(&["--ttft", "2ms", "--itl", "1ms", "--output-tokens", "2"]);
    let dir = tempfile::tempdir().unwrap();
    // 3000 records 2 ms apart, replayed twice as fast: 1000 a second.
    let n = 3000;
    let file = trace(
        &dir,
        "t.jsonl",
        (0..n).map(|i| {
            format!(
                r#"{{"timestamp": {}, "input_length": 16, "output_length": 2, "hash_ids": [{}]}}"#,
                i * 2,
                i % 7
            )
        }),
    );
    let json = temp_json(&dir, "r");
    let (busy0, mock0) = (machine_busy_seconds(), mock.usage().0);
    let out = periscope(&[
        "run",
        "--target",
        &mock.base(),
        "--replay",
        &file,
        "--replay-speed",
        "2",
        "--block-tokens",
        "16",
        "--no-preflight",
        "--json",
        &json,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let r = read_json(&json);
    // The CPU that neither the client nor the mock used during the run.
    let others = machine_busy_seconds()
        - busy0
        - (mock.usage().0 - mock0)
        - r["generator"]["cpu_seconds"].as_f64().unwrap();
    assert_eq!(r["summary"]["requests"].as_u64(), Some(n));
    assert_eq!(r["summary"]["errors"].as_u64(), Some(0), "{}", stdout(&out));
    let stamps = mock.arrivals().await;
    assert_eq!(stamps.len() as u64, n);
    // Each arrival less its record's scaled timestamp, with the offset
    // between the two clocks (their median) taken out.
    let mut d: Vec<i64> = stamps
        .iter()
        .enumerate()
        .map(|(i, at)| *at as i64 - i as i64 * 1000)
        .collect();
    let mut sorted = d.clone();
    sorted.sort_unstable();
    let offset = sorted[sorted.len() / 2];
    for x in &mut d {
        *x = (*x - offset).abs();
    }
    d.sort_unstable();
    let p99 = d[d.len() * 99 / 100];
    // The client's own view, to tell a late send from a late stamp.
    let lag = &r["latency"]["schedule_lag"];
    assert!(
        p99 <= 1000,
        "p99 start error {p99} µs by the mock's stamps (p50 {} µs, p90 {} µs, max {} µs); \
         the client's schedule lag p99 {} ms, max {} ms; other processes used {others:.2} CPU-s \
         over the run's {} s",
        d[d.len() / 2],
        d[d.len() * 9 / 10],
        d[d.len() - 1],
        lag["p99"],
        lag["max"],
        r["duration_s"]
    );
}

#[test]
fn a_hundred_thousand_records_are_checked_and_planned_in_under_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let file = trace(
        &dir,
        "big.jsonl",
        (0..100_000u64).map(|i| {
            format!(
                r#"{{"timestamp": {i}, "input_length": {}, "output_length": 64, "hash_ids": [{}, {}]}}"#,
                512 + i % 900,
                i % 100,
                i
            )
        }),
    );
    let t0 = Instant::now();
    let out = periscope(&["run", "--mock", "--replay", &file, "--dry-run"]);
    let took = t0.elapsed();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("100000"), "{}", stdout(&out));
    assert!(
        took.as_secs_f64() < 1.0,
        "{took:?} to check and plan 100 000 records"
    );
    // Cut short by --duration, the plan names the records it will send:
    // those stamped in the first 30 s at twice the speed (60 000 ms).
    let out = periscope(&[
        "run",
        "--mock",
        "--replay",
        &file,
        "--replay-speed",
        "2",
        "--duration",
        "30s",
        "--dry-run",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("(60000 records over 30s"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_bad_record_stops_the_run_before_it_starts_naming_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = trace(
        &dir,
        "bad.jsonl",
        [
            r#"{"timestamp": 0, "input_length": 8, "output_length": 4}"#.to_string(),
            r#"{"timestamp": 5, "input_length": "many", "output_length": 4}"#.to_string(),
        ],
    );
    let out = periscope(&["run", "--mock", "--replay", &file]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains(":2") || err.contains("line 2"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_llama_cpp_prompts_are_their_length_and_the_cache_reuses_shared_blocks() {
    // One slot: its cache holds the prompt before, which the next one may
    // share (--swa-full: Gemma 3's sliding-window cache is otherwise not
    // reused in part).
    let Some(llama) = crate::real::servers::Llama::start(&["-np", "1", "--swa-full"]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // Records 2 s apart (one at a time), 64-token blocks.
    let records: &[(u32, &[u64])] = &[
        (256, &[1, 2, 3, 4]),
        (256, &[1, 2, 3, 5]),
        (192, &[1, 2, 6]),
        (256, &[7, 8, 9, 10]),
        (256, &[7, 8, 9, 10]),
        (128, &[7, 11]),
        (320, &[12, 13, 14, 15, 16]),
        (320, &[12, 13, 14, 15, 17]),
    ];
    let file = trace(
        &dir,
        "t.jsonl",
        records.iter().enumerate().map(|(i, (n, ids))| {
            format!(
                r#"{{"timestamp": {}, "input_length": {n}, "output_length": 1, "hash_ids": {ids:?}}}"#,
                i * 2000
            )
        }),
    );
    let rows = temp_json(&dir, "rows.jsonl");
    let json = temp_json(&dir, "r");
    let out = periscope(&[
        "run",
        "text-completions",
        "--target",
        &llama.base(),
        "--tokenizer",
        "server",
        "--replay",
        &file,
        "--block-tokens",
        "64",
        "--no-stream",
        "--requests-out",
        &rows,
        "--json",
        &json,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let r = read_json(&json);
    assert_eq!(r["summary"]["errors"].as_u64(), Some(0), "{}", stdout(&out));
    let template = r["tokenizer"]["template_tokens"].as_i64().unwrap();
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&rows)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), records.len());
    let mut by_time = lines.clone();
    by_time.sort_by(|a, b| f(&a["t_s"]).total_cmp(&f(&b["t_s"])));
    let (mut implied, mut cached) = (0u64, 0u64);
    for (i, (row, (n, ids))) in by_time.iter().zip(records).enumerate() {
        // The server's usage: the record's length and what the server adds
        // (its BOS token, measured at the preflight).
        let got = row["input_tokens"].as_i64().unwrap();
        assert!(
            (got - *n as i64 - template).abs() <= 1,
            "record {i}: the server counted {got}; {n} + {template} expected"
        );
        // The blocks it shares with the record before (the slot's cache;
        // before the first, the preflight's prompt), and what the server
        // adds before them; a whole prompt seen before keeps its last token
        // to compute.
        let prev: &[u64] = if i > 0 { records[i - 1].1 } else { &[] };
        let shared = ids.iter().zip(prev).take_while(|(a, b)| a == b).count() as u64;
        let t = template as u64;
        implied += (shared * 64 + t).min(*n as u64 + t - 1);
        cached += row["cached_tokens"].as_u64().unwrap_or(0);
    }
    let share = cached as f64 / implied as f64;
    assert!(
        (share - 1.0).abs() <= 0.05,
        "llama.cpp reused {cached} tokens; the trace's hash_ids imply {implied}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_sessions_turns_carry_the_traces_own_session_id() {
    let mock = MockProc::start(&[
        "--count-header",
        "X-Session-ID",
        "--ttft",
        "5ms",
        "--itl",
        "1ms",
    ]);
    let file = "datasets/traces/sessions.jsonl";
    // The trace's sessions and how many turns each has.
    let mut want: std::collections::BTreeMap<String, u64> = Default::default();
    for line in std::fs::read_to_string(file).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        // A record of no session carries no header.
        let id = match &v["session_id"] {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => "(none)".to_string(),
            other => other.to_string(),
        };
        *want.entry(id).or_default() += 1;
    }
    let dir = tempfile::tempdir().unwrap();
    let json = temp_json(&dir, "r");
    let out = periscope(&[
        "run",
        "--target",
        &mock.base(),
        "--replay",
        file,
        "--replay-speed",
        "50",
        "--max-tokens",
        "4",
        "--no-preflight",
        "--json",
        &json,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let seen = get_json(&mock.url("/mock/headers")).await;
    let got: std::collections::BTreeMap<String, u64> =
        serde_json::from_value(seen["x-session-id"].clone()).unwrap();
    assert_eq!(got, want);
    let r = read_json(&json);
    let turns: u64 = r["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["kind"] == "turn")
        .map(|g| g["requests"].as_u64().unwrap())
        .sum();
    let alone = want.remove("(none)").unwrap_or(0);
    assert!(alone > 0 && want.len() > 50, "the trace has both kinds");
    assert_eq!(turns, want.values().sum::<u64>());
}
