//! Sessions and adapters on the wire: a wrapper around any LLM workload that
//!
//! - names each multi-turn session in a header (`--session-header`, by
//!   default `X-Session-ID`), so that a router keeps its turns on one
//!   replica; a replayed trace's sessions carry the trace's own ids;
//! - spreads the requests over LoRA adapters (`--lora a,b,c`): the body's
//!   `model` becomes the adapter's name, chosen once per session (every turn
//!   of a session asks the same adapter) by `--lora-assignment`.
//!
//! A request that is not a turn of a session (a single-turn workload) is a
//! session of its own: no header, an adapter of its own.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use reqwest::header::{HeaderName, HeaderValue};
use serde::Serialize;

use super::{Session, Turn, Workload};
use crate::client::Prepared;
use crate::record::{Group, RequestRecord};

/// How sessions are spread over adapters.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Assignment {
    /// Uniformly at random.
    Random,
    /// One after another, session by session.
    RoundRobin,
    /// At random, adapter `i` with weight `w[i]` (any positive scale).
    Weights(Vec<f64>),
}

impl Assignment {
    /// `random`, `round-robin` or `weights=3,1,1` (one weight per adapter).
    pub fn parse(s: &str, adapters: usize) -> Result<Self, String> {
        let s = s.trim();
        match s {
            "random" => return Ok(Assignment::Random),
            "round-robin" | "roundrobin" => return Ok(Assignment::RoundRobin),
            _ => {}
        }
        let Some(list) = s.strip_prefix("weights=") else {
            return Err(format!(
                "--lora-assignment '{s}': expected random, round-robin or weights=W1,W2,… (one per adapter)"
            ));
        };
        let w: Vec<f64> = list
            .split(',')
            .map(|x| x.trim().parse::<f64>())
            .collect::<Result<_, _>>()
            .map_err(|_| {
                format!("--lora-assignment '{s}': each weight is a number, e.g. weights=3,1,1")
            })?;
        if w.len() != adapters {
            return Err(format!(
                "--lora-assignment '{s}' gives {} weights for {adapters} adapters in --lora: give one each",
                w.len()
            ));
        }
        if w.iter().any(|x| !(x.is_finite() && *x >= 0.0)) || w.iter().sum::<f64>() <= 0.0 {
            return Err(format!(
                "--lora-assignment '{s}': weights are 0 or more, and not all 0"
            ));
        }
        Ok(Assignment::Weights(w))
    }
}

/// The adapters and how they are chosen.
#[derive(Debug, Clone, Serialize)]
pub struct LoraSpec {
    pub adapters: Vec<String>,
    pub assignment: Assignment,
}

impl LoraSpec {
    /// The adapter at a point `u` in [0, 1) of the spread (random and weights).
    fn at(&self, u: f64) -> usize {
        let n = self.adapters.len();
        match &self.assignment {
            Assignment::Weights(w) => {
                let total: f64 = w.iter().sum();
                let mut acc = 0.0;
                for (i, x) in w.iter().enumerate() {
                    acc += x / total;
                    if u < acc {
                        return i;
                    }
                }
                w.iter().rposition(|x| *x > 0.0).unwrap_or(0)
            }
            _ => ((u * n as f64) as usize).min(n - 1),
        }
    }
}

/// The session header and the adapters of a run.
pub struct Affinity {
    inner: Arc<dyn Workload>,
    header: Option<HeaderName>,
    lora: Option<LoraSpec>,
    /// `"model":"<the spec's model>"`, as the workloads' bodies have it.
    model_field: Vec<u8>,
    /// Each adapter's `"model":"<name>"`, and its name for the records.
    adapter_fields: Vec<Vec<u8>>,
    adapter_names: Vec<Arc<str>>,
    /// Minted session ids start with it: unique to the run.
    tag: String,
    /// The next round-robin turn.
    next: AtomicU64,
    /// Round-robin over a replayed trace: each session's adapter.
    replayed: Mutex<HashMap<u64, usize>>,
}

fn model_field(name: &str) -> Vec<u8> {
    let mut v = b"\"model\":".to_vec();
    v.extend_from_slice(serde_json::Value::from(name).to_string().as_bytes());
    v
}

