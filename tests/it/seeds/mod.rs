//! The documented commands of the five tools periscope replaces, run as
//! their users type them: each command copied from that tool's README,
//! only its entry point turned into periscope's (`python3
//! perf_test/llmtrace_e2e_overhead_bench.py` → `periscope sweep`) and its
//! example hosts into local servers. Each test checks the command exits as
//! its README says and that its figures agree with what the local servers
//! saw (the mock's own stamps and counts).

mod seed000;
mod seed001;
mod seed002;
mod seed003;
mod seed004;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::BIN;

/// A shell with `periscope` on its PATH, in a folder of its own.
pub struct Shell {
    pub dir: tempfile::TempDir,
    bin: tempfile::TempDir,
}

impl Shell {
    pub fn new() -> Shell {
        let bin = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(BIN, bin.path().join("periscope")).unwrap();
        Shell {
            dir: tempfile::tempdir().unwrap(),
            bin,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Run `cmd` with `sh -c` in the shell's folder (or `cwd`), with these
    /// variables and none of periscope's own from the test's environment.
    pub fn run_in(&self, cwd: &Path, cmd: &str, env: &[(&str, String)]) -> Output {
        let path = format!(
            "{}:{}",
            self.bin.path().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut c = Command::new("sh");
        c.arg("-c").arg(cmd).current_dir(cwd).env("PATH", path);
        for v in CLEARED {
            c.env_remove(v);
        }
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().expect("run sh")
    }

    pub fn run(&self, cmd: &str, env: &[(&str, String)]) -> Output {
        self.run_in(self.dir.path(), cmd, env)
    }
}

/// Variables a developer's environment may hold that would change what a
/// command does.
const CLEARED: &[&str] = &[
    "OPENAI_BASE_URL",
    "OPENAI_API_KEY",
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_API_KEY",
    "OPENAI_COMPLETION_MODEL",
    "OPENAI_EMBEDDING_MODEL",
    "OPENAI_CODING_MODEL",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_PLATFORM",
    "TEMPO_ENDPOINT",
    "TEMPO_QUERY_ENDPOINT",
    "VUS",
    "DURATION",
    "MAX_TOKENS",
    "MOCK",
    "MAKEFLAGS",
    "MFLAGS",
    "GITHUB_STEP_SUMMARY",
];

/// The repository.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The shell lines of a README's fenced command: continuation lines
/// joined, comments dropped.
pub fn command(block: &str) -> String {
    block
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.trim_end_matches('\\').trim())
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// docs/seed-coverage.md: every item has a status, nothing is missing
/// that is not out of scope by design, and the counts are the rows'.
#[test]
fn the_coverage_table_has_no_gap_left_outside_scope() {
    let doc = std::fs::read_to_string(repo().join("docs/seed-coverage.md")).unwrap();
    let rows: Vec<Vec<&str>> = doc
        .lines()
        .map(|l| l.split(" | ").collect::<Vec<_>>())
        .filter(|c| {
            let id = c[0].trim_start_matches("| ");
            id.len() >= 6 && id.as_bytes()[3] == b'-' && id[..3].bytes().all(|b| b.is_ascii_digit())
        })
        .collect();
    assert_eq!(rows.len(), 406, "every item of the five READMEs");
    let mut counts = std::collections::BTreeMap::new();
    for r in &rows {
        let status = r[2];
        assert!(
            ["✅", "◐", "❌ (scope)"].contains(&status),
            "{}: '{status}': only scope may stay missing",
            r[0]
        );
        assert!(r[3].len() > 3, "{}: say how, or why not", r[0]);
        *counts.entry(status).or_insert(0) += 1;
    }
    let total = doc.lines().find(|l| l.starts_with("| **all** |")).unwrap();
    let want = format!(
        "| **all** | **406** | **{}** | **{}** | **{}** | **{}** |",
        counts["✅"], counts["◐"], counts["❌ (scope)"], counts["❌ (scope)"]
    );
    assert_eq!(total, want);
}
