//! Timestamped request traces, as production logs and serving benchmarks
//! keep them (Mooncake's JSONL: `timestamp` in ms from the trace's start,
//! `input_length` and `output_length` in tokens, `hash_ids` naming the
//! prompt's blocks, so that records sharing a block share that prefix; and
//! here also `session_id` for a conversation's turns, and `prompt` or
//! `messages` where the text itself is given).
//!
//! The file is read twice, both times as a stream: once to check every
//! record and learn the trace's shape before anything is sent (a bad record
//! is one line naming its line number), then during the run, record by
//! record, so that a trace of any length replays in bounded memory.

pub mod summary;

use std::io::BufRead;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// One request of a trace.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Record {
    /// Milliseconds from the trace's start.
    pub timestamp: f64,
    #[serde(default)]
    pub input_length: u32,
    pub output_length: u32,
    /// The prompt's blocks, `--block-tokens` tokens each: records that share
    /// a block share that part of the prompt.
    #[serde(default)]
    pub hash_ids: Vec<u64>,
    /// A conversation's turns share it: each waits for the turn before it.
    #[serde(default, deserialize_with = "id_text")]
    pub session_id: Option<String>,
    /// The prompt's text, when the trace keeps it (else it is made from the
    /// blocks).
    #[serde(default)]
    pub prompt: Option<String>,
    /// Chat messages, when the trace keeps them.
    #[serde(default)]
    pub messages: Option<serde_json::Value>,
}

/// A session id may be written as a number or a string.
fn id_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v = Option::<serde_json::Value>::deserialize(d)?;
    Ok(match v {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s),
        Some(other) => Some(other.to_string()),
    })
}

impl Record {
    /// Parse one line of a trace; the error names what is wrong.
    pub fn parse(line: &str) -> Result<Record, String> {
        let r: Record = serde_json::from_str(line).map_err(|e| {
            let msg = e.to_string();
            match msg.rfind(" at line ") {
                Some(i) => msg[..i].to_string(),
                None => msg,
            }
        })?;
        if !(r.timestamp.is_finite() && r.timestamp >= 0.0) {
            return Err(format!(
                "timestamp {} is not a time from the trace's start (ms, 0 or more)",
                r.timestamp
            ));
        }
        if r.output_length == 0 {
            return Err("output_length must be at least 1".into());
        }
        if r.input_length == 0 && r.prompt.is_none() && r.messages.is_none() {
            return Err("no input: give input_length (tokens), prompt or messages".into());
        }
        if let Some(m) = &r.messages {
            if m.as_array().is_none_or(|a| a.is_empty()) {
                return Err("messages must be a non-empty list of chat messages".into());
            }
        }
        Ok(r)
    }
}

