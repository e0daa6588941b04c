//! The check of the server's usage against a local count: which answers
//! are kept for it during the run, and the count at its end.
//!
//! Counting an answer's text takes the tokenizer: for `cl100k_base`, a
//! vocabulary of ~20 MiB built in ~30 ms of a core, and then CPU for every
//! text counted. Done on the request path, the first check would stall the
//! streams read on that worker while the vocabulary is built, and every
//! later one would take CPU from the load. So the run only keeps answers:
//! a uniform sample of at most [`KEPT`] (reservoir sampling: every answer
//! that carried usage has the same chance of being in it, however long the
//! run), their text and the server's count. At the end, once the last
//! request is in, the kept texts are counted (by the run's tokenizer, the
//! server's `/tokenize` included) and compared. A run against a server
//! that reports usage never builds the vocabulary while it measures.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::Client;

/// The most answers kept for the check.
pub const KEPT: usize = 256;

/// The answers kept for the check, and how many were offered.
#[derive(Default)]
pub struct UsageSample {
    offered: AtomicU64,
    kept: Mutex<Vec<(u32, String)>>,
}

impl UsageSample {
    /// An answer whose usage says `usage` output tokens, with its `text`.
    /// Kept with probability KEPT / (answers so far), in place of a kept one
    /// drawn at random (Algorithm R); the draw is a hash of the answer's
    /// index, so the lock is taken only for an answer that is kept.
    pub fn offer(&self, usage: u32, text: &str) {
        let i = self.offered.fetch_add(1, Ordering::Relaxed);
        let slot = if (i as usize) < KEPT {
            None
        } else {
            let j = mix(i) % (i + 1);
            if j as usize >= KEPT {
                return;
            }
            Some(j as usize)
        };
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        let entry = (usage, text.to_owned());
        match slot {
            Some(j) if j < kept.len() => kept[j] = entry,
            // Answers end out of order: the first KEPT are pushed as they
            // come, and a later one may find fewer kept yet.
            _ if kept.len() < KEPT => kept.push(entry),
            _ => {}
        }
    }

    /// The kept answers, taken out.
    fn take(&self) -> Vec<(u32, String)> {
        std::mem::take(&mut *self.kept.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// splitmix64's finalizer: the draw for an answer's index.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Whether the server's count of output tokens and the local count of the
/// text disagree: by more than 10%, and by more than one token (the text
/// of 8 generated tokens may tokenize again as 7, where two merge: the
/// server's count is still right).
pub fn disagree(usage: u32, local: u32) -> bool {
    let diff = usage.abs_diff(local) as f64;
    diff > (0.10 * usage as f64).max(1.0)
}

/// What the end-of-run check found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    /// Answers counted locally.
    pub checked: u64,
    /// Of those, answers whose usage and local count [`disagree`].
    pub mismatched: u64,
}

impl Client {
    /// Count the kept answers and compare them with the server's usage
    /// (at the end of the run: the vocabulary is loaded now if need be).
    pub async fn check_usage(&self) -> Checked {
        let mut c = Checked::default();
        for (usage, text) in self.usage_sample.take() {
            if let Ok(local) = self.count_tokens(&text).await {
                c.checked += 1;
                c.mismatched += u64::from(disagree(usage, local));
            }
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_merged_again_is_not_a_disagreement_but_ten_percent_and_two_are() {
        assert!(!disagree(8, 7), "one token off on a short answer");
        assert!(!disagree(8, 9));
        assert!(disagree(8, 10), "two of eight");
        assert!(!disagree(100, 90));
        assert!(disagree(100, 89), "over 10%");
        assert!(disagree(0, 2));
        assert!(!disagree(0, 1));
    }

    #[test]
    fn a_short_run_keeps_every_answer_and_a_long_one_a_uniform_sample() {
        let s = UsageSample::default();
        for i in 0..100u32 {
            s.offer(i, "x");
        }
        let kept = s.take();
        assert_eq!(kept.len(), 100, "under KEPT: all of them");
        assert_eq!(
            kept.iter().map(|k| k.0).sum::<u32>(),
            (0..100u32).sum::<u32>()
        );

        let n = 100_000u32;
        let s = UsageSample::default();
        for i in 0..n {
            s.offer(i, "x");
        }
        let kept = s.take();
        assert_eq!(kept.len(), KEPT, "bounded");
        // Uniform over the run: as many from each half, within noise
        // (binomial, σ = 8 of 256), and not only the first ones.
        let late = kept.iter().filter(|k| k.0 >= n / 2).count();
        assert!(
            (96..=160).contains(&late),
            "{late} of {KEPT} from the second half"
        );
        assert!(
            kept.iter().any(|k| k.0 >= n - n / 10),
            "none from the last tenth"
        );
        let mut seen: Vec<u32> = kept.iter().map(|k| k.0).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), KEPT, "each kept once");
    }
}
