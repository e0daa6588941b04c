//! The HTML report: one self-contained file that needs no network to view.
//!
//! Charts are inline SVG drawn by plotters (no script at all); the tables are
//! the Markdown report rendered by pulldown-cmark, so the page and stdout
//! never disagree. A Content-Security-Policy forbids every fetch, so even a
//! mistake here cannot make the page load something. The layout is one
//! column that scales down to a phone, and prints without cutting a chart.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

pub use super::chart::esc;
use super::chart::{render_chart, Chart, Line};

use super::result::RunResult;
use super::sweep::{Level, SweepResult};
use crate::metrics::counts::decode_histogram;
use crate::metrics::WindowSummary;

fn series_of(ws: &[WindowSummary], f: impl Fn(&WindowSummary) -> Option<f64>) -> Vec<(f64, f64)> {
    ws.iter()
        .filter_map(|w| f(w).map(|v| (w.t as f64, v)))
        .collect()
}

type Pick = fn(&WindowSummary) -> Option<f64>;

/// The ttft, itl, tpot and e2e percentiles of each window.
const PERCENTILES_OVER_TIME: &[(&str, &str, [Pick; 3])] = &[
    (
        "ttft",
        "Time to first token over time",
        [|w| w.ttft_p50, |w| w.ttft_p95, |w| w.ttft_p99],
    ),
    (
        "itl",
        "Inter-token latency over time",
        [|w| w.itl_p50, |w| w.itl_p95, |w| w.itl_p99],
    ),
    (
        "tpot",
        "Time per output token over time",
        [|w| w.tpot_p50, |w| w.tpot_p95, |w| w.tpot_p99],
    ),
    (
        "e2e",
        "End-to-end latency over time",
        [|w| w.e2e_p50, |w| w.e2e_p95, |w| w.e2e_p99],
    ),
];

/// An HDR percentile curve: latency by percentile, the x axis 1/(1−q).
fn percentile_curve(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    let n = h.len() as f64;
    let cap = 10f64.powf(n.log10().ceil().max(1.0));
    let mut pts: Vec<(f64, f64)> = h
        .iter_quantiles(5)
        .map(|v| {
            let q = v.quantile_iterated_to();
            let x = if q >= 1.0 {
                cap
            } else {
                (1.0 / (1.0 - q)).min(cap)
            };
            (x, v.value_iterated_to() as f64 / 1000.0)
        })
        .collect();
    pts.dedup_by(|a, b| a.0 == b.0);
    pts
}

