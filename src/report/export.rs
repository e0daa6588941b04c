//! The end-of-run formats behind one trait: every command that ends with a
//! document (`run`, `merge`, `report`, `sweep`, `probe`) opens the
//! exporters its flags ask for before anything is sent, then hands the
//! document to each in turn ([`write_all`]).
//!
//! A format is an [`Exporter`]: the tables on stdout ([`Markdown`]), the
//! result as JSON ([`Json`]) or as vLLM's benchmark JSON ([`VllmJson`]),
//! the self-contained page ([`Html`]) and the CSV files ([`Csv`]). Rows
//! written *during* a run (`--requests-out`, `--csv`'s per-request rows,
//! the live outputs) are the runner's sinks, not exporters.
//!
//! Adding a format: a type here implementing [`Exporter`] for the
//! documents it has a form for, and a flag that [`Asked`] carries.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::report::json::OutputFile;
use crate::report::sweep::SweepResult;
use crate::report::RunResult;

/// What an exporter is handed at the end.
#[derive(Clone, Copy)]
pub enum Doc<'a> {
    /// A run's result (`run`, `merge`, `report`).
    Run(&'a RunResult),
    /// A sweep's levels (`sweep`, `report` of a sweep's JSON).
    Sweep(&'a SweepResult),
    /// A probe's cases, as its JSON document.
    Probe(&'a serde_json::Value),
}

impl Doc<'_> {
    fn kind(&self) -> &'static str {
        match self {
            Doc::Run(_) => "a run's result",
            Doc::Sweep(_) => "a sweep's result",
            Doc::Probe(_) => "a probe's result",
        }
    }
}

/// One end-of-run format.
pub trait Exporter {
    /// The flag that asked for it, for messages (`--json`, `--html`, …).
    fn flag(&self) -> &'static str;
    /// Write `doc` in this format. A document the format has no form for
    /// is a usage error naming the flag.
    fn export(self: Box<Self>, doc: Doc<'_>) -> Result<()>;
}

/// The formats a command's flags ask for.
#[derive(Default)]
pub struct Asked<'a> {
    /// Print the tables.
    pub markdown: bool,
    /// Append them to the GitHub job summary (`GITHUB_STEP_SUMMARY`) too:
    /// a run's and a merge's, not a `report` of an old one.
    pub step_summary: bool,
    pub json: Option<&'a Path>,
    /// The flag that named the JSON file (`--json`, `--output`).
    pub json_flag: Option<&'static str>,
    /// The JSON file in vLLM's benchmark format (`--format vllm`).
    pub vllm: bool,
    pub html: Option<&'a Path>,
    pub csv: Option<&'a Path>,
    /// `--csv` of `report`: the result file its per-request rows come
    /// from (they are written from the result, not during a run).
    pub csv_from: Option<&'a Path>,
}

/// The exporters `asked` names, their files created now: a path that
/// cannot be written fails before anything is sent.
pub fn open(asked: &Asked) -> Result<Vec<Box<dyn Exporter>>> {
    let mut out: Vec<Box<dyn Exporter>> = Vec::new();
    if asked.markdown {
        out.push(Box::new(Markdown {
            step_summary: asked.step_summary,
        }));
    }
    if let Some(path) = asked.json {
        let flag = asked.json_flag.unwrap_or("--json");
        let file = OutputFile::open_for(path, flag)?;
        out.push(match asked.vllm {
            true => Box::new(VllmJson {
                file,
                path: path.to_path_buf(),
            }),
            false => Box::new(Json { file, flag }),
        });
    }
    if let Some(path) = asked.html {
        out.push(Box::new(Html(OutputFile::open_for(path, "--html")?)));
    }
    if let Some(path) = asked.csv {
        out.push(Box::new(Csv::open(path, asked.csv_from)?));
    }
    Ok(out)
}

/// Hand `doc` to every exporter. One that fails does not stop the others
/// (nothing measured is lost): the first failure is returned after all
/// have had their turn, and any later one is printed.
pub fn write_all(exporters: Vec<Box<dyn Exporter>>, doc: Doc<'_>) -> Result<()> {
    let mut first = None;
    for e in exporters {
        let flag = e.flag();
        // What was measured is in hand: a write that fails now is I/O.
        let done = e.export(doc).map_err(|err| match err {
            Error::Other(e) => Error::Io(format!("{flag}: {e:#}")),
            other => other,
        });
        match (done, &first) {
            (Ok(()), _) => {}
            (Err(err), None) => first = Some(err),
            (Err(err), Some(_)) => eprintln!("error: {flag}: {err}"),
        }
    }
    first.map_or(Ok(()), Err)
}

fn unsupported(flag: &str, doc: Doc<'_>) -> Error {
    Error::Usage(format!("{flag} has no form for {}", doc.kind()))
}

/// The tables on stdout, and in the GitHub job summary when asked and
/// there is one.
pub struct Markdown {
    step_summary: bool,
}

impl Exporter for Markdown {
    fn flag(&self) -> &'static str {
        "stdout"
    }

    fn export(self: Box<Self>, doc: Doc<'_>) -> Result<()> {
        let text = match doc {
            Doc::Run(r) => super::markdown::render(r),
            Doc::Sweep(s) => super::sweep::render_tables(s),
            Doc::Probe(_) => return Err(unsupported("the tables", doc)),
        };
        crate::print_stdout(&text);
        if self.step_summary {
            super::append_step_summary(&text);
        }
        Ok(())
    }
}

