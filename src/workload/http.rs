//! Plain HTTP endpoints with weights: `--endpoint GET:/health:3`, and a
//! body for those that take one (`POST:/api/v1/webhooks @event.json`, or
//! the JSON written after the spec).

use std::sync::Arc;

use bytes::Bytes;
use reqwest::Method;
use serde::Serialize;

use super::{Session, Turn, Workload, WorkloadSpec};
use crate::client::{Expect, Prepared};
use crate::record::Group;

/// One endpoint and its share of the requests.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Endpoint {
    pub method: String,
    /// From the origin's root (`/health`), or under the API base (`models`).
    pub path: String,
    pub weight: u32,
    /// What every request to it carries (a webhook's event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

/// Parse `METHOD:PATH[:WEIGHT][ BODY]`, e.g. `GET:/health:3`, where BODY
/// (after a space) is `@FILE` or the text itself (`{"event": "push"}`).
pub fn parse_endpoint(s: &str) -> Result<Endpoint, String> {
    let s = s.trim();
    let (s, body) = match s.split_once(char::is_whitespace) {
        Some((spec, body)) => {
            let body = body.trim();
            let text = match body.strip_prefix('@') {
                Some(path) => std::fs::read_to_string(path.trim()).map_err(|e| {
                    format!("'{spec}': cannot read the body file {}: {e}", path.trim())
                })?,
                None => body.to_string(),
            };
            (spec, Some(text))
        }
        None => (s, None),
    };
    let bad = || format!("'{s}' is not METHOD:PATH[:WEIGHT][ @BODY_FILE], e.g. GET:/health:3");
    let (method, rest) = s.split_once(':').ok_or_else(bad)?;
    let method = method.trim().to_ascii_uppercase();
    if Method::from_bytes(method.as_bytes()).is_err() || method.is_empty() {
        return Err(bad());
    }
    let (path, weight) = match rest.rsplit_once(':') {
        Some((p, w)) if w.chars().all(|c| c.is_ascii_digit()) && !w.is_empty() => {
            let w: u32 = w.parse().map_err(|_| bad())?;
            if w == 0 {
                return Err(format!("'{s}': a weight must be at least 1"));
            }
            (p, w)
        }
        _ => (rest, 1),
    };
    if path.is_empty() || path.contains(char::is_whitespace) {
        return Err(bad());
    }
    Ok(Endpoint {
        method,
        path: path.to_string(),
        weight,
        body,
    })
}

pub struct Http(Arc<Inner>);

/// One set of endpoints: requests ready to send, and the cumulative weights
/// to pick them.
struct Set {
    requests: Vec<Prepared>,
    cumulative: Vec<u32>,
}

impl Set {
    fn new(endpoints: &[Endpoint]) -> Self {
        let mut total = 0;
        let mut cumulative = Vec::new();
        let requests = endpoints
            .iter()
            .map(|e| {
                total += e.weight;
                cumulative.push(total);
                let body = e.body.clone().map(Bytes::from).unwrap_or_default();
                let mut p = Prepared::post("", body, Expect::Status);
                p.method = Method::from_bytes(e.method.as_bytes()).unwrap_or(Method::GET);
                p.path = e.path.clone().into();
                p.group = Some(Group::Endpoint(format!("{} {}", e.method, e.path).into()));
                p
            })
            .collect();
        Set {
            requests,
            cumulative,
        }
    }

    fn pick(&self, rng: &mut fastrand::Rng) -> Prepared {
        let total = *self.cumulative.last().unwrap_or(&1);
        let x = rng.u32(0..total);
        let i = self.cumulative.partition_point(|c| *c <= x);
        self.requests[i.min(self.requests.len() - 1)].clone()
    }
}

struct Inner {
    /// The run's endpoints first, then each stage's own.
    sets: Vec<Set>,
    /// The set of each stage of the load shape (0 where it has none); past
    /// the last stage, the last stage's.
    by_stage: Vec<usize>,
}

impl Inner {
    fn set(&self, stage: usize) -> &Set {
        let i = self.by_stage.get(stage).or(self.by_stage.last());
        &self.sets[i.copied().unwrap_or(0)]
    }
}

