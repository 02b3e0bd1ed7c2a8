//! Siskin's default sequential judge alone under 12 h of continuous
//! monitoring, against two-arm SPRT oracles that know the true effect: one
//! testing the null Siskin tests (the canary's error rate at most
//! `1 + tolerance` times stable's), so that the gap is the price of not
//! knowing the effect, and one testing equality. It measures the judge, not
//! a rollout: in production a step ends at the judge's first decision (see
//! `rollout.rs`). Prints Markdown.
//!
//! Traffic: 100 req/s whose volume (±50 %), stable error rate (±80 %) and
//! latency (±10 %) swing together on a daily cycle with a random phase;
//! lognormal latency (median 100 ms, log-sd 0.5) in buckets growing by 10 %.
//! Siskin evaluates every 15 s.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use siskin::analysis::Verdict;
use siskin::analysis::judge::{Judge, SequentialJudge, SequentialState};
use siskin::analysis::simulation::{Effect, Simulation, Traffic};

const ALPHA: f64 = 0.05;
const TICK: f64 = 15.0; // Siskin's evaluation interval, seconds
const WARM_UP: f64 = 600.0; // stable's history before the canary starts

#[derive(Clone, Copy, PartialEq)]
enum Metrics {
    Errors,
    Latency,
    Both,
}

#[derive(Clone, Copy)]
enum Share {
    Fixed(f64),
    /// 5 → 10 → 25 → 50 % over equal quarters of the horizon.
    Steps,
}

#[derive(Clone)]
struct Scenario {
    traffic: Traffic,
    effect: Effect,
    share: Share,
    metrics: Metrics,
    horizon: f64,
    /// Stop at the first promotion instead of monitoring to the horizon.
    until_promotion: bool,
}

const METHODS: usize = 3;
const SISKIN: usize = 0;
/// The SPRT oracle for Siskin's own null: error ratio `1 + tolerance`.
const ORACLE: usize = 1;
/// The SPRT oracle for equality (error ratio 1).
const ORACLE_EQUALITY: usize = 2;

/// Requests (both arms) at each method's first abort and first promotion.
#[derive(Clone, Default)]
struct Outcome {
    abort: [Option<f64>; METHODS],
    promote: [Option<f64>; METHODS],
}

/// Siskin's judges for one run: one per metric, alpha split between them.
struct Siskin {
    errors: Option<(SequentialJudge, SequentialState)>,
    latency: Option<(SequentialJudge, SequentialState)>,
}

impl Siskin {
    fn new(metrics: Metrics) -> Siskin {
        let split = if metrics == Metrics::Both { 2 } else { 1 };
        let errors = SequentialJudge::default().split_alpha(split);
        // Latency is judged with tolerance 0 here, so that ×1.1 is a regression
        // rather than exactly the (default) tolerance.
        let latency = SequentialJudge {
            tolerance: 0.0,
            ..SequentialJudge::default()
        }
        .split_alpha(split);
        Siskin {
            errors: (metrics != Metrics::Latency).then(|| (errors, SequentialState::default())),
            latency: (metrics != Metrics::Errors).then(|| (latency, SequentialState::default())),
        }
    }

    fn evaluate(&mut self, sim: &Simulation) -> Verdict {
        let mut verdicts = Vec::new();
        if let Some((judge, state)) = &mut self.errors {
            verdicts.push(judge.evaluate(state, &sim.counts()));
        }
        if let Some((judge, state)) = &mut self.latency {
            verdicts.push(judge.evaluate(state, &sim.histograms()));
        }
        Verdict::combine(verdicts)
    }
}

fn share_at(share: Share, seconds: f64, horizon: f64) -> f64 {
    match share {
        Share::Fixed(share) => share,
        Share::Steps => [0.05, 0.10, 0.25, 0.50][((4.0 * seconds / horizon) as usize).min(3)],
    }
}

fn run_one(scenario: &Scenario, seed: u64) -> Outcome {
    let mut sim = Simulation::new(scenario.traffic.clone(), scenario.effect, seed);
    sim.advance(WARM_UP, 0.0);
    let metrics = scenario.metrics;
    let mut siskin = Siskin::new(metrics);
    siskin.evaluate(&sim);
    let mut outcome = Outcome::default();
    let (mut requests, mut oracle_llr) = (0.0, [0.0; METHODS]);
    // Siskin's error judge tests a ratio of 1 + tolerance; latency is judged
    // with tolerance 0 here, so its null is equality for both oracles.
    let null_error_ratio = 1.0 + SequentialJudge::default().tolerance;
    let ticks = (scenario.horizon / TICK) as usize;
    for tick in 1..=ticks {
        let share = share_at(scenario.share, tick as f64 * TICK, scenario.horizon);
        let window = sim.advance(TICK, share);
        requests += window.requests.canary + window.requests.stable;
        let mut verdicts = [Verdict::Continue; METHODS];
        verdicts[SISKIN] = siskin.evaluate(&sim);
        if scenario.effect != Effect::None {
            for (oracle, null) in [(ORACLE, null_error_ratio), (ORACLE_EQUALITY, 1.0)] {
                oracle_llr[oracle] +=
                    window.oracle_log_likelihood_ratio(metrics != Metrics::Latency, metrics != Metrics::Errors, null);
                if oracle_llr[oracle] >= (1.0 / ALPHA).ln() {
                    verdicts[oracle] = Verdict::Regression;
                }
            }
        }
        for (method, verdict) in verdicts.iter().enumerate() {
            let first = |slot: &mut Option<f64>| *slot = slot.or(Some(requests));
            match verdict {
                Verdict::Regression => first(&mut outcome.abort[method]),
                Verdict::NonInferior => first(&mut outcome.promote[method]),
                _ => {}
            }
        }
        let decided =
            |m: usize| outcome.abort[m].is_some() || (scenario.until_promotion && outcome.promote[m].is_some());
        let methods = if scenario.effect == Effect::None { 1 } else { METHODS };
        if (0..methods).all(decided) {
            break;
        }
    }
    outcome
}

