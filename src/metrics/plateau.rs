//! The steady state: the seconds of a run at its full load, ramp-up and
//! drain left out.
//!
//! The collector hands every closed one-second window to a [`Plateau`] with
//! the window's mean in-flight (or VU) count. A window is *at load* when
//! that count reaches 95% of what the plan's peak should hold: the peak VUs
//! of a closed model (its running VUs when they idle between requests:
//! think time, a script). An open model's rate should hold rate × latency in
//! flight (Little's law); it does when the requests that end in the window
//! reach 95% of the peak rate (of `--max-in-flight` / latency when that is
//! lower), which is what is judged: in-flight sampled every 20 ms cannot see
//! sub-millisecond requests, their completions can. The plateau runs from the first window at
//! load to the last; windows below inside it (a dip) count, those after the
//! last (the drain) and before the first (the ramp) do not. Its figures are
//! those of the requests that ended in its windows, kept as one
//! [`Aggregate`] merged a window at a time: bounded memory, one merge a
//! second.

use super::Aggregate;

/// Share of the target that counts as at load.
pub const AT_LOAD: f64 = 0.95;

/// What the run's full load is, for finding its plateau.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PlateauTarget {
    /// A closed model's peak VUs; `idle`: its VUs pause between requests
    /// (think time, a script), so running VUs are judged, not in-flight.
    Vus { peak: f64, idle: bool },
    /// An open model's peak arrival rate, requests per second, and the most
    /// requests it lets be in flight (`--max-in-flight`).
    Rate { peak: f64, cap: Option<f64> },
}

/// One closed window, as the plateau sees it.
#[derive(Debug, Clone, Copy)]
pub struct WindowLoad {
    /// Seconds since the start of the load.
    pub t: u64,
    /// Mean requests in flight over the window.
    pub in_flight: f64,
    /// Mean running VUs over the window.
    pub vus: f64,
    /// Mean e2e of the requests that ended in it, seconds.
    pub mean_e2e_s: Option<f64>,
    /// Requests that ended in it.
    pub completed: f64,
}

/// The plateau found so far.
#[derive(Debug)]
pub struct Plateau {
    target: PlateauTarget,
    /// Windows from the plateau's first to its last at load, merged.
    steady: Aggregate,
    /// Windows after the last at load: a dip if another comes, else the drain.
    pending: Aggregate,
    first: Option<u64>,
    last: u64,
    /// The highest load seen, as a share of its target.
    best_share: f64,
    /// The mean in-flight over the plateau's windows.
    in_flight_sum: f64,
    pending_in_flight: f64,
    windows: u64,
    pending_windows: u64,
}

/// The plateau of a finished run.
#[derive(Debug, Clone)]
pub struct Steady {
    /// Seconds since the start of the load: [start, end).
    pub start_s: u64,
    pub end_s: u64,
    /// Mean requests in flight over its windows.
    pub in_flight: f64,
    pub agg: Aggregate,
    /// What it was judged against.
    pub target: PlateauTarget,
}

/// Why a run has no plateau.
#[derive(Debug, Clone, PartialEq)]
pub struct NoPlateau {
    /// The highest load a window reached, as a share of its target.
    pub best_share: f64,
    pub target: PlateauTarget,
    /// Seconds `[start, end)` the run was at load, when no request ended in
    /// them (every request outlasted the plateau).
    pub empty: Option<(u64, u64)>,
}

impl std::fmt::Display for NoPlateau {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some((start, end)) = self.empty {
            return write!(
                f,
                "at load from {start} s to {end} s, but no request ended in that time \
                 (each outlasted it): too short for steady-state figures"
            );
        }
        let what = match self.target {
            PlateauTarget::Vus { peak, idle: false } => format!("in-flight of {peak} VUs"),
            PlateauTarget::Vus { peak, idle: true } => format!("{peak} running VUs"),
            PlateauTarget::Rate { peak, .. } => {
                return write!(
                    f,
                    "no second's completions reached {:.0}% of {peak} req/s (best {:.0}%): the target did not keep up with the rate",
                    AT_LOAD * 100.0,
                    self.best_share * 100.0
                );
            }
        };
        write!(
            f,
            "no second reached {:.0}% of the {what} (best {:.0}%)",
            AT_LOAD * 100.0,
            self.best_share * 100.0
        )
    }
}

impl Plateau {
    pub fn new(target: PlateauTarget) -> Self {
        Plateau {
            target,
            steady: Aggregate::default(),
            pending: Aggregate::default(),
            first: None,
            last: 0,
            best_share: 0.0,
            in_flight_sum: 0.0,
            pending_in_flight: 0.0,
            windows: 0,
            pending_windows: 0,
        }
    }

    /// The window's load as a share of the target (None: no target).
    fn share(&self, w: &WindowLoad) -> Option<f64> {
        match self.target {
            PlateauTarget::Vus { peak, idle } if peak > 0.0 => {
                Some(if idle { w.vus } else { w.in_flight } / peak)
            }
            PlateauTarget::Rate { peak, cap } if peak > 0.0 => {
                let want = match (cap, w.mean_e2e_s) {
                    (Some(c), Some(l)) if l > 0.0 => peak.min(c / l),
                    _ => peak,
                };
                Some(w.completed / want)
            }
            _ => None,
        }
    }

