//! The plan's tests: flags, environment and scenario files resolved into
//! plans, and the usage errors of bad combinations.

use super::*;
use crate::cli::{Args, Command};
use crate::error::Error;
use crate::executor::describe_load;
use crate::executor::{Load, Stages};
use clap::Parser;

fn plan(args: &[&str]) -> Result<Plan> {
    let mut v = vec!["periscope", "run"];
    v.extend_from_slice(args);
    let Command::Run(a) = Args::try_parse_from(v).unwrap().command else {
        panic!()
    };
    Plan::from_args(&a)
}

#[test]
fn segments_partition_the_dataset_and_keep_the_whole_load() {
    let whole = plan(&["--mock", "--dataset-suite", "core"]).unwrap();
    let all = whole.workload.spec.dataset.clone().unwrap();
    let mut union: Vec<String> = Vec::new();
    for i in 1..=4 {
        let seg = format!("{i}/4");
        let p = plan(&[
            "--mock",
            "--dataset-suite",
            "core",
            "--segment",
            &seg,
            "--run-id",
            "r1",
            "--start-at",
            "2030-01-01T00:00:00Z",
        ])
        .unwrap();
        assert_eq!(p.segment.segment.to_string(), seg);
        assert_eq!(p.segment.run_id.as_deref(), Some("r1"));
        // Every segment carries the whole plan's load.
        assert_eq!(p.load.shape, whole.load.shape);
        let mine = p.workload.spec.dataset.unwrap();
        assert_eq!(mine.len() as u64, p.segment.segment.share(all.len() as u64));
        union.extend(mine.iter().cloned());
    }
    // No case runs twice, and none is left out.
    let mut want: Vec<String> = all.to_vec();
    want.sort();
    union.sort();
    assert_eq!(union, want);
}

#[test]
fn segment_flags_say_what_to_fix() {
    for (args, needle) in [
        (vec!["--segment", "2/4"], "needs --run-id"),
        (vec!["--segment", "5/4", "--run-id", "r"], "i/n"),
        (
            vec!["--segment", "1/4", "--segments", "4", "--run-id", "r"],
            "not both",
        ),
        (
            vec!["--segment", "1/4", "--run-id", "r", "--vus", "3"],
            "use at most 3 segments",
        ),
        (vec!["--run-id", "a/b"], "letters, digits"),
        (
            vec![
                "--segment",
                "1/2",
                "--run-id",
                "r",
                "--threshold",
                "ttft.p95<1s",
                "--abort-on-fail",
            ],
            "drop it",
        ),
    ] {
        let mut v = vec!["--mock"];
        v.extend(args.iter());
        let e =
            match Args::try_parse_from(["periscope", "run"].into_iter().chain(v.iter().copied())) {
                Err(e) => e.to_string(),
                Ok(a) => {
                    let Command::Run(a) = a.command else { panic!() };
                    Plan::from_args(&a).unwrap_err().to_string()
                }
            };
        assert!(e.contains(needle), "{args:?}: {e}");
    }
}

#[test]
fn closed_model_defaults() {
    let p = plan(&["--mock"]).unwrap();
    assert_eq!(
        p.load.shape,
        Load::Closed {
            vus: Stages::constant(10.0, Duration::from_secs(30)),
            iterations: None
        },
        "the load scenario: 10 VUs for 30s"
    );
    assert_eq!(p.scenario.name, "load");
    assert!(p.workload.spec.stream);
    assert_eq!(p.workload.spec.max_tokens, 64);
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
        let e = plan(&args).unwrap_err();
        assert!(matches!(e, Error::Usage(_)), "{args:?}");
        assert!(e.to_string().contains(needle), "{args:?}: {e}");
        assert!(!e.to_string().contains('\n'), "one line: {e}");
    }
}

#[test]
fn open_model_and_stages() {
    let p = plan(&[
        "--mock",
        "--rate",
        "50",
        "--duration",
        "10s",
        "--max-in-flight",
        "5",
    ])
    .unwrap();
    assert!(describe_load(&p.load.shape).contains("≈ 500 requests"));
    let p = plan(&["--mock", "--stages", "10s:10,20s:10,10s:0"]).unwrap();
    assert_eq!(p.load.shape.duration(), Duration::from_secs(40));
    assert_eq!(
        describe_load(&p.load.shape),
        "closed model: VUs 0→10 over 10s, 10 for 20s, 10→0 over 10s"
    );
}

fn holds(p: &Plan) -> Vec<(u64, f64)> {
    p.load
        .shape
        .stages()
        .stages
        .iter()
        .filter(|s| !s.duration.is_zero())
        .map(|s| (s.duration.as_secs(), s.target))
        .collect()
}

#[test]
fn scenarios_fit_the_peak_and_duration_asked_for() {
    // stress: 5 steps of 20%, scaled to --max-vus and stretched to --duration.
    let p = plan(&[
        "--mock",
        "--scenario",
        "stress",
        "--max-vus",
        "10",
        "--duration",
        "20s",
    ])
    .unwrap();
    assert_eq!(p.scenario.kind, Kind::Stress);
    assert_eq!(
        holds(&p),
        vec![(4, 2.0), (4, 4.0), (4, 6.0), (4, 8.0), (4, 10.0)]
    );
    assert_eq!(
        p.checks.thresholds[0].expr, "error_rate<0.01",
        "the file's thresholds"
    );
    // --vus is the peak of a staged scenario too.
    let p = plan(&["--mock", "--scenario", "stress", "--vus", "5"]).unwrap();
    assert_eq!(
        holds(&p).iter().map(|h| h.1).collect::<Vec<_>>(),
        vec![1.0, 2.0, 3.0, 4.0, 5.0]
    );
    // benchmark doubles up to the peak.
    let p = plan(&[
        "--mock",
        "--scenario",
        "benchmark",
        "--max-vus",
        "8",
        "--duration",
        "8s",
    ])
    .unwrap();
    assert_eq!(holds(&p), vec![(2, 1.0), (2, 2.0), (2, 4.0), (2, 8.0)]);
    // With --rate the same shape is an arrival rate, and phases follow their stages.
    let p = plan(&[
        "--mock",
        "--scenario",
        "spike",
        "--rate",
        "100",
        "--duration",
        "10s",
    ])
    .unwrap();
    assert!(p.load.shape.is_open());
    assert_eq!(p.load.shape.stages().peak(), 100.0);
    let named: Vec<&str> = p.load.phases.iter().flatten().map(String::as_str).collect();
    assert_eq!(named, ["before", "spike", "after"]);
    // soak compares tenths.
    let p = plan(&["--mock", "--scenario", "soak", "--duration", "20s"]).unwrap();
    assert_eq!(holds(&p), vec![(2, 10.0); 10]);
    // --stages in % need a peak.
    let e = plan(&["--mock", "--stages", "5s:50%"]).unwrap_err();
    assert!(e.to_string().contains("--max-vus"), "{e}");
    let p = plan(&["--mock", "--stages", "5s:50%", "--max-vus", "8"]).unwrap();
    assert_eq!(p.load.shape.stages().peak(), 4.0);
    // batch-embeddings owns its stages.
    let e = plan(&["batch-embeddings", "--mock", "--scenario", "stress"]).unwrap_err();
    assert!(e.to_string().contains("one stage per batch size"), "{e}");
    let p = plan(&[
        "batch-embeddings",
        "--mock",
        "--scenario",
        "stress",
        "--batch-sizes",
        "32",
    ])
    .unwrap();
    assert_eq!(holds(&p).len(), 5, "one size, the scenario's steps");
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
