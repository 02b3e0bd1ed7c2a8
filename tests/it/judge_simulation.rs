//! The sequential judge's guarantees, checked on simulated traffic with fixed
//! seeds (deterministic). The false-abort tests run enough canaries, against
//! a tight enough bound, that a judge twice too lenient fails them; the
//! benchmark binary `siskin-bench-judges` runs whole rollouts.

use siskin::analysis::Verdict;
use siskin::analysis::judge::{Judge, Observation, SequentialJudge, SequentialState};
use siskin::analysis::simulation::{Diurnal, Effect, Simulation, Traffic};
use statrs::distribution::{Binomial, DiscreteCDF};

const EVALUATION_SECONDS: f64 = 15.0;

#[derive(Clone, Copy, PartialEq)]
enum Metric {
    Errors,
    Latency,
}

fn observe(sim: &Simulation, metric: Metric) -> Observation {
    match metric {
        Metric::Errors => sim.counts(),
        Metric::Latency => sim.histograms(),
    }
}

/// Runs one canary under continuous monitoring for `hours`, the share
/// stepping 5 → 10 → 25 → 50 %, and returns every verdict.
fn monitor(judge: &SequentialJudge, effect: Effect, metric: Metric, hours: f64, seed: u64) -> Vec<Verdict> {
    let traffic = match metric {
        Metric::Errors => Traffic {
            edges: Vec::new(),
            ..Traffic::default()
        },
        Metric::Latency => Traffic {
            requests_per_second: 20.0,
            ..Traffic::default()
        },
    };
    let mut sim = Simulation::new(traffic, effect, seed);
    sim.advance(600.0, 0.0); // stable's history before the canary
    let mut state = SequentialState::default();
    let mut verdicts = vec![judge.evaluate(&mut state, &observe(&sim, metric))];
    let evaluations = (hours * 3600.0 / EVALUATION_SECONDS) as usize;
    for k in 0..evaluations {
        let share = [0.05, 0.10, 0.25, 0.50][4 * k / evaluations];
        sim.advance(EVALUATION_SECONDS, share);
        let verdict = judge.evaluate(&mut state, &observe(&sim, metric));
        verdicts.push(verdict);
        if verdict == Verdict::Regression {
            break;
        }
    }
    verdicts
}

fn aborted(verdicts: &[Verdict]) -> bool {
    verdicts.contains(&Verdict::Regression)
}

/// Identical canaries (A/A) watched by one judge, as many as the test of
/// its false-abort rate needs. The judge's null is the canary no worse
/// than stable (tolerance 0), so an A/A canary sits exactly on the null's
/// boundary, where false aborts are likeliest. The canary takes 90 % of
/// the traffic: each canary request then moves the regression e-process
/// by little, so it overshoots `1 / alpha` by little when it crosses and
/// the false-abort rate comes nearer alpha (a judge twice too lenient
/// hides under alpha far more easily at a 50 % share).
/// Load and stable's error rate swing over a 25-minute cycle.
struct AaCanaries {
    metric: Metric,
    runs: u64,
    /// Evaluations of 15 s each per canary.
    evaluations: usize,
}

impl AaCanaries {
    fn traffic(&self) -> Traffic {
        let diurnal = Diurnal {
            volume: 0.5,
            error_rate: 0.8,
            latency: 0.1,
            period_seconds: 1500.0,
        };
        let edges = match self.metric {
            Metric::Errors => Vec::new(),
            Metric::Latency => Traffic::default().edges,
        };
        Traffic {
            requests_per_second: 4.0,
            error_rate: 0.05,
            diurnal,
            edges,
            ..Traffic::default()
        }
    }

    /// How many of the canaries `judge` aborts.
    fn false_aborts(&self, judge: &SequentialJudge) -> u64 {
        let aborts = |seed: u64| {
            let mut sim = Simulation::new(self.traffic(), Effect::None, seed);
            sim.advance(600.0, 0.0);
            let mut state = SequentialState::default();
            judge.evaluate(&mut state, &observe(&sim, self.metric));
            (0..self.evaluations).any(|_| {
                sim.advance(EVALUATION_SECONDS, 0.9);
                judge.evaluate(&mut state, &observe(&sim, self.metric)) == Verdict::Regression
            })
        };
        (0..self.runs).filter(|seed| aborts(*seed)).count() as u64
    }

    /// The most false aborts a judge that keeps to `alpha` shows among these
    /// canaries, 999 times in 1000: the 99.9 % quantile of Binomial(runs, alpha).
    fn bound(&self, alpha: f64) -> u64 {
        Binomial::new(alpha, self.runs)
            .expect("alpha is a probability")
            .inverse_cdf(0.999)
    }
}

