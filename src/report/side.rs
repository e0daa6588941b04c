//! Several run results side by side (`periscope report A.json B.json`):
//! one row per result with its workload, model and headline figures, and,
//! when they ran the same stages (the benchmark scenario's VU steps), their
//! ok_rps and latency stage by stage. The k6 suite's benchmark compared
//! completions with embeddings this way.

use super::markdown::table;
use super::result::RunResult;
use crate::metrics::LatencyStats;

fn ms(l: Option<&LatencyStats>, f: fn(&LatencyStats) -> f64) -> String {
    match l {
        Some(l) if l.count > 0 => format!("{:.2}", f(l)),
        _ => "–".into(),
    }
}

/// The results' headline figures, one row each, then their stages.
pub fn render(results: &[(String, RunResult)]) -> String {
    let rows = results
        .iter()
        .map(|(name, r)| {
            let s = &r.summary;
            vec![
                name.clone(),
                r.plan.workload.to_string(),
                format!("`{}`", r.plan.model),
                r.plan.scenario.clone(),
                s.requests.to_string(),
                format!("{:.2}%", 100.0 * s.error_rate),
                format!("{:.2}", s.ok_rps),
                if s.output_tokens > 0 {
                    format!("{:.1}", s.tokens_per_s)
                } else {
                    "–".into()
                },
                ms(r.latency.get("ttft"), |l| l.p50),
                ms(r.latency.get("ttft"), |l| l.p95),
                ms(r.latency.get("e2e"), |l| l.p50),
                ms(r.latency.get("e2e"), |l| l.p95),
            ]
        })
        .collect();
    let mut out = format!(
        "## periscope: {} results side by side\n\n{}\n\n",
        results.len(),
        table(
            &[
                "result",
                "workload",
                "model",
                "scenario",
                "req",
                "error_rate",
                "ok_rps",
                "tokens/s",
                "ttft p50",
                "ttft p95",
                "e2e p50",
                "e2e p95",
            ],
            rows,
        )
    );
    out.push_str(&stages(results));
    out
}

/// ok_rps and e2e p50 stage by stage, when every result ran the same
/// targets (VUs or req/s) in the same order.
fn stages(results: &[(String, RunResult)]) -> String {
    let first = &results[0].1.stages;
    let same = first.len() > 1
        && results.iter().all(|(_, r)| {
            r.stages.len() == first.len()
                && r.stages
                    .iter()
                    .zip(first)
                    .all(|(a, b)| a.target == b.target)
        });
    if !same {
        return String::new();
    }
    let mut header = vec!["stage".to_string(), "target".to_string()];
    for (name, _) in results {
        header.push(format!("{name} ok_rps"));
        header.push(format!("{name} e2e p50"));
    }
    let rows = (0..first.len())
        .map(|i| {
            let mut row = vec![(i + 1).to_string(), crate::fmt::fmt_num(first[i].target)];
            for (_, r) in results {
                let st = &r.stages[i];
                row.push(format!("{:.2}", st.ok_rps));
                row.push(ms(Some(&st.e2e), |l| l.p50));
            }
            row
        })
        .collect();
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    format!(
        "### By stage, side by side (ms)\n\n{}\n\n",
        table(&header, rows)
    )
}
