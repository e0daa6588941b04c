//! Execution segments: one plan run by n processes, each driving its exact
//! share (`--segment i/n`).
//!
//! Every process computes the whole plan and keeps the items whose global
//! index k has `k mod n == i − 1`: the VU stack's positions in the closed
//! model (so the shares add up to the target at every moment), the arrivals
//! in the open model (the union is the requested arrival process, and
//! neighbours in time fall to different segments, so no segment starts with
//! a burst), the iterations and the dataset's cases (no case runs twice).

use serde::{Deserialize, Serialize};

/// This process's part of the plan: `index` of `count`, from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    pub index: u32,
    pub count: u32,
}

impl Default for Segment {
    fn default() -> Self {
        Segment::WHOLE
    }
}

impl std::fmt::Display for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Most segments of one plan: more would be a typo, not a fleet.
pub const MAX_SEGMENTS: u32 = 10_000;

impl Segment {
    /// The whole plan in one process.
    pub const WHOLE: Segment = Segment { index: 1, count: 1 };

    /// `i/n`, 1 ≤ i ≤ n.
    pub fn parse(s: &str) -> Result<Segment, String> {
        let err = || format!("'{s}' is not a segment: give i/n with 1 ≤ i ≤ n, e.g. 2/4");
        let (i, n) = s.trim().split_once('/').ok_or_else(err)?;
        let index: u32 = i.trim().parse().map_err(|_| err())?;
        let count: u32 = n.trim().parse().map_err(|_| err())?;
        Segment::new(index, count).ok_or_else(err)
    }

    pub fn new(index: u32, count: u32) -> Option<Segment> {
        (1..=MAX_SEGMENTS)
            .contains(&count)
            .then_some(Segment { index, count })
            .filter(|s| (1..=count).contains(&s.index))
    }

    pub fn is_whole(&self) -> bool {
        self.count == 1
    }

    /// Whether the item of global index `k` (from 0) is this segment's.
    pub fn owns(&self, k: u64) -> bool {
        k % u64::from(self.count) == u64::from(self.index - 1)
    }

    /// How many of the items 0..n are this segment's: ⌊(n + count − index) / count⌋.
    pub fn share(&self, n: u64) -> u64 {
        (n + u64::from(self.count - self.index)) / u64::from(self.count)
    }
}

/// A seed every segment of a run derives alike from the run id (FNV-1a, so
/// it is the same in every build).
pub fn seed_of(run_id: &str) -> u64 {
    run_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_i_of_n_and_refuses_the_rest() {
        assert_eq!(
            Segment::parse("2/4").unwrap(),
            Segment { index: 2, count: 4 }
        );
        assert_eq!(Segment::parse(" 1 / 1 ").unwrap(), Segment::WHOLE);
        for bad in ["0/4", "5/4", "2", "a/4", "1/0", "-1/4", "1/20000"] {
            let e = Segment::parse(bad).unwrap_err();
            assert!(e.contains("i/n"), "{bad}: {e}");
        }
        assert_eq!(Segment::parse("3/4").unwrap().to_string(), "3/4");
    }

    #[test]
    fn shares_partition_every_count() {
        for count in 1..=7u32 {
            for n in 0..40u64 {
                let segs: Vec<Segment> = (1..=count)
                    .map(|i| Segment::new(i, count).unwrap())
                    .collect();
                assert_eq!(segs.iter().map(|s| s.share(n)).sum::<u64>(), n);
                for s in &segs {
                    assert_eq!((0..n).filter(|&k| s.owns(k)).count() as u64, s.share(n));
                }
                for k in 0..n {
                    assert_eq!(segs.iter().filter(|s| s.owns(k)).count(), 1);
                }
            }
        }
    }

    #[test]
    fn the_seed_depends_on_the_run_id_only() {
        assert_eq!(seed_of("abc"), seed_of("abc"));
        assert_ne!(seed_of("abc"), seed_of("abd"));
    }
}
