//! Siskin's default judge: anytime-valid e-processes on counts, canary vs stable.
//!
//! Error rates: given that an error happened in an evaluation window, it came
//! from the canary with probability `θ = rρ / (rρ + 1 − ρ)`, where `ρ` is the
//! canary's observed share of requests in that window and `r` the ratio of
//! the two arms' error rates. The base error rate cancels out, so diurnal
//! swings, load spikes and traffic-share changes between steps do not matter.
//! For `H0: r ≤ 1 + tolerance` we mix likelihood ratios over a grid of
//! alternatives `r > 1 + tolerance` with weights fixed in advance (see
//! `eprocess.rs`); each is a non-negative supermartingale under `H0`, and so
//! is their weighted average (the e-process). Ville's inequality bounds the chance that it *ever* reaches
//! `1 / alpha`, however often it is looked at. The mirror test of
//! `H0: r ≥ 1 + margin`, with alternatives below, gives non-inferiority.
//!
//! Latency: the same test on tail exceedances. At the first reading we fix
//! edges at stable's p50/p90/p99 buckets (`y`) and compare stable's requests
//! above `y` with the canary's above the first bucket `≥ (1 + tolerance)·y`.
//! If the canary is at most `1 + tolerance` times slower, its exceedance rate
//! there is no larger than stable's, and with a null ratio of exactly 1 the
//! conditional test is exact for Bernoulli requests (the hypergeometric is
//! dominated by the binomial in convex order), not a Poisson approximation.
//! The tolerance is thus a latency ratio, resolved to bucket precision. The
//! edges' regression e-processes are averaged (an average of e-processes is
//! an e-process, so no alpha is lost); non-inferiority needs every edge.
//!
//! The latency tolerance: stable's side of the regression test is read at
//! `edge / (1 + tolerance)`, between buckets where it falls between them
//! (spread evenly within the bucket, as `histogram_quantile` reads it), so a
//! 5 % tolerance means 5 % on any bucket layout, to within what the bucket
//! holding that point hides: exact at a bucket edge, and otherwise between
//! the counts above the bucket's two edges.
//!
//! Promotion on power (`detect`): a step may also advance while there is
//! no regression evidence once the traffic seen would have caught the
//! regression to catch with probability `detect.power` (see `power.rs`).
//!
//! Guarantees, under continuous monitoring:
//! - P(ever Regression | canary ≤ (1+tolerance)× stable in every window) ≤ alpha,
//!   checked by the A/A tests in tests/it/judge_simulation.rs, which a judge
//!   twice too lenient fails;
//! - P(ever NonInferior by the margin test | canary ≥ (1+margin)× stable) ≤ alpha;
//! - with `detect`, P(NonInferior on power | the canary is the regression
//!   to catch) ≤ 1 − power: the moment the power is reached depends on how
//!   many hits there were, not on how they split between the arms, and at
//!   that moment the test has crossed with at least that probability.
//!   Checked for the shipped templates on Traefik's buckets by
//!   tests/it/decisions_on_real_services.rs (0.1 → 0.6 % errors and latency
//!   ×1.2 are aborted in at least 95 % of rollouts) and across traffic and
//!   bucket layouts by the judge benchmark (docs/benchmarks.md).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Arms, InvalidJudge, Judge, Observation, Reading};
use crate::analysis::Verdict;
pub use crate::analysis::eprocess::EProcess;
use crate::analysis::eprocess::log_mean_exp;
use crate::analysis::power::{self, Scenario};

/// Configuration of the sequential judge for one metric.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct SequentialJudge {
    /// Bound on the chance of aborting a canary that is within the tolerance,
    /// and of passing one that is worse than the margin.
    pub alpha: f64,
    /// How much worse the canary may be before it is a regression: a ratio of
    /// error rates for counts, of latencies for histograms (0.1 = 10 % worse).
    pub tolerance: f64,
    /// How much worse the canary may be and still be called non-inferior.
    /// Larger than the tolerance because the evidence needed grows like
    /// `1 / ln²(1 + margin)`: at 0.1 % errors a margin of 0.1 needs millions
    /// of requests, 0.5 about a hundred thousand.
    pub margin: f64,
    /// Stable latency quantiles whose buckets become the compared edges.
    pub quantiles: Vec<f64>,
    /// Stable observations needed before latency edges are fixed.
    pub min_stable_samples: f64,
    /// The regression that must be caught, and how surely. With it a step
    /// may also advance once the traffic seen would have caught that
    /// regression with the stated power and there is no regression evidence,
    /// which concludes at real error rates (even at zero errors), where
    /// non-inferiority needs hundreds of thousands of requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detect: Option<Detect>,
}

