//! One canary rollout as each method runs it in production, from the
//! canary's first request to its own promotion, abort or pause. Nothing is
//! judged past a method's own decision.

use siskin::analysis::Verdict;
use siskin::analysis::judge::mann_whitney::Direction;
use siskin::analysis::judge::{
    Arms, Counts, Histogram, Judge, JudgeSpec, JudgeState, MannWhitneyJudge, MannWhitneyState, Observation,
    ThresholdJudge, ThresholdState,
};
use siskin::analysis::simulation::{Effect, Simulation, Traffic};

/// Canary weights of the steps; promotion is passing the last one.
pub const STEPS: [f64; 3] = [0.10, 0.25, 0.50];
/// Siskin's step holds, seconds.
pub const MIN_HOLD: f64 = 60.0;
pub const MAX_HOLD: f64 = 300.0;
/// Stable's history before the canary starts, seconds.
const WARM_UP: f64 = 600.0;
/// Siskin's evaluation interval while it measures, seconds.
const SISKIN_EVERY: f64 = siskin::plan::ANALYSIS_POLL.as_secs_f64();
/// How long the controller treats an inconclusive analysis as still
/// waiting, seconds.
const INCONCLUSIVE_GRACE: f64 = siskin::analysis::status::INCONCLUSIVE_GRACE.as_secs_f64();
/// Flagger's default `interval`, and Kayenta's one point per minute.
const MINUTE: f64 = 60.0;
/// No method runs this long; a safety net, counted as paused.
const LIMIT: f64 = 3600.0;

/// How a rollout ended, and when (seconds since the canary started).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Ending {
    Promoted(f64),
    Aborted(f64),
    /// The Rollout waits for a human at `step` (0 = the first). Siskin's
    /// status says "no conclusive analysis within the maximum hold", or,
    /// when `inconclusive`, that the analysis is inconclusive (no data).
    Paused {
        seconds: f64,
        step: usize,
        inconclusive: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// The shipped templates' sequential judges, combined as the controller
    /// combines them.
    Siskin,
    /// Flagger's loop with its default checks and `analysis.threshold`.
    Flagger { threshold: u32 },
    /// Kayenta's judgement against stable, or against a same-size baseline.
    Kayenta { baseline: bool },
}

impl Method {
    pub const ALL: [Method; 5] = [
        Method::Siskin,
        Method::Flagger { threshold: 1 },
        Method::Flagger { threshold: 5 },
        Method::Kayenta { baseline: false },
        Method::Kayenta { baseline: true },
    ];

    pub fn name(self) -> String {
        match self {
            Method::Siskin => "Siskin".into(),
            Method::Flagger { threshold } => format!("Flagger, threshold {threshold}"),
            Method::Kayenta { baseline: false } => "Kayenta vs stable".into(),
            Method::Kayenta { baseline: true } => "Kayenta vs baseline".into(),
        }
    }
}

/// Which observation a metric of a template reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reads {
    Counts,
    Histogram,
}

/// Every metric of the templates a Rollout references, each judge already
/// given its share of alpha.
pub type Judges = Vec<(JudgeSpec, Reads)>;

/// What a method does after a look at the metrics.
enum Decision {
    Wait,
    Advance,
    Abort,
    /// No conclusion within the maximum hold.
    Pause,
    /// An analysis without data past the grace.
    PauseInconclusive,
}

/// One method's side of the rollout: how often it looks, where traffic
/// goes at a step's weight, and what it decides.
trait Gate {
    fn interval(&self) -> f64;
    fn shares(&self, weight: f64) -> Arms<f64> {
        Arms {
            stable: 1.0 - weight,
            canary: weight,
        }
    }
    /// The canary's first moment: cumulative counters become the baseline.
    fn start(&mut self, sim: &Simulation);
    /// A look at the metrics, `held` seconds into the current step.
    fn decide(&mut self, sim: &Simulation, held: f64) -> Decision;
}

/// Runs one rollout of `method` on its own simulated traffic (the same
/// `seed` gives every method the same random stream).
pub fn run(method: Method, judges: &Judges, traffic: &Traffic, effect: Effect, seed: u64) -> Ending {
    let mut sim = Simulation::new(traffic.clone(), effect, seed);
    sim.advance(WARM_UP, 0.0);
    let mut gate: Box<dyn Gate> = match method {
        Method::Siskin => Box::new(Siskin::new(judges)),
        Method::Flagger { threshold } => Box::new(Flagger::new(threshold)),
        Method::Kayenta { baseline } => Box::new(Kayenta::new(baseline)),
    };
    gate.start(&sim);
    let (mut step, mut entered, mut now) = (0, 0.0, 0.0);
    loop {
        let every = gate.interval();
        sim.advance_shares(every, gate.shares(STEPS[step]));
        now += every;
        let paused = |inconclusive| Ending::Paused {
            seconds: now,
            step,
            inconclusive,
        };
        match gate.decide(&sim, now - entered) {
            Decision::Wait if now < LIMIT => {}
            Decision::Wait | Decision::Pause => return paused(false),
            Decision::PauseInconclusive => return paused(true),
            Decision::Abort => return Ending::Aborted(now),
            Decision::Advance => {
                step += 1;
                if step == STEPS.len() {
                    return Ending::Promoted(now);
                }
                entered = now;
            }
        }
    }
}

