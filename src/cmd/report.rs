//! `periscope report`: a result's tables again, or its HTML and CSV; a
//! sweep's tables or HTML.

use crate::cli::ReportArgs;
use crate::error::{exit, Error, Result};
use crate::print_stdout;
use crate::report;

/// `periscope report`: print the tables of a result, or write its HTML and CSV.
pub fn main(a: ReportArgs) -> Result<i32> {
    if let Some(path) = &a.from_vllm {
        let v = report::vllm::read(path)?.ok_or_else(|| {
            Error::Usage(format!(
                "{}: not a vLLM benchmark result (no request_throughput and backend)",
                path.display()
            ))
        })?;
        print_stdout(&report::vllm::markdown(path, &v));
        return Ok(exit::OK);
    }
    let Some(result) = a.result.clone() else {
        return Err(Error::Usage(
            "give a result: periscope report RESULT.json (or --from-vllm FILE)".into(),
        ));
    };
    if !a.more.is_empty() {
        return side_by_side(&result, &a);
    }
    let doc = report::read::document(&result)?;
    if a.csv.is_some() {
        match &doc {
            report::read::Document::Run(r) => report::csv::has_rows(r, &result)?,
            report::read::Document::Sweep(_) => {
                return Err(Error::Usage(format!(
                    "{}: --csv is for run results; a sweep's raw latencies are in its JSON (rows[].samples)",
                    result.display()
                )))
            }
        }
    }
    let exporters = report::export::open(&report::export::Asked {
        // The tables when no file is asked for.
        markdown: a.csv.is_none() && a.html.is_none(),
        html: a.html.as_deref(),
        csv: a.csv.as_deref(),
        csv_from: Some(&result),
        ..Default::default()
    })?;
    match &doc {
        report::read::Document::Run(r) => {
            report::export::write_all(exporters, report::export::Doc::Run(r))?
        }
        report::read::Document::Sweep(s) => {
            report::export::write_all(exporters, report::export::Doc::Sweep(s))?
        }
    }
    Ok(exit::OK)
}

/// `periscope report A.json B.json …`: run results side by side.
fn side_by_side(first: &std::path::Path, a: &ReportArgs) -> Result<i32> {
    if a.html.is_some() || a.csv.is_some() {
        return Err(Error::Usage(
            "--html and --csv take one result; several are printed side by side".into(),
        ));
    }
    let mut results = Vec::new();
    for path in std::iter::once(&first.to_path_buf()).chain(&a.more) {
        match report::read::document(path)? {
            report::read::Document::Run(r) => {
                let name = path.file_stem().map_or_else(
                    || path.display().to_string(),
                    |s| s.to_string_lossy().into(),
                );
                results.push((name, *r));
            }
            report::read::Document::Sweep(_) => {
                return Err(Error::Usage(format!(
                    "{}: a sweep's levels are side by side already: report it alone",
                    path.display()
                )))
            }
        }
    }
    print_stdout(&report::side::render(&results));
    Ok(exit::OK)
}
