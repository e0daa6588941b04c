//! The Makefile (the k6 suite's target names), the metrics stack it starts,
//! and the files docker compose and Grafana read.

use crate::common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// `make ARGS` in the project, with periscope's own variables cleared so the
/// test's environment does not leak in.
fn make(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new("make");
    c.current_dir(ROOT)
        .arg("--no-print-directory")
        .arg(format!("PERISCOPE={BIN}"))
        .args(args);
    for v in [
        "OPENAI_BASE_URL",
        "OPENAI_API_KEY",
        "ANTHROPIC_BASE_URL",
        "ANTHROPIC_API_KEY",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "TEMPO_ENDPOINT",
        "MOCK",
        "SCRIPT",
        "script",
        "OPENAI_COMPLETION_MODEL",
        "OPENAI_EMBEDDING_MODEL",
        "OPENAI_CODING_MODEL",
        "VUS",
        "DURATION",
        "MAX_TOKENS",
        "MAX_OUTPUT_TOKENS",
        "ENABLE_BATCH_MODE",
        "SOAK_DURATION",
        "STACK",
        "STACK_DIR",
        "INFLUX_PORT",
        "GRAFANA_PORT",
        "GITHUB_STEP_SUMMARY",
        "MAKEFLAGS",
        "MFLAGS",
    ] {
        c.env_remove(v);
    }
    c.envs(env.iter().copied());
    c.output().expect("run make")
}

fn text(o: &Output) -> String {
    format!("{}{}", stdout(o), stderr(o))
}

/// The k6 suite's targets, as the issue names them.
fn suite_targets() -> Vec<String> {
    let mut t: Vec<String> = [
        "setup",
        "start",
        "stop",
        "restart",
        "status",
        "logs",
        "clean",
        "purge",
        "grafana-dashboard",
        "help",
        "run",
        "test-completions",
        "test-responses",
        "test-messages",
        "test-tool-calls",
        "test-vision",
        "test-rerank",
        "test-embeddings",
        "test-prefix-caching",
        "test-benchmark",
        "test-all",
        "test-completions-prefill-heavy",
        "test-completions-decode-heavy",
        "test-completions-heavy-all",
    ]
    .map(String::from)
    .into();
    for shape in ["smoke", "stress", "spike", "soak", "recovery"] {
        for w in ["completions", "embeddings"] {
            t.push(format!("test-{w}-{shape}"));
        }
        t.push(format!("test-{shape}-all"));
    }
    t
}

/// What each single-run target runs: (workload, scenario).
fn runs_of(target: &str) -> Option<(&str, &str)> {
    Some(match target {
        "test-completions" => ("completions", "load"),
        "test-responses" => ("responses", "load"),
        "test-messages" => ("messages", "load"),
        "test-tool-calls" => ("tool-calls", "load"),
        "test-vision" => ("vision", "load"),
        "test-rerank" => ("rerank", "load"),
        "test-embeddings" => ("embeddings", "load"),
        "test-prefix-caching" => ("prefix-caching", "load"),
        "test-benchmark" => ("completions", "benchmark"),
        "test-completions-prefill-heavy" => ("prefill-heavy", "load"),
        "test-completions-decode-heavy" => ("decode-heavy", "load"),
        t => {
            let rest = t.strip_prefix("test-")?;
            let (w, shape) = rest.split_once('-')?;
            if !["completions", "embeddings"].contains(&w) || shape.ends_with("all") {
                return None;
            }
            (w, shape)
        }
    })
}