    /// Take one closed window and the requests that ended in it.
    pub fn window(&mut self, w: WindowLoad, agg: &Aggregate) {
        let share = self.share(&w);
        if let Some(s) = share {
            self.best_share = self.best_share.max(s);
        }
        let at_load = share.is_some_and(|s| s >= AT_LOAD);
        if self.first.is_none() && !at_load {
            return; // the ramp
        }
        self.pending.merge(agg);
        self.pending_in_flight += w.in_flight;
        self.pending_windows += 1;
        if at_load {
            self.first.get_or_insert(w.t);
            self.last = w.t;
            self.steady.merge(&std::mem::take(&mut self.pending));
            self.in_flight_sum += std::mem::take(&mut self.pending_in_flight);
            self.windows += std::mem::take(&mut self.pending_windows);
        }
    }

    /// The plateau, or why there is none.
    pub fn finish(self) -> Result<Steady, NoPlateau> {
        match self.first {
            Some(first) if self.steady.requests == 0 => Err(NoPlateau {
                best_share: self.best_share,
                target: self.target,
                empty: Some((first, self.last + 1)),
            }),
            Some(first) => Ok(Steady {
                start_s: first,
                end_s: self.last + 1,
                in_flight: self.in_flight_sum / self.windows.max(1) as f64,
                agg: self.steady,
                target: self.target,
            }),
            None => Err(NoPlateau {
                best_share: self.best_share,
                target: self.target,
                empty: None,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::RequestRecord;

    fn agg(n: u64, t: u64) -> Aggregate {
        let mut a = Aggregate::default();
        for i in 0..n {
            let mut r = RequestRecord::new(0, t * 1_000_000 + i);
            r.end_us = r.start_us + 1000;
            a.add(&r, false);
        }
        a
    }

    fn load(t: u64, in_flight: f64) -> WindowLoad {
        WindowLoad {
            t,
            in_flight,
            vus: in_flight,
            mean_e2e_s: Some(1.0),
            completed: 0.0,
        }
    }

    #[test]
    fn ramp_and_drain_are_left_out_and_a_dip_inside_is_kept() {
        let mut p = Plateau::new(PlateauTarget::Vus {
            peak: 10.0,
            idle: false,
        });
        // Ramp 2, 5, 9 (below 9.5), plateau 10, 10, dip 8, 10, drain 6, 2.
        for (t, f) in [2.0, 5.0, 9.0, 10.0, 10.0, 8.0, 9.6, 6.0, 2.0]
            .into_iter()
            .enumerate()
        {
            p.window(load(t as u64, f), &agg(t as u64 + 1, t as u64));
        }
        let s = p.finish().unwrap();
        assert_eq!((s.start_s, s.end_s), (3, 7));
        // Requests of windows 3..=6: 4 + 5 + 6 + 7.
        assert_eq!(s.agg.requests, 22);
        assert!((s.in_flight - (10.0 + 10.0 + 8.0 + 9.6) / 4.0).abs() < 1e-9);
    }

    #[test]
    fn no_plateau_says_how_close_the_run_came() {
        let mut p = Plateau::new(PlateauTarget::Vus {
            peak: 10.0,
            idle: false,
        });
        for t in 0..5 {
            p.window(load(t, 7.0), &agg(3, t));
        }
        let e = p.finish().unwrap_err();
        assert_eq!(e.best_share, 0.7);
        assert_eq!(
            e.to_string(),
            "no second reached 95% of the in-flight of 10 VUs (best 70%)"
        );
    }

    #[test]
    fn a_plateau_no_request_ended_in_has_no_figures() {
        let mut p = Plateau::new(PlateauTarget::Vus {
            peak: 8.0,
            idle: false,
        });
        for t in 0..3 {
            p.window(load(t, 8.0), &agg(0, t));
        }
        p.window(load(3, 2.0), &agg(8, 3));
        let e = p.finish().unwrap_err();
        assert_eq!(e.empty, Some((0, 3)));
        assert!(e.to_string().contains("no request ended"), "{e}");
    }

    #[test]
    fn an_open_model_is_at_load_when_its_completions_keep_up_with_the_rate() {
        let mut p = Plateau::new(PlateauTarget::Rate {
            peak: 100.0,
            cap: None,
        });
        let w = |t, done: f64| WindowLoad {
            t,
            in_flight: 0.0,
            vus: 0.0,
            mean_e2e_s: (done > 0.0).then_some(0.2),
            completed: done,
        };
        // Filling up (80 of 100 end), at rate, at rate, the drain.
        for (t, done) in [80.0, 96.0, 100.0, 20.0].into_iter().enumerate() {
            p.window(w(t as u64, done), &agg(done as u64, t as u64));
        }
        let s = p.finish().unwrap();
        assert_eq!((s.start_s, s.end_s, s.agg.requests), (1, 3, 196));
        // A cap of 10 in flight at 0.2 s each holds 50/s: that is full load.
        let mut p = Plateau::new(PlateauTarget::Rate {
            peak: 100.0,
            cap: Some(10.0),
        });
        p.window(w(0, 48.0), &agg(48, 0));
        assert_eq!(p.finish().unwrap().agg.requests, 48);
        // A target that serves half the rate never holds it.
        let mut p = Plateau::new(PlateauTarget::Rate {
            peak: 100.0,
            cap: None,
        });
        p.window(w(0, 50.0), &agg(50, 0));
        let e = p.finish().unwrap_err();
        assert!(e.to_string().contains("did not keep up"), "{e}");
    }

    #[test]
    fn idle_vus_are_judged_by_running_vus() {
        let mut p = Plateau::new(PlateauTarget::Vus {
            peak: 4.0,
            idle: true,
        });
        p.window(
            WindowLoad {
                t: 0,
                in_flight: 1.0,
                vus: 4.0,
                mean_e2e_s: Some(0.1),
                completed: 5.0,
            },
            &agg(5, 0),
        );
        assert_eq!(p.finish().unwrap().agg.requests, 5);
    }
}
