//! Embeddings: one input per request, or batches of `--batch-sizes` inputs
//! with one load stage per size (so the report compares sizes under the
//! same load).

use std::sync::Arc;

use bytes::Bytes;
use serde_json::json;

use super::{PromptSource, Session, Turn, Workload, WorkloadSpec};
use crate::client::{Expect, Prepared};
use crate::record::Group;

pub struct Embeddings(Arc<Inner>);

struct Inner {
    model: String,
    batch: bool,
    sizes: Vec<u32>,
    texts: PromptSource,
}

impl Embeddings {
    pub fn new(spec: &WorkloadSpec, batch: bool, tok: &crate::tokenizer::Tokenizer) -> Self {
        let sizes = if spec.batch_sizes.is_empty() {
            vec![1, 8, 32, 128]
        } else {
            spec.batch_sizes.clone()
        };
        Embeddings(Arc::new(Inner {
            model: spec.model.clone(),
            batch,
            sizes,
            texts: PromptSource::new(
                &spec.prompt,
                spec.input_tokens,
                spec.input_tokens_stddev,
                spec.shared_prefix,
                spec.dataset.as_ref(),
                tok,
            ),
        }))
    }
}

impl Inner {
    fn build(&self, n: u32, rng: &mut fastrand::Rng) -> Prepared {
        let mut tokens = 0;
        let input = if self.batch {
            let texts: Vec<String> = (0..n)
                .map(|_| {
                    let (t, k) = self.texts.next(rng);
                    tokens += k;
                    t
                })
                .collect();
            json!(texts)
        } else {
            let (t, k) = self.texts.next(rng);
            tokens = k;
            json!(t)
        };
        let body = json!({"model": self.model, "input": input});
        let mut p = Prepared::post(
            "embeddings",
            Bytes::from(body.to_string()),
            Expect::Embeddings,
        );
        p.texts = n;
        p.prompt_tokens = tokens;
        if self.batch {
            p.group = Some(Group::Batch(n));
        }
        p
    }
}

struct EmbedSession {
    w: Arc<Inner>,
    rng: fastrand::Rng,
}

impl Session for EmbedSession {
    fn next(&mut self, turn: Turn) -> Option<Prepared> {
        let n = if self.w.batch {
            self.w.sizes[turn.stage % self.w.sizes.len()]
        } else {
            1
        };
        Some(self.w.build(n, &mut self.rng))
    }
}

impl Workload for Embeddings {
    fn name(&self) -> &'static str {
        if self.0.batch {
            "batch-embeddings"
        } else {
            "embeddings"
        }
    }

    fn session(&self, vu: u64) -> Box<dyn Session> {
        Box::new(EmbedSession {
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
    fn batches_follow_the_stage() {
        let mut spec = super::super::chat::tests::spec("batch-embeddings");
        spec.batch_sizes = vec![1, 4];
        let w = Embeddings::new(&spec, true, &crate::tokenizer::default_tokenizer());
        let mut s = w.session(0);
        let at = |stage| Turn {
            vu: 0,
            iteration: 0,
            stage,
        };
        let r = s.next(at(1)).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["input"].as_array().unwrap().len(), 4);
        assert_eq!(r.texts, 4);
        assert_eq!(r.group, Some(Group::Batch(4)));
        assert_eq!(s.next(at(0)).unwrap().texts, 1);
        let single = Embeddings::new(&spec, false, &crate::tokenizer::default_tokenizer())
            .session(0)
            .next(at(1))
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&single.body).unwrap();
        assert!(v["input"].is_string());
        assert_eq!(single.group, None);
    }
}
