//! `periscope compare`: a current result against a baseline, metric by
//! metric with noise bounds; exit 99 on a regression beyond the bound.

use crate::cli::CompareArgs;
use crate::error::{exit, Result};
use crate::print_stdout;
use crate::report;

/// `periscope compare`: exit 99 on a regression beyond the bound.
pub fn main(a: CompareArgs) -> Result<i32> {
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
    let md = report::compare::render(&c, (&a.baseline, &base), (&a.current, &cur));
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
