//! The k6 LLM suite's documented commands (`make …` with its variables),
//! in a folder whose Makefile is periscope's, against a mock serving as
//! the OpenAI API the suite's user points `OPENAI_BASE_URL` at.

use super::{repo, text, Shell};
use crate::common::{f, read_json, MockProc};

/// Each `make` line of the README, and what it runs: (command, the result
/// files it writes).
const RUNS: &[(&str, &[&str])] = &[
    ("make test-completions", &["completions-load"]),
    ("make test-embeddings", &["embeddings-load"]),
    ("make test-prefix-caching", &["prefix-caching-load"]),
    (
        "make test-benchmark",
        &["completions-benchmark", "embeddings-benchmark"],
    ),
    (
        "make test-all",
        &[
            "completions-load",
            "embeddings-load",
            "prefix-caching-load",
            "completions-benchmark",
            "embeddings-benchmark",
        ],
    ),
    (
        "make test-completions OPENAI_COMPLETION_MODEL=gpt-4 MAX_TOKENS=128",
        &["completions-load"],
    ),
    ("make test-completions VUS=1", &["completions-load"]),
    ("make test-completions VUS=5", &["completions-load"]),
    (
        "make test-prefix-caching MAX_TOKENS=16",
        &["prefix-caching-load"],
    ),
    (
        "make test-prefix-caching MAX_TOKENS=128",
        &["prefix-caching-load"],
    ),
    (
        "make test-smoke-all",
        &["completions-smoke", "embeddings-smoke"],
    ),
    (
        "make test-stress-all",
        &["completions-stress", "embeddings-stress"],
    ),
    (
        "make test-spike-all",
        &["completions-spike", "embeddings-spike"],
    ),
    (
        "make test-soak-all",
        &["completions-soak", "embeddings-soak"],
    ),
    (
        "make test-recovery-all",
        &["completions-recovery", "embeddings-recovery"],
    ),
    (
        "make test-completions-heavy-all",
        &["prefill-heavy-load", "decode-heavy-load"],
    ),
    (
        "MAX_OUTPUT_TOKENS=200 make test-completions-decode-heavy",
        &["decode-heavy-load"],
    ),
    (
        "OPENAI_COMPLETION_MODEL=gpt-4 make test-completions-heavy-all",
        &["prefill-heavy-load", "decode-heavy-load"],
    ),
];

/// The README's custom test, as written (scripts/my-custom-test.js).
const CUSTOM_TEST: &str = r#"// scripts/my-custom-test.js
import * as oai from "./helpers/openaiGeneric.js";
import config from "./config.js";

export const options = {
  vus: 1,
  duration: "30s",
};

const client = oai.createClient({
  url: config.openai.url,
  options: {
    model: "gpt-3.5-turbo",
  },
  headers: {
    Authorization: `Bearer ${config.openai.key}`,
  },
});

export default function () {
  const response = client.chatComplete({
    messages: [
      {
        role: "user",
        content: "Generate a random number between 1 and 100",
      },
    ],
  });

  console.log(oai.getContent(response));
}
"#;

/// A folder as the suite's user has it: periscope's Makefile, scripts/.
fn suite() -> Shell {
    let sh = Shell::new();
    std::fs::write(
        sh.path().join("Makefile"),
        format!("include {}/Makefile\n", repo().display()),
    )
    .unwrap();
    std::fs::create_dir(sh.path().join("scripts")).unwrap();
    std::fs::write(sh.path().join("scripts/my-custom-test.js"), CUSTOM_TEST).unwrap();
    sh
}

