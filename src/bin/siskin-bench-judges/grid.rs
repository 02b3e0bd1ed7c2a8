//! The services and regressions of the benchmark, every method run on each
//! in parallel, and the tables printed from them.

use std::collections::HashMap;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use siskin::analysis::simulation::{BucketLayout, Effect, Traffic};

use crate::rollout::{self, Ending, Judges, Method};

/// A service the canary runs in: stable's error rate, its traffic and the
/// buckets its latency is published in.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Service {
    pub error_rate: f64,
    pub requests_per_second: f64,
    pub layout: BucketLayout,
}

impl Service {
    fn traffic(self) -> Traffic {
        Traffic::service(self.requests_per_second, self.error_rate, self.layout)
    }
}

/// What the canary changes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Change {
    Healthy,
    /// Errors at twice stable's rate or +0.5 percentage points, the larger.
    Errors,
    /// Errors 0.1 % → 1 %, where stable errs 0.1 %.
    ErrorsTenfold,
    /// Every latency this many times slower.
    Slower(f64),
    /// p99 this many times slower, the rest unchanged (a slow path taken by
    /// a few requests, three times slower).
    SlowerTail(f64),
}

impl Change {
    pub fn name(self) -> String {
        match self {
            Change::Healthy => "healthy".into(),
            Change::Errors => "errors 2× or +0.5 pp".into(),
            Change::ErrorsTenfold => "errors 0.1 % → 1 %".into(),
            Change::Slower(factor) => format!("latency ×{factor}"),
            Change::SlowerTail(factor) => format!("p99 ×{factor} (tail only)"),
        }
    }

    pub fn applies(self, service: Service) -> bool {
        self != Change::ErrorsTenfold || service.error_rate == 0.001
    }

    fn effect(self, traffic: &Traffic) -> Effect {
        match self {
            Change::Healthy => Effect::None,
            Change::Errors => Effect::Errors {
                ratio: 2.0,
                increase: 0.005,
            },
            Change::ErrorsTenfold => Effect::ErrorRatio(10.0),
            Change::Slower(factor) => Effect::LatencyScale(factor),
            Change::SlowerTail(factor) => Effect::slow_tail_for_p99(factor - 1.0, 3.0, traffic.latency_sigma),
        }
    }
}

/// How the rollouts of one method on one service and change ended.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub runs: usize,
    pub aborted: usize,
    /// Pauses per step: at the maximum hold, and inconclusive.
    pub paused: [[usize; 2]; rollout::STEPS.len()],
    /// Seconds to promotion, one per promoted rollout.
    pub promoted: Vec<f64>,
}

impl Summary {
    fn add(&mut self, ending: Ending) {
        self.runs += 1;
        match ending {
            Ending::Promoted(seconds) => self.promoted.push(seconds),
            Ending::Aborted(_) => self.aborted += 1,
            Ending::Paused { step, inconclusive, .. } => self.paused[step][usize::from(inconclusive)] += 1,
        }
    }

    fn share(&self, k: usize) -> f64 {
        100.0 * k as f64 / self.runs.max(1) as f64
    }

    pub fn promoted_share(&self) -> f64 {
        self.share(self.promoted.len())
    }

    pub fn aborted_share(&self) -> f64 {
        self.share(self.aborted)
    }

    fn merge(&mut self, other: &Summary) {
        self.runs += other.runs;
        self.aborted += other.aborted;
        self.promoted.extend(&other.promoted);
        for (mine, theirs) in self.paused.iter_mut().zip(other.paused) {
            mine[0] += theirs[0];
            mine[1] += theirs[1];
        }
    }

    pub fn median_minutes_to_promote(&self) -> Option<f64> {
        let mut seconds = self.promoted.clone();
        seconds.sort_by(f64::total_cmp);
        seconds.get(seconds.len().checked_sub(1)? / 2).map(|s| s / 60.0)
    }
}

/// Runs cases on demand and remembers their summaries.
pub struct Bench {
    judges: Judges,
    replications: usize,
    seed: u64,
    done: HashMap<String, Summary>,
}