/// The document as periscope's JSON (`periscope.result/v1`, a sweep's or
/// a probe's).
pub struct Json {
    file: OutputFile,
    flag: &'static str,
}

impl Exporter for Json {
    fn flag(&self) -> &'static str {
        self.flag
    }

    fn export(self: Box<Self>, doc: Doc<'_>) -> Result<()> {
        match doc {
            Doc::Run(r) => self.file.write(r)?,
            Doc::Sweep(s) => self.file.write(s)?,
            Doc::Probe(p) => self.file.write(p)?,
        }
        Ok(())
    }
}

/// A run as vLLM's `benchmark_serving` JSON (`--format vllm`); the
/// segments' files beside it are merged in (see `merge::parts`).
pub struct VllmJson {
    file: OutputFile,
    path: PathBuf,
}

impl Exporter for VllmJson {
    fn flag(&self) -> &'static str {
        "--format vllm"
    }

    fn export(self: Box<Self>, doc: Doc<'_>) -> Result<()> {
        let Doc::Run(r) = doc else {
            return Err(unsupported(self.flag(), doc));
        };
        let parts = super::merge::parts(&self.path, r)?;
        self.file.write(&super::vllm::to_vllm(r, &parts))?;
        Ok(())
    }
}

/// The self-contained HTML page of a run or a sweep.
pub struct Html(OutputFile);

impl Exporter for Html {
    fn flag(&self) -> &'static str {
        "--html"
    }

    fn export(self: Box<Self>, doc: Doc<'_>) -> Result<()> {
        let page = match doc {
            Doc::Run(r) => super::html::render(r),
            Doc::Sweep(s) => super::html::render_sweep(s),
            Doc::Probe(_) => return Err(unsupported(self.flag(), doc)),
        };
        self.0.write_str(&page)?;
        Ok(())
    }
}

/// `--csv PATH`: the summary and the per-second series beside PATH, and,
/// for `report`, the per-request rows in PATH from the result (a run
/// writes those as it goes).
pub struct Csv {
    path: PathBuf,
    from: Option<PathBuf>,
}

impl Csv {
    fn open(path: &Path, from: Option<&Path>) -> Result<Csv> {
        for p in [
            path.to_path_buf(),
            super::csv::summary_path(path),
            super::csv::series_path(path),
        ] {
            OutputFile::open_for(&p, "--csv")?;
        }
        Ok(Csv {
            path: path.to_path_buf(),
            from: from.map(Path::to_path_buf),
        })
    }
}

impl Exporter for Csv {
    fn flag(&self) -> &'static str {
        "--csv"
    }

    fn export(self: Box<Self>, doc: Doc<'_>) -> Result<()> {
        let Doc::Run(r) = doc else {
            return Err(Error::Usage(format!(
                "--csv is for run results; {} keeps its raw latencies in its JSON",
                doc.kind()
            )));
        };
        match &self.from {
            Some(source) => super::csv::write(r, &self.path, source),
            None => super::csv::write_after_run(r, &self.path),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result() -> RunResult {
        serde_json::from_str(include_str!("../../tests/data/result-minimal.json"))
            .expect("the test result")
    }

    #[test]
    fn every_file_asked_for_is_written_and_one_failure_stops_none_of_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let (json, html, csv) = (
            dir.path().join("r.json"),
            dir.path().join("r.html"),
            dir.path().join("r.csv"),
        );
        let exporters = open(&Asked {
            json: Some(&json),
            html: Some(&html),
            csv: Some(&csv),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            exporters.iter().map(|e| e.flag()).collect::<Vec<_>>(),
            ["--json", "--html", "--csv"]
        );
        // A second page goes to a full disk: its write fails, the
        // others' do not.
        let r = result();
        let mut exporters = exporters;
        exporters.insert(
            1,
            Box::new(Html(
                OutputFile::open_for(Path::new("/dev/full"), "--html").unwrap(),
            )),
        );
        let err = write_all(exporters, Doc::Run(&r)).unwrap_err();
        assert!(err.to_string().contains("/dev/full"), "{err}");
        let back: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        assert_eq!(back["run_id"], serde_json::json!(r.run_id));
        assert!(std::fs::read_to_string(&html).unwrap().contains("<html"));
        let summary = std::fs::read_to_string(super::super::csv::summary_path(&csv)).unwrap();
        assert!(summary.lines().count() >= 2, "{summary}");
    }

    #[test]
    fn a_format_with_no_form_for_a_document_says_which_flag() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("r.csv");
        let exporters = open(&Asked {
            csv: Some(&csv),
            ..Default::default()
        })
        .unwrap();
        let probe = serde_json::json!({"cases": []});
        let err = write_all(exporters, Doc::Probe(&probe)).unwrap_err();
        assert!(matches!(err, Error::Usage(_)), "{err}");
        assert!(err.to_string().contains("--csv"), "{err}");
    }

    #[test]
    fn a_path_that_cannot_be_written_fails_before_the_run() {
        let err = open(&Asked {
            html: Some(Path::new("/nonexistent-dir/r.html")),
            ..Default::default()
        })
        .err()
        .unwrap();
        assert!(err.to_string().starts_with("--html: cannot write"), "{err}");
    }
}