fn run_charts(r: &RunResult) -> Vec<Chart> {
    let ws = &r.series;
    let mut charts = vec![
        Chart::new("rps", "Requests per second", "seconds", "requests/s")
            .line(Line::new("ok", series_of(ws, |w| Some(w.ok as f64))))
            .line(Line::new(
                "errors",
                series_of(ws, |w| Some(w.errors as f64)),
            )),
        Chart::new(
            "vus",
            if r.plan.load.is_open() {
                "Requests in flight"
            } else {
                "Active VUs and requests in flight"
            },
            "seconds",
            "count",
        )
        .line(Line::new(
            "active VUs",
            if r.plan.load.is_open() {
                Vec::new()
            } else {
                series_of(ws, |w| Some(w.active_vus as f64))
            },
        ))
        .line(Line::new(
            "in flight",
            series_of(ws, |w| Some(w.in_flight as f64)),
        )),
    ];
    for (metric, title, picks) in PERCENTILES_OVER_TIME {
        let mut c = Chart::new(&format!("latency-{metric}"), title, "seconds", "ms");
        for (name, pick) in ["p50", "p95", "p99"].iter().zip(picks) {
            c = c.line(Line::new(*name, series_of(ws, pick)));
        }
        // A metric the workload has no figure of (ttft of plain HTTP) gets no chart.
        if c.lines.iter().any(|l| !l.points.is_empty()) {
            charts.push(c);
        }
    }
    // The server's queue and cache beside the client's ttft.
    let at = charts
        .iter()
        .position(|c| c.id == "latency-ttft")
        .map_or(charts.len(), |i| i + 1);
    charts.splice(at..at, server_charts(r));
    for metric in ["ttft", "e2e"] {
        if let Some(h) = r
            .histograms
            .get(metric)
            .and_then(|s| decode_histogram(s).ok())
        {
            let mut c = Chart::new(
                &format!("dist-{metric}"),
                &format!("{metric} distribution (HDR percentiles)"),
                "percentile",
                "ms",
            )
            .line(Line::new(metric, percentile_curve(&h)));
            c.percentile_x = true;
            charts.push(c);
        }
    }
    if r.summary.output_tokens > 0 || r.summary.input_tokens > 0 {
        charts.push(
            Chart::new("tokens", "Tokens per second", "seconds", "tokens/s")
                .line(Line::new(
                    "output",
                    series_of(ws, |w| Some(w.output_tokens as f64)),
                ))
                .line(Line::new(
                    "input",
                    series_of(ws, |w| Some(w.input_tokens as f64)),
                )),
        );
    }
    let groups = |kind: &str| -> Vec<&super::result::GroupRow> {
        r.groups.iter().filter(|g| g.kind == kind).collect()
    };
    let turns = groups("turn");
    if !turns.is_empty() {
        let pts = |f: fn(&super::result::GroupRow) -> f64| -> Vec<(f64, f64)> {
            turns
                .iter()
                .filter(|g| g.ttft.count > 0)
                .filter_map(|g| g.label.parse::<f64>().ok().map(|t| (t, f(g))))
                .collect()
        };
        charts.push(
            Chart::new("by-turn", "Time to first token by turn", "turn", "ms")
                .line(Line::new("ttft p50", pts(|g| g.ttft.p50)).marked())
                .line(Line::new("ttft p95", pts(|g| g.ttft.p95)).marked()),
        );
    }
    let batches = groups("batch");
    if !batches.is_empty() {
        let pts = |f: fn(&super::result::GroupRow) -> Option<f64>| -> Vec<(f64, f64)> {
            batches
                .iter()
                .filter_map(|g| Some((g.label.parse::<f64>().ok()?, f(g)?)))
                .collect()
        };
        charts.push(
            Chart::new(
                "by-batch",
                "Per-text latency by batch size",
                "batch size (texts per request)",
                "ms per text",
            )
            .line(Line::new("mean e2e / texts", pts(|g| g.per_text_ms)).marked()),
        );
    }
    charts
}

/// Per scrape target: running and waiting requests (with the client's
/// requests in flight), and KV-cache usage, over the run.
fn server_charts(r: &RunResult) -> Vec<Chart> {
    let Some(s) = &r.server else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, t) in s.targets.iter().enumerate() {
        let suffix = if i == 0 {
            String::new()
        } else {
            format!("-{}", i + 1)
        };
        let of = |name: &str| crate::server_metrics::gauge_series(t, name);
        let queue = Chart::new(
            &format!("server-queue{suffix}"),
            &format!("Server: running and waiting requests ({})", t.url),
            "seconds",
            "requests",
        )
        .line(Line::new("running", of("running")))
        .line(Line::new("waiting", of("waiting")))
        .line(Line::new(
            "client: in flight",
            series_of(&r.series, |w| Some(w.in_flight as f64)),
        ));
        let kv = Chart::new(
            &format!("server-kv{suffix}"),
            &format!("Server: KV-cache usage ({})", t.url),
            "seconds",
            "% used",
        )
        .line(Line::new(
            "kv cache",
            of("kv_cache_usage")
                .into_iter()
                .map(|(x, y)| (x, y * 100.0))
                .collect(),
        ));
        // A chart only of the client's line says nothing of the server.
        if queue.lines.iter().any(|l| !l.name.starts_with("client")) {
            out.push(queue);
        }
        if kv.has_data() {
            out.push(kv);
        }
    }
    out
}