/// The judges under test: tolerance 0 and, for latency, the one edge at
/// stable's p90 (the default averages three edges' e-processes, which only
/// lowers the rate). Alpha is 0.2: the guarantee holds for every alpha, and
/// at 0.2 a few thousand canaries tell a judge that keeps to it from one
/// configured twice too lenient; at 0.05, where both stay well under alpha,
/// it would take tens of thousands.
///
/// Why 3,000 canaries (a binomial calculation): the bound for alpha 0.2 is
/// 669 (mean 600, sd 21.9, + 3.09 sd). A judge exactly at alpha exceeds it
/// with chance 0.001 by construction. On these canaries the judge at 0.2
/// aborts about 11 % (errors 322, latency 349 of 3,000), so it passes by
/// far; the judge at 0.4 aborts about 27 % (822 and 805): mean 810, sd 24.3,
/// so it stays within the bound with chance under 1e-7 (z = -5.8).
fn judge_under_test(metric: Metric, alpha: f64) -> SequentialJudge {
    let quantiles = match metric {
        Metric::Errors => SequentialJudge::default().quantiles,
        Metric::Latency => vec![0.9],
    };
    SequentialJudge {
        alpha,
        tolerance: 0.0,
        quantiles,
        ..SequentialJudge::default()
    }
}

const ALPHA: f64 = 0.2;

fn canaries(metric: Metric) -> AaCanaries {
    AaCanaries {
        metric,
        runs: 3000,
        evaluations: 100,
    }
}

/// The A/A canaries of `metric` under the judge at alpha abort no more
/// than alpha allows.
fn assert_false_aborts_within_alpha(metric: Metric) {
    let canaries = canaries(metric);
    let false_aborts = canaries.false_aborts(&judge_under_test(metric, ALPHA));
    let bound = canaries.bound(ALPHA);
    assert!(
        false_aborts <= bound,
        "{false_aborts} of {} identical canaries aborted (at most {bound} for alpha {ALPHA})",
        canaries.runs
    );
}

#[test]
fn aa_false_abort_rate_stays_under_alpha() {
    assert_false_aborts_within_alpha(Metric::Errors);
}

#[test]
fn aa_latency_false_abort_rate_stays_under_alpha() {
    assert_false_aborts_within_alpha(Metric::Latency);
}

#[test]
fn a_judge_twice_too_lenient_is_caught() {
    // The same canaries, judges configured with 2 × alpha, checked against
    // alpha: the A/A tests above would fail for them.
    for metric in [Metric::Errors, Metric::Latency] {
        let canaries = canaries(metric);
        let false_aborts = canaries.false_aborts(&judge_under_test(metric, 2.0 * ALPHA));
        let bound = canaries.bound(ALPHA);
        assert!(
            false_aborts > bound,
            "a judge at alpha {} aborted only {false_aborts} of {}, within the bound {bound} for {ALPHA}",
            2.0 * ALPHA,
            canaries.runs
        );
    }
}

#[test]
fn aborts_when_canary_error_rate_doubles() {
    let judge = SequentialJudge::default();
    let detected = (0..20)
        .filter(|seed| aborted(&monitor(&judge, Effect::ErrorRatio(2.0), Metric::Errors, 6.0, *seed)))
        .count();
    assert!(detected >= 18, "only {detected} of 20 doubled error rates aborted");
}

#[test]
fn aborts_when_canary_error_rate_jumps_tenfold_within_minutes() {
    let judge = SequentialJudge::default();
    for seed in 0..20 {
        let verdicts = monitor(&judge, Effect::ErrorRatio(10.0), Metric::Errors, 1.0, seed);
        assert!(
            aborted(&verdicts),
            "seed {seed}: a tenfold error rate was not aborted within an hour"
        );
    }
}

#[test]
fn aborts_when_only_the_latency_tail_slows_down() {
    let judge = SequentialJudge::default();
    let tail = Effect::slow_tail_for_p99(0.5, 3.0, 0.5);
    let detected = (0..20)
        .filter(|seed| aborted(&monitor(&judge, tail, Metric::Latency, 1.0, *seed)))
        .count();
    assert!(detected >= 18, "only {detected} of 20 slower tails aborted");
}

#[test]
fn never_promotes_without_data() {
    let judge = SequentialJudge::default();
    let mut sim = Simulation::new(
        Traffic {
            edges: Vec::new(),
            ..Traffic::default()
        },
        Effect::None,
        7,
    );
    let mut state = SequentialState::default();
    // The canary receives no traffic at all: inconclusive, every time.
    for _ in 0..200 {
        sim.advance(EVALUATION_SECONDS, 0.0);
        assert_eq!(judge.evaluate(&mut state, &sim.counts()), Verdict::Inconclusive);
    }
    // Traffic flows until the canary is shown non-inferior...
    let mut promoted = false;
    for _ in 0..20_000 {
        sim.advance(EVALUATION_SECONDS, 0.5);
        promoted = judge.evaluate(&mut state, &sim.counts()) == Verdict::NonInferior;
        if promoted {
            break;
        }
    }
    assert!(promoted, "a healthy canary was never shown non-inferior");
    // ...then the provider fails, or the counters stop moving: no pass.
    assert_eq!(judge.evaluate(&mut state, &Observation::Missing), Verdict::Inconclusive);
    let frozen = sim.counts();
    assert_eq!(judge.evaluate(&mut state, &frozen), Verdict::Inconclusive);
    assert_eq!(judge.evaluate(&mut state, &frozen), Verdict::Inconclusive);
}
