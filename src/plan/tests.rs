//! The plan's tests: flags, environment and scenario files resolved into
//! plans, and the usage errors of bad combinations.

use super::*;
use crate::cli::{Args, Command};
use crate::error::Error;
use clap::Parser;

/// The plan `periscope run ARGS` makes.
pub(super) fn plan(args: &[&str]) -> Result<Plan> {
    let mut v = vec!["periscope", "run"];
    v.extend_from_slice(args);
    let Command::Run(a) = Args::try_parse_from(v).unwrap().command else {
        panic!()
    };
    Plan::from_args(&a)
}

/// The one-line usage error `periscope run ARGS` gets.
pub(super) fn usage_error(args: &[&str]) -> String {
    let e = plan(args).expect_err("a usage error");
    assert!(matches!(e, Error::Usage(_)), "{args:?}: {e}");
    let e = e.to_string();
    assert!(!e.contains('\n'), "one line: {e}");
    e
}

#[test]
fn bad_combinations_are_usage_errors() {
    for (args, needle) in [
        (
            vec!["--mock", "--rate", "5", "--vus", "2"],
            "can't be combined",
        ),
        (
            vec!["--mock", "--stages", "10s:5", "--duration", "5s"],
            "drop --duration",
        ),
        (vec!["--mock", "--rate", "0"], "positive"),
        (vec!["--mock", "--vus", "0"], "at least 1"),
        (vec!["--mock", "--max-in-flight", "4"], "open model"),
        (vec!["--mock", "--stages", "10s:0"], "never reach 1 VU"),
        (
            vec!["embeddingz", "--mock"],
            "unknown workload 'embeddingz'",
        ),
        (vec!["--target", "localhost:8000"], "http://"),
    ] {
        let e = usage_error(&args);
        assert!(e.contains(needle), "{args:?}: {e}");
    }
}

#[test]
fn flags_win_over_a_scenario_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("my.yaml");
    std::fs::write(
        &path,
        "workload: embeddings\nmodel: m-file\nvus: 3\nduration: 7s\nmax_tokens: 9\nstream: false\n\
         thresholds: ['error_rate<0.5']\ntags: {team: a, build: 12}\nheaders: ['X-From: file']\n",
    )
    .unwrap();
    let file = path.to_str().unwrap();
    let p = plan(&[file, "--mock"]).unwrap();
    assert_eq!(p.workload_name(), "embeddings");
    assert_eq!(p.workload.spec.model, "m-file");
    assert_eq!(p.load.shape.stages().peak(), 3.0);
    assert_eq!(p.load.shape.duration(), Duration::from_secs(7));
    assert!(!p.workload.spec.stream);
    assert_eq!(
        p.outputs.tags,
        vec![("build".into(), "12".into()), ("team".into(), "a".into())]
    );
    assert_eq!(p.request.headers, vec![("X-From".into(), "file".into())]);
    let p = plan(&[
        file,
        "--mock",
        "--model",
        "m-cli",
        "--vus",
        "2",
        "--stream",
        "--threshold",
        "ok>1",
        "--tag",
        "team=b",
    ])
    .unwrap();
    assert_eq!(p.workload.spec.model, "m-cli");
    assert_eq!(p.load.shape.stages().peak(), 2.0);
    assert_eq!(
        p.load.shape.duration(),
        Duration::from_secs(7),
        "the file's duration stays"
    );
    assert!(p.workload.spec.stream);
    let exprs: Vec<&str> = p
        .checks
        .thresholds
        .iter()
        .map(|t| t.expr.as_str())
        .collect();
    assert_eq!(
        exprs,
        ["error_rate<0.5", "ok>1"],
        "the file's thresholds and the flag's"
    );
    assert!(p.outputs.tags.contains(&("team".into(), "b".into())));
    assert!(!p.outputs.tags.contains(&("team".into(), "a".into())));
    // A file and --scenario at once is ambiguous.
    let e = plan(&[file, "--mock", "--scenario", "smoke"]).unwrap_err();
    assert!(e.to_string().contains("choose one"), "{e}");
    let e = plan(&["--mock", "--scenario", "nope"]).unwrap_err();
    assert!(e.to_string().contains("unknown scenario 'nope'"), "{e}");
}

#[test]
fn secrets_are_redacted_in_the_view() {
    let p = plan(&[
        "--mock",
        "--token",
        "sk-secret",
        "--header",
        "X-Api-Key: k1",
        "--header",
        "X-Agent: a",
    ])
    .unwrap();
    let v = serde_json::to_string(&p.view("http://x/v1")).unwrap();
    assert!(!v.contains("sk-secret"));
    assert!(!v.contains("k1"));
    assert!(v.contains("\"token_present\":true"));
    assert!(v.contains("X-Agent"));
}