fn sweep_charts(s: &SweepResult) -> Vec<Chart> {
    let unit = match s.inputs.levels.first() {
        Some(Level::Rate(_)) => "rate (req/s)",
        _ => "concurrency",
    };
    let names: Vec<&str> = s.inputs.endpoints.iter().map(|(n, _)| n.as_str()).collect();
    let by = |name: &str, f: fn(&super::sweep::Row) -> Option<f64>| -> Vec<(f64, f64)> {
        s.rows
            .iter()
            .filter(|r| r.endpoint == name)
            .filter_map(|r| f(r).map(|v| (r.level.value(), v)))
            .collect()
    };
    let mut latency = Chart::new("sweep-latency", "Latency by level", unit, "ms");
    let mut rps = Chart::new(
        "sweep-rps",
        "ok requests per second by level",
        unit,
        "ok req/s",
    );
    for name in &names {
        latency = latency
            .line(Line::new(format!("{name} e2e p50"), by(name, |r| Some(r.p50))).marked())
            .line(Line::new(format!("{name} e2e p95"), by(name, |r| Some(r.p95))).marked())
            .line(Line::new(format!("{name} ttft p50"), by(name, |r| r.ttft_p50)).marked());
        rps = rps.line(Line::new(*name, by(name, |r| Some(r.ok_rps))).marked());
    }
    let mut charts = vec![latency, rps];
    if !s.overhead.is_empty() {
        let pts = |f: fn(&super::sweep::Overhead) -> f64| -> Vec<(f64, f64)> {
            s.overhead.iter().map(|o| (o.level.value(), f(o))).collect()
        };
        // Overheads can be negative: shift nothing, draw from the lowest.
        charts.push(
            Chart::new(
                "sweep-overhead",
                "Overhead (proxy − direct) by level, with the 95% interval of Δp50",
                unit,
                "ms",
            )
            .line(Line::new("Δp50", pts(|o| o.p50)).marked())
            .line(Line::new("Δp50 CI low", pts(|o| o.p50_ci.0)))
            .line(Line::new("Δp50 CI high", pts(|o| o.p50_ci.1)))
            .line(Line::new("Δmean", pts(|o| o.mean)).marked()),
        );
    }
    charts
}

