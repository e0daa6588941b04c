//! The checks of a plan: thresholds judged at the end (or every second with
//! `--abort-on-fail`) and SLOs that every request is judged against
//! (goodput), from the flags and the scenario file.

use crate::cli::RunArgs;
use crate::error::Result;
use crate::scenario::ScenarioFile;
use crate::slo::{Slo, Threshold};
use crate::usage;

/// What the run is judged by.
#[derive(Debug, Clone, Default)]
pub struct Checks {
    pub thresholds: Vec<Threshold>,
    pub abort_on_fail: bool,
    pub slos: Vec<Slo>,
    /// Token prices, for the run's cost.
    pub prices: Option<crate::report::result::cost::Prices>,
}

impl Checks {
    /// What a find-and-hold step is judged on: the thresholds on the run's
    /// own figures (not the server's, a group's or a script's, known only
    /// at the end), or with none, that 90% of ok requests met the SLOs.
    pub fn step_thresholds(&self) -> Vec<Threshold> {
        let own: Vec<Threshold> = self
            .thresholds
            .iter()
            .filter(|t| !t.is_server() && !t.is_custom() && t.group().is_none())
            .cloned()
            .collect();
        if own.is_empty() && !self.slos.is_empty() {
            return Threshold::parse("goodput_ratio>=0.9").into_iter().collect();
        }
        own
    }

    /// The file's thresholds and SLOs, and the flags' that it does not have.
    /// Custom metrics exist in a `scripted` run only.
    pub fn from_args(a: &RunArgs, f: &ScenarioFile, scripted: bool) -> Result<Self> {
        let mut thresholds: Vec<Threshold> = f.thresholds.iter().map(|v| v.0.clone()).collect();
        for t in &a.thresholds {
            if !thresholds.iter().any(|x| x.expr == t.expr) {
                thresholds.push(t.clone());
            }
        }
        if let Some(t) = thresholds.iter().find(|t| t.is_custom() && !scripted) {
            return Err(usage!(
                "threshold '{}': unknown metric (a latency such as ttft.p95, a run figure such as error_rate; a script's own metrics exist in scripted runs only)",
                t.expr
            ));
        }
        let mut slos: Vec<Slo> = f.slos.iter().map(|v| v.0.clone()).collect();
        for s in &a.slos {
            if !slos.iter().any(|x| x.expr == s.expr) {
                slos.push(s.clone());
            }
        }
        let abort_on_fail = a.abort_on_fail || f.abort_on_fail == Some(true);
        if abort_on_fail && thresholds.is_empty() {
            return Err(usage!("--abort-on-fail needs at least one --threshold"));
        }
        let price =
            |flag: Option<f64>, key: &Option<crate::scenario::Val<f64>>, name: &str| match flag
                .or(key.as_ref().map(|v| v.0))
            {
                Some(p) if !(p >= 0.0 && p.is_finite()) => Err(usage!(
                    "--{name} must be 0 or more (US dollars per million tokens)"
                )),
                p => Ok(p),
            };
        let prices = match (
            price(a.price_input, &f.price_input, "price-input")?,
            price(a.price_output, &f.price_output, "price-output")?,
        ) {
            (None, None) => None,
            (i, o) => Some(crate::report::result::cost::Prices {
                input_per_mtok: i.unwrap_or(0.0),
                output_per_mtok: o.unwrap_or(0.0),
            }),
        };
        Ok(Checks {
            thresholds,
            abort_on_fail,
            slos,
            prices,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::plan::tests::{plan, usage_error};

    #[test]
    fn thresholds_and_slos_from_the_flags_and_abort_needs_a_threshold() {
        let p = plan(&[
            "--mock",
            "--threshold",
            "ttft.p95<800ms",
            "--threshold",
            "ttft.p95<800ms",
            "--slo",
            "ttft<500ms",
            "--abort-on-fail",
        ])
        .unwrap();
        let exprs: Vec<&str> = p
            .checks
            .thresholds
            .iter()
            .map(|t| t.expr.as_str())
            .collect();
        assert_eq!(
            exprs,
            ["ttft.p95<800ms"],
            "a repeated threshold counts once"
        );
        assert_eq!(p.checks.slos.len(), 1);
        assert!(p.checks.abort_on_fail);
        let p = plan(&["--mock"]).unwrap();
        assert!(p.checks.thresholds.is_empty() && p.checks.slos.is_empty());
        assert!(
            usage_error(&["--mock", "--abort-on-fail"]).contains("needs at least one --threshold")
        );
    }
}
