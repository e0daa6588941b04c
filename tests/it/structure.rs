//! The source's shape, checked from the files: the top-level modules of
//! `src/` import one another one way (no circle), `lib.rs` is a map that
//! names every module, no file is over 800 lines, every file opens with
//! a doc block saying what it owns, and no function is over 120 lines.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_LINES: usize = 800;
const MAX_LIB_LINES: usize = 200;
const MAX_FN_LINES: usize = 120;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Every top-level module and its files, with how deep each file sits
/// below the module's root (`x.rs`, `x/mod.rs`: 0; `x/y.rs`: 1).
fn modules() -> BTreeMap<String, Vec<(PathBuf, usize)>> {
    let mut mods: BTreeMap<String, Vec<(PathBuf, usize)>> = BTreeMap::new();
    for e in std::fs::read_dir(src()).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_stem().unwrap().to_string_lossy().to_string();
        if p.is_dir() {
            let mut files = Vec::new();
            rust_files(&p, &mut files);
            for f in files {
                let rel = f.strip_prefix(&p).unwrap();
                let mut depth = rel.components().count() - 1;
                if rel.file_name().unwrap() != "mod.rs" {
                    depth += 1;
                }
                mods.entry(name.clone()).or_default().push((f, depth));
            }
        } else if name != "lib" && name != "main" {
            mods.entry(name).or_default().push((p, 0));
        }
    }
    mods
}

/// The code without its unit tests (a `#[cfg(test)] mod tests` block at the
/// end of a file may use what it likes).
fn without_tests(text: &str) -> &str {
    match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    }
}

fn ident(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The first path segment after each `crate::` (in a `use crate::{a, b::c}`
/// group, every item's), and after `super::` chains that climb out of the
/// module a file at `depth` is in.
fn imports(text: &str, depth: usize) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut roots: Vec<usize> = text.match_indices("crate::").map(|(i, _)| i + 7).collect();
    let mut i = 0;
    while let Some(j) = text[i..].find("super::") {
        let start = i + j;
        let mut k = start;
        let mut n = 0;
        while text[k..].starts_with("super::") {
            k += 7;
            n += 1;
        }
        let joined = start > 0 && {
            let c = text.as_bytes()[start - 1];
            c.is_ascii_alphanumeric() || c == b'_' || c == b':'
        };
        if n > depth && !joined {
            roots.push(k);
        }
        i = k;
    }
    for at in roots {
        let rest = &text[at..];
        if let Some(group) = rest.strip_prefix('{') {
            // Items at depth 1 of the group.
            let mut level = 1;
            let mut item_start = true;
            for (k, c) in group.char_indices() {
                match c {
                    '{' => level += 1,
                    '}' => {
                        level -= 1;
                        if level == 0 {
                            break;
                        }
                    }
                    ',' if level == 1 => item_start = true,
                    c if item_start && level == 1 && !c.is_whitespace() => {
                        item_start = false;
                        out.insert(ident(&group[k..]).to_string());
                    }
                    _ => {}
                }
            }
        } else {
            out.insert(ident(rest).to_string());
        }
    }
    out
}

/// The import graph between top-level modules.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mods = modules();
    mods.iter()
        .map(|(m, files)| {
            let mut deps = BTreeSet::new();
            for (f, depth) in files {
                let text = std::fs::read_to_string(f).unwrap();
                for d in imports(without_tests(&text), *depth) {
                    if &d != m && mods.contains_key(&d) {
                        deps.insert(d);
                    }
                }
            }
            (m.clone(), deps)
        })
        .collect()
}

/// One circle of the graph, if it has any (a path that comes back).
fn circle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        g: &BTreeMap<String, BTreeSet<String>>,
        m: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == m) {
            let mut c = path[i..].to_vec();
            c.push(m.to_string());
            return Some(c);
        }
        if done.contains(m) {
            return None;
        }
        path.push(m.to_string());
        for d in g.get(m).into_iter().flatten() {
            if let Some(c) = visit(g, d, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(m.to_string());
        None
    }
    let mut done = BTreeSet::new();
    g.keys()
        .find_map(|m| visit(g, m, &mut Vec::new(), &mut done))
}

#[test]
fn imports_are_read_from_paths_groups_and_climbing_supers() {
    let text = "use crate::{a, b::{c, d}, e::f};\nuse crate::g::h;\nfn x() { crate::i::j(); super::super::k::l(); super::m(); }";
    let got: Vec<String> = imports(text, 1).into_iter().collect();
    assert_eq!(got, ["a", "b", "e", "g", "i", "k"]);
    // From a module's root file, one `super` already leaves it.
    assert!(imports("use super::m;", 0).contains("m"));
}