fn observe(sim: &Simulation, reads: Reads) -> Observation {
    match reads {
        Reads::Counts => sim.counts(),
        Reads::Histogram => sim.histograms(),
    }
}

/// The controller's analysis and step gate (src/controller/analysis.rs,
/// src/plan/progress.rs): a regression aborts at any time; after the
/// minimum hold `NonInferior` advances; at the maximum hold anything else
/// pauses, as does an analysis inconclusive for longer than the grace.
struct Siskin {
    metrics: Vec<(JudgeSpec, JudgeState, Reads)>,
    now: f64,
    inconclusive_since: Option<f64>,
}

impl Siskin {
    fn new(judges: &Judges) -> Siskin {
        let metrics = judges
            .iter()
            .map(|(judge, reads)| (judge.clone(), judge.initial_state(), *reads))
            .collect();
        Siskin {
            metrics,
            now: 0.0,
            inconclusive_since: None,
        }
    }

    fn verdict(&mut self, sim: &Simulation) -> Verdict {
        Verdict::combine(
            self.metrics
                .iter_mut()
                .map(|(judge, state, reads)| judge.evaluate(state, &observe(sim, *reads))),
        )
    }
}

impl Gate for Siskin {
    fn interval(&self) -> f64 {
        SISKIN_EVERY
    }

    fn start(&mut self, sim: &Simulation) {
        // The first reading only fixes the baseline (the controller reports
        // it as Continue).
        self.verdict(sim);
    }

    fn decide(&mut self, sim: &Simulation, held: f64) -> Decision {
        self.now += SISKIN_EVERY;
        let mut verdict = self.verdict(sim);
        if verdict == Verdict::Inconclusive {
            let since = *self.inconclusive_since.get_or_insert(self.now);
            if self.now - since < INCONCLUSIVE_GRACE {
                verdict = Verdict::Continue;
            }
        } else {
            self.inconclusive_since = None;
        }
        match verdict {
            Verdict::Regression => Decision::Abort,
            _ if held < MIN_HOLD => Decision::Wait,
            Verdict::NonInferior => Decision::Advance,
            Verdict::Inconclusive => Decision::PauseInconclusive,
            Verdict::Continue if held >= MAX_HOLD => Decision::Pause,
            Verdict::Continue => Decision::Wait,
        }
    }
}

/// Flagger's default analysis: every `interval` (1 min) its built-in checks
/// on the canary alone over the last minute, `request-success-rate >= 99`
/// and `request-duration` (p99 by `histogram_quantile`) `<= 500` ms. A
/// passing check moves to the next `stepWeights` entry and, at the last,
/// promotes; a failed one (no data fails too) adds to a counter that rolls
/// back at `threshold`.
struct Flagger {
    judge: ThresholdJudge,
    state: ThresholdState,
    last: Option<(Counts, Histogram)>,
}

impl Flagger {
    fn new(threshold: u32) -> Flagger {
        Flagger {
            judge: ThresholdJudge {
                min: Some(1.0),
                max: None,
                failure_limit: threshold,
            },
            state: ThresholdState::default(),
            last: None,
        }
    }

    fn canary(sim: &Simulation) -> (Counts, Histogram) {
        let (counts, histograms) = sim.cumulative();
        (counts.canary, histograms.canary.clone())
    }
}

impl Gate for Flagger {
    fn interval(&self) -> f64 {
        MINUTE
    }

    fn start(&mut self, sim: &Simulation) {
        self.last = Some(Flagger::canary(sim));
    }

    fn decide(&mut self, sim: &Simulation, _held: f64) -> Decision {
        let now = Flagger::canary(sim);
        let passed = self.last.replace(now.clone()).is_some_and(|(counts, histogram)| {
            let success = now.0.since(&counts).error_ratio().map(|e| 100.0 * (1.0 - e));
            let p99_ms = now
                .1
                .since(&histogram)
                .and_then(|h| h.quantile(0.99))
                .map(|s| 1000.0 * s);
            success.is_some_and(|s| s >= 99.0) && p99_ms.is_some_and(|p| p <= 500.0)
        });
        let check = Observation::Value(if passed { 1.0 } else { 0.0 });
        match self.judge.evaluate(&mut self.state, &check) {
            Verdict::Regression => Decision::Abort,
            Verdict::NonInferior => Decision::Advance,
            _ => Decision::Wait,
        }
    }
}

/// Kayenta's `NetflixACAJudge`: one value per minute per arm and metric
/// (the error ratio; the p99 of the minute's histogram), each metric its
/// own group, direction `increase`. Each step lasts one analysis interval
/// of 5 minutes and ends with a judgement over every minute since the
/// canary started: a score of 95 or more advances, 75 or less aborts (one
/// failing metric of two scores 50).
struct Kayenta {
    baseline: bool,
    errors: (MannWhitneyJudge, MannWhitneyState),
    latency: (MannWhitneyJudge, MannWhitneyState),
}

