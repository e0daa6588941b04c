//! k6-style test scripts: `periscope run my-test.js`.
//!
//! A script is an ES module run by an embedded QuickJS engine (`rquickjs`),
//! one runtime per VU on a thread of its own, as k6 gives each VU its own
//! JavaScript runtime. It imports k6's modules (`k6`, `k6/http`,
//! `k6/metrics`) and `periscope` (LLM calls made by periscope's own client).
//! This module owns loading a script ([`Script::load`]: syntax, imports and
//! `options`, checked before any load), its `options` as a scenario file's
//! keys ([`options`]), a VU's runtime ([`vu::Vu`]) and what a VU's calls do
//! ([`io::Io`]). The executor drives the VUs.

mod io;
pub mod options;
mod vu;

use std::path::{Path, PathBuf};

pub use io::{Io, LlmDefaults, VuIo};
pub use vu::Vu;

/// A loaded script: its source, checked, and what it exports.
#[derive(Debug, Clone)]
pub struct Script {
    /// The path as given (the name its errors and stack traces use).
    pub path: String,
    /// Its folder, for `open()` and relative imports.
    pub dir: PathBuf,
    pub source: String,
    /// `export const options`, as JSON (`{}` when none).
    pub options: serde_json::Value,
    pub has_setup: bool,
    pub has_teardown: bool,
    /// Its VUs get every intrinsic of the engine (typed arrays, BigInt,
    /// WeakRef, performance), not only those HTTP tests use: the script
    /// or a local module it imports names one (see [`needs_every_intrinsic`]).
    pub every_intrinsic: bool,
}

/// A script being run: what its VUs share.
pub struct ScriptRun {
    pub script: Script,
    pub io: std::sync::Arc<Io>,
    /// What `setup()` returned (JSON), handed to every VU.
    pub data: std::sync::OnceLock<String>,
}

impl ScriptRun {
    /// A VU's runtime, `setup()`'s data in hand; its requests run on the
    /// `worker` runtime.
    pub fn vu(&self, id: u64, worker: tokio::runtime::Handle) -> Result<Vu, String> {
        let mut vu = Vu::new(&self.script, Some((self.io.clone(), worker)), id)?;
        if let Some(d) = self.data.get() {
            vu.set_data(d)?;
        }
        Ok(vu)
    }

    /// Run `setup` or `teardown` once (VU 0), if the script exports it;
    /// what `setup()` returns is kept as every call's data. Its error is
    /// the run's.
    pub fn once(&self, name: &str, worker: tokio::runtime::Handle) -> Result<(), String> {
        let exported = match name {
            "setup" => self.script.has_setup,
            _ => self.script.has_teardown,
        };
        if !exported {
            return Ok(());
        }
        let mut vu = self.vu(0, worker).map_err(|e| format!("{name}: {e}"))?;
        let out = vu.call(name, 0).map_err(|e| format!("{name}(): {e}"))?;
        if let (Some(d), "setup") = (out, name) {
            let _ = self.data.set(d);
        }
        Ok(())
    }
}

/// Whether a run's first argument names a script.
pub fn is_script_arg(arg: &str) -> bool {
    let lower = arg.to_ascii_lowercase();
    lower.ends_with(".js") || lower.ends_with(".mjs")
}

impl Script {
    /// Read and check a script: it compiles, its imports resolve, its init
    /// context runs, and it exports a default function. The error is one
    /// line naming `file:line:col`.
    pub fn load(path: &str) -> Result<Script, String> {
        let source = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the script {path}: {e}"))?;
        let dir = Path::new(path)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let mut script = Script {
            path: path.to_string(),
            dir,
            source,
            options: serde_json::json!({}),
            has_setup: false,
            has_teardown: false,
            every_intrinsic: false,
        };
        script.every_intrinsic = needs_every_intrinsic(&script.dir, &script.source, 0);
        let probe = Vu::new(&script, None, 0)?;
        script.options = probe.options()?;
        script.has_setup = probe.exports("setup");
        script.has_teardown = probe.exports("teardown");
        if !probe.exports("default") {
            return Err(format!(
                "{path}: export a default function (`export default function () {{ … }}`): it is what each VU runs"
            ));
        }
        Ok(script)
    }
}

/// Names of what a VU's context leaves out unless asked (each costs
/// ~5-20 KB a VU; a thousand VUs add up).
const RARE_INTRINSICS: [&str; 12] = [
    "ArrayBuffer",
    "Int8Array",
    "Int16Array",
    "Int32Array",
    "Uint8",
    "Uint16Array",
    "Uint32Array",
    "Float32Array",
    "Float64Array",
    "DataView",
    "BigInt",
    "WeakRef",
];