/// The smallest regression a metric must catch, and with what probability.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct Detect {
    /// Errors: the canary's error rate as a multiple of stable's (2 = twice
    /// stable's). Latency: how many times slower (1.2 = 20 % slower) at any
    /// of the judged quantiles.
    pub ratio: f64,
    /// Errors only: an absolute increase of the error rate (0.005 = +0.5
    /// percentage points). The regression to catch is the larger of
    /// `ratio × stable` and `stable + increase`, so that at low base rates a
    /// doubling of noise is not what decides.
    pub increase: f64,
    /// The chance of catching that regression before a step advances on
    /// power (0.95: at most 5 % of such canaries would advance).
    pub power: f64,
}

impl Default for Detect {
    fn default() -> Self {
        Detect {
            ratio: 2.0,
            increase: 0.0,
            power: 0.95,
        }
    }
}

impl Default for SequentialJudge {
    fn default() -> Self {
        SequentialJudge {
            alpha: 0.05,
            tolerance: 0.1,
            margin: 0.5,
            quantiles: vec![0.5, 0.9, 0.99],
            min_stable_samples: 100.0,
            detect: None,
        }
    }
}

/// One compared pair of edges (or the error counters, which have none).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EdgeTest {
    /// Stable's edge, fixed from its histogram at the first reading.
    pub stable_edge: Option<f64>,
    /// The canary's edge for the regression test: the stable edge itself,
    /// compared with stable's requests above `regressionStablePoint`.
    /// (Status written before that field: the first bucket at or above
    /// `(1 + tolerance)` × the stable edge, against stable above its edge.)
    pub regression_edge: Option<f64>,
    /// Where stable's side of the regression test is read: the stable edge
    /// divided by `1 + tolerance`, between buckets when it falls between
    /// them (see `Histogram::above_interpolated`). A canary at most
    /// `1 + tolerance` times slower has no more requests above the edge than
    /// stable has above this point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regression_stable_point: Option<f64>,
    /// The part of the bucket holding that point counted as above it, fixed
    /// from stable's histogram at the first reading (`Histogram::tail_share`),
    /// so that every window is read alike. Absent: spread evenly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regression_stable_share: Option<f64>,
    /// The canary's edge for non-inferiority: the last bucket at or below
    /// `(1 + margin)` × the stable edge.
    pub non_inferiority_edge: Option<f64>,
    pub regression: Option<EProcess>,
    pub non_inferiority: EProcess,
    /// The regression test's hits per arm since the first reading: errors,
    /// or requests above the compared points.
    #[serde(default)]
    pub hits: Arms<f64>,
}

/// Hits per arm for one edge test in one window.
struct EdgeHits {
    stable: f64,
    stable_regression: f64,
    canary_regression: f64,
    canary_non_inferiority: f64,
}

/// What the sequential judge keeps in `Rollout.status` for one metric.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SequentialState {
    /// The cumulative reading at the previous evaluation.
    pub last: Option<Reading>,
    /// One test for error counts; one per distinct latency edge.
    pub tests: Vec<EdgeTest>,
    /// Requests seen per arm since the first reading.
    pub requests: Arms<f64>,
    /// Largest log of the combined regression e-value reached so far.
    pub peak_regression_log_e: f64,
    /// With `detect`: how surely the traffic so far would have caught the
    /// regression to catch, and what a decision still needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power: Option<PowerProgress>,
}

/// Progress toward promotion on power, for status and the CLI.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PowerProgress {
    /// The chance that the traffic seen so far would have caught the
    /// regression to catch (for latency, the edge that catches it best).
    pub power: f64,
    /// The power at which a step may advance.
    pub target: f64,
    /// More canary requests needed, at the current split between the arms,
    /// to reach the target; absent when no amount would (the test cannot
    /// tell that regression from what it tolerates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_requests_needed: Option<f64>,
    /// For latency, the stable edge whose test gives that power.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edge: Option<f64>,
}

impl PowerProgress {
    /// Whether the power reached its target.
    pub fn reached(&self) -> bool {
        self.power >= self.target
    }
}

