//! `periscope trace summarize FILE`: a trace's shape before it is replayed
//! — its length and rate over time (peaks and lulls), the prompt and output
//! lengths as histograms, and how much of the prompts a prefix cache could
//! serve (the share of blocks, by `hash_ids`, that an earlier record already
//! sent: what an unbounded cache would hit).

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use super::{Reader, Record};

/// What a trace holds.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Summary {
    pub records: u64,
    pub duration_s: f64,
    pub mean_rate: f64,
    /// Requests per bucket of `bucket_s` seconds, from the start.
    pub bucket_s: f64,
    pub per_bucket: Vec<u64>,
    /// Upper bound (tokens) → records, powers of two.
    pub input_lengths: BTreeMap<u32, u64>,
    pub output_lengths: BTreeMap<u32, u64>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Blocks sent, and those an earlier record had sent already.
    pub blocks: u64,
    pub reused_blocks: u64,
    pub sessions: u64,
}

fn bucket(n: u32) -> u32 {
    n.max(1).next_power_of_two()
}

/// Read the whole trace once.
pub fn summarize(path: &Path) -> Result<Summary, String> {
    let shape = super::check(path, f64::INFINITY)?;
    let duration_s = shape.last_ms / 1000.0;
    // About 20 buckets over the trace, whole seconds at least.
    let bucket_s = (duration_s / 20.0).ceil().max(1.0);
    let mut s = Summary {
        records: shape.records,
        duration_s,
        mean_rate: shape.records as f64 / duration_s.max(1e-3),
        bucket_s,
        per_bucket: vec![0; (duration_s / bucket_s) as usize + 1],
        input_lengths: BTreeMap::new(),
        output_lengths: BTreeMap::new(),
        input_tokens: shape.input_tokens,
        output_tokens: shape.output_tokens,
        blocks: 0,
        reused_blocks: 0,
        sessions: shape.sessions,
    };
    let mut seen: HashSet<u64> = HashSet::new();
    for r in Reader::open(path)? {
        let Record {
            timestamp,
            input_length,
            output_length,
            hash_ids,
            ..
        } = r;
        let b = ((timestamp / 1000.0) / bucket_s) as usize;
        if let Some(x) = s.per_bucket.get_mut(b) {
            *x += 1;
        }
        *s.input_lengths.entry(bucket(input_length)).or_default() += 1;
        *s.output_lengths.entry(bucket(output_length)).or_default() += 1;
        for h in hash_ids {
            s.blocks += 1;
            if !seen.insert(h) {
                s.reused_blocks += 1;
            }
        }
    }
    Ok(s)
}

/// The summary as Markdown tables.
pub fn markdown(path: &Path, s: &Summary) -> String {
    use std::fmt::Write as _;
    let mut out = format!(
        "## Trace {}\n\n{} records over {:.1} s ({:.2} req/s on average), {} input and {} output tokens, {} sessions\n\n",
        path.display(),
        s.records,
        s.duration_s,
        s.mean_rate,
        s.input_tokens,
        s.output_tokens,
        s.sessions
    );
    let peak = s.per_bucket.iter().copied().max().unwrap_or(0).max(1);
    let _ = writeln!(
        out,
        "### Rate over time\n\n| from (s) | requests | req/s |  |\n|---:|---:|---:|---|"
    );
    for (i, n) in s.per_bucket.iter().enumerate() {
        let bar = "█".repeat((*n as f64 / peak as f64 * 30.0).round() as usize);
        let _ = writeln!(
            out,
            "| {:.0} | {n} | {:.2} | {bar} |",
            i as f64 * s.bucket_s,
            *n as f64 / s.bucket_s
        );
    }
    for (title, h) in [
        ("Input lengths", &s.input_lengths),
        ("Output lengths", &s.output_lengths),
    ] {
        let _ = writeln!(
            out,
            "\n### {title} (tokens)\n\n| up to | records |\n|---:|---:|"
        );
        for (up, n) in h {
            let _ = writeln!(out, "| {up} | {n} |");
        }
    }
    let share = s.reused_blocks as f64 / s.blocks.max(1) as f64;
    let _ = writeln!(
        out,
        "\n### Prefix reuse\n\n{} of {} prompt blocks were sent before ({:.1}%): the share of prompt tokens an unbounded prefix cache could serve.\n",
        s.reused_blocks,
        s.blocks,
        100.0 * share
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_lengths_and_reuse_of_a_small_trace() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.jsonl");
        std::fs::write(
            &p,
            concat!(
                "{\"timestamp\": 0, \"input_length\": 1000, \"output_length\": 10, \"hash_ids\": [1, 2]}\n",
                "{\"timestamp\": 500, \"input_length\": 1000, \"output_length\": 100, \"hash_ids\": [1, 3]}\n",
                "{\"timestamp\": 40000, \"input_length\": 100, \"output_length\": 10, \"hash_ids\": [1]}\n",
            ),
        )
        .unwrap();
        let s = summarize(&p).unwrap();
        assert_eq!(s.records, 3);
        assert_eq!(s.bucket_s, 2.0);
        assert_eq!(s.per_bucket[0], 2);
        assert_eq!(s.per_bucket[20], 1);
        assert_eq!(s.input_lengths[&1024], 2);
        assert_eq!(s.output_lengths[&16], 2);
        assert_eq!((s.blocks, s.reused_blocks), (5, 2));
        let md = markdown(&p, &s);
        assert!(
            md.contains("2 of 5 prompt blocks were sent before (40.0%)"),
            "{md}"
        );
    }
}
