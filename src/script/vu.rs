//! One VU's JavaScript runtime: the script evaluated as a module (its init
//! context), the k6 and periscope modules it may import, the globals k6
//! gives (`__VU`, `__ITER`, `__ENV`, `open`, `console`), and the calls of
//! its exported functions. Native functions reach the load through
//! [`Io`]; without one (loading a script to check it) they may not send.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;

use rquickjs::loader::{BuiltinLoader, BuiltinResolver, Resolver, ScriptLoader};
use rquickjs::{
    CatchResultExt, CaughtError, Context, Ctx, Exception, Function, Module, Object, Persistent,
    Runtime, Value,
};

use super::io::{Io, VuIo};
use super::{one_line, Script};
use crate::metrics::custom::MetricKind;

const MODULES: &[(&str, &str)] = &[
    ("k6", include_str!("js/k6.js")),
    ("k6/http", include_str!("js/http.js")),
    ("k6/metrics", include_str!("js/metrics.js")),
    ("periscope", include_str!("js/periscope.js")),
    ("periscope/config", include_str!("js/config.js")),
];

/// The k6 suite's helper modules, by file name, and the built-in module
/// that stands for each when a script imports one it does not have beside
/// it (`import * as oai from "./helpers/openaiGeneric.js"`).
const SEED_HELPERS: &[(&str, &str)] = &[
    ("openaiGeneric.js", "periscope"),
    ("config.js", "periscope/config"),
];

/// Relative imports of the k6 suite's helpers that the script's folder
/// does not hold, resolved to the built-in modules that do their work.
struct SeedHelpers;

impl Resolver for SeedHelpers {
    fn resolve<'js>(
        &mut self,
        _ctx: &Ctx<'js>,
        base: &str,
        name: &str,
    ) -> rquickjs::Result<String> {
        let file = name.rsplit('/').next().unwrap_or(name);
        match SEED_HELPERS.iter().find(|(f, _)| *f == file) {
            Some((_, module)) if name.starts_with("./") || name.starts_with("../") => {
                Ok(module.to_string())
            }
            _ => Err(rquickjs::Error::new_resolving(base, name)),
        }
    }
}

/// What the native functions share.
struct State {
    io: Option<VuIo>,
    /// The init context is running: `open()` may read, nothing may send.
    init: Cell<bool>,
    dir: std::path::PathBuf,
    vu: u64,
}

/// A VU's runtime, its script evaluated.
pub struct Vu {
    // Dropped in this order: the saved values before their context and runtime.
    namespace: Persistent<Object<'static>>,
    data: Option<Persistent<Value<'static>>>,
    context: Context,
    _runtime: Runtime,
    path: String,
    source: Rc<str>,
    state: Rc<State>,
}

fn caught(path: &str, source: &str, e: CaughtError<'_>) -> String {
    match e {
        CaughtError::Exception(x) => one_line(
            path,
            source,
            &x.message().map_or_else(|| x.to_string(), |m| m.to_string()),
            &x.stack().unwrap_or_default(),
        ),
        CaughtError::Value(v) => {
            let text = v
                .as_string()
                .and_then(|s| s.to_string().ok())
                .unwrap_or_else(|| format!("{v:?}"));
            one_line(path, source, &format!("uncaught {text}"), "")
        }
        CaughtError::Error(e) => one_line(path, source, &e.to_string(), ""),
    }
}

/// A script's own modules: `./lib.js` and `../x/lib` next to the module
/// that imports them (`.js` when no extension is given), a bare `lib.js`
/// in the script's folder. Paths are joined by the OS's rules, so an
/// absolute script path works as a relative one does.
struct LocalFiles {
    dir: String,
}

impl Resolver for LocalFiles {
    fn resolve<'js>(
        &mut self,
        _ctx: &Ctx<'js>,
        base: &str,
        name: &str,
    ) -> rquickjs::Result<String> {
        use std::path::{Component, Path, PathBuf};
        let from = if name.starts_with("./") || name.starts_with("../") {
            Path::new(base)
                .parent()
                .unwrap_or(Path::new("."))
                .to_path_buf()
        } else {
            PathBuf::from(&self.dir)
        };
        let mut path = PathBuf::new();
        for c in from.join(name).components() {
            match c {
                Component::CurDir => {}
                Component::ParentDir if path.file_name().is_some() => {
                    path.pop();
                }
                c => path.push(c),
            }
        }
        if path.extension().is_none() {
            path.set_extension("js");
        }
        if path.is_file() {
            Ok(path.to_string_lossy().into_owned())
        } else {
            Err(rquickjs::Error::new_resolving(base, name))
        }
    }
}