impl SequentialState {
    /// The largest regression e-value so far (abort at `1 / alpha`).
    pub fn regression_e_value(&self) -> f64 {
        self.peak_regression_log_e.exp()
    }

    /// The weakest edge's largest non-inferiority e-value so far.
    pub fn non_inferiority_e_value(&self) -> f64 {
        let weakest = self
            .tests
            .iter()
            .map(|t| t.non_inferiority.peak_log_e)
            .fold(f64::INFINITY, f64::min);
        if self.tests.is_empty() { 0.0 } else { weakest.exp() }
    }

    fn combined_regression_log_e(&self) -> f64 {
        log_mean_exp(
            self.tests
                .iter()
                .filter_map(|t| t.regression.as_ref())
                .map(EProcess::log_e),
        )
    }
}

impl SequentialJudge {
    pub fn validate(&self) -> Result<(), InvalidJudge> {
        InvalidJudge::check("alpha", self.alpha, "in (0, 1)", |a| a > 0.0 && a < 1.0)?;
        InvalidJudge::check("tolerance", self.tolerance, ">= 0", |t| t >= 0.0)?;
        InvalidJudge::check("margin", self.margin, "> 0", |m| m > 0.0)?;
        InvalidJudge::check("minStableSamples", self.min_stable_samples, ">= 0", |m| m >= 0.0)?;
        InvalidJudge::check("quantiles", self.quantiles.len() as f64, "at least one", |n| n >= 1.0)?;
        for q in &self.quantiles {
            InvalidJudge::check("quantiles", *q, "in (0, 1)", |q| q > 0.0 && q < 1.0)?;
        }
        if let Some(detect) = &self.detect {
            InvalidJudge::check("detect.ratio", detect.ratio, ">= 1", |r| r >= 1.0)?;
            InvalidJudge::check("detect.increase", detect.increase, "in [0, 1)", |i| {
                (0.0..1.0).contains(&i)
            })?;
            InvalidJudge::check("detect.power", detect.power, "in (0, 1)", |p| p > 0.0 && p < 1.0)?;
        }
        Ok(())
    }

    /// This judge with its alpha shared among `metrics` regression tests.
    pub fn split_alpha(&self, metrics: usize) -> SequentialJudge {
        SequentialJudge {
            alpha: self.alpha / metrics.max(1) as f64,
            ..self.clone()
        }
    }

    fn threshold(&self) -> f64 {
        (1.0 / self.alpha).ln()
    }

    /// The tests a first reading sets up, or `None` while stable has too
    /// little history to place latency edges.
    fn tests_for(&self, reading: &Reading) -> Option<Vec<EdgeTest>> {
        let Reading::Histogram(arms) = reading else {
            return Some(vec![EdgeTest {
                regression: Some(EProcess::regression(1.0 + self.tolerance)),
                non_inferiority: EProcess::non_inferiority(1.0 + self.margin),
                ..EdgeTest::default()
            }]);
        };
        let stable = &arms.stable;
        if stable.count < self.min_stable_samples.max(1.0) {
            return None;
        }
        let mut edges: Vec<f64> = self
            .quantiles
            .iter()
            .filter_map(|q| stable.edge_at_quantile(*q))
            .collect();
        edges.sort_by(f64::total_cmp);
        edges.dedup();
        // Relative slack so that 0.1 * 1.1 still finds the bucket at 0.11.
        let slack = 1e-9;
        let tests: Vec<EdgeTest> = edges
            .into_iter()
            .map(|y| {
                let regression_stable_point = (self.tolerance > 0.0).then(|| y / (1.0 + self.tolerance));
                let regression_stable_share = regression_stable_point.and_then(|p| stable.tail_share(p));
                let non_inferiority_edge = stable
                    .buckets
                    .iter()
                    .map(|b| b.le)
                    .rfind(|le| *le <= (1.0 + self.margin) * y * (1.0 + slack));
                EdgeTest {
                    stable_edge: Some(y),
                    regression_edge: Some(y),
                    regression_stable_point,
                    regression_stable_share,
                    non_inferiority_edge,
                    regression: Some(EProcess::regression(1.0)),
                    non_inferiority: EProcess::non_inferiority(1.0),
                    hits: Arms::default(),
                }
            })
            .collect();
        (!tests.is_empty()).then_some(tests)
    }

