//! `--prometheus URL --promql EXPR`: range queries over the run's exact
//! window, sent at its end to a Prometheus-compatible query API
//! (Prometheus, Thanos, VictoriaMetrics, Mimir: `GET /api/v1/query_range`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A named PromQL expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub name: String,
    pub expr: String,
}

impl Query {
    /// Queries from `--promql` values: an expression, or `@FILE` of lines
    /// `name: EXPR` (`#` comments and blank lines skipped).
    pub fn parse_all(values: &[String]) -> Result<Vec<Query>, String> {
        let mut out = Vec::new();
        for v in values {
            if let Some(path) = v.strip_prefix('@') {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("--promql @{path}: cannot read it: {e}"))?;
                for (i, line) in text.lines().enumerate() {
                    let line = line.trim();
                    if line.is_empty() || line.starts_with('#') {
                        continue;
                    }
                    let (name, expr) = line
                        .split_once(": ")
                        .filter(|(n, e)| is_name(n) && !e.trim().is_empty())
                        .ok_or_else(|| {
                            format!(
                                "--promql @{path}:{}: expected `name: EXPR` (a name of letters, digits and _)",
                                i + 1
                            )
                        })?;
                    out.push(Query {
                        name: name.to_string(),
                        expr: expr.trim().to_string(),
                    });
                }
            } else if v.trim().is_empty() {
                return Err("--promql: an empty expression".into());
            } else if let Some((name, expr)) = v
                .split_once(": ")
                .filter(|(n, e)| is_name(n.trim()) && !e.trim().is_empty())
            {
                // `NAME: EXPR`, as a file's lines: the name thresholds use.
                out.push(Query {
                    name: name.trim().to_string(),
                    expr: expr.trim().to_string(),
                });
            } else {
                out.push(Query {
                    name: format!("q{}", out.len() + 1),
                    expr: v.trim().to_string(),
                });
            }
        }
        Ok(out)
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// One series of a query's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuerySeries {
    pub labels: BTreeMap<String, String>,
    /// `[unix seconds, value]`.
    pub samples: Vec<[f64; 2]>,
}

/// A query's answer over the run's window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryResult {
    pub name: String,
    pub expr: String,
    /// Unix seconds of the window asked for, and the step.
    pub start: f64,
    pub end: f64,
    pub step_s: f64,
    pub series: Vec<QuerySeries>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl QueryResult {
    /// Every sample of every series.
    pub fn values(&self) -> impl Iterator<Item = f64> + '_ {
        self.series
            .iter()
            .flat_map(|s| s.samples.iter().map(|p| p[1]))
    }
}

#[derive(Deserialize)]
struct Answer {
    status: String,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    data: Option<Data>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: Vec<Matrix>,
}

#[derive(Deserialize)]
struct Matrix {
    metric: BTreeMap<String, String>,
    #[serde(default)]
    values: Vec<(f64, String)>,
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Ask `base`'s query API for `q` over `[start, end]` (Unix seconds).
pub async fn range(
    client: &reqwest::Client,
    base: &str,
    q: &Query,
    (start, end): (f64, f64),
    step_s: f64,
) -> QueryResult {
    let mut out = QueryResult {
        name: q.name.clone(),
        expr: q.expr.clone(),
        start,
        end,
        step_s,
        series: Vec::new(),
        error: None,
    };
    let url = format!(
        "{}/api/v1/query_range?query={}&start={start:.3}&end={end:.3}&step={step_s}",
        base.trim_end_matches('/'),
        enc(&q.expr)
    );
    let answer = async {
        let resp = client
            .get(&url)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| format!("cannot reach it: {}", crate::client::error_chain(&e)))?;
        let status = resp.status();
        let body = resp.text().await.map_err(|e| e.to_string())?;
        let a: Answer = serde_json::from_str(&body).map_err(|_| {
            format!(
                "HTTP {status}, not a Prometheus API answer: {}",
                body.chars().take(120).collect::<String>()
            )
        })?;
        if a.status != "success" {
            return Err(a.error.unwrap_or_else(|| format!("status {}", a.status)));
        }
        let data = a.data.ok_or("an answer without data")?;
        if data.result_type != "matrix" {
            return Err(format!(
                "a {} where a matrix was expected",
                data.result_type
            ));
        }
        Ok(data.result)
    }
    .await;
    match answer {
        Ok(result) => {
            out.series = result
                .into_iter()
                .map(|m| QuerySeries {
                    labels: m.metric,
                    samples: m
                        .values
                        .into_iter()
                        .filter_map(|(t, v)| Some([t, v.parse::<f64>().ok()?]))
                        .collect(),
                })
                .collect();
        }
        Err(e) => out.error = Some(e),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_expressions_or_a_file_of_named_ones() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("q.txt");
        std::fs::write(
            &p,
            "# the queue\nwaiting: sum(vllm:num_requests_waiting)\n\nrate: rate(x_total[1m:10s])\n",
        )
        .unwrap();
        let got = Query::parse_all(&["up".to_string(), format!("@{}", p.display())]).unwrap();
        let names: Vec<&str> = got.iter().map(|q| q.name.as_str()).collect();
        assert_eq!(names, ["q1", "waiting", "rate"]);
        assert_eq!(got[1].expr, "sum(vllm:num_requests_waiting)");
        assert_eq!(got[2].expr, "rate(x_total[1m:10s])");
        std::fs::write(&p, "no name here\n").unwrap();
        let e = Query::parse_all(&[format!("@{}", p.display())]).unwrap_err();
        assert!(e.contains(":1: expected `name: EXPR`"), "{e}");
        assert!(Query::parse_all(&["@/nonexistent/q".into()]).is_err());
        // A name on the command line too; a recording rule's colons are not one.
        let got = Query::parse_all(&[
            "db_connections: sum(pg_stat_activity_count)".to_string(),
            "job:up:sum".to_string(),
        ])
        .unwrap();
        assert_eq!(got[0].name, "db_connections");
        assert_eq!(got[0].expr, "sum(pg_stat_activity_count)");
        assert_eq!(
            (got[1].name.as_str(), got[1].expr.as_str()),
            ("q2", "job:up:sum")
        );
    }
}
