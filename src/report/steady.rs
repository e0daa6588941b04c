//! The steady-state section of the Markdown report: the plateau's figures
//! beside the whole run's, or a line saying the run had none.

use std::fmt::Write;

use super::markdown::{f1, f2, table};
use super::RunResult;

/// Runs shorter than this many seconds get no section: one or two windows
/// say nothing about a plateau.
const MIN_SERIES: usize = 3;

pub fn markdown(r: &RunResult) -> String {
    let Some(st) = &r.steady_state else {
        return String::new();
    };
    if r.series.len() < MIN_SERIES {
        return String::new();
    }
    let mut out = String::from("### Steady state\n\n");
    let Some(f) = &st.figures else {
        let _ = writeln!(
            out,
            "None: {}; the figures above are the whole run's.\n",
            st.note.trim_start_matches("no plateau: ")
        );
        return out;
    };
    let _ = writeln!(
        out,
        "The plateau: {} (mean {} in flight).\n",
        st.note,
        f2(f.in_flight)
    );
    let metrics: Vec<&str> = ["ttft", "itl", "e2e"]
        .into_iter()
        .filter(|m| f.latency.contains_key(*m))
        .collect();
    let generates = r.plan.workload.generates();
    let mut header = vec!["", "req", "ok", "err", "error_rate", "ok_rps"];
    if generates {
        header.push("tokens/s");
    }
    let heads: Vec<String> = metrics
        .iter()
        .flat_map(|m| [format!("{m} p50 (ms)"), format!("{m} p99 (ms)")])
        .collect();
    header.extend(heads.iter().map(String::as_str));
    let lat = |l: Option<&crate::metrics::LatencyStats>| -> Vec<String> {
        match l {
            Some(l) if l.count > 0 => vec![f2(l.p50), f2(l.p99)],
            _ => vec!["-".into(), "-".into()],
        }
    };
    let s = &r.summary;
    let mut whole = vec![
        format!("whole run ({:.0} s)", r.duration_s),
        s.requests.to_string(),
        s.ok.to_string(),
        s.errors.to_string(),
        format!("{:.2}%", s.error_rate * 100.0),
        f2(s.ok_rps),
    ];
    let mut steady = vec![
        format!("steady state ({:.0} s)", f.duration_s),
        f.requests.to_string(),
        f.ok.to_string(),
        f.errors.to_string(),
        format!("{:.2}%", f.error_rate * 100.0),
        f2(f.ok_rps),
    ];
    if generates {
        whole.push(f1(s.tokens_per_s));
        steady.push(f1(f.tokens_per_s));
    }
    for m in &metrics {
        whole.extend(lat(r.latency.get(*m)));
        steady.extend(lat(f.latency.get(*m)));
    }
    let _ = writeln!(out, "{}\n", table(&header, vec![whole, steady]));
    out
}