    /// Hits per test in one window, or `None` if an edge is missing.
    fn hits(tests: &[EdgeTest], window: &Reading) -> Option<Vec<EdgeHits>> {
        tests
            .iter()
            .map(|test| match window {
                Reading::Counts(arms) => Some(EdgeHits {
                    stable: arms.stable.errors,
                    stable_regression: arms.stable.errors,
                    canary_regression: arms.canary.errors,
                    canary_non_inferiority: arms.canary.errors,
                }),
                Reading::Histogram(arms) => {
                    let canary_above = |edge: Option<f64>| match edge {
                        Some(edge) => arms.canary.above(edge),
                        None => Some(0.0),
                    };
                    let stable = arms.stable.above(test.stable_edge?)?;
                    let stable_regression = match test.regression_stable_point {
                        Some(point) => match test.regression_stable_share {
                            Some(share) => arms.stable.above_with_share(point, share)?,
                            None => arms.stable.above_interpolated(point)?,
                        },
                        None => stable,
                    };
                    Some(EdgeHits {
                        stable,
                        stable_regression,
                        canary_regression: canary_above(test.regression_edge)?,
                        canary_non_inferiority: arms.canary.above(test.non_inferiority_edge?)?,
                    })
                }
            })
            .collect()
    }

    fn verdict(&self, state: &SequentialState) -> Verdict {
        let threshold = self.threshold();
        if state.peak_regression_log_e >= threshold {
            return Verdict::Regression;
        }
        if self.margin_within_detect()
            && !state.tests.is_empty()
            && state.tests.iter().all(|t| t.non_inferiority.peak_log_e >= threshold)
        {
            return Verdict::NonInferior;
        }
        // No regression evidence, and enough traffic that a regression of
        // the stated size would very likely have shown as one.
        if state.power.as_ref().is_some_and(PowerProgress::reached) {
            return Verdict::NonInferior;
        }
        Verdict::Continue
    }

    /// Whether non-inferiority by `margin` may advance a step: not when
    /// `detect` names a smaller regression than the margin lets through,
    /// which would pass the very canaries `detect` says must be caught.
    fn margin_within_detect(&self) -> bool {
        self.detect
            .as_ref()
            .is_none_or(|d| 1.0 + self.margin <= d.ratio * (1.0 + 1e-9))
    }

    /// How surely the traffic so far would have caught `detect`'s
    /// regression, and how much more it needs; `None` without `detect`.
    fn power_progress(&self, state: &SequentialState) -> Option<PowerProgress> {
        let detect = self.detect.as_ref()?;
        let tests: Vec<(&EdgeTest, &EProcess)> = state
            .tests
            .iter()
            .filter_map(|t| Some((t, t.regression.as_ref()?)))
            .collect();
        // The latency edges' e-values are averaged, so the average crosses
        // `1/α` whenever one edge alone reaches `K/α`: judge each edge
        // against that, which can only understate the power.
        let log_threshold = self.threshold() + (tests.len().max(1) as f64).ln();
        // Per test, the least power over the scenarios of stable's rate.
        // Latency is caught by whichever edge catches it: a whole-latency
        // slowdown moves every edge, so the best edge's power is the
        // test's. (A slowdown of the tail alone shows only at the high
        // edges; status gives their power too, via the edge named.)
        let mut best: Option<(f64, Option<f64>, &EProcess, Scenario)> = None;
        for (test, process) in tests {
            let weakest = self
                .scenarios(detect, test, state)
                .into_iter()
                .map(|scenario| (power::power(process, &scenario, log_threshold), scenario))
                .min_by(|a, b| a.0.total_cmp(&b.0));
            if let Some((p, scenario)) = weakest
                && best.as_ref().is_none_or(|b| p > b.0)
            {
                best = Some((p, test.stable_edge, process, scenario));
            }
        }
        let Some((power, edge, process, scenario)) = best else {
            return Some(PowerProgress {
                power: 0.0,
                target: detect.power,
                canary_requests_needed: None,
                edge: None,
            });
        };
        let canary_requests_needed = if power >= detect.power {
            Some(0.0)
        } else {
            power::canary_requests_needed(process, &scenario, log_threshold, detect.power)
        };
        let progress = PowerProgress {
            power,
            target: detect.power,
            canary_requests_needed,
            edge,
        };
        Some(progress)
    }

