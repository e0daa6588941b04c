//! `rerank`: `POST /v1/rerank` in the shape Cohere, Jina, vLLM and TEI's
//! OpenAI-style routes share: a query and `--documents N` documents (the
//! built-in passages, synthetic ones of `--input-tokens`, or a dataset's
//! texts). Reported as latency, documents per second and the latency per
//! document (the group of its document count).

use std::sync::Arc;

use bytes::Bytes;
use serde_json::json;

use super::{PromptSource, Session, Turn, Workload, WorkloadSpec};
use crate::client::{Expect, Prepared};
use crate::record::Group;

/// The default query.
pub const RERANK_QUERY: &str = "How does a load balancer decide which server gets a request?";

/// The built-in documents: some answer the query, most do not.
const PASSAGES: &[&str] = &[
    "A load balancer spreads incoming requests across a pool of servers, often round robin or by the fewest open connections.",
    "Sourdough bread rises thanks to wild yeast and lactic acid bacteria living in the starter.",
    "Health checks let a load balancer stop sending traffic to a server that no longer answers.",
    "The Pacific is the largest and deepest of the Earth's oceans.",
    "Consistent hashing maps each client to a server so that adding a server moves only a few clients.",
    "A haiku has three lines of five, seven and five syllables.",
    "Least-latency balancing sends each request to the backend that answered fastest recently.",
    "Copper conducts electricity well because its outer electron moves freely through the metal.",
    "Sticky sessions pin a user's requests to one backend, using a cookie or the client's address.",
    "The violin has four strings tuned in perfect fifths.",
];

/// The texts known before the run, for a server's tokenizer.
pub(super) fn known_texts() -> Vec<String> {
    let mut v: Vec<String> = PASSAGES.iter().map(|p| p.to_string()).collect();
    v.push(RERANK_QUERY.to_string());
    v
}

pub struct Rerank(Arc<Inner>);

struct Inner {
    model: String,
    query: String,
    query_tokens: u32,
    documents: u32,
    texts: PromptSource,
}

impl Rerank {
    pub fn new(spec: &WorkloadSpec, tok: &crate::tokenizer::Tokenizer) -> Self {
        let passages: Arc<Vec<String>> = Arc::new(PASSAGES.iter().map(|p| p.to_string()).collect());
        let texts = match (&spec.dataset, spec.input_tokens) {
            (None, None) => PromptSource::new("", None, 0.0, 0, Some(&passages), tok),
            _ => PromptSource::new(
                "",
                spec.input_tokens,
                spec.input_tokens_stddev,
                spec.shared_prefix,
                spec.dataset.as_ref(),
                tok,
            ),
        };
        Rerank(Arc::new(Inner {
            model: spec.model.clone(),
            query_tokens: tok.count_prompt(&spec.prompt),
            query: spec.prompt.clone(),
            documents: spec.documents.max(1),
            texts,
        }))
    }
}

impl Inner {
    fn build(&self, n: u32, rng: &mut fastrand::Rng) -> Prepared {
        let mut tokens = self.query_tokens;
        let documents: Vec<String> = (0..n)
            .map(|_| {
                let (t, k) = self.texts.next(rng);
                tokens += k;
                t
            })
            .collect();
        let body = json!({"model": self.model, "query": self.query, "documents": documents});
        let mut p = Prepared::post("rerank", Bytes::from(body.to_string()), Expect::Rerank);
        p.texts = n;
        p.prompt_tokens = tokens;
        p.group = Some(Group::Batch(n));
        p
    }
}

struct RerankSession {
    w: Arc<Inner>,
    rng: fastrand::Rng,
}

impl Session for RerankSession {
    fn next(&mut self, _turn: Turn) -> Option<Prepared> {
        Some(self.w.build(self.w.documents, &mut self.rng))
    }
}

impl Workload for Rerank {
    fn name(&self) -> &'static str {
        "rerank"
    }

    fn session(&self, vu: u64) -> Box<dyn Session> {
        Box::new(RerankSession {
            w: self.0.clone(),
            rng: super::session_rng(vu),
        })
    }

    fn preflight(&self) -> Prepared {
        let mut p = self.0.build(1, &mut fastrand::Rng::with_seed(0));
        p.group = None;
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_and_n_documents() {
        let mut spec = super::super::chat::tests::spec("rerank");
        spec.documents = 4;
        spec.prompt = "q?".into();
        let w = Rerank::new(&spec, &crate::tokenizer::default_tokenizer());
        let p = w
            .session(0)
            .next(Turn {
                vu: 0,
                iteration: 0,
                stage: 0,
            })
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&p.body).unwrap();
        assert_eq!(p.path, "rerank");
        assert_eq!(v["query"], "q?");
        assert_eq!(v["documents"].as_array().unwrap().len(), 4);
        assert_eq!((p.texts, p.group), (4, Some(Group::Batch(4))));
        assert_eq!(w.preflight().texts, 1);
    }
}