impl Vu {
    /// VU `id`'s runtime, its requests run on the `worker` runtime; `io`
    /// None only checks the script.
    pub fn new(
        script: &Script,
        io: Option<(Arc<Io>, tokio::runtime::Handle)>,
        id: u64,
    ) -> Result<Vu, String> {
        let runtime = Runtime::new().map_err(|e| format!("cannot start JavaScript: {e}"))?;
        // A VU's memory is bounded (a runaway script fails alone).
        runtime.set_memory_limit(256 << 20);
        runtime.set_max_stack_size(512 << 10);
        let mut resolver = BuiltinResolver::default();
        let mut loader = BuiltinLoader::default();
        for (name, src) in MODULES {
            resolver.add_module(*name);
            loader.add_module(*name, *src);
        }
        let dir = script.dir.to_string_lossy().to_string();
        runtime.set_loader(
            (resolver, LocalFiles { dir }, SeedHelpers),
            (loader, ScriptLoader::default()),
        );
        if let Some((io, _)) = &io {
            let hard = io.hard.clone();
            runtime.set_interrupt_handler(Some(Box::new(move || hard.is_cancelled())));
        }
        let io = io.map(|(io, worker)| VuIo::new(io, worker));
        // What HTTP tests use; the rest (typed arrays, BigInt, WeakRef,
        // performance) only for a script that names them: ~20 KB a VU less.
        use rquickjs::context::intrinsic as i;
        type Common = (
            i::Date,
            i::Eval,
            i::RegExpCompiler,
            i::RegExp,
            i::Json,
            i::Proxy,
            i::MapSet,
            i::Promise,
        );
        let context = if script.every_intrinsic {
            Context::full(&runtime)
        } else {
            Context::custom::<Common>(&runtime)
        }
        .map_err(|e| format!("JavaScript: {e}"))?;
        let state = Rc::new(State {
            io,
            init: Cell::new(true),
            dir: script.dir.clone(),
            vu: id,
        });
        let source: Rc<str> = script.source.as_str().into();
        let path = script.path.clone();
        let namespace = context.with(|ctx| -> Result<_, String> {
            install(&ctx, &state, id).map_err(|e| format!("JavaScript: {e}"))?;
            let m = Module::declare(ctx.clone(), path.as_str(), script.source.as_str())
                .catch(&ctx)
                .map_err(|e| caught(&path, &source, e))?;
            let (m, promise) = m
                .eval()
                .catch(&ctx)
                .map_err(|e| caught(&path, &source, e))?;
            promise
                .finish::<()>()
                .catch(&ctx)
                .map_err(|e| caught(&path, &source, e))?;
            let ns = m.namespace().map_err(|e| format!("JavaScript: {e}"))?;
            Ok(Persistent::save(&ctx, ns))
        })?;
        state.init.set(false);
        Ok(Vu {
            namespace,
            data: None,
            context,
            _runtime: runtime,
            path,
            source,
            state,
        })
    }

    /// Whether the script exports `name`.
    pub fn exports(&self, name: &str) -> bool {
        self.context.with(|ctx| {
            self.namespace
                .clone()
                .restore(&ctx)
                .ok()
                .and_then(|ns| ns.get::<_, Function>(name).ok())
                .is_some()
        })
    }

    /// `export const options`, as JSON.
    pub fn options(&self) -> Result<serde_json::Value, String> {
        self.context.with(|ctx| {
            let ns = self
                .namespace
                .clone()
                .restore(&ctx)
                .map_err(|e| e.to_string())?;
            let v: Value = ns.get("options").map_err(|e| e.to_string())?;
            if v.is_undefined() {
                return Ok(serde_json::json!({}));
            }
            let text = ctx
                .json_stringify(v)
                .map_err(|e| e.to_string())?
                .map(|s| s.to_string().unwrap_or_default())
                .unwrap_or_else(|| "{}".into());
            serde_json::from_str(&text).map_err(|e| format!("{}: options: {e}", self.path))
        })
    }

    /// Hand every later call `setup()`'s data (JSON).
    pub fn set_data(&mut self, json: &str) -> Result<(), String> {
        let data = self.context.with(|ctx| {
            ctx.json_parse(json.to_string())
                .map(|v| Persistent::save(&ctx, v))
                .map_err(|e| format!("setup() data: {e}"))
        })?;
        self.data = Some(data);
        Ok(())
    }