const CSS: &str = r#"
:root { color-scheme: light; --fg: #1b1f24; --muted: #57606a; --line: #d0d7de; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: #fff; }
main { max-width: 1100px; margin: 0 auto; padding: 16px; }
h1 { font-size: 1.5rem; margin: 0.2em 0; }
h2 { font-size: 1.2rem; border-bottom: 1px solid var(--line); padding-bottom: 4px; margin-top: 1.6em; }
h3 { font-size: 1.05rem; }
.sub { color: var(--muted); margin: 0; }
.scroll { overflow-x: auto; -webkit-overflow-scrolling: touch; }
table { border-collapse: collapse; margin: 8px 0 16px; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
table.kv th { width: 12em; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 16px; }
figure.chart { margin: 0; border: 1px solid var(--line); border-radius: 6px; padding: 8px; break-inside: avoid; page-break-inside: avoid; }
figure.chart figcaption { font-weight: 600; margin-bottom: 4px; }
figure.chart svg { width: 100%; height: auto; display: block; }
footer { color: var(--muted); font-size: 0.85rem; margin-top: 2em; }
@media (max-width: 600px) {
  main { padding: 8px; }
  .charts { grid-template-columns: 1fr; }
  body { font-size: 14px; }
}
@media print {
  main { max-width: none; padding: 0; }
  .charts { display: block; }
  figure.chart { margin-bottom: 12px; }
  .scroll { overflow: visible; }
  a { color: inherit; text-decoration: none; }
}
"#;

/// Markdown (periscope's own report) to HTML. Raw HTML in it is escaped,
/// except the `<sub>` our notes use: servers' error messages end up in the
/// tables and must never become markup.
fn markdown_html(md: &str) -> String {
    use pulldown_cmark::{html, CowStr, Event, Options, Parser, Tag, TagEnd};
    let parser = Parser::new_ext(md, Options::ENABLE_TABLES).flat_map(|ev| match ev {
        Event::Html(s) | Event::InlineHtml(s) => {
            let t = s.trim();
            if t == "<sub>" || t == "</sub>" {
                vec![Event::InlineHtml(s)]
            } else {
                vec![Event::Text(s)]
            }
        }
        Event::Start(Tag::Table(a)) => vec![
            Event::InlineHtml(CowStr::Borrowed("<div class=\"scroll\">")),
            Event::Start(Tag::Table(a)),
        ],
        Event::End(TagEnd::Table) => vec![
            Event::End(TagEnd::Table),
            Event::InlineHtml(CowStr::Borrowed("</div>")),
        ],
        other => vec![other],
    });
    let mut out = String::new();
    html::push_html(&mut out, parser);
    out
}

fn kv_table(rows: &[(&str, String)]) -> String {
    let mut out = String::from("<div class=\"scroll\"><table class=\"kv\">\n");
    for (k, v) in rows.iter().filter(|(_, v)| !v.is_empty()) {
        let _ = writeln!(out, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(v));
    }
    out.push_str("</table></div>\n");
    out
}

fn page(
    title: &str,
    subtitle: &str,
    plan: &str,
    charts: &[Chart],
    tables: &str,
    schema: &str,
) -> String {
    let figures: String = charts.iter().map(render_chart).collect();
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="generator" content="periscope {version}">
<title>{title}</title>
<style>{CSS}</style>
</head>
<body>
<main>
<header>
<h1>{title}</h1>
<p class="sub">{subtitle}</p>
</header>
<section id="plan">
<h2>Plan</h2>
{plan}</section>
<section id="charts">
<h2>Charts</h2>
<div class="charts">
{figures}</div>
</section>
<section id="tables">
<h2>Tables</h2>
{tables}</section>
<footer>Written by periscope {version} from a {schema} document. Latency in ms; histograms are HDR (3 significant digits).</footer>
</main>
</body>
</html>
"#,
        version = env!("CARGO_PKG_VERSION"),
        title = esc(title),
        subtitle = esc(subtitle),
    )
}

/// The HTML report of a run.
pub fn render(r: &RunResult) -> String {
    let p = &r.plan;
    let headers = p
        .headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join("; ");
    let tags = p
        .tags
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ");
    let plan = kv_table(&[
        ("target", format!("{} ({})", p.target, p.target_kind)),
        ("workload", p.workload.to_string()),
        ("model", p.model.clone()),
        (
            "scenario",
            format!("{} — {}", p.scenario, r.scenario.figure),
        ),
        ("load", super::markdown::load_words(p)),
        (
            "requests",
            format!(
                "{}, max_tokens {}, timeout {}s",
                if p.stream {
                    "streaming"
                } else {
                    "not streaming"
                },
                p.max_tokens,
                p.timeout_s
            ),
        ),
        (
            "API key",
            if p.token_present {
                "given (not stored)".into()
            } else {
                "none".into()
            },
        ),
        ("headers", headers),
        (
            "tokenizer",
            r.tokenizer
                .as_ref()
                .map(|t| match t.template_tokens {
                    Some(n) => format!("{} (chat template: {n} tokens)", t.name),
                    None => t.name.clone(),
                })
                .unwrap_or_default(),
        ),
        ("tags", tags),
        ("thresholds", p.thresholds.join(", ")),
        ("SLOs", p.slos.join(", ")),
        ("mock", p.mock_args.clone().unwrap_or_default()),
        (
            "segment",
            p.segment
                .map(|s| format!("{s} of the plan (its share; the load above is the whole plan's)"))
                .unwrap_or_default(),
        ),
        (
            "merged from",
            if r.merged_from.is_empty() {
                String::new()
            } else {
                format!(
                    "{} results: {}",
                    r.merged_from.len(),
                    r.merged_from.join(", ")
                )
            },
        ),
    ]);
    let title = format!("periscope: {} → {}", p.workload, p.target);
    let reconnects = match r.summary.reconnects {
        0 => String::new(),
        n => format!(", {n} reconnects"),
    };
    let subtitle = format!(
        "run {} · started {} · {:.1}s · {} requests, {} ok, {} errors{reconnects}",
        r.run_id, r.started_at, r.duration_s, r.summary.requests, r.summary.ok, r.summary.errors
    );
    page(
        &title,
        &subtitle,
        &plan,
        &run_charts(r),
        &markdown_html(&super::markdown::render(r)),
        &r.schema,
    )
}

/// The HTML report of a sweep.
pub fn render_sweep(s: &SweepResult) -> String {
    let i = &s.inputs;
    let plan = kv_table(&[
        (
            "endpoints",
            i.endpoints
                .iter()
                .map(|(n, u)| format!("{n}: {u}"))
                .collect::<Vec<_>>()
                .join(" · "),
        ),
        (
            "levels",
            i.levels
                .iter()
                .map(Level::label)
                .collect::<Vec<_>>()
                .join(", "),
        ),
        ("requests", format!("{} per endpoint per level", i.requests)),
        ("model", i.model.clone().unwrap_or_default()),
        ("streaming", i.stream.to_string()),
        (
            "API key",
            if i.token_present {
                "given (not stored)".into()
            } else {
                "none".into()
            },
        ),
        ("bootstrap", format!("{} resamples", i.bootstrap)),
    ]);
    let title = format!(
        "periscope sweep: {}",
        i.endpoints
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(" vs ")
    );
    page(
        &title,
        s.saturation.as_deref().unwrap_or(""),
        &plan,
        &sweep_charts(s),
        &markdown_html(&super::sweep::render_tables(s)),
        &s.schema,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::chart::percentile_label;

    #[test]
    fn charts_are_inline_svg_that_scales() {
        let c = Chart::new("t", "A <title>", "x", "y").line(Line::new(
            "l",
            (0..10).map(|i| (i as f64, (i * i) as f64)).collect(),
        ));
        let html = render_chart(&c);
        assert!(
            html.contains("<svg role=\"img\" aria-label=\"A &lt;title&gt;\""),
            "{html}"
        );
        assert!(html.contains("viewBox=\"0 0 640 330\""));
        assert!(
            html.contains("<polyline") || html.contains("<path"),
            "{html}"
        );
        assert!(!html.contains("<svg width="), "{html}");
    }

    #[test]
    fn a_chart_without_data_is_left_out() {
        let c = Chart::new("t", "empty", "x", "y").line(Line::new("l", Vec::new()));
        assert_eq!(render_chart(&c), "");
    }

    #[test]
    fn markup_in_the_tables_is_escaped_but_our_notes_are_kept() {
        let md = "| a |\n|---|\n| <script>x()</script> |\n\n<sub>note</sub>\n";
        let html = markdown_html(md);
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(!html.contains("<script>"));
        assert!(html.contains("<sub>note</sub>"), "{html}");
        assert!(html.contains("<div class=\"scroll\"><table>"), "{html}");
    }

    #[test]
    fn percentile_labels_read_as_percentiles() {
        assert_eq!(percentile_label(&1.0), "0%");
        assert_eq!(percentile_label(&10.0), "90%");
        assert_eq!(percentile_label(&100.0), "99%");
        assert_eq!(percentile_label(&1000.0), "99.9%");
        assert_eq!(percentile_label(&10000.0), "99.99%");
    }
}