/// A well-mixed seed per (benchmark seed, scenario, replication).
fn replication_seed(seed: u64, scenario: usize, replication: usize) -> u64 {
    let mut rng = SmallRng::seed_from_u64(seed ^ ((scenario as u64) << 32) ^ replication as u64);
    rng.random()
}

fn run_all(scenario: &Scenario, id: usize, replications: usize, seed: u64) -> Vec<Outcome> {
    crate::on_all_cores(replications, |r| run_one(scenario, replication_seed(seed, id, r)))
}

/// Wilson 95 % interval for `k` of `n`.
fn wilson(k: usize, n: usize) -> (f64, f64) {
    let (k, n, z) = (k as f64, n as f64, 1.959_964);
    let p = k / n;
    let centre = (p + z * z / (2.0 * n)) / (1.0 + z * z / n);
    let half = z / (1.0 + z * z / n) * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt();
    (centre - half, centre + half)
}

fn rate(outcomes: &[Outcome], method: usize) -> String {
    let k = outcomes.iter().filter(|o| o.abort[method].is_some()).count();
    let (lo, hi) = wilson(k, outcomes.len());
    format!(
        "{:.2} % [{:.2}, {:.2}]",
        100.0 * k as f64 / outcomes.len() as f64,
        100.0 * lo,
        100.0 * hi
    )
}

/// Median and p90 of requests to an event, counting runs without it as never.
fn quantiles(mut values: Vec<Option<f64>>) -> (Option<f64>, Option<f64>, f64) {
    let n = values.len();
    let reached = values.iter().filter(|v| v.is_some()).count() as f64 / n.max(1) as f64;
    values.sort_by(|a, b| a.unwrap_or(f64::INFINITY).total_cmp(&b.unwrap_or(f64::INFINITY)));
    let at = |q: f64| {
        values
            .get(((q * n as f64).ceil() as usize).saturating_sub(1))
            .copied()
            .flatten()
    };
    (at(0.5), at(0.9), reached)
}

fn requests(value: Option<f64>) -> String {
    match value {
        Some(v) if v >= 1e6 => format!("{:.2}M", v / 1e6),
        Some(v) if v >= 1e3 => format!("{:.1}k", v / 1e3),
        Some(v) => format!("{v:.0}"),
        None => "never".into(),
    }
}

fn summary(values: Vec<Option<f64>>) -> String {
    let (median, p90, reached) = quantiles(values);
    format!("{} / {} ({:.0} %)", requests(median), requests(p90), 100.0 * reached)
}

/// The scenarios of the study and what they share.
struct Study {
    base: Scenario,
    errors_only: Traffic,
    /// Latency regressions show within a few hundred requests: at 20 req/s
    /// one evaluation is 300 requests, fine enough to resolve them.
    slow_traffic: Traffic,
    replications: usize,
    per_effect: usize,
    seed: u64,
    /// The last scenario id handed out; ids seed the replications.
    id: usize,
}

impl Study {
    fn next(&mut self) -> usize {
        self.id += 1;
        self.id
    }

    fn aa_table(&mut self) {
        println!("### A/A false-abort rate under continuous monitoring (95 % Wilson interval)\n");
        println!("Canary share 5 → 10 → 25 → 50 %, diurnal swings; Siskin splits α between metrics.\n");
        println!("| judge | errors (stable 0.1 %) | latency | errors + latency | errors (stable 0.8 %) |");
        println!("|---|---|---|---|---|");
        let base = &self.base;
        let scenarios = [
            Scenario {
                metrics: Metrics::Errors,
                traffic: self.errors_only.clone(),
                ..base.clone()
            },
            Scenario {
                metrics: Metrics::Latency,
                ..base.clone()
            },
            base.clone(),
            Scenario {
                metrics: Metrics::Errors,
                traffic: Traffic {
                    error_rate: 0.008,
                    ..self.errors_only.clone()
                },
                ..base.clone()
            },
        ];
        let cells: Vec<String> = scenarios
            .iter()
            .map(|s| rate(&run_all(s, self.next(), self.replications, self.seed), SISKIN))
            .collect();
        println!("| Siskin sequential | {} |", cells.join(" | "));
    }

