//! The sequential judge's guarantees, checked on simulated traffic with fixed
//! seeds (deterministic). Small on purpose; the benchmark binary
//! `siskin-bench-judges` runs thousands of replications.

use siskin::analysis::Verdict;
use siskin::analysis::judge::{Judge, Observation, SequentialJudge, SequentialState};
use siskin::analysis::simulation::{Effect, Simulation, Traffic};

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

#[test]
fn aa_false_abort_rate_stays_under_alpha() {
    // 200 identical canaries watched every 15 s for 3 h through diurnal swings
    // of the error rate and a changing share. A judge that tested repeatedly
    // at a fixed level would abort far more often than alpha (5 %).
    let judge = SequentialJudge::default();
    let runs = 200;
    let false_aborts = (0..runs)
        .filter(|seed| aborted(&monitor(&judge, Effect::None, Metric::Errors, 3.0, *seed)))
        .count();
    assert!(
        false_aborts as f64 <= judge.alpha * runs as f64,
        "{false_aborts} of {runs} A/A canaries aborted"
    );
}

#[test]
fn aa_latency_false_abort_rate_stays_under_alpha() {
    // Tolerance 0 makes every edge test exact, and the most exposed to noise.
    let judge = SequentialJudge {
        tolerance: 0.0,
        ..SequentialJudge::default()
    };
    let runs = 100;
    let seeds = 1000..1000 + runs;
    let false_aborts = seeds
        .filter(|seed| aborted(&monitor(&judge, Effect::None, Metric::Latency, 1.0, *seed)))
        .count();
    assert!(
        false_aborts as f64 <= judge.alpha * runs as f64,
        "{false_aborts} of {runs} A/A canaries aborted"
    );
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
