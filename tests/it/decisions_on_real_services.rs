//! What the shipped templates decide on the traffic most services have:
//! 100 req/s, 0–0.1 % errors, 20 ms median and 80 ms p99, Traefik's
//! buckets as the sandbox configures them. A canary goes through steps of
//! 20 % and 50 % held at least 1 minute and at most 4, judged every 10 s by
//! both shipped Traefik metrics together, as the controller judges them.
//! Offline and fast: the judges are pure.

use serde::Deserialize;
use siskin::analysis::Verdict;
use siskin::analysis::judge::JudgeSpec;
use siskin::analysis::simulation::{Diurnal, Effect, Simulation, Traffic};
use siskin::api::ClusterAnalysisTemplate;

/// Traefik's buckets as tests/sandbox/up.sh configures them.
const TRAEFIK_BUCKETS: [f64; 18] = [
    0.002, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.5, 5.0,
];

const EVALUATION: f64 = 10.0;
const STEPS: [f64; 2] = [0.2, 0.5];
const HOLD: (f64, f64) = (60.0, 240.0);

#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    Promoted(f64),
    Aborted(f64),
    Paused(f64),
}

/// The shipped Traefik metrics' judges, alpha split between them as the
/// controller splits it.
fn shipped_judges() -> Vec<(String, JudgeSpec)> {
    let file = include_str!("../../analysis-templates/traefik-gateway-api.yaml");
    let metrics: Vec<_> = serde_yaml::Deserializer::from_str(file)
        .map(|doc| ClusterAnalysisTemplate::deserialize(doc).expect("a shipped template deserializes"))
        .flat_map(|t| t.spec.template.metrics)
        .collect();
    let count = metrics.len();
    metrics
        .into_iter()
        .map(|m| (m.name.clone(), m.judge.split_alpha(count)))
        .collect()
}

fn traffic(error_rate: f64) -> Traffic {
    Traffic {
        requests_per_second: 100.0,
        error_rate,
        latency_median: 0.02,
        // p99 80 ms: ln(4) / Φ⁻¹(0.99).
        latency_sigma: 4f64.ln() / 2.326_347_874,
        diurnal: Diurnal {
            volume: 0.0,
            error_rate: 0.0,
            latency: 0.0,
            period_seconds: 86_400.0,
        },
        edges: TRAEFIK_BUCKETS.to_vec(),
    }
}

/// One canary through the steps, decided as the step engine decides.
fn roll_out(traffic: Traffic, effect: Effect, seed: u64) -> Outcome {
    let judges = shipped_judges();
    let mut states: Vec<_> = judges.iter().map(|(_, j)| j.initial_state()).collect();
    let mut sim = Simulation::new(traffic, effect, seed);
    // Stable has served two minutes before the canary exists: little
    // history, as in a freshly started sandbox; a real service has more.
    sim.advance(120.0, 0.0);
    let mut evaluate = |sim: &Simulation| {
        let verdicts: Vec<Verdict> = judges
            .iter()
            .zip(states.iter_mut())
            .map(|((name, judge), state)| {
                let observation = if name == "latency" {
                    sim.histograms()
                } else {
                    sim.counts()
                };
                judge.evaluate(state, &observation)
            })
            .collect();
        Verdict::combine(verdicts)
    };
    evaluate(&sim);
    let start = sim.seconds();
    for share in STEPS {
        let step_start = sim.seconds();
        loop {
            sim.advance(EVALUATION, share);
            let verdict = evaluate(&sim);
            let held = sim.seconds() - step_start;
            match verdict {
                Verdict::Regression => return Outcome::Aborted(sim.seconds() - start),
                Verdict::NonInferior if held >= HOLD.0 => break,
                _ if held >= HOLD.1 => return Outcome::Paused(sim.seconds() - start),
                _ => {}
            }
        }
    }
    Outcome::Promoted(sim.seconds() - start)
}

struct Tally {
    promoted: usize,
    aborted: usize,
    paused: usize,
    runs: usize,
}

impl Tally {
    fn assert_promoted_at_least(&self, share: f64) {
        let (promoted, runs) = (self.promoted, self.runs);
        assert!(promoted as f64 >= share * runs as f64, "promoted {promoted} of {runs}");
    }

    fn assert_aborted_at_least(&self, share: f64) {
        let (aborted, runs) = (self.aborted, self.runs);
        assert!(aborted as f64 >= share * runs as f64, "aborted {aborted} of {runs}");
    }
}

fn tally(error_rate: f64, effect: Effect, runs: u64) -> Tally {
    let outcomes: Vec<Outcome> = (0..runs)
        .map(|seed| roll_out(traffic(error_rate), effect, seed))
        .collect();
    let count = |f: fn(&Outcome) -> bool| outcomes.iter().filter(|o| f(o)).count();
    let t = Tally {
        promoted: count(|o| matches!(o, Outcome::Promoted(_))),
        aborted: count(|o| matches!(o, Outcome::Aborted(_))),
        paused: count(|o| matches!(o, Outcome::Paused(_))),
        runs: outcomes.len(),
    };
    println!(
        "errors {:.2} %, {effect:?}: promoted {}, aborted {}, paused {} of {}",
        100.0 * error_rate,
        t.promoted,
        t.aborted,
        t.paused,
        t.runs
    );
    t
}

const RUNS: u64 = 100;

#[test]
fn a_healthy_canary_at_a_tenth_of_a_percent_errors_is_promoted_within_the_holds() {
    let t = tally(0.001, Effect::None, RUNS);
    t.assert_promoted_at_least(0.9);
    assert!(t.aborted <= 5, "aborted {}", t.aborted);
}

#[test]
fn a_healthy_canary_with_no_errors_at_all_is_promoted_within_the_holds() {
    let t = tally(0.0, Effect::None, RUNS);
    t.assert_promoted_at_least(0.9);
}

/// Regressions the templates must catch: against a stable at 0.1 % errors,
/// nearly every run of a canary with each effect aborts. One test each.
macro_rules! regressions_abort {
    ($($(#[$doc:meta])* $name:ident: $effect:expr;)*) => {$(
        $(#[$doc])*
        #[test]
        fn $name() {
            tally(0.001, $effect, RUNS).assert_aborted_at_least(0.95);
        }
    )*};
}

regressions_abort! {
    errors_going_from_a_tenth_of_a_percent_to_one_percent_abort: Effect::ErrorRatio(10.0);
    /// 0.1 % → 0.6 %: the smallest error regression the templates must catch.
    errors_half_a_point_above_stable_abort: Effect::ErrorRatio(6.0);
    a_canary_twenty_percent_slower_aborts: Effect::LatencyScale(1.2);
    a_canary_fifty_percent_slower_aborts: Effect::LatencyScale(1.5);
}
