//! k6-style scripts (`periscope run my-test.js`) against the mock: every
//! file in `examples/`, custom metrics and checks with their thresholds,
//! the errors of a bad script, and segments merged exactly.

use std::process::Output;

use crate::common::*;

/// Run periscope with extra environment (a script's `__ENV`).
async fn periscope_env(args: Vec<String>, env: Vec<(&'static str, String)>) -> Output {
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        periscope_with_env(&refs, &env)
    })
    .await
    .unwrap()
}

fn custom<'a>(r: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    &r["raw"]["total"]["custom"]["metrics"][name]
}

fn script(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_examples_run_against_the_mock_measured_by_its_stamps_and_usage() {
    let mock = MockProc::start(&["--ttft", "30ms", "--itl", "3ms", "--output-tokens", "12"]);
    // Custom metrics: LLM figures by the mock's stamps and usage, the
    // script's counter equal to the usage, every check passed.
    let (out, r) = run_ok(&[
        "run",
        "examples/custom-metrics.js",
        "--target",
        &mock.base(),
        "--iterations",
        "24",
    ])
    .await;
    let st = mock.stats().await;
    usage_and_stamps_agree(&r, &st, 24);
    assert_eq!(f(&custom(&r, "output_tokens_total")["sum"]), 24.0 * 12.0);
    assert_eq!(custom(&r, "checks")["count"], 48);
    assert_eq!(custom(&r, "checks")["trues"], 48);
    assert_eq!(custom(&r, "iterations")["sum"], 24.0);
    assert_eq!(custom(&r, "prompt_length")["count"], 24);
    let text = stdout(&out);
    assert!(
        text.contains("### Script") && text.contains("✓ status is 200"),
        "{text}"
    );
    assert!(text.contains("`response_length.p(95)>0`"), "{text}");

    // The k6 suite's custom test: its content logged by console.log.
    mock.reset().await;
    let (out, r) = run_ok(&[
        "run",
        "examples/custom-test.js",
        "--target",
        &mock.base(),
        "--iterations",
        "3",
    ])
    .await;
    assert_eq!(r["summary"]["ok"], 3, "{}", r["errors"]);
    assert_eq!(mock.stats().await["by_endpoint"]["chat"], 3);
    assert_eq!(
        stderr(&out).matches("log [vu 1] ").count(),
        3,
        "{}",
        stderr(&out)
    );

    // The k6-only script: k6/http to the mock, http_reqs = the mock's
    // count, http_req_duration by the mock's stamps.
    mock.reset().await;
    let dir = tempfile::tempdir().unwrap();
    let json = temp_json(&dir, "k6.json");
    let out = periscope_env(
        s(&["run", "examples/k6-http.js", "--json", &json]),
        vec![("OPENAI_BASE_URL", mock.base())],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let r = read_json(&json);
    let st = mock.stats().await;
    assert_eq!(st["by_endpoint"]["chat"], 20, "{st}");
    assert_eq!(custom(&r, "http_reqs")["sum"], 20.0);
    assert_eq!(custom(&r, "checks")["trues"], 40);
    let mut d: Vec<f64> = custom(&r, "http_req_duration")["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(f)
        .collect();
    d.sort_by(f64::total_cmp);
    let (ours, mocks) = (d[d.len() / 2], f(&st["e2e_us"]["p50"]) / 1000.0);
    assert!(
        (ours - mocks).abs() < 2.0,
        "http_req_duration p50 {ours} vs the mock's {mocks}"
    );
    // The requests are in the run's own tables too (one endpoint row).
    assert_eq!(r["summary"]["ok"], 20);
}

const TREND: &str = "import { Trend } from 'k6/metrics';\nimport { check } from 'k6';\n\
    const t = new Trend('t');\n\
    export default function () { t.add(__ITER + 1); check(__ITER, { even: (i) => i % 2 === 0 }); }\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thresholds_on_custom_metrics_and_checks_pass_with_0_and_fail_with_99() {
    let dir = tempfile::tempdir().unwrap();
    let path = script(&dir, "t.js", TREND);
    let json = temp_json(&dir, "t.json");
    let run = |extra: &[&str]| {
        let mut a = s(&[
            "run",
            &path,
            "--mock",
            "--vus",
            "1",
            "--iterations",
            "100",
            "--json",
            &json,
        ]);
        a.extend(s(extra));
        periscope_async(a)
    };
    // 1..=100 added: p(95) is k6's 95.05.
    let out = run(&[
        "--threshold",
        "t.p(95)<95.06",
        "--threshold",
        "t.count>=100",
    ])
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r = read_json(&json);
    assert!(
        (f(&r["thresholds"][0]["actual"]) - 95.05).abs() < 1e-9,
        "{}",
        r["thresholds"]
    );
    let out = run(&["--threshold", "t.p95<95"]).await;
    assert_eq!(out.status.code(), Some(99), "{}", stderr(&out));
    // Half the checks fail: a checks rate threshold in k6's syntax fails.
    let k6 = script(
        &dir,
        "k6.js",
        &format!("{TREND}export const options = {{ thresholds: {{ checks: ['rate>0.9'] }} }};\n"),
    );
    let out = periscope_async(s(&[
        "run",
        &k6,
        "--mock",
        "--iterations",
        "10",
        "--json",
        &json,
    ]))
    .await;
    assert_eq!(out.status.code(), Some(99), "{}", stderr(&out));
    assert_eq!(read_json(&json)["thresholds"][0]["actual"], 0.5);
    // A custom metric's threshold outside a script is a usage error.
    let out = periscope(&["run", "--mock", "--threshold", "t.p95<1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("scripted runs only"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_scripts_stop_before_the_load_and_a_throwing_iteration_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text, want) in [
        (
            "syntax.js",
            "export default function () {\n  let x = ;\n}\n",
            "syntax.js:2:",
        ),
        (
            "import.js",
            "import x from 'k6/nope';\nexport default function () {}\n",
            "import.js:1:15: unknown import 'k6/nope'",
        ),
        (
            "open.js",
            "const d = open('nope.txt');\nexport default function () {}\n",
            "nope.txt",
        ),
    ] {
        let p = script(&dir, name, text);
        let out = periscope(&["run", &p, "--mock"]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{name}: {err}");
        assert!(err.contains(want), "{name}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{name}: {err}");
        assert!(!err.contains("panicked"), "{name}: {err}");
    }
    // An iteration that throws is a failed iteration with its line; the
    // other iterations and VUs go on, and the run ends normally.
    let p = script(
        &dir,
        "throws.js",
        "import { chat } from 'periscope';\n\
         export default function () {\n  chat('hi');\n  if (__ITER % 2 === 0) {\n    throw new Error('odd luck ' + __VU);\n  }\n}\n",
    );
    let (_, r) = run_ok(&["run", &p, "--mock", "--vus", "2", "--iterations", "20"]).await;
    assert_eq!(r["summary"]["ok"], 20);
    let failed = &r["raw"]["total"]["custom"]["failed"];
    let total: u64 = failed
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(total, 10, "{failed}");
    let keys: Vec<&String> = failed.as_object().unwrap().keys().collect();
    assert!(
        keys.iter()
            .all(|k| k.contains("throws.js:5:") && k.contains("odd luck")),
        "{keys:?}"
    );
    assert_eq!(custom(&r, "iterations")["sum"], 20.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripted_segments_merge_their_custom_metrics_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let path = script(&dir, "t.js", TREND);
    let mut files = Vec::new();
    let mut values: Vec<f64> = Vec::new();
    for i in 1..=2 {
        let json = temp_json(&dir, &format!("s{i}.json"));
        let seg = format!("{i}/2");
        let out = periscope_async(s(&[
            "run",
            &path,
            "--mock",
            "--vus",
            "2",
            "--iterations",
            "60",
            "--segment",
            &seg,
            "--run-id",
            "scriptseg",
            "--json",
            &json,
        ]))
        .await;
        assert!(out.status.success(), "{}", stderr(&out));
        let r = read_json(&json);
        values.extend(custom(&r, "t")["values"].as_array().unwrap().iter().map(f));
        files.push(json);
    }
    assert_eq!(values.len(), 60);
    let merged = temp_json(&dir, "m.json");
    let mut args = s(&["merge"]);
    args.extend(files);
    args.extend(s(&["--output", &merged]));
    let out = periscope_async(args).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let m = read_json(&merged);
    let mut got: Vec<f64> = custom(&m, "t")["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(f)
        .collect();
    got.sort_by(f64::total_cmp);
    values.sort_by(f64::total_cmp);
    assert_eq!(got, values);
    assert_eq!(custom(&m, "checks")["count"], 60);
    assert!(stdout(&out).contains("### Script"), "{}", stdout(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_uses_every_module_setup_teardown_and_the_api_shapes() {
    let mock = MockProc::start(&["--ttft", "5ms", "--itl", "1ms", "--output-tokens", "6"]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("words.txt"), "alpha beta").unwrap();
    let path = script(
        &dir,
        "all.js",
        r#"import { check, group, fail, sleep } from 'k6';
import http from 'k6/http';
import { Gauge, Rate, Trend } from 'k6/metrics';
import * as p from 'periscope';
const words = open('words.txt').split(' ');
const cases = p.dataset('core', { limit: 3 });
const g = new Gauge('words');
const r = new Rate('long_answers');
const t = new Trend('ttft_seen', true);
export function setup() { return { base: __ENV.MOCK_BASE, n: words.length }; }
export default function (data) {
  const c = p.chat(words[__ITER % 2]);
  const s = p.complete({ prompt: 'x', max_tokens: 3, stream: false });
  const e = p.embed(['a', 'b']);
  const rs = p.responses('hi');
  const m = p.messages({ messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 });
  group('probe', () => {
    const h = http.get(data.base + '/models', { tags: { name: 'models' } });
    check(h, { 'models 200': (x) => x.status === 200 && x.json('data') !== undefined && x.headers['Content-Type'] !== undefined });
  });
  check(null, {
    'chat': () => c.ok && c.usage.output_tokens === 6 && c.ttft_ms > 0,
    'complete': () => s.ok && s.usage.output_tokens === 3,
    'embed': () => e.ok,
    'responses': () => rs.ok && rs.usage.output_tokens === 6,
    'messages': () => m.ok && m.usage.output_tokens === 4,
    'dataset': () => cases.length === 3 && typeof cases[0].text === 'string',
  });
  g.add(data.n);
  r.add(c.content.length > 1000, { api: 'chat' });
  t.add(c.ttft_ms);
  sleep(0.01);
  if (__ITER === 1) fail('second iteration');
}
export function teardown(data) { g.add(data.n * 10); }
"#,
    );
    let dir2 = tempfile::tempdir().unwrap();
    let json = temp_json(&dir2, "all.json");
    let out = periscope_env(
        s(&[
            "run",
            &path,
            "--target",
            &mock.base(),
            "--vus",
            "1",
            "--iterations",
            "3",
            "--json",
            &json,
        ]),
        vec![("MOCK_BASE", mock.base())],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let r = read_json(&json);
    let st = mock.stats().await;
    // 3 iterations × 5 LLM calls and one k6/http request each.
    assert_eq!(r["summary"]["ok"], 18, "{}", r["errors"]);
    assert_eq!(custom(&r, "http_reqs")["sum"], 18.0);
    for (endpoint, n) in [
        ("chat", 3),
        ("text", 3),
        ("embeddings", 3),
        ("responses", 3),
        ("messages", 3),
    ] {
        assert_eq!(st["by_endpoint"][endpoint], n, "{endpoint}: {st}");
    }
    // Every check passed; group timed; fail() counted with its line.
    assert_eq!(
        custom(&r, "checks")["count"],
        21,
        "{}",
        r["raw"]["total"]["custom"]
    );
    assert_eq!(custom(&r, "checks")["trues"], 21);
    assert_eq!(custom(&r, "group_duration{group:::probe}")["count"], 3);
    let failed = r["raw"]["total"]["custom"]["failed"].as_object().unwrap();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        failed.keys().next().unwrap().contains("second iteration"),
        "{failed:?}"
    );
    // setup's data reached every call; teardown ran after (the gauge's last value).
    assert_eq!(custom(&r, "words")["last"], 20.0);
    assert_eq!(custom(&r, "words")["max"], 20.0);
    assert_eq!(custom(&r, "long_answers{api:chat}")["count"], 3);
    assert_eq!(custom(&r, "long_answers")["trues"].as_u64().unwrap_or(0), 0);
    assert_eq!(custom(&r, "ttft_seen")["time"], true);
    assert_eq!(custom(&r, "iterations")["sum"], 3.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_arrays_and_bigint_are_there_for_a_script_or_module_that_names_them() {
    let dir = tempfile::tempdir().unwrap();
    // A VU's context leaves the rare intrinsics out unless the script (or
    // a local module it imports) names one: then they are all there.
    script(
        &dir,
        "bytes.js",
        "export function sum(n) {\n  const a = new Uint8Array(n);\n  a.fill(3);\n  const d = new DataView(a.buffer);\n  return d.getUint8(0) * n + Number(BigInt(2) ** BigInt(10));\n}\n",
    );
    let p = script(
        &dir,
        "uses-lib.js",
        "import { chat } from 'periscope';\nimport { sum } from './bytes.js';\n\
         export default function () {\n  chat('hi');\n  if (sum(4) !== 1036) throw new Error('bad sum ' + sum(4));\n}\n",
    );
    let (_, r) = run_ok(&["run", &p, "--mock", "--vus", "2", "--iterations", "6"]).await;
    assert_eq!(r["summary"]["ok"], 6);
    assert!(
        r["raw"]["total"]["custom"]["failed"].is_null(),
        "{}",
        r["raw"]["total"]["custom"]
    );
    // One that names none gets the lean context (what keeps a thousand
    // VUs small): they are not there.
    let p = script(
        &dir,
        "plain.js",
        "import { chat } from 'periscope';\n\
         export default function () {\n  chat('hi');\n  const T = globalThis['Uint' + '8Array'];\n  if (typeof T !== 'undefined') throw new Error('present');\n}\n",
    );
    let (_, r) = run_ok(&["run", &p, "--mock", "--vus", "1", "--iterations", "2"]).await;
    assert_eq!(r["summary"]["ok"], 2);
    assert!(
        r["raw"]["total"]["custom"]["failed"].is_null(),
        "{}",
        r["raw"]["total"]["custom"]
    );
}