    /// What the regression test would see if the canary were the regression
    /// to catch. Errors: at stable's rate and at either end of its ~95 %
    /// interval, since stable's rate is only estimated (from all its
    /// counters say, history included), and at its rate since the canary
    /// started. Latency: stable's
    /// histogram slowed by `detect.ratio`, read between buckets in log
    /// latency.
    fn scenarios(&self, detect: &Detect, test: &EdgeTest, state: &SequentialState) -> Vec<Scenario> {
        let requests = state.requests;
        let scenario = |stable: f64, canary: f64| Scenario {
            requests,
            rates: Arms { stable, canary },
        };
        match (&state.last, test.stable_edge) {
            (Some(Reading::Histogram(arms)), Some(edge)) => {
                let stable = &arms.stable;
                let count = stable.count;
                let canary_edge = test.regression_edge.unwrap_or(edge);
                let stable_side = match (test.regression_stable_point, test.regression_stable_share) {
                    (Some(point), Some(share)) => stable.above_with_share(point, share),
                    (Some(point), None) => stable.above_interpolated(point),
                    (None, _) => stable.above(edge),
                };
                let slowed = stable.above_tail_interpolated(canary_edge / detect.ratio.max(1.0));
                match (stable_side, slowed) {
                    (Some(s), Some(c)) if count > 0.0 => vec![scenario(s / count, c / count)],
                    _ => vec![],
                }
            }
            _ => {
                // Stable's counters go back before the canary: its rate is
                // known far better from them than from the canary's time.
                let since_canary = (test.hits.stable, requests.stable);
                let history = match &state.last {
                    Some(Reading::Counts(arms)) if arms.stable.requests > since_canary.1 => {
                        (arms.stable.errors, arms.stable.requests)
                    }
                    _ => since_canary,
                };
                let (errors, served) = history;
                if served <= 0.0 || since_canary.1 <= 0.0 {
                    return vec![];
                }
                let low = (errors - 2.0 * errors.sqrt()).max(0.0) / served;
                let high = (errors + 2.0 + 2.0 * (errors + 1.0).sqrt()) / served;
                [low, errors / served, high, since_canary.0 / since_canary.1]
                    .into_iter()
                    .map(|rate| scenario(rate, (detect.ratio * rate).max(rate + detect.increase)))
                    .collect()
            }
        }
    }
}

impl Judge for SequentialJudge {
    type State = SequentialState;

