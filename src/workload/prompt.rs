//! User prompts: a fixed text, synthetic text of an exact token length, or a
//! dataset's prompts in turn.
//!
//! Synthetic prompts are built from the run tokenizer's words: words that
//! are one token each (with a leading space) and stay one each side by side
//! (`Tokenizer::words`), so a prompt of n words is n tokens of the server's
//! tokenizer (with `--tokenizer server`) without tokenizing it. Each request
//! draws new words, so no two prompts share a prefix by accident and a
//! server's prefix cache cannot flatter it; with `--shared-prefix N` the
//! first N tokens are the same for every request.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::tokenizer::Tokenizer;

/// `n` synthetic tokens drawn from `words` with `rng`.
pub fn synthetic_text(words: &[String], n: u32, rng: &mut fastrand::Rng) -> String {
    let mut s = String::with_capacity(n as usize * 6);
    for _ in 0..n {
        s.push_str(&words[rng.usize(..words.len())]);
    }
    s
}

pub enum PromptSource {
    Fixed {
        text: String,
        tokens: u32,
    },
    Synthetic {
        mean: u32,
        stddev: f64,
        /// The shared start, and its length in tokens.
        prefix: String,
        prefix_tokens: u32,
        words: Arc<[String]>,
    },
    Dataset {
        prompts: Arc<Vec<String>>,
        tokens: Vec<u32>,
        next: AtomicUsize,
    },
}

impl PromptSource {
    /// Prompts counted (and synthetic ones made) with `tok`.
    pub fn new(
        fixed: &str,
        input_tokens: Option<u32>,
        stddev: f64,
        shared_prefix: u32,
        dataset: Option<&Arc<Vec<String>>>,
        tok: &Tokenizer,
    ) -> Self {
        if let Some(prompts) = dataset.filter(|d| !d.is_empty()) {
            return PromptSource::Dataset {
                tokens: prompts.iter().map(|p| tok.count_prompt(p)).collect(),
                prompts: prompts.clone(),
                next: AtomicUsize::new(0),
            };
        }
        match input_tokens {
            Some(mean) => {
                let words = tok.words();
                let prefix_tokens = shared_prefix.min(mean);
                // The same seed for every process and run: a shared prefix is
                // shared across segments too.
                let prefix =
                    synthetic_text(&words, prefix_tokens, &mut fastrand::Rng::with_seed(7));
                PromptSource::Synthetic {
                    mean,
                    stddev,
                    prefix,
                    prefix_tokens,
                    words,
                }
            }
            None => PromptSource::Fixed {
                text: fixed.to_string(),
                tokens: match fixed == super::DEFAULT_PROMPT && tok.is_cl100k() {
                    true => super::kind::DEFAULT_PROMPT_CL100K,
                    false => tok.count_prompt(fixed),
                },
            },
        }
    }

    /// Whether every prompt is the same text.
    pub fn is_fixed(&self) -> bool {
        matches!(self, PromptSource::Fixed { .. })
    }

    /// The next prompt and its token count.
    pub fn next(&self, rng: &mut fastrand::Rng) -> (String, u32) {
        match self {
            PromptSource::Fixed { text, tokens } => (text.clone(), *tokens),
            PromptSource::Synthetic {
                mean,
                stddev,
                prefix,
                prefix_tokens,
                words,
            } => {
                let n = sample_len(*mean, *stddev, rng).max(*prefix_tokens);
                let mut s = prefix.clone();
                s.push_str(&synthetic_text(words, n - prefix_tokens, rng));
                (s, n)
            }
            PromptSource::Dataset {
                prompts,
                tokens,
                next,
            } => {
                let i = next.fetch_add(1, Ordering::Relaxed) % prompts.len();
                (prompts[i].clone(), tokens[i])
            }
        }
    }
}

/// A length from a normal distribution around `mean` (Box-Muller), at least 1.
fn sample_len(mean: u32, stddev: f64, rng: &mut fastrand::Rng) -> u32 {
    if stddev <= 0.0 {
        return mean.max(1);
    }
    let (u1, u2) = (rng.f64().max(f64::MIN_POSITIVE), rng.f64());
    let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
    (mean as f64 + z * stddev).round().max(1.0) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenizer::{self, default_tokenizer};

    #[test]
    fn the_default_prompts_count_is_cl100ks() {
        use super::super::{kind::DEFAULT_PROMPT_CL100K, DEFAULT_PROMPT};
        assert_eq!(tokenizer::count(DEFAULT_PROMPT), DEFAULT_PROMPT_CL100K);
    }

    #[test]
    fn synthetic_prompts_have_the_exact_length_and_differ() {
        let src = PromptSource::new("", Some(300), 0.0, 0, None, &default_tokenizer());
        let mut rng = fastrand::Rng::with_seed(1);
        let (a, na) = src.next(&mut rng);
        let (b, _) = src.next(&mut rng);
        assert_eq!(na, 300);
        assert_eq!(tokenizer::count(&a), 300);
        assert_ne!(a, b);
        // No accidental shared prefix: the first words already differ
        // (with 60+ words, two of three pairs differ in the first 2 tokens).
        let firsts: std::collections::HashSet<String> = (0..20)
            .map(|_| {
                src.next(&mut rng)
                    .0
                    .split(' ')
                    .take(4)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        assert!(firsts.len() >= 19, "{firsts:?}");
    }

    #[test]
    fn a_shared_prefix_is_shared_and_the_rest_is_not() {
        let src = PromptSource::new("", Some(100), 0.0, 40, None, &default_tokenizer());
        let mut rng = fastrand::Rng::with_seed(2);
        let (a, _) = src.next(&mut rng);
        let (b, _) = src.next(&mut rng);
        let ta = tokenizer::encode(&a);
        let tb = tokenizer::encode(&b);
        assert_eq!(ta[..40], tb[..40]);
        assert_ne!(ta[40..], tb[40..]);
    }

    #[test]
    fn lengths_spread_with_a_stddev() {
        let src = PromptSource::new("", Some(200), 50.0, 0, None, &default_tokenizer());
        let mut rng = fastrand::Rng::with_seed(3);
        let lens: Vec<u32> = (0..400).map(|_| src.next(&mut rng).1).collect();
        let mean = lens.iter().sum::<u32>() as f64 / lens.len() as f64;
        let var = lens.iter().map(|l| (*l as f64 - mean).powi(2)).sum::<f64>() / lens.len() as f64;
        assert!((mean - 200.0).abs() < 10.0, "{mean}");
        assert!((var.sqrt() - 50.0).abs() < 8.0, "{}", var.sqrt());
    }

    #[test]
    fn datasets_cycle() {
        let d = Arc::new(vec!["a b".to_string(), "c".to_string()]);
        let src = PromptSource::new("", None, 0.0, 0, Some(&d), &default_tokenizer());
        let mut rng = fastrand::Rng::new();
        let got: Vec<String> = (0..3).map(|_| src.next(&mut rng).0).collect();
        assert_eq!(got, ["a b", "c", "a b"]);
    }
}