#[test]
fn help_lists_every_target_of_the_makefile_and_of_the_k6_suite() {
    let out = make(&["help"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let listed: Vec<String> = stdout(&out)
        .lines()
        .filter_map(|l| l.strip_prefix("  "))
        .filter_map(|l| l.split_whitespace().next())
        .map(String::from)
        .collect();
    for t in suite_targets() {
        assert!(listed.contains(&t), "make help does not list {t}");
    }
    // …and every target the Makefile declares, with a description.
    let makefile = std::fs::read_to_string(Path::new(ROOT).join("Makefile")).unwrap();
    let phony = makefile
        .split(".PHONY:")
        .nth(1)
        .unwrap()
        .split("\n\n")
        .next()
        .unwrap()
        .replace('\\', " ");
    let declared: Vec<&str> = phony.split_whitespace().collect();
    assert!(declared.len() >= 40, "{declared:?}");
    for t in declared {
        assert!(listed.iter().any(|l| l == t), "make help does not list {t}");
    }
    for v in ["OPENAI_API_KEY", "OPENAI_BASE_URL", "VUS", "SOAK_DURATION"] {
        assert!(stdout(&out).contains(v), "make help does not explain {v}");
    }
}

#[test]
fn make_n_test_stress_all_expands_to_the_periscope_commands() {
    let out = make(&["-n", "test-stress-all", "MOCK=1"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let printed = stdout(&out);
    let runs: Vec<&str> = printed.lines().filter(|l| l.contains(BIN)).collect();
    let want = |w: &str| {
        format!("env -u ANTHROPIC_BASE_URL {BIN} run {w} --scenario stress --mock --json results/{w}-stress.json --html results/{w}-stress.html")
    };
    let squeezed: Vec<String> = runs
        .iter()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        squeezed,
        [want("completions"), want("embeddings")],
        "{}",
        text(&out)
    );
    // With a target set, it is the target's, not the mock's.
    let out = make(
        &["-n", "test-stress-all"],
        &[("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")],
    );
    let s = stdout(&out);
    assert_eq!(s.matches(" --scenario stress ").count(), 2, "{s}");
    assert!(!s.contains("--mock"), "{s}");
}

/// The k6 suite's user exports only a key: its targets go to OpenAI's API,
/// never to the mock; with neither key nor URL they stop and say what to
/// set; the mock only with MOCK=1 (also over an OPENAI_BASE_URL).
#[test]
fn make_targets_use_the_mock_only_when_asked() {
    let out = make(&["-n", "test-smoke-all"], &[("OPENAI_API_KEY", "x")]);
    assert!(out.status.success(), "{}", text(&out));
    let s = stdout(&out);
    assert_eq!(
        s.matches("--target https://api.openai.com/v1").count(),
        2,
        "{s}"
    );
    assert!(!s.contains("--mock"), "{s}");
    let out = make(&["-n", "test-messages"], &[("ANTHROPIC_API_KEY", "x")]);
    assert!(
        stdout(&out).contains("--target https://api.anthropic.com/v1"),
        "{}",
        text(&out)
    );
    let out = make(&["test-smoke-all"], &[]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("no target: set OPENAI_BASE_URL (and OPENAI_API_KEY), or MOCK=1"),
        "{}",
        text(&out)
    );
    assert!(!text(&out).contains(" run "), "nothing ran: {}", text(&out));
    // Run for real: with a key and no URL nothing reaches a mock (the dry
    // run shows the plan's target); with MOCK=1 the mock answers, over an
    // OPENAI_BASE_URL in the environment.
    let out = make(
        &[
            "test-completions-smoke",
            "ARGS=--dry-run",
            "RESULTS=target/make-test",
        ],
        &[("OPENAI_API_KEY", "x")],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stdout(&out).contains("\"target_kind\": \"remote\""),
        "{}",
        text(&out)
    );
    assert!(
        stdout(&out).contains("\"target\": \"https://api.openai.com/v1\""),
        "{}",
        text(&out)
    );
    let out = make(
        &[
            "test-completions-smoke",
            "MOCK=1",
            "RESULTS=target/make-test",
            "ARGS=--mock-args '--ttft 1ms --itl 1ms'",
        ],
        &[
            ("OPENAI_API_KEY", "x"),
            ("OPENAI_BASE_URL", "http://127.0.0.1:9/v1"),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(stdout(&out).contains("(built-in mock)"), "{}", text(&out));
}

/// `make test-benchmark`: completions and embeddings at the same VU steps,
/// then both side by side, stage by stage (the k6 suite's benchmark).
#[test]
fn test_benchmark_runs_completions_and_embeddings_side_by_side() {
    let dir = tempfile::tempdir().unwrap();
    let out = make(
        &[
            "test-benchmark",
            "MOCK=1",
            &format!("RESULTS={}", dir.path().display()),
            "ARGS=--duration 5s --mock-args '--ttft 2ms --itl 1ms --output-tokens 4'",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    let c = read_json(
        dir.path()
            .join("completions-benchmark.json")
            .to_str()
            .unwrap(),
    );
    let e = read_json(
        dir.path()
            .join("embeddings-benchmark.json")
            .to_str()
            .unwrap(),
    );
    assert_eq!(e["plan"]["workload"], "embeddings");
    let s = stdout(&out);
    assert!(s.contains("## periscope: 2 results side by side"), "{s}");
    assert!(s.contains("### By stage, side by side (ms)"), "{s}");
    // One row per VU step, each with both results' ok_rps as they measured it.
    let stages = c["stages"].as_array().unwrap();
    assert_eq!(stages.len(), e["stages"].as_array().unwrap().len());
    for (i, st) in stages.iter().enumerate() {
        let row = format!("| {}     | {}", i + 1, st["target"].as_f64().unwrap());
        assert!(
            s.lines().any(|l| l.starts_with(&row[..3])
                && l.contains(&format!("{:.2}", st["ok_rps"].as_f64().unwrap()))
                && l.contains(&format!(
                    "{:.2}",
                    e["stages"][i]["ok_rps"].as_f64().unwrap()
                ))),
            "stage {i} ({row}): {s}"
        );
    }
}

/// `make test script=FILE` (the k6 suite's command, twice in its README)
/// runs the script; a name without a folder is found in examples/.
#[test]
fn make_test_with_a_script_runs_that_script() {
    for file in ["examples/custom-test.js", "custom-test.js"] {
        let out = make(
            &[
                "test",
                &format!("script={file}"),
                "MOCK=1",
                "RESULTS=target/make-test",
                "ARGS=--duration 1s --mock-args '--ttft 1ms --itl 1ms --output-tokens 4'",
            ],
            &[],
        );
        assert!(out.status.success(), "{}", text(&out));
        let s = stdout(&out);
        assert!(s.contains("run examples/custom-test.js --mock"), "{s}");
        assert!(!s.contains("cargo"), "the suite did not run: {s}");
        let r = read_json(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/target/make-test/custom-test.json"
        ));
        assert_eq!(r["plan"]["workload"], "script", "{}", r["plan"]);
        assert!(r["summary"]["ok"].as_u64().unwrap() > 0, "{}", r["summary"]);
        assert_eq!(r["summary"]["errors"], 0, "{}", r["summary"]);
    }
}

/// Every single-run target, run for real with `ARGS=--dry-run`: its command
/// is one periscope accepts, with the workload and scenario it should have,
/// and the variables reach it.
#[test]
fn every_test_target_runs_a_valid_plan_with_the_variables_passed_through() {
    let mut checked = 0;
    for t in suite_targets() {
        let Some((workload, scenario)) = runs_of(&t) else {
            continue;
        };
        let out = make(
            &[
                &t,
                "ARGS=--dry-run",
                "MAX_TOKENS=9",
                "MOCK=1",
                "RESULTS=target/make-test",
            ],
            &[("SOAK_DURATION", "7m")],
        );
        assert!(out.status.success(), "{t}: {}", text(&out));
        let s = stdout(&out);
        let start = s
            .find("\n{")
            .map(|i| i + 1)
            .unwrap_or_else(|| s.find('{').unwrap());
        let plan: Value = serde_json::Deserializer::from_str(&s[start..])
            .into_iter()
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(plan["workload"], workload, "{t}: {s}");
        assert_eq!(plan["scenario"], scenario, "{t}: {s}");
        assert_eq!(plan["target_kind"], "built-in mock", "{t}: {s}");
        if !["embeddings", "rerank"].contains(&workload) {
            assert_eq!(plan["max_tokens"], 9, "{t}: MAX_TOKENS=9 did not reach it");
        }
        if scenario == "load" {
            // The k6 suite's default: 1 VU.
            assert_eq!(plan["load"]["vus"]["start"], 1.0, "{t}: {}", plan["load"]);
        }
        if scenario == "soak" {
            let total: f64 = plan["load"]["vus"]["stages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|st| st["duration"].as_f64().unwrap())
                .sum();
            assert_eq!(total, 420.0, "{t}: SOAK_DURATION=7m did not reach it: {s}");
        }
        checked += 1;
    }
    assert_eq!(checked, 21);
    // The model variables, and VUS, as arguments.
    let out = make(
        &[
            "test-embeddings",
            "ARGS=--dry-run",
            "OPENAI_EMBEDDING_MODEL=my-embedder",
            "VUS=3",
            "MOCK=1",
        ],
        &[],
    );
    let s = stdout(&out);
    assert!(s.contains("\"model\": \"my-embedder\""), "{s}");
    assert!(s.contains("planned load: closed model: 3 VUs"), "{s}");
    let out = make(&["run"], &[]);
    assert_ne!(out.status.code(), Some(0));
    assert!(text(&out).contains("give the scenario: make run SCENARIO=file.yaml"));
    // A script, as the k6 suite ran one (`script=`), its options applied.
    for var in ["SCRIPT", "script"] {
        let arg = format!("{var}=examples/custom-metrics.js");
        let out = make(
            &[
                "script",
                &arg,
                "ARGS=--dry-run",
                "MOCK=1",
                "RESULTS=target/make-test",
            ],
            &[],
        );
        let s = stdout(&out);
        assert!(out.status.success(), "{}", text(&out));
        assert!(s.contains("\"workload\": \"script\""), "{s}");
        assert!(s.contains("\"scenario\": \"custom-metrics.js\""), "{s}");
        assert!(s.contains("checks.rate>0.99"), "{s}");
    }
    let out = make(&["script"], &[]);
    assert!(text(&out).contains("give the script: make script SCRIPT="));
}

/// `make start` (STACK=native: Debian's influxd) is up: a test target writes
/// its points there. Stopped: the same target still runs, without them.
#[test]
fn test_targets_write_to_influxdb_when_make_start_is_up_and_run_without_it() {
    if !installed("influxd", "influxdb") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port().to_string();
    let stack_dir = dir.path().join("stack");
    let results = dir.path().join("results");
    let env = [
        ("STACK", "native"),
        ("INFLUX_PORT", port.as_str()),
        ("STACK_DIR", stack_dir.to_str().unwrap()),
    ];
    let results_arg = format!("RESULTS={}", results.display());
    let run = |env: &[(&str, &str)]| {
        let out = make(
            &[
                "test-completions-smoke",
                &results_arg,
                "VUS=2",
                "MAX_TOKENS=7",
                "MOCK=1",
            ],
            env,
        );
        assert!(out.status.success(), "{}", text(&out));
        read_json(results.join("completions-smoke.json").to_str().unwrap())
    };

    let start = make(&["start"], &env);
    // Stop the stack whatever happens below.
    struct Stop<'a>(&'a [(&'a str, &'a str)]);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            make(&["stop"], self.0);
        }
    }
    let _stop = Stop(&env);
    assert!(start.status.success(), "{}", text(&start));
    let status = make(&["status"], &env);
    assert!(status.status.success(), "{}", text(&status));
    assert!(
        stdout(&status).contains("InfluxDB  up"),
        "{}",
        text(&status)
    );

    let r = run(&env);
    assert_eq!(r["plan"]["load"]["vus"]["start"], 2.0, "{}", r["plan"]);
    assert_eq!(r["plan"]["max_tokens"], 7);
    assert_eq!(r["summary"]["requests"], 5);
    let o = &r["outputs"][0];
    assert_eq!(o["dropped"], 0, "{o}");
    let run_id = r["run_id"].as_str().unwrap();
    let q = format!("SELECT count(e2e_ms) FROM periscope_request WHERE run_id = '{run_id}'");
    let answer = influx_query(&port, &q);
    assert_eq!(
        answer["results"][0]["series"][0]["values"][0][1], 5,
        "{answer}"
    );
    assert!(results.join("completions-smoke.html").exists());

    let stop = make(&["stop"], &env);
    assert!(stop.status.success(), "{}", text(&stop));
    let status = make(&["status"], &env);
    assert!(!status.status.success(), "{}", text(&status));
    let r = run(&env);
    assert_eq!(r["summary"]["requests"], 5);
    assert!(
        r["outputs"].as_array().is_none_or(|o| o.is_empty()),
        "{}",
        r["outputs"]
    );
    let purge = make(&["purge", &results_arg], &env);
    assert!(purge.status.success(), "{}", text(&purge));
    assert!(!stack_dir.exists() && !results.exists());
}

fn influx_query(port: &str, q: &str) -> Value {
    let mut url = reqwest::Url::parse(&format!("http://127.0.0.1:{port}/query")).unwrap();
    url.query_pairs_mut()
        .append_pair("db", "periscope")
        .append_pair("q", q);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async { get_json(url.as_str()).await })
}

/// docker-compose.yaml and Grafana's provisioning: every file they mount or
/// point at exists, and they agree with each other and with the dashboards.
#[test]
fn compose_and_provisioning_reference_files_that_exist() {
    let root = Path::new(ROOT);
    let yaml = |p: &Path| -> Value {
        yaml_serde::from_str(&std::fs::read_to_string(p).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    };
    let compose = yaml(&root.join("docker-compose.yaml"));
    let services = compose["services"].as_object().unwrap();
    let influx = &services["k6-influxdb"];
    let grafana = &services["k6-grafana"];
    assert!(influx["image"]
        .as_str()
        .unwrap()
        .starts_with("influxdb:1.8"));
    // Only loopback ports.
    for s in services.values() {
        for p in s["ports"].as_array().unwrap() {
            assert!(p.as_str().unwrap().starts_with("127.0.0.1:"), "{p}");
        }
    }
    // Grafana's bind mounts: container path → folder in the repository.
    let mut mounts: BTreeMap<String, std::path::PathBuf> = BTreeMap::new();
    for v in grafana["volumes"].as_array().unwrap() {
        let parts: Vec<&str> = v.as_str().unwrap().split(':').collect();
        if let Some(host) = parts[0].strip_prefix("./") {
            let host = root.join(host);
            assert!(host.is_dir(), "{} is mounted but missing", host.display());
            mounts.insert(parts[1].to_string(), host);
        }
    }
    let on_host = |container: &str| -> std::path::PathBuf {
        let (mount, host) = mounts
            .iter()
            .find(|(m, _)| container.starts_with(m.as_str()))
            .unwrap_or_else(|| panic!("{container} is not in a mounted folder"));
        host.join(container[mount.len()..].trim_start_matches('/'))
    };
    let home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
        .as_str()
        .unwrap();
    assert!(on_host(home).is_file(), "home dashboard {home} is missing");

    // The dashboards provider points at the folder with the dashboards.
    let provisioning = on_host("/etc/grafana/provisioning");
    let providers = yaml(&provisioning.join("dashboards/periscope.yaml"));
    let path = providers["providers"][0]["options"]["path"]
        .as_str()
        .unwrap();
    let folder = on_host(path);
    let mut uids = Vec::new();
    for name in [
        "periscope-load-test.json",
        "periscope-llm-tokens.json",
        "periscope-otlp-traces.json",
        "periscope-server.json",
        "periscope-script.json",
    ] {
        let file = folder.join(name);
        assert!(file.is_file(), "{} is missing", file.display());
        let d: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        uids.push(d["uid"].as_str().unwrap().to_string());
        collect_datasource_uids(&d, &mut |uid| {
            assert_eq!(uid, "periscope-influxdb", "{name} uses datasource {uid}")
        });
    }
    // The stack script's dashboard links name those uids.
    let stack = std::fs::read_to_string(root.join("scripts/stack.sh")).unwrap();
    for uid in &uids {
        assert!(
            stack.contains(&format!("/d/{uid}")),
            "stack.sh does not link {uid}"
        );
    }

    // The datasource: the compose service, its port, its database.
    let ds = yaml(&provisioning.join("datasources/influxdb.yaml"));
    let ds = &ds["datasources"][0];
    assert_eq!(ds["uid"], "periscope-influxdb");
    assert_eq!(ds["url"], "http://k6-influxdb:8086");
    assert!(influx["ports"][0].as_str().unwrap().ends_with(":8086"));
    assert_eq!(
        ds["jsonData"]["dbName"],
        influx["environment"]["INFLUXDB_DB"]
    );
}

fn collect_datasource_uids(v: &Value, f: &mut impl FnMut(&str)) {
    match v {
        Value::Object(m) => {
            if let Some(uid) = m.get("datasource").and_then(|d| d["uid"].as_str()) {
                f(uid);
            }
            m.values().for_each(|x| collect_datasource_uids(x, f));
        }
        Value::Array(a) => a.iter().for_each(|x| collect_datasource_uids(x, f)),
        _ => {}
    }
}

#[test]
fn perf_test_runs_the_tempo_suites_profiles_with_their_test_type() {
    let out = make(
        &[
            "perf-test-dry-run",
            "PROFILES=1x-small,medium",
            "TEST_TYPE=query",
            "QUERY_ENDPOINT=http://127.0.0.1:3200",
            "RESULTS=target/make-test",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    let s = stdout(&out);
    let plans: Vec<Value> = s
        .match_indices("\n{")
        .filter_map(|(i, _)| {
            serde_json::Deserializer::from_str(&s[i + 1..])
                .into_iter::<Value>()
                .next()
                .and_then(Result::ok)
        })
        .collect();
    let names: Vec<&str> = plans
        .iter()
        .filter_map(|p| p["scenario"].as_str())
        .collect();
    assert_eq!(names, ["otlp-1x-small", "otlp-medium"], "{s}");
    for p in &plans {
        assert_eq!(p["otlp"]["test_type"], "query", "{p}");
    }
    // The profiles' own query rates: 25 and 25 queries/s.
    assert_eq!(
        s.matches("planned queries: 25 queries/s to http://127.0.0.1:3200")
            .count(),
        2,
        "{s}"
    );
    assert!(!s.contains("planned traces"), "{s}");
}