    fn evaluate(&self, state: &mut SequentialState, observation: &Observation) -> Verdict {
        if self.validate().is_err() {
            return Verdict::Inconclusive;
        }
        // Evidence of a regression stands even if a later scrape fails.
        if state.peak_regression_log_e >= self.threshold() {
            return Verdict::Regression;
        }
        let Some(reading) = Reading::of(observation) else {
            return Verdict::Inconclusive;
        };
        let comparable = state
            .last
            .as_ref()
            .is_some_and(|last| std::mem::discriminant(last) == std::mem::discriminant(&reading));
        if !comparable {
            // The first reading (or one of another kind) is the baseline:
            // stable's history before the canary existed is not comparable.
            *state = SequentialState::default();
            if let Some(tests) = self.tests_for(&reading) {
                state.tests = tests;
                state.last = Some(reading);
            }
            return Verdict::Inconclusive;
        }
        let window = state.last.as_ref().and_then(|last| reading.since(last));
        // Move on even when the window is unusable, so that a changed bucket
        // layout re-baselines instead of failing forever.
        state.last = Some(reading);
        let Some((window, hits)) = window.and_then(|w| Self::hits(&state.tests, &w).map(|h| (w, h))) else {
            return Verdict::Inconclusive;
        };
        let requests = window.requests();
        state.requests.stable += requests.stable;
        state.requests.canary += requests.canary;
        for (test, hits) in state.tests.iter_mut().zip(hits) {
            if let Some(regression) = &mut test.regression {
                let regression_hits = Arms {
                    stable: hits.stable_regression,
                    canary: hits.canary_regression,
                };
                regression.update(regression_hits, requests);
                test.hits.stable += regression_hits.stable;
                test.hits.canary += regression_hits.canary;
            }
            test.non_inferiority.update(
                Arms {
                    stable: hits.stable,
                    canary: hits.canary_non_inferiority,
                },
                requests,
            );
        }
        state.peak_regression_log_e = state.peak_regression_log_e.max(state.combined_regression_log_e());
        state.power = self.power_progress(state);
        let silent_arm = requests.stable <= 0.0 || requests.canary <= 0.0;
        match self.verdict(state) {
            // No traffic in an arm since the last evaluation: say nothing about now.
            Verdict::NonInferior | Verdict::Continue if silent_arm => Verdict::Inconclusive,
            verdict => verdict,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::judge::{Counts, Histogram};

    fn counts(stable: (f64, f64), canary: (f64, f64)) -> Observation {
        Observation::Counts(Arms {
            stable: Counts {
                requests: stable.0,
                errors: stable.1,
            },
            canary: Counts {
                requests: canary.0,
                errors: canary.1,
            },
        })
    }

    /// Feeds `windows` windows of expected counts (no noise), `rate` errors per
    /// request in stable and `ratio` times that in the canary at `share`.
    fn run(judge: &SequentialJudge, state: &mut SequentialState, windows: u32, ratio: f64, share: f64) -> Vec<Verdict> {
        let per_window = 10_000.0;
        let rate = 0.002;
        let start = state.requests.stable + state.requests.canary;
        (0..=windows)
            .map(|k| {
                let total = start + per_window * f64::from(k);
                let (nc, nb) = (share * total, (1.0 - share) * total);
                judge.evaluate(state, &counts((nb, nb * rate), (nc, nc * rate * ratio)))
            })
            .collect()
    }

    #[test]
    fn aborts_when_canary_error_rate_doubles() {
        let judge = SequentialJudge::default();
        let mut state = SequentialState::default();
        let verdicts = run(&judge, &mut state, 40, 2.0, 0.5);
        assert_eq!(verdicts.last(), Some(&Verdict::Regression));
        assert!(state.regression_e_value() >= 1.0 / judge.alpha);
    }

    #[test]
    fn tolerates_a_canary_within_tolerance() {
        let judge = SequentialJudge::default();
        let mut state = SequentialState::default();
        let verdicts = run(&judge, &mut state, 400, 1.1, 0.2);
        assert!(!verdicts.contains(&Verdict::Regression));
        assert!(state.regression_e_value() <= 1.0);
    }

    #[test]
    fn passes_a_canary_as_good_as_stable() {
        let judge = SequentialJudge::default();
        let mut state = SequentialState::default();
        let verdicts = run(&judge, &mut state, 200, 1.0, 0.5);
        assert_eq!(verdicts.last(), Some(&Verdict::NonInferior));
    }

    #[test]
    fn never_passes_without_data() {
        let judge = SequentialJudge::default();
        let mut state = SequentialState::default();
        for _ in 0..10 {
            assert_eq!(judge.evaluate(&mut state, &Observation::Missing), Verdict::Inconclusive);
        }
        // Stable serves, the canary gets nothing: still no verdict.
        for k in 0..50 {
            let n = 1000.0 * f64::from(k);
            let verdict = judge.evaluate(&mut state, &counts((n, n * 0.001), (0.0, 0.0)));
            assert_eq!(verdict, Verdict::Inconclusive);
        }
        let nan = counts((f64::NAN, 0.0), (1.0, 0.0));
        assert_eq!(judge.evaluate(&mut state, &nan), Verdict::Inconclusive);
    }

    #[test]
    fn a_failed_scrape_is_inconclusive_but_keeps_the_evidence() {
        let judge = SequentialJudge::default();
        let mut state = SequentialState::default();
        run(&judge, &mut state, 200, 1.0, 0.5);
        assert_eq!(judge.evaluate(&mut state, &Observation::Missing), Verdict::Inconclusive);
        assert!(state.non_inferiority_e_value() >= 1.0 / judge.alpha);
    }

    #[test]
    fn resumes_from_stored_state() {
        let judge = SequentialJudge::default();
        let mut uninterrupted = SequentialState::default();
        let all = run(&judge, &mut uninterrupted, 40, 2.0, 0.3);

        let mut state = SequentialState::default();
        let mut resumed = run(&judge, &mut state, 20, 2.0, 0.3);
        let stored = serde_json::to_string(&state).unwrap_or_default();
        let mut restored: SequentialState = serde_json::from_str(&stored).unwrap_or_default();
        // The restarted controller re-reads the last counters first.
        let rest = run(&judge, &mut restored, 20, 2.0, 0.3);
        resumed.extend(rest.into_iter().skip(1));
        assert_eq!(resumed, all);
        assert_eq!(restored.requests, uninterrupted.requests);
        let (a, b) = (restored.regression_e_value(), uninterrupted.regression_e_value());
        assert!((a - b).abs() <= 1e-12 * b, "{a} != {b}");
    }

    #[test]
    fn a_counter_reset_does_not_break_the_test() {
        let judge = SequentialJudge::default();
        let mut state = SequentialState::default();
        run(&judge, &mut state, 5, 5.0, 0.5);
        // The canary pods restart: their counters start again from zero.
        let verdict = judge.evaluate(&mut state, &counts((1e6, 2000.0), (5000.0, 50.0)));
        assert!(
            state
                .tests
                .iter()
                .all(|t| t.regression.as_ref().is_some_and(|e| e.log_e().is_finite()))
        );
        assert_ne!(verdict, Verdict::Inconclusive);
    }

    /// Expected cumulative histogram of `n` lognormal latencies, median
    /// `median`, log-sd 0.5, on exponential buckets with factor 1.1.
    fn lognormal_histogram(n: f64, median: f64) -> Observation {
        let phi = |z: f64| 0.5 * statrs::function::erf::erfc(-z / std::f64::consts::SQRT_2);
        let edges = (0..60).map(|k| 0.02 * 1.1_f64.powi(k));
        let pairs = edges.map(|le| (le, (n * phi((le / median).ln() / 0.5)).round()));
        let h = Histogram::from_cumulative(pairs.chain([(f64::INFINITY, n)])).unwrap_or_default();
        Observation::Histogram(Arms {
            stable: h.clone(),
            canary: h,
        })
    }

    fn latency(stable: (f64, f64), canary: (f64, f64)) -> Observation {
        let arm = |(n, median)| match lognormal_histogram(n, median) {
            Observation::Histogram(arms) => arms.stable,
            _ => Histogram::default(),
        };
        Observation::Histogram(Arms {
            stable: arm(stable),
            canary: arm(canary),
        })
    }

    fn run_latency(judge: &SequentialJudge, slowdown: f64, windows: u32) -> (Vec<Verdict>, SequentialState) {
        let mut state = SequentialState::default();
        let verdicts = (0..=windows)
            .map(|k| {
                let n = 5000.0 * f64::from(k);
                judge.evaluate(&mut state, &latency((n + 1000.0, 0.1), (n, 0.1 * slowdown)))
            })
            .collect();
        (verdicts, state)
    }

    #[test]
    fn aborts_when_canary_latency_grows_by_half() {
        let (verdicts, state) = run_latency(&SequentialJudge::default(), 1.5, 10);
        assert_eq!(verdicts.last(), Some(&Verdict::Regression));
        assert_eq!(state.tests.len(), 3);
    }

    #[test]
    fn latency_tolerance_is_a_latency_ratio() {
        // A canary exactly 10 % slower sits on the default tolerance.
        let (verdicts, _) = run_latency(&SequentialJudge::default(), 1.1, 100);
        assert!(!verdicts.contains(&Verdict::Regression));
        let strict = SequentialJudge {
            tolerance: 0.0,
            ..SequentialJudge::default()
        };
        let (verdicts, _) = run_latency(&strict, 1.1, 100);
        assert_eq!(verdicts.last(), Some(&Verdict::Regression));
    }

    #[test]
    fn passes_latency_as_good_as_stable() {
        let (verdicts, _) = run_latency(&SequentialJudge::default(), 1.0, 20);
        assert_eq!(verdicts.last(), Some(&Verdict::NonInferior));
    }

    #[test]
    fn waits_for_stable_history_before_fixing_edges() {
        let judge = SequentialJudge::default();
        let mut state = SequentialState::default();
        assert_eq!(
            judge.evaluate(&mut state, &latency((50.0, 0.1), (0.0, 0.1))),
            Verdict::Inconclusive
        );
        assert!(state.tests.is_empty() && state.last.is_none());
    }

    #[test]
    fn splitting_alpha_divides_it_among_metrics() {
        let judge = SequentialJudge::default().split_alpha(2);
        assert!((judge.alpha - 0.025).abs() < 1e-12);
        assert!(SequentialJudge { alpha: 1.5, ..judge }.validate().is_err());
    }
}