#[test]
fn a_circle_is_found_and_a_chain_is_not_one() {
    let g = |edges: &[(&str, &str)]| {
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in edges {
            g.entry(a.to_string()).or_default().insert(b.to_string());
            g.entry(b.to_string()).or_default();
        }
        g
    };
    assert_eq!(circle(&g(&[("a", "b"), ("b", "c"), ("a", "c")])), None);
    assert_eq!(
        circle(&g(&[("a", "b"), ("b", "c"), ("c", "a")])),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
}

#[test]
fn top_level_modules_import_one_way() {
    let g = graph();
    assert!(g.len() > 15, "the modules were found: {g:?}");
    assert!(
        g["runner"].contains("executor") && g["executor"].contains("workload"),
        "the imports were read: {g:?}"
    );
    if let Some(c) = circle(&g) {
        panic!(
            "an import circle between top-level modules: {}",
            c.join(" → ")
        );
    }
    // `record` crosses from measuring to reporting: it depends on nothing.
    assert!(g["record"].is_empty(), "record imports {:?}", g["record"]);
    // `cli` holds clap structs: nothing below the commands reads them.
    for (m, deps) in &g {
        if deps.contains("cli") {
            assert!(
                ["cmd", "plan", "sweep"].contains(&m.as_str()),
                "{m} imports cli"
            );
        }
    }
}

#[test]
fn lib_is_a_map_that_names_every_module() {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let lines = lib.lines().count();
    assert!(lines <= MAX_LIB_LINES, "lib.rs has {lines} lines");
    let layout: String = lib
        .lines()
        .take_while(|l| l.starts_with("//!"))
        .skip_while(|l| !l.contains("# Layout"))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(!layout.is_empty(), "lib.rs has a Layout section");
    for m in modules().keys() {
        assert!(
            lib.contains(&format!("pub mod {m};")),
            "lib.rs declares {m}"
        );
        assert!(
            layout.contains(&format!("`{m}`")),
            "lib.rs's Layout names `{m}`"
        );
    }
}

#[test]
fn files_are_short_and_open_with_what_they_own() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut long = Vec::new();
    let mut undocumented = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        if text.lines().count() > MAX_LINES {
            long.push(format!("{} ({})", f.display(), text.lines().count()));
        }
        if !text.starts_with("//!") {
            undocumented.push(f.display().to_string());
        }
    }
    assert!(long.is_empty(), "over {MAX_LINES} lines: {long:?}");
    assert!(
        undocumented.is_empty(),
        "no `//!` doc block: {undocumented:?}"
    );
}

#[test]
fn plan_facts_are_compared_as_enums_not_strings() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let facts = ["workload", "test_type", "target_kind", "protocol"];
    let mut found = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for (n, line) in without_tests(&text).lines().enumerate() {
            for fact in facts {
                for op in ["==", "!="] {
                    let code = line.split("//").next().unwrap_or("");
                    if code.contains(&format!("{fact} {op} \"")) {
                        found.push(format!("{}:{}: {}", f.display(), n + 1, line.trim()));
                    }
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "plan facts compared as strings (use the enums: WorkloadKind, TestType, TargetKind, Protocol): {found:#?}"
    );
}

/// Every function of a file outside its unit tests: its name and lines,
/// from its `fn` line to the `}` at the same indent.
fn functions(text: &str) -> Vec<(String, usize)> {
    let lines: Vec<&str> = without_tests(text).lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let code = line.trim_start();
        let indent = &line[..line.len() - code.len()];
        let mut rest = code;
        for word in [
            "pub(crate) ",
            "pub(super) ",
            "pub ",
            "async ",
            "const ",
            "unsafe ",
        ] {
            rest = rest.strip_prefix(word).unwrap_or(rest);
        }
        let Some(sig) = rest.strip_prefix("fn ") else {
            continue;
        };
        if code.ends_with(';') {
            continue;
        }
        let name: String = sig
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let close = format!("{indent}}}");
        if let Some(end) = lines[i + 1..].iter().position(|l| *l == close) {
            out.push((name, end + 2));
        }
    }
    out
}

#[test]
fn a_function_is_measured_from_its_fn_line_to_its_closing_brace() {
    let text = "fn a() {\n    x();\n}\n\nimpl T {\n    pub async fn b(\n        y: u8,\n    ) {\n        z();\n    }\n    fn c();\n}\n";
    assert_eq!(
        functions(text),
        [("a".to_string(), 3), ("b".to_string(), 5)]
    );
}

#[test]
fn functions_are_short() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut long = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(src()).unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(f).unwrap();
        for (name, n) in functions(&text) {
            if n > MAX_FN_LINES {
                long.push(format!(
                    "{rel}: fn {name} is {n} lines (at most {MAX_FN_LINES}): split it"
                ));
            }
        }
    }
    assert!(long.is_empty(), "{long:#?}");
}