    fn abort_table(&mut self) {
        println!("\n### Requests to abort a regression: median / p90 (share of runs aborted)\n");
        println!("Both arms' requests from the canary's start; ratio = Siskin median / oracle median.");
        println!("Oracles: power-one SPRTs (threshold ln 1/α) that know the true effect. \"Same null\" tests");
        println!("the null Siskin tests (error ratio 1 + tolerance = 1.1; latency tolerance 0 here, so equality);");
        println!("\"equality\" tests error ratio 1.");
        println!("Error scenarios at 100 req/s, latency scenarios at 20 req/s (one evaluation = 300 requests).\n");
        println!("| regression | share | Siskin | oracle, same null | ratio | oracle, equality | ratio |");
        println!("|---|---|---|---|---|---|---|");
        let effects = [
            ("errors 0.1 → 0.2 %", Effect::ErrorRatio(2.0), Metrics::Errors),
            ("errors 0.1 → 0.5 %", Effect::ErrorRatio(5.0), Metrics::Errors),
            ("errors 0.1 → 1 %", Effect::ErrorRatio(10.0), Metrics::Errors),
            ("latency ×1.1", Effect::LatencyScale(1.1), Metrics::Latency),
            ("latency ×1.25", Effect::LatencyScale(1.25), Metrics::Latency),
            ("latency ×1.5", Effect::LatencyScale(1.5), Metrics::Latency),
            (
                "p99 +25 % (tail only)",
                Effect::slow_tail_for_p99(0.25, 3.0, 0.5),
                Metrics::Latency,
            ),
        ];
        for (name, effect, metrics) in effects {
            for share in [0.05, 0.5] {
                let traffic = if metrics == Metrics::Errors {
                    self.errors_only.clone()
                } else {
                    self.slow_traffic.clone()
                };
                let scenario = Scenario {
                    traffic,
                    effect,
                    share: Share::Fixed(share),
                    metrics,
                    ..self.base.clone()
                };
                let outcomes = run_all(&scenario, self.next(), self.per_effect, self.seed);
                let column = |m: usize| outcomes.iter().map(|o| o.abort[m]).collect::<Vec<_>>();
                let ratio = |oracle: usize| match (quantiles(column(SISKIN)).0, quantiles(column(oracle)).0) {
                    (Some(s), Some(o)) => format!("{:.2}", s / o),
                    _ => "–".into(),
                };
                println!(
                    "| {name} | {:.0} % | {} | {} | {} | {} | {} |",
                    100.0 * share,
                    summary(column(SISKIN)),
                    summary(column(ORACLE)),
                    ratio(ORACLE),
                    summary(column(ORACLE_EQUALITY)),
                    ratio(ORACLE_EQUALITY)
                );
            }
        }
    }

    fn promote_table(&self) {
        println!("\n### Requests to promote a healthy canary: median / p90 (share of runs promoted)\n");
        println!("Siskin needs evidence of non-inferiority (margin 0.5).\n");
        println!("| share | Siskin errors | Siskin latency |");
        println!("|---|---|---|");
        for share in [0.05, 0.5] {
            let promote = |metrics, traffic: Traffic| {
                let scenario = Scenario {
                    traffic,
                    share: Share::Fixed(share),
                    metrics,
                    until_promotion: true,
                    ..self.base.clone()
                };
                let id = 1000 + (share * 100.0) as usize + metrics as usize;
                run_all(&scenario, id, self.per_effect, self.seed)
            };
            let errors = promote(Metrics::Errors, self.errors_only.clone());
            let latency = promote(Metrics::Latency, Traffic::default());
            let column = |o: &[Outcome], m: usize| o.iter().map(|o| o.promote[m]).collect::<Vec<_>>();
            println!(
                "| {:.0} % | {} | {} |",
                100.0 * share,
                summary(column(&errors, SISKIN)),
                summary(column(&latency, SISKIN))
            );
        }
    }
}

/// The whole study: `replications` A/A runs, a quarter as many per effect.
pub fn run(replications: usize, seed: u64, quick: bool) {
    let (replications, horizon) = if quick {
        (200, 3.0 * 3600.0)
    } else {
        (replications.max(1), 12.0 * 3600.0)
    };
    let started = std::time::Instant::now();
    let mut study = Study {
        base: Scenario {
            traffic: Traffic::default(),
            effect: Effect::None,
            share: Share::Steps,
            metrics: Metrics::Both,
            horizon,
            until_promotion: false,
        },
        errors_only: Traffic {
            edges: Vec::new(),
            ..Traffic::default()
        },
        slow_traffic: Traffic {
            requests_per_second: 20.0,
            ..Traffic::default()
        },
        replications,
        per_effect: (replications / 4).max(1),
        seed,
        id: 0,
    };
    println!("## The judge under continuous monitoring\n");
    println!(
        "α = {ALPHA}; {replications} A/A replications, {} per effect; horizon {:.0} h of traffic \
         (~{:.1}M requests); seed {seed}.\n",
        study.per_effect,
        horizon / 3600.0,
        horizon * 100.0 / 1e6,
    );
    study.aa_table();
    study.abort_table();
    study.promote_table();
    println!();
    crate::print_reproduction(started, "--continuous ", quick, replications, seed);
}