fn env(mock: &MockProc) -> Vec<(&'static str, String)> {
    vec![
        ("PERISCOPE", crate::common::BIN.to_string()),
        // The suite's default is https://api.openai.com: no /v1.
        ("OPENAI_BASE_URL", format!("http://{}", mock.addr)),
        ("OPENAI_API_KEY", "sk-seed".into()),
        ("DURATION", "1s".into()),
        ("SOAK_DURATION", "1s".into()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suites_make_commands_run_against_the_api_they_are_pointed_at() {
    let mock = MockProc::start(&[
        "--ttft",
        "2ms",
        "--itl",
        "1ms",
        "--output-tokens",
        "6",
        "--api-key",
        "sk-seed",
    ]);
    let sh = suite();
    let env = env(&mock);
    for (cmd, results) in RUNS {
        mock.reset().await;
        let _ = std::fs::remove_dir_all(sh.path().join("results"));
        let out = sh.run(cmd, &env);
        assert!(out.status.success(), "{cmd}: {}", text(&out));
        let st = mock.stats().await;
        let mut sent = 0.0;
        for name in *results {
            let r = read_json(
                sh.path()
                    .join(format!("results/{name}.json"))
                    .to_str()
                    .unwrap(),
            );
            let s = &r["summary"];
            assert_eq!(s["errors"], 0, "{cmd}: {name}: {}", r["errors"]);
            assert!(f(&s["ok"]) > 0.0, "{cmd}: {name}");
            assert_eq!(
                r["plan"]["target_kind"], "remote",
                "{cmd}: never the built-in mock"
            );
            assert_eq!(r["plan"]["token_present"], true);
            sent += f(&s["requests"]);
            if results.len() == 1 && name.starts_with("completions") {
                // One run: its ttft is the mock's send stamp's.
                let ours = f(&crate::common::latency(&r, "ttft")["p50"]);
                let theirs = f(&st["ttft_us"]["p50"]) / 1000.0;
                assert!(
                    (ours - theirs).abs() < 2.0,
                    "{cmd}: ttft p50 {ours} vs the mock's {theirs}"
                );
            }
            if cmd.contains("VUS=5") {
                assert_eq!(r["plan"]["load"]["vus"]["start"], 5.0, "{cmd}");
            } else if name.ends_with("-load") && !cmd.contains("VUS") {
                assert_eq!(
                    r["plan"]["load"]["vus"]["start"], 1.0,
                    "{cmd}: VUS defaults to 1"
                );
            }
            if cmd.contains("gpt-4") {
                assert_eq!(r["plan"]["model"], "gpt-4", "{cmd}");
            }
            for (var, want) in [
                ("MAX_TOKENS=128", 128),
                ("MAX_TOKENS=16", 16),
                ("MAX_OUTPUT_TOKENS=200", 200),
            ] {
                if cmd.contains(var) {
                    assert_eq!(r["plan"]["max_tokens"], want, "{cmd}");
                }
            }
        }
        // What the runs counted, the mock answered (each run's preflight
        // besides): every request sent was one the mock saw.
        let answered = f(&st["requests"]);
        assert!(
            answered >= sent && answered <= sent + 3.0 * results.len() as f64,
            "{cmd}: the runs counted {sent} requests, the mock answered {answered}"
        );
    }
}

/// `make test script=my-custom-test.js`: the README's custom test, its
/// imports as written, against the suite's target; and `make test
/// script=…` never runs periscope's own suite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn make_test_script_runs_the_readmes_custom_test_as_written() {
    let mock = MockProc::start(&[
        "--ttft",
        "2ms",
        "--itl",
        "1ms",
        "--output-tokens",
        "4",
        "--api-key",
        "sk-seed",
    ]);
    let sh = suite();
    let out = sh.run(
        "make test script=my-custom-test.js ARGS='--duration 2s'",
        &env(&mock),
    );
    assert!(out.status.success(), "{}", text(&out));
    let o = text(&out);
    assert!(!o.contains("cargo"), "{o}");
    let r = read_json(
        sh.path()
            .join("results/my-custom-test.json")
            .to_str()
            .unwrap(),
    );
    assert_eq!(r["plan"]["workload"], "script");
    assert_eq!(r["summary"]["errors"], 0, "{}", r["errors"]);
    let ok = f(&r["summary"]["ok"]);
    assert!(ok > 10.0, "{}", r["summary"]);
    // console.log of each answer's content.
    assert!(o.matches("log [vu 1]").count() as f64 >= ok - 1.0, "{o}");
    let st = mock.stats().await;
    assert!(f(&st["requests"]) >= ok, "{st}");
}

/// The commands that change where a run goes or what it plans: another
/// base URL, the soak's hour, help and the stack's compose file.
#[test]
fn the_suites_other_commands_plan_as_it_documents() {
    let sh = suite();
    let base = [
        ("PERISCOPE", crate::common::BIN.to_string()),
        ("OPENAI_API_KEY", "sk-seed".to_string()),
    ];
    let out = sh.run(
        "make test-completions OPENAI_BASE_URL=https://alternative-api.example.com ARGS=--dry-run",
        &base,
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("\"target\": \"https://alternative-api.example.com/v1\""),
        "{}",
        text(&out)
    );
    let out = sh.run(
        "SOAK_DURATION=60m make test-completions-soak ARGS=--dry-run",
        &base,
    );
    assert!(
        text(&out).contains("planned load: closed model: VUs 10 for 6m"),
        "{}",
        text(&out)
    );
    // The README's basic usage: only the key exported.
    let out = sh.run("make test-completions ARGS=--dry-run", &base);
    assert!(
        text(&out).contains("\"target\": \"https://api.openai.com/v1\""),
        "{}",
        text(&out)
    );
    let out = sh.run("make help", &base);
    for t in [
        "test-completions",
        "test-all",
        "test-smoke-all",
        "logs",
        "purge",
        "MOCK=1",
    ] {
        assert!(text(&out).contains(t), "{t}: {}", text(&out));
    }
    let compose = std::fs::read_to_string(repo().join("docker-compose.yaml")).unwrap();
    assert!(
        compose.contains("\n  k6-grafana:\n"),
        "docker-compose restart k6-grafana"
    );
}
