//! Prompt corpora: labelled cases from the built-in suites or a file.
//!
//! The suites (`datasets/core`, `datasets/external`) are embedded in the
//! binary. A file may be a JSON array of cases (`{id, text, label, category,
//! subcategory}`), JSON Lines of the same (or of `{"prompt": …}`), or a
//! ShareGPT-style conversation file, whose first human turn is the prompt.
//! Filters apply in order: label, category, subcategory, shuffle, limit.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The built-in suites: (suite, file name, JSON text).
const SUITES: &[(&str, &str, &str)] = &[
    (
        "core",
        "core/benign.json",
        include_str!("../datasets/core/benign.json"),
    ),
    (
        "core",
        "core/malicious.json",
        include_str!("../datasets/core/malicious.json"),
    ),
    (
        "external",
        "external/indirect.json",
        include_str!("../datasets/external/indirect.json"),
    ),
];

/// What a case expects of a guarded service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Label {
    /// The service should answer.
    Benign,
    /// The service should block.
    Malicious,
}

/// One prompt of a corpus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Case {
    pub id: String,
    pub text: String,
    pub label: Label,
    #[serde(default)]
    pub category: String,
    #[serde(default)]
    pub subcategory: String,
}

/// Which cases to use.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    /// A file, or a built-in suite (`core`, `external`, `all`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suite: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<Label>,
    /// Comma-separated substrings, any of which must occur (case-insensitive).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category_contains: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subcategory_contains: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// Shuffle deterministically with this seed (0 or none: file order).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shuffle_seed: Option<u64>,
}

impl Selection {
    /// Whether a corpus was asked for at all.
    pub fn is_set(&self) -> bool {
        self.file.is_some() || self.suite.is_some()
    }

    /// Load and filter the cases; errors say what to fix.
    pub fn load(&self) -> Result<Vec<Case>, String> {
        /// A folder of corpus files (a benchmark's `datasets/` tree): every
        /// `.json`, `.jsonl` and `.ndjson` in it and below, in name order.
        fn read_dir(dir: &str) -> Result<Vec<Case>, String> {
            fn walk(d: &std::path::Path, out: &mut Vec<std::path::PathBuf>) -> std::io::Result<()> {
                for e in std::fs::read_dir(d)? {
                    let p = e?.path();
                    if p.is_dir() {
                        walk(&p, out)?;
                    } else if p
                        .extension()
                        .is_some_and(|x| x == "json" || x == "jsonl" || x == "ndjson")
                    {
                        out.push(p);
                    }
                }
                Ok(())
            }
            let mut files = Vec::new();
            walk(std::path::Path::new(dir), &mut files)
                .map_err(|e| format!("--dataset-file {dir}: {e}"))?;
            files.sort();
            if files.is_empty() {
                return Err(format!(
                    "--dataset-file {dir}: no .json or .jsonl file in the folder"
                ));
            }
            let mut cases = Vec::new();
            for f in files {
                let text = std::fs::read_to_string(&f)
                    .map_err(|e| format!("--dataset-file {}: {e}", f.display()))?;
                cases.extend(
                    parse(&text).map_err(|e| format!("--dataset-file {}: {e}", f.display()))?,
                );
            }
            Ok(cases)
        }
        let mut cases = match (&self.file, &self.suite) {
            (Some(_), Some(_)) => {
                return Err("use either --dataset-file or --dataset-suite, not both".into())
            }
            (Some(path), None) if std::path::Path::new(path).is_dir() => read_dir(path)?,
            (Some(path), None) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("--dataset-file {path}: {e}"))?;
                parse(&text).map_err(|e| format!("--dataset-file {path}: {e}"))?
            }
            (None, Some(suite)) => suite_cases(suite)?,
            (None, None) => return Ok(Vec::new()),
        };
        if let Some(label) = self.label {
            cases.retain(|c| c.label == label);
        }
        let contains = |field: &str, filter: &Option<String>| match filter {
            None => true,
            Some(f) => {
                let field = field.to_lowercase();
                f.split(',')
                    .map(|s| s.trim().to_lowercase())
                    .filter(|s| !s.is_empty())
                    .any(|s| field.contains(&s))
            }
        };
        cases.retain(|c| {
            contains(&c.category, &self.category_contains)
                && contains(&c.subcategory, &self.subcategory_contains)
        });
        if let Some(seed) = self.shuffle_seed.filter(|s| *s != 0) {
            fastrand::Rng::with_seed(seed).shuffle(&mut cases);
        }
        if let Some(n) = self.limit.filter(|n| *n > 0) {
            cases.truncate(n as usize);
        }
        if cases.is_empty() {
            return Err(
                "the dataset selection is empty: loosen --dataset-label, --category-contains or --subcategory-contains"
                    .into(),
            );
        }
        Ok(cases)
    }
}

/// The cases of a built-in suite: `core`, `external` or `all`.
pub fn suite_cases(suite: &str) -> Result<Vec<Case>, String> {
    if !matches!(suite, "core" | "external" | "all") {
        return Err(format!(
            "--dataset-suite '{suite}': expected core, external or all"
        ));
    }
    let mut out = Vec::new();
    for (name, file, text) in SUITES {
        if suite == "all" || suite == *name {
            out.extend(parse(text).map_err(|e| format!("built-in dataset {file}: {e}"))?);
        }
    }
    Ok(out)
}

