//! One scrape's text: the Prometheus exposition format read by
//! `prom_text_format_parser`, flattened into the series as the server named
//! them (`vllm:time_to_first_token_seconds_bucket{le="0.1"}`,
//! `llamacpp:prompt_tokens_total`), whatever `# TYPE` lines it sent.

use std::collections::HashMap;

use prom_text_format_parser::{parse_scrape, ScrapeParseError, Type, ValueType};

/// One series' value in a scrape: its labels (sorted) and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Point {
    /// The value of a label, if the series has it.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// `{a="x",b="y"}` (empty without labels), as the CSV writes it.
    pub fn labels_text(&self) -> String {
        labels_text(self.labels.iter().map(|(k, v)| (k, v)))
    }
}

/// `{a="x",b="y"}` of label pairs (empty without any).
pub fn labels_text<'a>(labels: impl Iterator<Item = (&'a String, &'a String)>) -> String {
    let inner: Vec<String> = labels
        .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    if inner.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", inner.join(","))
    }
}

/// A parsed scrape: every sample by its exposed name, in the order sent.
#[derive(Debug, Default)]
pub struct Exposition {
    pub series: HashMap<String, Vec<Point>>,
    /// Names in the order they first appeared (for the CSV).
    pub order: Vec<String>,
    /// Metric families the parser could not read (the rest is kept).
    pub bad_families: usize,
}

impl Exposition {
    /// Read a `/metrics` body; `Err` when nothing in it is a metric.
    pub fn parse(text: &str) -> Result<Exposition, String> {
        // The parser wants every line ended.
        let owned;
        let text = if text.ends_with('\n') || text.is_empty() {
            text
        } else {
            owned = format!("{text}\n");
            &owned
        };
        let (metrics, error) = parse_scrape(text);
        let mut out = Exposition::default();
        let first_error = match &error {
            Some(ScrapeParseError::Parse(e)) => {
                e.lines().next().unwrap_or("unreadable").to_string()
            }
            Some(ScrapeParseError::Collect(errs)) => {
                out.bad_families = errs.len();
                errs.first().map_or(String::new(), |e| e.error.clone())
            }
            None => String::new(),
        };
        for m in metrics {
            for s in m.samples {
                let suffix = match (m.kind, s.value.value_type) {
                    (Type::Histogram, ValueType::Sample) => "_bucket",
                    (Type::Histogram | Type::Summary, ValueType::Sum) => "_sum",
                    (Type::Histogram | Type::Summary, ValueType::Count) => "_count",
                    _ => "",
                };
                let Ok(value) = s.value.value.trim().parse::<f64>() else {
                    continue;
                };
                let mut labels: Vec<(String, String)> = s
                    .labels
                    .iter()
                    .map(|l| (l.key.clone(), l.value.clone()))
                    .collect();
                labels.sort();
                let name = format!("{}{suffix}", m.name);
                let points = out.series.entry(name.clone()).or_default();
                if points.is_empty() {
                    out.order.push(name);
                }
                points.push(Point { labels, value });
            }
        }
        if out.series.is_empty() {
            return Err(match error {
                Some(_) => format!("not the Prometheus text format ({first_error})"),
                None if text.trim().is_empty() => "an empty body".to_string(),
                None => "no metric in the body".to_string(),
            });
        }
        Ok(out)
    }

    /// The samples of one exposed name.
    pub fn get(&self, name: &str) -> Option<&[Point]> {
        self.series.get(name).map(Vec::as_slice)
    }

    /// Whether any series' name starts with `prefix`.
    pub fn has_prefix(&self, prefix: &str) -> bool {
        self.order.iter().any(|n| n.starts_with(prefix))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_colons_histograms_and_untyped_lines_are_read() {
        let text = "# HELP vllm:num_requests_running Running.\n\
            # TYPE vllm:num_requests_running gauge\n\
            vllm:num_requests_running{model_name=\"m\",engine=\"0\"} 3\n\
            # TYPE vllm:ttft_seconds histogram\n\
            vllm:ttft_seconds_bucket{le=\"0.1\",model_name=\"m\"} 2\n\
            vllm:ttft_seconds_bucket{le=\"+Inf\",model_name=\"m\"} 5\n\
            vllm:ttft_seconds_sum{model_name=\"m\"} 1.25\n\
            vllm:ttft_seconds_count{model_name=\"m\"} 5\n\
            llamacpp:prompt_tokens_total 25\n\
            process_cpu_seconds_total 1.5e+01 1700000000000";
        let e = Exposition::parse(text).unwrap();
        let run = &e.get("vllm:num_requests_running").unwrap()[0];
        assert_eq!(run.value, 3.0);
        assert_eq!(run.label("engine"), Some("0"));
        let b = e.get("vllm:ttft_seconds_bucket").unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!(b[1].label("le"), Some("+Inf"));
        assert_eq!(e.get("vllm:ttft_seconds_sum").unwrap()[0].value, 1.25);
        assert_eq!(e.get("vllm:ttft_seconds_count").unwrap()[0].value, 5.0);
        assert_eq!(
            e.get("llamacpp:prompt_tokens_total").unwrap()[0].value,
            25.0
        );
        assert_eq!(e.get("process_cpu_seconds_total").unwrap()[0].value, 15.0);
        assert!(e.has_prefix("llamacpp:"));
        assert_eq!(run.labels_text(), "{engine=\"0\",model_name=\"m\"}");
    }

    #[test]
    fn garbage_and_empty_bodies_are_errors_not_panics() {
        for body in [
            "",
            "<html><body>Not Found</body></html>",
            "{\"error\":\"nope\"}",
            "\u{0}\u{1}binary",
        ] {
            assert!(Exposition::parse(body).is_err(), "{body:?}");
        }
    }
}