impl Http {
    pub fn new(spec: &WorkloadSpec) -> Self {
        let endpoints = if spec.endpoints.is_empty() {
            vec![Endpoint {
                method: "GET".into(),
                path: "/health".into(),
                weight: 1,
                body: None,
            }]
        } else {
            spec.endpoints.clone()
        };
        let mut sets = vec![Set::new(&endpoints)];
        let by_stage = spec
            .stage_endpoints
            .iter()
            .map(|e| {
                if e.is_empty() {
                    0
                } else {
                    sets.push(Set::new(e));
                    sets.len() - 1
                }
            })
            .collect();
        Http(Arc::new(Inner { sets, by_stage }))
    }
}

struct HttpSession {
    w: Arc<Inner>,
    rng: fastrand::Rng,
}

impl Session for HttpSession {
    fn next(&mut self, turn: Turn) -> Option<Prepared> {
        Some(self.w.set(turn.stage).pick(&mut self.rng))
    }
}

impl Workload for Http {
    fn name(&self) -> &'static str {
        "http"
    }

    fn session(&self, vu: u64) -> Box<dyn Session> {
        Box::new(HttpSession {
            w: self.0.clone(),
            rng: super::session_rng(vu),
        })
    }

    fn preflight(&self) -> Prepared {
        self.0.set(0).requests[0].clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse() {
        assert_eq!(
            parse_endpoint("GET:/health:3").unwrap(),
            Endpoint {
                method: "GET".into(),
                path: "/health".into(),
                weight: 3,
                body: None,
            }
        );
        let e = parse_endpoint(r#"POST:/api/v1/webhooks/github:2 {"action": "opened"}"#).unwrap();
        assert_eq!(
            (e.method.as_str(), e.path.as_str(), e.weight),
            ("POST", "/api/v1/webhooks/github", 2)
        );
        assert_eq!(e.body.as_deref(), Some(r#"{"action": "opened"}"#));
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("event.json");
        std::fs::write(&f, "{\"alert\": \"disk\"}").unwrap();
        let e = parse_endpoint(&format!("POST:/hook @{}", f.display())).unwrap();
        assert_eq!(e.body.as_deref(), Some("{\"alert\": \"disk\"}"));
        assert!(parse_endpoint("POST:/hook @/no/such/file")
            .unwrap_err()
            .contains("cannot read the body file"));
        assert_eq!(parse_endpoint("get:/v1/models").unwrap().weight, 1);
        assert!(parse_endpoint("/health").is_err());
        assert!(parse_endpoint("GET:/x:0").is_err());
    }

    #[test]
    fn weights_split_the_requests() {
        let mut spec = super::super::chat::tests::spec("http");
        spec.endpoints = vec![
            parse_endpoint("GET:/health:3").unwrap(),
            parse_endpoint("GET:/v1/models:1").unwrap(),
        ];
        let w = Http::new(&spec);
        let mut s = w.session(1);
        let turn = Turn {
            vu: 0,
            iteration: 0,
            stage: 0,
        };
        let health = (0..4000)
            .filter(|_| s.next(turn).unwrap().path == "/health")
            .count();
        assert!((2850..3150).contains(&health), "{health}");
    }

    #[test]
    fn a_stage_with_its_own_endpoints_sends_only_those() {
        let mut spec = super::super::chat::tests::spec("http");
        spec.endpoints = vec![parse_endpoint("GET:/health").unwrap()];
        spec.stage_endpoints = vec![
            vec![],
            vec![
                parse_endpoint("GET:/").unwrap(),
                parse_endpoint("GET:/api/v1/llm/providers").unwrap(),
            ],
        ];
        let w = Http::new(&spec);
        let mut s = w.session(7);
        let paths = |s: &mut Box<dyn Session>, stage| {
            let turn = Turn {
                vu: 0,
                iteration: 0,
                stage,
            };
            let mut seen: Vec<String> = (0..400)
                .map(|_| s.next(turn).unwrap().path.to_string())
                .collect();
            seen.sort();
            seen.dedup();
            seen
        };
        assert_eq!(paths(&mut s, 0), ["/health"]);
        assert_eq!(paths(&mut s, 1), ["/", "/api/v1/llm/providers"]);
        // Past the last stage (the grace), the last stage's own.
        assert_eq!(paths(&mut s, 5), ["/", "/api/v1/llm/providers"]);
        assert_eq!(w.preflight().path.as_ref(), "/health");
    }
}
