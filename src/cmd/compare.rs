//! `periscope compare`: a current result against a baseline, metric by
//! metric with noise bounds; exit 99 on a regression beyond the bound.

use crate::cli::CompareArgs;
use crate::error::{exit, Result};
use crate::print_stdout;
use crate::report;

/// A side of a comparison known by its figures, and how it is named.
type FigureSide = (Box<dyn Fn(&str) -> Option<f64>>, String);

/// `periscope compare`: exit 99 on a regression beyond the bound.
pub fn main(a: CompareArgs) -> Result<i32> {
    use report::vllm;
    // vLLM's benchmark results on either side: compared by their figures.
    let (bv, cv) = (vllm::read(&a.baseline)?, vllm::read(&a.current)?);
    let (c, md) = if bv.is_some() || cv.is_some() {
        let side = |path: &std::path::Path, v: Option<vllm::VllmResult>| -> Result<FigureSide> {
            Ok(match v {
                Some(v) => {
                    let d = format!(
                        "`{}` (vLLM benchmark result, {} · `{}`)",
                        path.display(),
                        v.backend,
                        v.model
                    );
                    (Box::new(move |n: &str| v.figures.get(n).copied()), d)
                }
                None => {
                    let r = report::read::run_result(path)?;
                    let d = report::compare::describe_run(path, &r);
                    (Box::new(move |n: &str| vllm::figure_of(&r, n)), d)
                }
            })
        };
        let (bf, bd) = side(&a.baseline, bv)?;
        let (cf, cd) = side(&a.current, cv)?;
        let c =
            report::compare::compare_figures(&*bf, &*cf, &a.metrics, a.max_regression, a.noise)?;
        let md = report::compare::render(&c, &bd, &cd);
        (c, md)
    } else {
        let base = report::read::run_result(&a.baseline)?;
        let cur = report::read::run_result(&a.current)?;
        let c = report::compare::compare(
            (&a.baseline, &base),
            (&a.current, &cur),
            &a.metrics,
            a.max_regression,
            a.noise,
            a.force,
        )?;
        let md = report::compare::render(
            &c,
            &report::compare::describe_run(&a.baseline, &base),
            &report::compare::describe_run(&a.current, &cur),
        );
        (c, md)
    };
    print_stdout(&md);
    report::append_step_summary(&md);
    let regressions = c.regressions();
    if regressions.is_empty() {
        Ok(exit::OK)
    } else {
        eprintln!(
            "error: {} regression(s) beyond {:.0}%: {}",
            regressions.len(),
            a.max_regression * 100.0,
            regressions
                .iter()
                .map(|r| r.metric.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        Ok(exit::THRESHOLD)
    }
}