/// Whether `source`, or a local module it imports (`from './lib.js'`, two
/// levels deep), names an intrinsic a VU's context leaves out.
fn needs_every_intrinsic(dir: &Path, source: &str, depth: u8) -> bool {
    if RARE_INTRINSICS.iter().any(|n| source.contains(n))
        || ["performance.", "FinalizationRegistry", "Atomics."]
            .iter()
            .any(|n| source.contains(n))
    {
        return true;
    }
    if depth >= 2 {
        return false;
    }
    source
        .split(['\'', '"', '`'])
        .filter(|s| s.starts_with("./") || s.starts_with("../"))
        .filter_map(|s| std::fs::read_to_string(dir.join(s)).ok())
        .any(|src| needs_every_intrinsic(dir, &src, depth + 1))
}

/// `file:line:col` of the first `import … 'spec'` of `source`, for an
/// import QuickJS could not resolve (its message names no place).
fn import_site(path: &str, source: &str, spec: &str) -> Option<String> {
    for (i, line) in source.lines().enumerate() {
        for q in ['\'', '"'] {
            let quoted = format!("{q}{spec}{q}");
            if let Some(col) = line.find(&quoted) {
                if line.contains("import") || line.contains("from") {
                    return Some(format!("{path}:{}:{}", i + 1, col + 1));
                }
            }
        }
    }
    None
}

/// A JavaScript error as one line: the message, then where it was thrown
/// (`file:line:col`, from its stack's first frame in the script).
fn one_line(path: &str, source: &str, message: &str, stack: &str) -> String {
    let msg = message.trim();
    if let Some(spec) = msg
        .strip_prefix("Error resolving module '")
        .or_else(|| msg.strip_prefix("Error: Error resolving module '"))
        .and_then(|r| r.split('\'').next())
    {
        let site = import_site(path, source, spec).unwrap_or_else(|| path.to_string());
        return format!(
            "{site}: unknown import '{spec}' (modules: k6, k6/http, k6/metrics, periscope, or a relative path)"
        );
    }
    let site = stack
        .lines()
        .chain(msg.lines())
        .filter_map(|l| {
            let l = l.trim();
            let inner = l
                .rsplit_once('(')
                .map_or(l.strip_prefix("at ")?, |(_, r)| r);
            let inner = inner.trim_end_matches(')');
            inner.contains(path).then(|| inner.to_string())
        })
        .next();
    let first = msg.lines().next().unwrap_or(msg);
    match site {
        Some(s) => format!("{s}: {first}"),
        None => format!("{path}: {first}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        let s = p.to_string_lossy().to_string();
        (dir, s)
    }

    #[test]
    fn a_script_loads_with_its_options_and_exports() {
        let (_d, p) = write(
            "t.js",
            "import { check } from 'k6';\nimport { Trend } from 'k6/metrics';\nimport periscope from 'periscope';\n\
             export const options = { vus: 3, duration: '2s', thresholds: { checks: ['rate>0.9'] } };\n\
             const t = new Trend('prompt_length');\n\
             export function setup() { return { n: 1 }; }\n\
             export default function (data) { check(data.n, { one: (n) => n === 1 }); }\n",
        );
        let s = Script::load(&p).unwrap();
        assert_eq!(s.options["vus"], 3);
        assert_eq!(s.options["thresholds"]["checks"][0], "rate>0.9");
        assert!(s.has_setup && !s.has_teardown);
    }

    #[test]
    fn bad_scripts_name_the_place_in_one_line() {
        for (text, want) in [
            (
                "export const options = { vus: 2\nexport default function () {}\n",
                ":2:23: Unexpected token 'export'",
            ),
            (
                "import { nope } from 'k7';\nexport default function () {}\n",
                ":1:22: unknown import 'k7'",
            ),
            (
                "const x = open('missing.txt');\nexport default function () {}\n",
                "missing.txt",
            ),
            ("export const options = {};\n", "export a default function"),
            ("let a;\na.b = 1;\nexport default function () {}\n", ":2:"),
        ] {
            let (_d, p) = write("bad.js", text);
            let e = Script::load(&p).unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
            assert!(!e.contains('\n'), "one line: {e:?}");
        }
        assert!(Script::load("/no/such/file.js")
            .unwrap_err()
            .contains("cannot read the script"));
    }
}
