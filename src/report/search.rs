//! find-and-hold in the Markdown report: every step of the search with its
//! figures at load and the threshold it broke, then the hold.

use std::fmt::Write as _;

use super::markdown::{f2, table};
use super::RunResult;
use crate::executor::adaptive::Step;

fn ms(v: Option<f64>) -> String {
    v.map_or("-".to_string(), f2)
}

fn row(label: String, s: &Step) -> Vec<String> {
    vec![
        label,
        s.level.to_string(),
        s.start_s.to_string(),
        s.seconds_at_load.to_string(),
        s.requests.to_string(),
        f2(s.ok_rps),
        ms(s.ttft_p95_ms),
        ms(s.e2e_p95_ms),
        match &s.broke {
            None => "pass".to_string(),
            Some(b) => format!("broke {b}"),
        },
    ]
}

pub fn markdown(r: &RunResult) -> String {
    let Some(search) = &r.search else {
        return String::new();
    };
    let mut out = String::from("### Find and hold\n\n");
    if !search.how.is_empty() {
        let _ = writeln!(out, "Found: {}.\n", search.how);
    }
    let mut rows: Vec<Vec<String>> = search
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| row((i + 1).to_string(), s))
        .collect();
    if let Some(h) = &search.hold {
        rows.push(row("hold".to_string(), h));
    }
    let header = [
        "step",
        search.unit.as_str(),
        "from (s)",
        "s at load",
        "req",
        "ok_rps",
        "ttft p95 (ms)",
        "e2e p95 (ms)",
        "verdict",
    ];
    let _ = writeln!(out, "{}\n", table(&header, rows));
    out.push_str(
        "<sub>Each step is judged on its seconds at load only (in flight ≥ 95% of its VUs, or completions ≥ 95% of its rate); the run's thresholds are judged on the hold.</sub>\n\n",
    );
    out
}