    /// Call an exported function (`setup`, `default`, `teardown`) with the
    /// setup data; its return value as JSON. An exception is the error,
    /// one line with its place.
    pub fn call(&mut self, name: &str, iteration: u64) -> Result<Option<String>, String> {
        self.context.with(|ctx| {
            let g = ctx.globals();
            let _ = g.set("__ITER", iteration);
            let ns = self
                .namespace
                .clone()
                .restore(&ctx)
                .map_err(|e| e.to_string())?;
            let f: Function = ns
                .get(name)
                .map_err(|_| format!("{}: no exported function {name}", self.path))?;
            let data: Value = match &self.data {
                Some(d) => d.clone().restore(&ctx).map_err(|e| e.to_string())?,
                None => Value::new_undefined(ctx.clone()),
            };
            let out: Value = f
                .call((data,))
                .catch(&ctx)
                .map_err(|e| caught(&self.path, &self.source, e))?;
            if out.is_undefined() {
                return Ok(None);
            }
            Ok(ctx
                .json_stringify(out)
                .ok()
                .flatten()
                .and_then(|s| s.to_string().ok()))
        })
    }

    /// One iteration of `default`: counted with its duration in k6's
    /// `iterations` and `iteration_duration`; one that threw is a failed
    /// iteration (its message and line), and never stops the VU.
    pub fn iteration(&mut self, iteration: u64) -> Result<(), String> {
        let t0 = std::time::Instant::now();
        let r = self.call("default", iteration).map(|_| ());
        if let Some(io) = &self.state.io {
            let ms = t0.elapsed().as_secs_f64() * 1000.0;
            // An iteration cut by the end of the run is neither.
            if !io.io.hard.is_cancelled() {
                io.metric(MetricKind::Counter, "iterations", 1.0, &[], false);
                io.metric(MetricKind::Trend, "iteration_duration", ms, &[], true);
                if let Err(e) = &r {
                    io.failed(e.clone());
                }
            }
            io.flush();
        }
        r
    }

    /// Send the metrics added outside `default` (setup, teardown).
    pub fn flush(&self) {
        if let Some(io) = &self.state.io {
            io.flush();
        }
    }
}

fn throw(ctx: &Ctx<'_>, msg: &str) -> rquickjs::Error {
    Exception::throw_message(ctx, msg)
}

fn tags_of(json: &str) -> Vec<(String, String)> {
    serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(json)
        .map(|m| {
            m.into_iter()
                .map(|(k, v)| (k, v.as_str().map_or_else(|| v.to_string(), str::to_string)))
                .collect()
        })
        .unwrap_or_default()
}

/// The globals of a VU: `__native` (what the modules call), `__VU`,
/// `__ITER`, `__ENV`, `open` and `console`.
fn install<'js>(ctx: &Ctx<'js>, state: &Rc<State>, id: u64) -> rquickjs::Result<()> {
    let g = ctx.globals();
    g.set("__VU", id)?;
    g.set("__ITER", 0)?;
    g.set("__ENV", env_object(ctx, state)?)?;
    let native = Object::new(ctx.clone())?;
    install_io(ctx, state, &native)?;
    install_metrics(ctx, state, &native)?;
    g.set("__native", native)?;
    install_open_and_console(ctx, state, &g)
}

/// `__ENV`: the process's environment, and the run's target where a script
/// reads it: the mock's URL under --mock, --target's when given (the
/// variable as the user wrote it when it names the same base).
fn env_object<'js>(ctx: &Ctx<'js>, state: &Rc<State>) -> rquickjs::Result<Object<'js>> {
    let env = Object::new(ctx.clone())?;
    for (k, v) in std::env::vars() {
        env.set(k, v)?;
    }
    if let Some(io) = &state.io {
        let base = io.io.client.base();
        let same = std::env::var("OPENAI_BASE_URL")
            .ok()
            .and_then(|v| crate::endpoint::split("OPENAI_BASE_URL", &v).ok())
            .is_some_and(|u| u.base == base);
        if !same {
            env.set("OPENAI_BASE_URL", base)?;
        }
    }
    Ok(env)
}

/// What a VU sends and reads: `llm`, `http` and `dataset` of `__native`.
fn install_io<'js>(
    ctx: &Ctx<'js>,
    state: &Rc<State>,
    native: &Object<'js>,
) -> rquickjs::Result<()> {
    let s = state.clone();
    native.set(
        "llm",
        Function::new(
            ctx.clone(),
            move |ctx: Ctx<'js>, kind: String, body: String| -> rquickjs::Result<String> {
                let io = sending(&ctx, &s, "periscope calls")?;
                io.llm(&kind, &body).map_err(|e| throw(&ctx, &e))
            },
        )?,
    )?;
    let s = state.clone();
    native.set(
        "http",
        Function::new(
            ctx.clone(),
            move |ctx: Ctx<'js>,
                  method: String,
                  url: String,
                  body: Option<String>,
                  params: String|
                  -> rquickjs::Result<String> {
                let io = sending(&ctx, &s, "k6/http requests")?;
                io.http(&method, &url, body, &params)
                    .map_err(|e| throw(&ctx, &e))
            },
        )?,
    )?;
    let s = state.clone();
    native.set(
        "dataset",
        Function::new(
            ctx.clone(),
            move |ctx: Ctx<'js>, name: String, opts: String| -> rquickjs::Result<String> {
                super::io::dataset(&s.dir, &name, &opts).map_err(|e| throw(&ctx, &e))
            },
        )?,
    )?;
    Ok(())
}