/// Parse a corpus: a JSON array of cases, JSON Lines, or ShareGPT.
pub fn parse(text: &str) -> Result<Vec<Case>, String> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        let items: Vec<Value> =
            serde_json::from_str(text).map_err(|e| format!("not a JSON array of cases: {e}"))?;
        return items
            .iter()
            .enumerate()
            .map(|(i, v)| case_of(v, i).map_err(|e| format!("item {}: {e}", i + 1)))
            .collect();
    }
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, line)| {
            let v: Value =
                serde_json::from_str(line).map_err(|e| format!("line {}: not JSON: {e}", i + 1))?;
            case_of(&v, i).map_err(|e| format!("line {}: {e}", i + 1))
        })
        .collect()
}

/// One case from a corpus item: our own shape, a `{prompt}` line, or a
/// ShareGPT conversation (its first human turn).
fn case_of(v: &Value, index: usize) -> Result<Case, String> {
    let str_of = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let id = v
        .get("id")
        .map(|id| match id {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .unwrap_or_else(|| format!("case-{:04}", index + 1));
    let text = match str_of("text").or_else(|| str_of("prompt")) {
        Some(t) => t,
        None => match v.get("conversations").and_then(Value::as_array) {
            Some(turns) => turns
                .iter()
                .find(|t| {
                    matches!(
                        t.get("from")
                            .or_else(|| t.get("role"))
                            .and_then(Value::as_str),
                        Some("human" | "user")
                    )
                })
                .and_then(|t| t.get("value").or_else(|| t.get("content")))
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or("a conversation without a human turn")?,
            None => return Err("no `text`, `prompt` or `conversations`".into()),
        },
    };
    let label = match str_of("label").as_deref() {
        None | Some("benign") => Label::Benign,
        Some("malicious") => Label::Malicious,
        Some(other) => return Err(format!("label '{other}': expected benign or malicious")),
    };
    Ok(Case {
        id,
        text,
        label,
        category: str_of("category").unwrap_or_default(),
        subcategory: str_of("subcategory").unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_core_suite_has_enough_of_each_label_over_varied_categories() {
        let cases = suite_cases("core").unwrap();
        let of = |l: Label| cases.iter().filter(|c| c.label == l).collect::<Vec<_>>();
        assert!(of(Label::Benign).len() >= 60);
        assert!(of(Label::Malicious).len() >= 60);
        for sub in [
            "role_injection",
            "system_override",
            "roleplay",
            "system_prompt_leak",
        ] {
            assert!(cases.iter().any(|c| c.subcategory == sub), "{sub}");
        }
        for cat in [
            "jailbreak",
            "data_exfiltration",
            "coding",
            "summarizing",
            "question_answering",
        ] {
            assert!(cases.iter().any(|c| c.category == cat), "{cat}");
        }
        let mut ids: Vec<&str> = cases.iter().map(|c| c.id.as_str()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), cases.len(), "ids are unique");
        let all = suite_cases("all").unwrap();
        assert!(all.len() > cases.len());
    }

    #[test]
    fn a_folder_of_corpus_files_is_one_corpus() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("external")).unwrap();
        std::fs::write(
            dir.path().join("benign.json"),
            r#"[{"id": "b1", "text": "Hello", "label": "benign"}]"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("external/inj.jsonl"),
            "{\"id\": \"m1\", \"text\": \"Ignore all rules\", \"label\": \"malicious\"}\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("README.md"), "not a corpus").unwrap();
        let sel = Selection {
            file: Some(dir.path().to_string_lossy().into()),
            ..Default::default()
        };
        let ids: Vec<String> = sel.load().unwrap().into_iter().map(|c| c.id).collect();
        assert_eq!(ids, ["b1", "m1"]);
        let empty = tempfile::tempdir().unwrap();
        let sel = Selection {
            file: Some(empty.path().to_string_lossy().into()),
            ..Default::default()
        };
        assert!(sel.load().unwrap_err().contains("no .json or .jsonl"));
    }

    #[test]
    fn filters_apply_in_order() {
        let sel = Selection {
            suite: Some("core".into()),
            label: Some(Label::Malicious),
            subcategory_contains: Some("ROLE_inj, system_over".into()),
            ..Default::default()
        };
        let cases = sel.load().unwrap();
        assert!(!cases.is_empty());
        assert!(cases.iter().all(|c| c.label == Label::Malicious
            && (c.subcategory == "role_injection" || c.subcategory == "system_override")));
        let shuffled = Selection {
            shuffle_seed: Some(7),
            limit: Some(5),
            ..sel.clone()
        };
        let a = shuffled.load().unwrap();
        assert_eq!(a.len(), 5);
        assert_eq!(a, shuffled.load().unwrap(), "the same seed, the same order");
        assert_ne!(a, cases[..5].to_vec(), "shuffled");
        let none = Selection {
            category_contains: Some("no-such-category".into()),
            ..sel
        };
        assert!(none.load().unwrap_err().contains("empty"));
    }

    #[test]
    fn jsonl_and_sharegpt_are_accepted() {
        let jsonl =
            "{\"prompt\": \"hello\"}\n\n{\"id\": 7, \"text\": \"bad\", \"label\": \"malicious\"}\n";
        let cases = parse(jsonl).unwrap();
        assert_eq!(cases[0].text, "hello");
        assert_eq!(cases[0].label, Label::Benign);
        assert_eq!(cases[1].id, "7");
        assert_eq!(cases[1].label, Label::Malicious);
        let sharegpt = r#"[{"id": "c1", "conversations": [{"from": "system", "value": "s"}, {"from": "human", "value": "What is Rust?"}, {"from": "gpt", "value": "A language."}]}]"#;
        let cases = parse(sharegpt).unwrap();
        assert_eq!(cases[0].text, "What is Rust?");
        assert!(parse("[{\"label\": \"x\", \"text\": \"t\"}]")
            .unwrap_err()
            .contains("item 1: label 'x'"));
        assert!(parse("{not json}\n").unwrap_err().starts_with("line 1"));
    }
}
