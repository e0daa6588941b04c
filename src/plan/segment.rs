//! The segment part of a plan: this process's share of a run split across
//! machines (`--segment i/n`, or `--segments n` with Kubernetes'
//! `JOB_COMPLETION_INDEX`), and the run id its segments share.

use crate::cli::SegmentArgs;
use crate::error::Result;
use crate::executor::{Load, Segment};
use crate::usage;

use super::env_var;

/// Which part of the run this process is.
#[derive(Debug, Clone)]
pub struct SegmentPlan {
    pub segment: Segment,
    /// The run's id when a caller sets it (`--run-id`; a sweep's runs share
    /// one); else new.
    pub run_id: Option<String>,
    /// When the load starts (`--start-at`), else as soon as it is ready.
    pub start_at: Option<std::time::SystemTime>,
}

impl SegmentPlan {
    pub fn from_args(a: &SegmentArgs, abort_on_fail: bool, load: &Load) -> Result<Self> {
        let (segment, run_id) = resolve_segment(a, abort_on_fail, load)?;
        Ok(SegmentPlan {
            segment,
            run_id,
            start_at: a.start_at,
        })
    }
}

/// This process's segment and the run id, from --segment, or --segments
/// with Kubernetes' JOB_COMPLETION_INDEX, and --run-id.
fn resolve_segment(
    a: &SegmentArgs,
    abort_on_fail: bool,
    load: &Load,
) -> Result<(Segment, Option<String>)> {
    let segment = match (a.segment, a.segments) {
        (Some(_), Some(_)) => {
            return Err(usage!(
                "give --segment I/N (or PERISCOPE_SEGMENT) or --segments N with JOB_COMPLETION_INDEX, not both"
            ))
        }
        (Some(s), None) => s,
        (None, Some(n)) => {
            let Some(index) = env_var("JOB_COMPLETION_INDEX") else {
                return Err(usage!(
                    "--segments {n} takes this process's index from JOB_COMPLETION_INDEX (set by a Kubernetes Indexed Job), which is not set: elsewhere give --segment I/{n}"
                ));
            };
            let i: u32 = index.trim().parse().map_err(|_| {
                usage!("JOB_COMPLETION_INDEX='{index}' is not a whole number")
            })?;
            Segment::new(i.saturating_add(1), n).ok_or_else(|| {
                usage!(
                    "JOB_COMPLETION_INDEX={i} does not fit --segments {n}: the indices of {n} segments run from 0 to {}",
                    n.saturating_sub(1)
                )
            })?
        }
        (None, None) => Segment::WHOLE,
    };
    let run_id = a.run_id.as_deref().map(str::trim).map(|id| {
        let ok = (1..=64).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(id.to_string())
        } else {
            Err(usage!(
                "--run-id '{id}': use 1 to 64 letters, digits, '.', '_' or '-'"
            ))
        }
    });
    let run_id = run_id.transpose()?;
    if !segment.is_whole() {
        if run_id.is_none() {
            return Err(usage!(
                "--segment {segment} needs --run-id ID, the same for every segment: it ties their results and points together and seeds their shared arrivals"
            ));
        }
        if let Load::Closed { vus, .. } = load {
            let peak = vus.peak().round() as u64;
            if peak < u64::from(segment.count) {
                return Err(usage!(
                    "--segment {segment}: the plan peaks at {peak} VUs, fewer than its {} segments; use at most {peak} segments",
                    segment.count
                ));
            }
        }
        if abort_on_fail {
            return Err(usage!(
                "--abort-on-fail judges one process's requests: with --segment it would stop one segment, not the run; drop it (the merge judges the thresholds)"
            ));
        }
        if a.start_at.is_none() {
            eprintln!(
                "warning: --segment {segment} without --start-at: each segment starts when it is ready, not together with the others"
            );
        }
    }
    Ok((segment, run_id))
}

#[cfg(test)]
mod tests {
    use crate::cli::{Args, Command};
    use crate::plan::tests::plan;
    use crate::plan::Plan;
    use clap::Parser;

    #[test]
    fn segments_partition_the_dataset_and_keep_the_whole_load() {
        let whole = plan(&["--mock", "--dataset-suite", "core"]).unwrap();
        let all = whole.workload.spec.dataset.clone().unwrap();
        let mut union: Vec<String> = Vec::new();
        for i in 1..=4 {
            let seg = format!("{i}/4");
            let p = plan(&[
                "--mock",
                "--dataset-suite",
                "core",
                "--segment",
                &seg,
                "--run-id",
                "r1",
                "--start-at",
                "2030-01-01T00:00:00Z",
            ])
            .unwrap();
            assert_eq!(p.segment.segment.to_string(), seg);
            assert_eq!(p.segment.run_id.as_deref(), Some("r1"));
            // Every segment carries the whole plan's load.
            assert_eq!(p.load.shape, whole.load.shape);
            let mine = p.workload.spec.dataset.unwrap();
            assert_eq!(mine.len() as u64, p.segment.segment.share(all.len() as u64));
            union.extend(mine.iter().cloned());
        }
        // No case runs twice, and none is left out.
        let mut want: Vec<String> = all.to_vec();
        want.sort();
        union.sort();
        assert_eq!(union, want);
    }

    #[test]
    fn segment_flags_say_what_to_fix() {
        for (args, needle) in [
            (vec!["--segment", "2/4"], "needs --run-id"),
            (vec!["--segment", "5/4", "--run-id", "r"], "i/n"),
            (
                vec!["--segment", "1/4", "--segments", "4", "--run-id", "r"],
                "not both",
            ),
            (
                vec!["--segment", "1/4", "--run-id", "r", "--vus", "3"],
                "use at most 3 segments",
            ),
            (vec!["--run-id", "a/b"], "letters, digits"),
            (
                vec![
                    "--segment",
                    "1/2",
                    "--run-id",
                    "r",
                    "--threshold",
                    "ttft.p95<1s",
                    "--abort-on-fail",
                ],
                "drop it",
            ),
        ] {
            let mut v = vec!["--mock"];
            v.extend(args.iter());
            let e = match Args::try_parse_from(
                ["periscope", "run"].into_iter().chain(v.iter().copied()),
            ) {
                Err(e) => e.to_string(),
                Ok(a) => {
                    let Command::Run(a) = a.command else { panic!() };
                    Plan::from_args(&a).unwrap_err().to_string()
                }
            };
            assert!(e.contains(needle), "{args:?}: {e}");
        }
    }
}
