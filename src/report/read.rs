//! Reading result documents back: `report`, `compare` and `merge` take files
//! written by other runs, maybe by other versions, maybe not results at all.
//! Every refusal is one line that names the file.

use std::path::Path;

use serde_json::Value;

use super::result::{RunResult, SCHEMA};
use super::sweep::{SweepResult, SCHEMA as SWEEP_SCHEMA};
use crate::error::Error;

/// A document periscope wrote.
pub enum Document {
    Run(Box<RunResult>),
    Sweep(Box<SweepResult>),
}

fn bad(path: &Path, msg: impl std::fmt::Display) -> Error {
    Error::Usage(format!("{}: {msg}", path.display()))
}

/// Read a run result or a sweep.
pub fn document(path: &Path) -> Result<Document, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| bad(path, format!("cannot read: {e}")))?;
    let value: Value = serde_json::from_str(&text)
        .map_err(|e| bad(path, format!("not a periscope result: not JSON ({e})")))?;
    let schema = value
        .get("schema")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let invalid = |e: serde_json::Error| {
        bad(
            path,
            format!(
                "not a valid {schema} document: {e} (was it written by another periscope version?)"
            ),
        )
    };
    match schema.as_str() {
        SCHEMA => Ok(Document::Run(Box::new(
            serde_json::from_value(value).map_err(invalid)?,
        ))),
        SWEEP_SCHEMA => Ok(Document::Sweep(Box::new(
            serde_json::from_value(value).map_err(invalid)?,
        ))),
        "" => Err(bad(
            path,
            format!("not a periscope result (no \"schema\": \"{SCHEMA}\")"),
        )),
        other if other.starts_with("periscope.") => Err(bad(
            path,
            format!(
                "schema {other} is not one this periscope {} reads ({SCHEMA}, {SWEEP_SCHEMA})",
                env!("CARGO_PKG_VERSION")
            ),
        )),
        other => Err(bad(
            path,
            format!("not a periscope result (its schema is '{other}')"),
        )),
    }
}

/// Read a run result; a sweep is refused.
pub fn run_result(path: &Path) -> Result<RunResult, Error> {
    match document(path)? {
        Document::Run(r) => Ok(*r),
        Document::Sweep(_) => Err(bad(
            path,
            format!("a sweep ({SWEEP_SCHEMA}), not a run result ({SCHEMA})"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn err(p: &Path) -> String {
        match run_result(p) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("{} was accepted", p.display()),
        }
    }

    #[test]
    fn what_is_not_a_result_is_refused_in_one_line_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            ("a.json", "not json at all", "not JSON"),
            (
                "b.json",
                r#"{"hello": 1}"#,
                "not a periscope result (no \"schema\"",
            ),
            (
                "c.json",
                r#"{"schema": "periscope.result/v2"}"#,
                "schema periscope.result/v2 is not one this periscope",
            ),
            (
                "d.json",
                r#"{"schema": "k6/summary"}"#,
                "its schema is 'k6/summary'",
            ),
            (
                "e.json",
                r#"{"schema": "periscope.result/v1", "run_id": "x"}"#,
                "not a valid periscope.result/v1 document: missing field",
            ),
            (
                "f.json",
                r#"{"schema": "periscope.sweep/v1", "inputs": {}}"#,
                "not a valid periscope.sweep/v1 document",
            ),
        ];
        for (name, text, want) in cases {
            let p = write(&dir, name, text);
            let e = err(&p);
            assert!(e.starts_with(&p.display().to_string()), "{e}");
            assert!(e.contains(want), "{name}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
        let missing = dir.path().join("missing.json");
        assert!(err(&missing).contains("cannot read"));
    }
}