/// What a VU records and how it waits: `metric`, `check` and `sleep` of
/// `__native`.
fn install_metrics<'js>(
    ctx: &Ctx<'js>,
    state: &Rc<State>,
    native: &Object<'js>,
) -> rquickjs::Result<()> {
    let s = state.clone();
    native.set(
        "metric",
        Function::new(
            ctx.clone(),
            move |ctx: Ctx<'js>,
                  kind: String,
                  name: String,
                  value: f64,
                  tags: String,
                  time: bool|
                  -> rquickjs::Result<()> {
                let kind = MetricKind::parse(&kind).ok_or_else(|| throw(&ctx, "unknown metric kind"))?;
                if !value.is_finite() {
                    return Err(throw(&ctx, &format!("{name}.add(): not a number")));
                }
                if s.init.get() {
                    return Err(throw(&ctx, "metrics are added in VU code (default, setup, teardown), not the init context"));
                }
                if let Some(io) = &s.io {
                    io.metric(kind, &name, value, &tags_of(&tags), time);
                }
                Ok(())
            },
        )?,
    )?;
    let s = state.clone();
    native.set(
        "check",
        Function::new(ctx.clone(), move |name: String, ok: bool, tags: String| {
            if let Some(io) = &s.io {
                let mut t = tags_of(&tags);
                t.push(("check".into(), name));
                io.metric(
                    MetricKind::Rate,
                    "checks",
                    if ok { 1.0 } else { 0.0 },
                    &t,
                    false,
                );
            }
        })?,
    )?;
    let s = state.clone();
    native.set(
        "sleep",
        Function::new(
            ctx.clone(),
            move |ctx: Ctx<'js>, secs: f64| -> rquickjs::Result<()> {
                if !(secs.is_finite() && secs >= 0.0) {
                    return Err(throw(&ctx, "sleep(seconds): a number ≥ 0"));
                }
                let d = std::time::Duration::from_secs_f64(secs);
                match &s.io {
                    Some(io) => io.sleep(d),
                    None => std::thread::sleep(d.min(std::time::Duration::from_secs(1))),
                }
                Ok(())
            },
        )?,
    )?;
    Ok(())
}

/// `open()` (the init context's file reader) and `console`.
fn install_open_and_console<'js>(
    ctx: &Ctx<'js>,
    state: &Rc<State>,
    g: &Object<'js>,
) -> rquickjs::Result<()> {
    let s = state.clone();
    g.set(
        "open",
        Function::new(
            ctx.clone(),
            move |ctx: Ctx<'js>, path: String| -> rquickjs::Result<String> {
                if !s.init.get() {
                    return Err(throw(
                        &ctx,
                        "open() works in the init context only (outside default)",
                    ));
                }
                let p = s.dir.join(&path);
                std::fs::read_to_string(&p)
                    .map_err(|e| throw(&ctx, &format!("open('{path}'): {e} ({})", p.display())))
            },
        )?,
    )?;
    let console = Object::new(ctx.clone())?;
    for level in ["log", "info", "warn", "error", "debug"] {
        let vu = state.vu;
        console.set(
            level,
            Function::new(
                ctx.clone(),
                move |args: rquickjs::function::Rest<Value<'js>>| {
                    let parts: Vec<String> = args.0.iter().map(show).collect();
                    eprintln!("{level} [vu {vu}] {}", parts.join(" "));
                },
            )?,
        )?;
    }
    g.set("console", console)?;
    Ok(())
}

/// The Io of a VU that may send now, or the exception saying why not.
fn sending<'a>(ctx: &Ctx<'_>, s: &'a State, what: &str) -> rquickjs::Result<&'a VuIo> {
    if s.init.get() {
        return Err(throw(
            ctx,
            &format!("{what} are made in VU code (default, setup, teardown), not the init context"),
        ));
    }
    s.io.as_ref()
        .ok_or_else(|| throw(ctx, &format!("{what} need a run")))
}

/// A console argument as text: strings as they are, the rest as JSON.
fn show(v: &Value<'_>) -> String {
    if let Some(s) = v.as_string() {
        return s.to_string().unwrap_or_default();
    }
    if v.is_undefined() {
        return "undefined".into();
    }
    v.ctx()
        .json_stringify(v.clone())
        .ok()
        .flatten()
        .and_then(|s| s.to_string().ok())
        .unwrap_or_else(|| format!("{v:?}"))
}