impl Affinity {
    pub fn new(
        inner: Arc<dyn Workload>,
        model: &str,
        header: Option<HeaderName>,
        lora: Option<LoraSpec>,
    ) -> Self {
        let adapter_fields = lora
            .iter()
            .flat_map(|l| l.adapters.iter().map(|a| model_field(a)))
            .collect();
        let adapter_names = lora
            .iter()
            .flat_map(|l| l.adapters.iter().map(|a| Arc::from(a.as_str())))
            .collect();
        Affinity {
            adapter_names,
            inner,
            header,
            lora,
            model_field: model_field(model),
            adapter_fields,
            tag: format!("{:08x}", fastrand::u32(..)),
            next: AtomicU64::new(0),
            replayed: Mutex::new(HashMap::new()),
        }
    }

    /// A new session's adapter.
    fn pick(&self, rng: &mut fastrand::Rng) -> Option<usize> {
        let l = self.lora.as_ref()?;
        Some(match l.assignment {
            Assignment::RoundRobin => {
                (self.next.fetch_add(1, Ordering::Relaxed) % l.adapters.len() as u64) as usize
            }
            _ => l.at(rng.f64()),
        })
    }

    /// A replayed session's adapter: the same for every turn of it.
    fn pick_for(&self, session: &str) -> Option<usize> {
        let l = self.lora.as_ref()?;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        session.hash(&mut h);
        let key = h.finish();
        Some(match l.assignment {
            Assignment::RoundRobin => {
                let mut seen = self.replayed.lock().unwrap_or_else(|e| e.into_inner());
                let n = seen.len();
                *seen.entry(key).or_insert(n % l.adapters.len())
            }
            // The hash's top 53 bits as a point in [0, 1).
            _ => l.at((key >> 11) as f64 / (1u64 << 53) as f64),
        })
    }

    /// Put a session's header and adapter on a request.
    fn apply(&self, p: &mut Prepared, id: Option<&HeaderValue>, adapter: Option<usize>) {
        if let (Some(name), Some(id)) = (&self.header, id) {
            p.session = Some((name.clone(), id.clone()));
        }
        if let Some(i) = adapter {
            p.body = swap_model(&p.body, &self.model_field, &self.adapter_fields[i]);
            p.adapter = Some(self.adapter_names[i].clone());
        }
    }
}

/// The body with its first `from` field replaced by `to`.
fn swap_model(body: &Bytes, from: &[u8], to: &[u8]) -> Bytes {
    match memchr::memmem::find(body, from) {
        Some(at) => {
            let mut v = Vec::with_capacity(body.len() + to.len());
            v.extend_from_slice(&body[..at]);
            v.extend_from_slice(to);
            v.extend_from_slice(&body[at + from.len()..]);
            Bytes::from(v)
        }
        None => body.clone(),
    }
}

/// Whether a request is a turn of a multi-turn session, and which.
fn turn_of(p: &Prepared) -> Option<u32> {
    match p.group {
        Some(Group::Turn(n)) => Some(n),
        _ => None,
    }
}

struct AffinitySession {
    inner: Box<dyn Session>,
    owner: Arc<Affinity>,
    vu: u64,
    sessions: u64,
    /// The session under way: its id and adapter.
    current: Option<(HeaderValue, Option<usize>)>,
    rng: fastrand::Rng,
}

impl Session for AffinitySession {
    fn next(&mut self, turn: Turn) -> Option<Prepared> {
        let mut p = self.inner.next(turn)?;
        let owner = Arc::clone(&self.owner);
        match turn_of(&p) {
            Some(n) => {
                if n <= 1 || self.current.is_none() {
                    self.sessions += 1;
                    let id = format!("{}-{}-{}", owner.tag, self.vu, self.sessions);
                    let id = HeaderValue::from_str(&id).expect("hex and digits");
                    self.current = Some((id, owner.pick(&mut self.rng)));
                }
                let (id, adapter) = self.current.as_ref().expect("set above");
                owner.apply(&mut p, Some(id), *adapter);
            }
            None => {
                let adapter = owner.pick(&mut self.rng);
                owner.apply(&mut p, None, adapter);
            }
        }
        Some(p)
    }

    fn observe(&mut self, rec: &RequestRecord) {
        self.inner.observe(rec);
    }
}

/// The wrapper, shared: sessions keep a handle to it.
pub struct Shared(pub Arc<Affinity>);

