//! Plain HTTP endpoints with weights: `--endpoint GET:/health:3`.

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
}

/// Parse `METHOD:PATH[:WEIGHT]`, e.g. `GET:/health:3`.
pub fn parse_endpoint(s: &str) -> Result<Endpoint, String> {
    let bad = || format!("'{s}' is not METHOD:PATH[:WEIGHT], e.g. GET:/health:3");
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
    })
}

pub struct Http(Arc<Inner>);

struct Inner {
    /// Requests ready to send, and the cumulative weights to pick them.
    requests: Vec<Prepared>,
    cumulative: Vec<u32>,
}

impl Http {
    pub fn new(spec: &WorkloadSpec) -> Self {
        let endpoints = if spec.endpoints.is_empty() {
            vec![Endpoint {
                method: "GET".into(),
                path: "/health".into(),
                weight: 1,
            }]
        } else {
            spec.endpoints.clone()
        };
        let mut total = 0;
        let mut cumulative = Vec::new();
        let requests = endpoints
            .iter()
            .map(|e| {
                total += e.weight;
                cumulative.push(total);
                let mut p = Prepared::post("", Bytes::new(), Expect::Status);
                p.method = Method::from_bytes(e.method.as_bytes()).unwrap_or(Method::GET);
                p.path = e.path.clone().into();
                p.group = Some(Group::Endpoint(format!("{} {}", e.method, e.path).into()));
                p
            })
            .collect();
        Http(Arc::new(Inner {
            requests,
            cumulative,
        }))
    }
}

struct HttpSession {
    w: Arc<Inner>,
    rng: fastrand::Rng,
}

impl Session for HttpSession {
    fn next(&mut self, _turn: Turn) -> Option<Prepared> {
        let total = *self.w.cumulative.last().unwrap_or(&1);
        let x = self.rng.u32(0..total);
        let i = self.w.cumulative.partition_point(|c| *c <= x);
        Some(self.w.requests[i.min(self.w.requests.len() - 1)].clone())
    }
}

impl Workload for Http {
    fn name(&self) -> &'static str {
        "http"
    }

    fn session(&self, vu: u64) -> Box<dyn Session> {
        Box::new(HttpSession {
            w: self.0.clone(),
            rng: fastrand::Rng::with_seed(vu ^ fastrand::u64(..)),
        })
    }

    fn preflight(&self) -> Prepared {
        self.0.requests[0].clone()
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
                weight: 3
            }
        );
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
}
