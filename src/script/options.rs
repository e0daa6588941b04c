//! A script's `export const options` as the keys of a scenario file, so
//! that they apply under the flags exactly as a scenario file's do: `vus`,
//! `duration`, `iterations`, `stages` and `thresholds` (k6's syntax,
//! `{ my_trend: ['p(95)<500'], checks: ['rate>0.99'] }`, becomes
//! periscope's `my_trend.p(95)<500`).

use serde_json::{json, Map, Value};

/// The scenario file (JSON, which YAML reads) that `options` amounts to.
pub fn to_scenario(path: &str, options: &Value) -> Result<String, String> {
    let Some(o) = options.as_object() else {
        return Ok("{}".into());
    };
    let mut out = Map::new();
    if o.contains_key("scenarios") {
        return Err(format!(
            "{path}: options.scenarios (k6 executors) is not supported: use vus, duration, iterations or stages, or periscope's flags"
        ));
    }
    for key in ["vus", "duration", "iterations"] {
        if let Some(v) = o.get(key) {
            out.insert(key.into(), v.clone());
        }
    }
    if let Some(v) = o.get("maxVUs") {
        out.insert("max_vus".into(), v.clone());
    }
    if let Some(stages) = o.get("stages") {
        let Some(list) = stages.as_array() else {
            return Err(format!(
                "{path}: options.stages: a list of {{duration, target}}"
            ));
        };
        let mapped: Vec<Value> = list
            .iter()
            .map(|s| json!({"duration": s.get("duration"), "target": s.get("target")}))
            .collect();
        out.insert("stages".into(), Value::Array(mapped));
    }
    if let Some(t) = o.get("thresholds") {
        let (exprs, abort) = thresholds(path, t)?;
        out.insert("thresholds".into(), json!(exprs));
        if abort {
            out.insert("abort_on_fail".into(), json!(true));
        }
    }
    Ok(Value::Object(out).to_string())
}

/// k6's thresholds as periscope's expressions, and whether any aborts
/// the run on failure (`{threshold: 'p(95)<500', abortOnFail: true}`).
fn thresholds(path: &str, t: &Value) -> Result<(Vec<String>, bool), String> {
    let Some(map) = t.as_object() else {
        return Err(format!(
            "{path}: options.thresholds: an object of metric: ['p(95)<500', …]"
        ));
    };
    let mut exprs = Vec::new();
    let mut abort = false;
    for (metric, list) in map {
        let items: Vec<&Value> = match list {
            Value::Array(a) => a.iter().collect(),
            other => vec![other],
        };
        for item in items {
            let expr = match item {
                Value::String(s) => s.as_str(),
                Value::Object(o) => {
                    abort |= o.get("abortOnFail") == Some(&json!(true));
                    o.get("threshold").and_then(Value::as_str).ok_or_else(|| {
                        format!("{path}: options.thresholds.{metric}: {{threshold: 'p(95)<500'}}")
                    })?
                }
                _ => {
                    return Err(format!(
                        "{path}: options.thresholds.{metric}: a string such as 'p(95)<500'"
                    ))
                }
            };
            let expr: String = expr.chars().filter(|c| !c.is_whitespace()).collect();
            exprs.push(format!("{}.{expr}", metric.replace(' ', "")));
        }
    }
    Ok((exprs, abort))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn k6_options_become_a_scenario_files_keys() {
        let o = json!({
            "vus": 4, "duration": "30s",
            "stages": [{"duration": "1m", "target": 5}],
            "thresholds": {
                "http_req_duration": ["p(95)<500"],
                "checks": [{"threshold": "rate > 0.99", "abortOnFail": true}],
                "my_trend{kind:a}": "avg<100",
            },
            "insecureSkipTLSVerify": true,
        });
        let s: Value = serde_json::from_str(&to_scenario("t.js", &o).unwrap()).unwrap();
        assert_eq!(s["vus"], 4);
        assert_eq!(s["stages"][0]["target"], 5);
        assert_eq!(
            s["thresholds"],
            json!([
                "checks.rate>0.99",
                "http_req_duration.p(95)<500",
                "my_trend{kind:a}.avg<100"
            ])
        );
        assert_eq!(s["abort_on_fail"], true);
        assert!(s.get("insecureSkipTLSVerify").is_none());
        let e = to_scenario("t.js", &json!({"scenarios": {}})).unwrap_err();
        assert!(e.contains("not supported"), "{e}");
        for t in [
            "checks.rate>0.99",
            "http_req_duration.p(95)<500",
            "my_trend{kind:a}.avg<100",
        ] {
            crate::slo::Threshold::parse(t).unwrap();
        }
    }
}