impl Workload for Shared {
    fn name(&self) -> &'static str {
        self.0.inner.name()
    }

    fn answered(&self, rec: &RequestRecord) {
        self.0.inner.answered(rec);
    }

    fn for_record(
        &self,
        rec: &crate::replay::Record,
        turn: Option<u32>,
        rng: &mut fastrand::Rng,
    ) -> Option<Prepared> {
        let mut p = self.0.inner.for_record(rec, turn, rng)?;
        match &rec.session_id {
            Some(s) => {
                // A trace's id as it is when a header can carry it.
                let id = HeaderValue::from_str(s).ok();
                self.0.apply(&mut p, id.as_ref(), self.0.pick_for(s));
            }
            None => {
                let adapter = self.0.pick(rng);
                self.0.apply(&mut p, None, adapter);
            }
        }
        Some(p)
    }

    fn session(&self, vu: u64) -> Box<dyn Session> {
        Box::new(AffinitySession {
            inner: self.0.inner.session(vu),
            owner: Arc::clone(&self.0),
            vu,
            sessions: 0,
            current: None,
            rng: super::session_rng(vu),
        })
    }

    fn preflight(&self) -> Prepared {
        self.0.inner.preflight()
    }

    fn paced_by_weight(&self) -> bool {
        self.0.inner.paced_by_weight()
    }

    fn discovery(&self) -> Vec<Prepared> {
        self.0.inner.discovery()
    }

    fn discovered(&self, body: &[u8]) -> usize {
        self.0.inner.discovered(body)
    }

    fn missing(&self) -> Option<String> {
        self.0.inner.missing()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lora(a: Assignment) -> LoraSpec {
        LoraSpec {
            adapters: vec!["a".into(), "b".into(), "c".into()],
            assignment: a,
        }
    }

    #[test]
    fn assignments_parse_and_say_what_is_wrong() {
        assert_eq!(Assignment::parse("random", 3), Ok(Assignment::Random));
        assert_eq!(
            Assignment::parse("round-robin", 3),
            Ok(Assignment::RoundRobin)
        );
        assert_eq!(
            Assignment::parse("weights=3,1,0", 3),
            Ok(Assignment::Weights(vec![3.0, 1.0, 0.0]))
        );
        let e = Assignment::parse("weights=1,1", 3).unwrap_err();
        assert!(e.contains("2 weights for 3 adapters"), "{e}");
        assert!(Assignment::parse("weights=0,0,0", 3).is_err());
        assert!(Assignment::parse("sticky", 3)
            .unwrap_err()
            .contains("random, round-robin or weights="));
    }

    #[test]
    fn weights_spread_as_asked_and_a_zero_weight_is_never_chosen() {
        let l = lora(Assignment::Weights(vec![2.0, 1.0, 0.0]));
        let mut n = [0u32; 3];
        for i in 0..3000 {
            n[l.at(i as f64 / 3000.0)] += 1;
        }
        assert_eq!(n, [2000, 1000, 0]);
        assert_eq!(lora(Assignment::Random).at(0.999_999), 2);
    }

    #[test]
    fn the_model_field_is_swapped_once_and_text_is_left_alone() {
        let body = Bytes::from_static(
            br#"{"messages":[{"role":"user","content":"say \"model\":\"m\""}],"model":"m","x":"m"}"#,
        );
        let out = swap_model(&body, &model_field("m"), &model_field("lora-1"));
        assert_eq!(
            &out[..],
            br#"{"messages":[{"role":"user","content":"say \"model\":\"m\""}],"model":"lora-1","x":"m"}"#
        );
    }

    #[test]
    fn a_replayed_session_keeps_its_adapter_and_round_robin_goes_round() {
        struct Nothing;
        impl Workload for Nothing {
            fn name(&self) -> &'static str {
                "nothing"
            }
            fn session(&self, _vu: u64) -> Box<dyn Session> {
                unreachable!()
            }
            fn preflight(&self) -> Prepared {
                unreachable!()
            }
        }
        let a = Affinity::new(
            Arc::new(Nothing),
            "m",
            None,
            Some(lora(Assignment::RoundRobin)),
        );
        let picks: Vec<_> = ["s1", "s2", "s1", "s3", "s4", "s2"]
            .iter()
            .map(|s| a.pick_for(s).unwrap())
            .collect();
        assert_eq!(picks, [0, 1, 0, 2, 0, 1]);
        let r = Affinity::new(Arc::new(Nothing), "m", None, Some(lora(Assignment::Random)));
        for s in ["x", "y", "z"] {
            assert_eq!(r.pick_for(s), r.pick_for(s));
        }
    }
}