impl Kayenta {
    fn new(baseline: bool) -> Kayenta {
        let judge = MannWhitneyJudge {
            direction: Direction::Increase,
            max_points: 60,
            ..MannWhitneyJudge::default()
        };
        Kayenta {
            baseline,
            errors: (judge.clone(), MannWhitneyState::default()),
            latency: (judge, MannWhitneyState::default()),
        }
    }

    fn collect(&mut self, sim: &Simulation) {
        self.errors.0.record(&mut self.errors.1, &sim.counts());
        self.latency.0.record(&mut self.latency.1, &sim.histograms());
    }
}

impl Gate for Kayenta {
    fn interval(&self) -> f64 {
        MINUTE
    }

    fn shares(&self, weight: f64) -> Arms<f64> {
        Arms {
            stable: if self.baseline { weight } else { 1.0 - weight },
            canary: weight,
        }
    }

    fn start(&mut self, sim: &Simulation) {
        self.collect(sim);
    }

    fn decide(&mut self, sim: &Simulation, held: f64) -> Decision {
        self.collect(sim);
        if held < MAX_HOLD {
            return Decision::Wait;
        }
        let judgements = [&self.errors, &self.latency].map(|(judge, state)| judge.judge(state));
        match Verdict::combine(judgements) {
            Verdict::Regression => Decision::Abort,
            Verdict::NonInferior => Decision::Advance,
            Verdict::Continue => Decision::Pause,
            Verdict::Inconclusive => Decision::PauseInconclusive,
        }
    }
}

#[cfg(test)]
mod tests {
    use siskin::analysis::simulation::BucketLayout;

    use super::*;

    fn service(requests_per_second: f64, error_rate: f64) -> Traffic {
        Traffic::service(requests_per_second, error_rate, BucketLayout::Traefik)
    }

    fn judges() -> Judges {
        crate::shipped_judges().expect("the shipped templates deserialize")
    }

    #[test]
    fn the_shipped_templates_give_an_error_and_a_latency_judge_sharing_alpha() {
        let judges = judges();
        let reads: Vec<Reads> = judges.iter().map(|(_, reads)| *reads).collect();
        assert_eq!(reads, [Reads::Counts, Reads::Histogram]);
        for (judge, _) in &judges {
            let JudgeSpec::Sequential(judge) = judge else {
                panic!("the shipped templates use the sequential judge");
            };
            assert!((judge.alpha - 0.025).abs() < 1e-12);
        }
    }

    #[test]
    fn flagger_promotes_a_healthy_canary_after_one_passing_check_per_step() {
        let ending = run(
            Method::Flagger { threshold: 1 },
            &judges(),
            &service(100.0, 0.0),
            Effect::None,
            1,
        );
        assert_eq!(ending, Ending::Promoted(3.0 * MINUTE));
    }

    #[test]
    fn flagger_rolls_back_at_its_threshold_of_failed_checks() {
        let failing = Effect::ErrorRatio(50.0); // 5 % errors: every check fails
        let traffic = service(100.0, 0.001);
        for threshold in [1, 5] {
            let ending = run(Method::Flagger { threshold }, &judges(), &traffic, failing, 1);
            assert_eq!(ending, Ending::Aborted(f64::from(threshold) * MINUTE));
        }
    }

    #[test]
    fn siskin_holds_each_step_at_least_its_minimum() {
        // Plenty of errors in stable: non-inferiority comes within seconds,
        // and each step still waits its minute.
        let ending = run(Method::Siskin, &judges(), &service(500.0, 0.01), Effect::None, 1);
        let Ending::Promoted(seconds) = ending else {
            panic!("a healthy canary at 1 % errors and 500 req/s was not promoted: {ending:?}");
        };
        assert!(seconds >= STEPS.len() as f64 * MIN_HOLD, "{seconds}");
    }

    #[test]
    fn siskin_pauses_without_a_conclusion_at_the_maximum_hold() {
        // No errors at all: nothing tells the canary non-inferior.
        let ending = run(Method::Siskin, &judges(), &service(20.0, 0.0), Effect::None, 1);
        let paused = Ending::Paused {
            seconds: MAX_HOLD,
            step: 0,
            inconclusive: false,
        };
        assert_eq!(ending, paused);
    }

    #[test]
    fn siskin_aborts_a_regression_before_the_minimum_hold() {
        let ending = run(
            Method::Siskin,
            &judges(),
            &service(500.0, 0.001),
            Effect::ErrorRatio(20.0),
            1,
        );
        assert!(
            matches!(ending, Ending::Aborted(seconds) if seconds < MIN_HOLD),
            "{ending:?}"
        );
    }

    #[test]
    fn kayenta_judges_once_per_five_minute_step() {
        for baseline in [false, true] {
            let ending = run(
                Method::Kayenta { baseline },
                &judges(),
                &service(100.0, 0.001),
                Effect::None,
                1,
            );
            assert_eq!(ending, Ending::Promoted(STEPS.len() as f64 * MAX_HOLD));
        }
    }
}