/// A well-mixed seed from anything hashable into a string.
fn seed_of(label: &str, seed: u64, replication: usize) -> u64 {
    // FNV-1a: stable across platforms and Rust versions.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
    for byte in label.bytes() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    SmallRng::seed_from_u64(hash ^ replication as u64).random()
}

impl Bench {
    pub fn new(judges: Judges, replications: usize, seed: u64) -> Bench {
        Bench {
            judges,
            replications,
            seed,
            done: HashMap::new(),
        }
    }

    /// Every method meets the same traffic in replication `r`: the seed
    /// depends on the service, the change and `r`, not on the method.
    pub fn summary(&mut self, service: Service, change: Change, method: Method) -> &Summary {
        let label = format!("{service:?} {change:?}");
        let key = format!("{label} {method:?}");
        if !self.done.contains_key(&key) {
            let summary = self.run(service, change, method, &label);
            self.done.insert(key.clone(), summary);
        }
        &self.done[&key]
    }

    fn run(&self, service: Service, change: Change, method: Method, label: &str) -> Summary {
        let traffic = service.traffic();
        let effect = change.effect(&traffic);
        let endings = crate::on_all_cores(self.replications, |r| {
            rollout::run(method, &self.judges, &traffic, effect, seed_of(label, self.seed, r))
        });
        let mut summary = Summary::default();
        endings.into_iter().for_each(|e| summary.add(e));
        summary
    }

    /// Siskin's rollouts over `rows` with `change`, pooled.
    pub fn siskin_pooled(&mut self, rows: &[(String, Service)], change: Change) -> Summary {
        let mut pooled = Summary::default();
        for (_, service) in rows.iter().filter(|(_, s)| change.applies(*s)) {
            pooled.merge(self.summary(*service, change, Method::Siskin));
        }
        pooled
    }

    /// The rows where Siskin aborted fewer than 95 % of `change`.
    pub fn siskin_misses(&mut self, rows: &[(String, Service)], change: Change) -> Vec<String> {
        let mut misses = Vec::new();
        for (label, service) in rows.iter().filter(|(_, s)| change.applies(*s)) {
            let summary = self.summary(*service, change, Method::Siskin);
            if summary.aborted_share() < 95.0 {
                misses.push(format!("{label} ({})", percent(summary.aborted_share())));
            }
        }
        misses
    }

    /// One table: a row per service, a column per method.
    pub fn table(&mut self, rows: &[(String, Service)], change: Change) {
        let methods = Method::ALL;
        let names: Vec<String> = methods.iter().map(|m| m.name()).collect();
        println!("| service | {} |", names.join(" | "));
        println!("|---|{}", "---|".repeat(methods.len()));
        for (label, service) in rows {
            if !change.applies(*service) {
                continue;
            }
            let cells: Vec<String> = methods
                .iter()
                .map(|method| cell(self.summary(*service, change, *method), change))
                .collect();
            println!("| {label} | {} |", cells.join(" | "));
        }
        println!();
    }
}

/// A share in percent; never rounded onto 0 or 100 when it is not.
pub fn percent(share: f64) -> String {
    let shown = format!("{share:.1}");
    match share {
        0.0 | 100.0 => format!("{share:.0} %"),
        _ if shown == "0.0" => "< 0.1 %".into(),
        _ if shown == "100.0" => "> 99.9 %".into(),
        _ => format!("{shown} %"),
    }
}

/// Healthy: promoted · median time to promote · falsely aborted.
/// Regression: aborted · shipped. The rest paused.
fn cell(summary: &Summary, change: Change) -> String {
    if change == Change::Healthy {
        let median = summary
            .median_minutes_to_promote()
            .map_or("–".into(), |m| format!("{m:.1} min"));
        format!(
            "{} · {median} · {}",
            percent(summary.promoted_share()),
            percent(summary.aborted_share())
        )
    } else {
        format!(
            "{} · {}",
            percent(summary.aborted_share()),
            percent(summary.promoted_share())
        )
    }
}