/// What the check of a trace learned.
#[derive(Debug, Clone, PartialEq)]
pub struct Shape {
    pub path: PathBuf,
    pub records: u64,
    /// The records stamped before the cut the check was given (all of
    /// them when none): those a run cut short by `--duration` sends.
    pub within: u64,
    /// The last record's timestamp, ms.
    pub last_ms: f64,
    pub sessions: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// Open a trace for reading, as lines.
fn lines(path: &Path) -> Result<std::io::Lines<std::io::BufReader<std::fs::File>>, String> {
    let f = std::fs::File::open(path)
        .map_err(|e| format!("--replay {}: cannot read it: {e}", path.display()))?;
    Ok(std::io::BufReader::with_capacity(1 << 16, f).lines())
}

/// Check every record of a trace, in one pass, keeping none of them. The
/// timestamps must not go back in time. Records stamped at or after
/// `cut_ms` (ms in the trace's own time) are checked but not `within`.
pub fn check(path: &Path, cut_ms: f64) -> Result<Shape, String> {
    let mut shape = Shape {
        path: path.to_path_buf(),
        records: 0,
        within: 0,
        last_ms: 0.0,
        sessions: 0,
        input_tokens: 0,
        output_tokens: 0,
    };
    let mut sessions = std::collections::HashSet::new();
    for (i, line) in lines(path)?.enumerate() {
        let line = line.map_err(|e| format!("--replay {}:{}: {e}", path.display(), i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let r = Record::parse(&line)
            .map_err(|e| format!("--replay {}:{}: {e}", path.display(), i + 1))?;
        if r.timestamp < shape.last_ms {
            return Err(format!(
                "--replay {}:{}: timestamp {} comes before the line above's {}: a trace is in time order",
                path.display(),
                i + 1,
                r.timestamp,
                shape.last_ms
            ));
        }
        shape.last_ms = r.timestamp;
        shape.records += 1;
        shape.within += u64::from(r.timestamp < cut_ms);
        shape.input_tokens += u64::from(r.input_length);
        shape.output_tokens += u64::from(r.output_length);
        if let Some(s) = r.session_id {
            // Counted, not kept past the check's end.
            sessions.insert(s);
        }
    }
    if shape.records == 0 {
        return Err(format!(
            "--replay {}: no record in the file",
            path.display()
        ));
    }
    shape.sessions = sessions.len() as u64;
    Ok(shape)
}

/// The records of a checked trace, read as they are needed.
pub struct Reader {
    lines: std::io::Lines<std::io::BufReader<std::fs::File>>,
}

impl Reader {
    pub fn open(path: &Path) -> Result<Reader, String> {
        Ok(Reader {
            lines: lines(path)?,
        })
    }
}

impl Iterator for Reader {
    type Item = Record;

    fn next(&mut self) -> Option<Record> {
        loop {
            let line = self.lines.next()?.ok()?;
            if line.trim().is_empty() {
                continue;
            }
            // Checked before the run: a record that no longer parses (the
            // file changed under the run) ends the replay there.
            return Record::parse(&line).ok();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.jsonl");
        std::fs::write(&p, text).unwrap();
        (dir, p)
    }

    #[test]
    fn a_mooncake_trace_reads_and_its_shape_is_known() {
        let (_d, p) = write(concat!(
            "{\"timestamp\": 0, \"input_length\": 1000, \"output_length\": 10, \"hash_ids\": [0, 1]}\n",
            "\n",
            "{\"timestamp\": 250.5, \"input_length\": 700, \"output_length\": 5, \"hash_ids\": [0, 2], \"session_id\": 7}\n",
            "{\"timestamp\": 900, \"output_length\": 3, \"prompt\": \"Hello\", \"session_id\": \"7\"}\n",
        ));
        let s = check(&p, f64::INFINITY).unwrap();
        assert_eq!((s.records, s.last_ms, s.sessions), (3, 900.0, 1));
        assert_eq!((s.input_tokens, s.output_tokens), (1700, 18));
        let all: Vec<Record> = Reader::open(&p).unwrap().collect();
        assert_eq!(all.len(), 3);
        assert_eq!(all[1].hash_ids, [0, 2]);
        assert_eq!(all[1].session_id.as_deref(), Some("7"));
        assert_eq!(all[2].prompt.as_deref(), Some("Hello"));
    }

    #[test]
    fn a_bad_record_is_named_by_its_line() {
        for (text, want) in [
            ("{\"timestamp\": 0, \"input_length\": 10, \"output_length\": 1}\n{\"timestamp\": 5}\n", "t.jsonl:2: missing field `output_length`"),
            ("{\"timestamp\": 10, \"input_length\": 10, \"output_length\": 1}\n{\"timestamp\": 5, \"input_length\": 1, \"output_length\": 1}\n", ":2: timestamp 5 comes before"),
            ("{\"timestamp\": -1, \"input_length\": 10, \"output_length\": 1}\n", ":1: timestamp -1"),
            ("{\"timestamp\": 0, \"output_length\": 4}\n", ":1: no input"),
            ("not json\n", ":1: expected"),
            ("\n\n", "no record"),
        ] {
            let (_d, p) = write(text);
            let e = check(&p, f64::INFINITY).unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
            assert!(!e.contains('\n'), "one line: {e}");
        }
        assert!(check(Path::new("/no/such/trace.jsonl"), f64::INFINITY)
            .unwrap_err()
            .contains("cannot read"));
    }
}
