//! Kayenta's `NetflixACAJudge`, for users migrating from Spinnaker or Argo
//! Rollouts' Kayenta provider.
//!
//! Each evaluation adds one value per arm (the window's error ratio, a
//! latency quantile from the window's histogram, or a value the query
//! computed); every evaluation then judges the whole series as Kayenta does:
//! the 98 % Mann-Whitney interval for the shift canary − stable against
//! `tolerance × |estimate|`, gated by the mean-ratio effect size, then scored
//! and classified against the pass/marginal thresholds. An interim score at
//! or below marginal aborts (Kayenta's standalone canary analysis).
//!
//! Guarantee: none beyond Kayenta's — each judgement is a fixed-horizon test,
//! so repeated judgements inflate false aborts; the benchmark measures how
//! much. Checked to compute Kayenta's numbers by `matches_r_wilcox_test_conf_int`
//! (src/analysis/wilcoxon.rs) and `flags_an_increase_beyond_the_tolerance`.

use std::collections::BTreeMap;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Arms, InvalidJudge, Judge, Observation, Reading};
use crate::analysis::Verdict;
use crate::analysis::wilcoxon::shift_interval;

/// Which change of the canary counts against it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Direction {
    Increase,
    Decrease,
    #[default]
    Either,
}

/// What to do with windows that have no value (no requests).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum NanStrategy {
    #[default]
    Remove,
    Replace,
}

/// Kayenta's per-metric classification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Classification {
    Pass,
    High,
    Low,
    Nodata,
}

/// Configuration, with Kayenta's defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct MannWhitneyJudge {
    pub direction: Direction,
    /// Kayenta hard-codes 0.98.
    pub confidence: f64,
    /// Kayenta hard-codes 0.25: the interval must clear 25 % of the estimate.
    pub tolerance: f64,
    /// Mean ratio canary/stable a `High` needs (effect size gate).
    pub allowed_increase: f64,
    /// Mean ratio canary/stable a `Low` needs.
    pub allowed_decrease: f64,
    pub nan_strategy: NanStrategy,
    /// Drop IQR outliers (Kayenta's `outliers.strategy: remove`).
    pub remove_outliers: bool,
    pub outlier_factor: f64,
    /// Quantile taken from each window's histogram for latency metrics.
    pub quantile: f64,
    pub pass_score: f64,
    pub marginal_score: f64,
    /// Values per arm below which no judgement is made (Inconclusive).
    pub min_points: usize,
    /// Values kept per arm: a sliding window, like Kayenta's `lookbackMins`.
    pub max_points: usize,
}

impl Default for MannWhitneyJudge {
    fn default() -> Self {
        MannWhitneyJudge {
            direction: Direction::Either,
            confidence: 0.98,
            tolerance: 0.25,
            allowed_increase: 1.0,
            allowed_decrease: 1.0,
            nan_strategy: NanStrategy::Remove,
            remove_outliers: false,
            outlier_factor: 3.0,
            quantile: 0.99,
            pass_score: 95.0,
            marginal_score: 75.0,
            min_points: 3,
            max_points: 360,
        }
    }
}

/// The per-window series Kayenta judges, kept in `Rollout.status`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MannWhitneyState {
    pub last: Option<Reading>,
    /// One value per window; `None` where the window had no data.
    pub stable: Vec<Option<f64>>,
    pub canary: Vec<Option<f64>>,
}

/// One metric's classification, as Kayenta's scorer sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricResult {
    pub group: String,
    pub classification: Classification,
    pub critical: bool,
}

/// Kayenta's weighted-sum score (0–100) over metric results: each group
/// scores the share of its classified metrics that passed (a group without
/// any scores 100), groups are weighted (unweighted groups share what the
/// given weights leave of 100), and a failed critical metric or a majority
/// of metrics without data scores 0.
pub fn kayenta_score(results: &[MetricResult], weights: &BTreeMap<String, f64>) -> f64 {
    if results.is_empty() {
        return 0.0;
    }
    let failed_critical = results
        .iter()
        .any(|r| r.critical && r.classification != Classification::Pass);
    let nodata = results
        .iter()
        .filter(|r| r.classification == Classification::Nodata)
        .count();
    if failed_critical || 2 * nodata >= results.len() {
        return 0.0;
    }
    let mut groups: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    for r in results {
        let (passed, classified) = groups.entry(r.group.as_str()).or_default();
        match r.classification {
            Classification::Pass => (*passed, *classified) = (*passed + 1.0, *classified + 1.0),
            Classification::High | Classification::Low => *classified += 1.0,
            Classification::Nodata => {}
        }
    }
    let given: f64 = groups.keys().filter_map(|g| weights.get(*g)).sum();
    let unweighted = groups.keys().filter(|g| !weights.contains_key(**g)).count() as f64;
    let share = if unweighted > 0.0 {
        (100.0 - given) / unweighted
    } else {
        0.0
    };
    let total: f64 = groups
        .iter()
        .map(|(group, (passed, classified))| {
            let score = if *classified > 0.0 {
                100.0 * passed / classified
            } else {
                100.0
            };
            score * weights.get(*group).copied().unwrap_or(share) / 100.0
        })
        .sum();
    (total * 100.0).round() / 100.0
}

/// R-7 percentile of sorted data (Apache Commons `EstimationType.R_7`).
fn percentile_r7(sorted: &[f64], p: f64) -> f64 {
    let h = (sorted.len() as f64 - 1.0) * p;
    let (lo, fraction) = (h.floor() as usize, h - h.floor());
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + fraction * (sorted[hi] - sorted[lo])
}

/// Kayenta's IQR detector with reduced sensitivity.
fn remove_outliers(values: &[f64], factor: f64) -> Vec<f64> {
    if values.len() < 2 {
        return values.to_vec();
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let (q1, q3) = (percentile_r7(&sorted, 0.25), percentile_r7(&sorted, 0.75));
    let iqr = q3 - q1;
    let lower = percentile_r7(&sorted, 0.01).min(q1 - factor * iqr);
    let upper = percentile_r7(&sorted, 0.99).max(q3 + factor * iqr);
    values.iter().copied().filter(|v| (lower..=upper).contains(v)).collect()
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

fn distinct(values: &[f64]) -> Vec<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.dedup();
    sorted
}

/// Kayenta breaks exact ties between two constant series with relative noise
/// of 1e-5; a fixed seed keeps the verdict reproducible across restarts.
fn jitter(values: &mut [f64], rng: &mut SmallRng) {
    for v in values.iter_mut() {
        let (u1, u2): (f64, f64) = (rng.random::<f64>().max(f64::MIN_POSITIVE), rng.random());
        let normal = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        *v += normal * *v * 1e-5;
    }
}

impl MannWhitneyJudge {
    pub fn validate(&self) -> Result<(), InvalidJudge> {
        InvalidJudge::check("confidence", self.confidence, "in (0, 1)", |c| c > 0.0 && c < 1.0)?;
        InvalidJudge::check("tolerance", self.tolerance, ">= 0", |t| t >= 0.0)?;
        InvalidJudge::check("quantile", self.quantile, "in (0, 1]", |q| q > 0.0 && q <= 1.0)?;
        InvalidJudge::check("outlierFactor", self.outlier_factor, ">= 0", |f| f >= 0.0)?;
        InvalidJudge::check("marginalScore", self.marginal_score, "<= passScore", |m| {
            m <= self.pass_score
        })?;
        InvalidJudge::check("maxPoints", self.max_points as f64, ">= minPoints", |m| {
            m >= self.min_points as f64
        })
    }

    /// Kayenta's `MannWhitneyClassifier` on the canary and stable series;
    /// `None` when the interval cannot be computed (every value tied).
    pub fn classify(&self, canary: &[f64], stable: &[f64]) -> Option<Classification> {
        let (mut x, mut y) = if self.remove_outliers {
            (
                remove_outliers(canary, self.outlier_factor),
                remove_outliers(stable, self.outlier_factor),
            )
        } else {
            (canary.to_vec(), stable.to_vec())
        };
        if x.is_empty() || y.is_empty() {
            return Some(Classification::Nodata);
        }
        let (dx, dy) = (distinct(&x), distinct(&y));
        let mut sorted_x = x.clone();
        let mut sorted_y = y.clone();
        sorted_x.sort_by(f64::total_cmp);
        sorted_y.sort_by(f64::total_cmp);
        if sorted_x == sorted_y || (dx.len() == 1 && dx == dy) {
            return Some(Classification::Pass);
        }
        if dx.len() == 1 && dy.len() == 1 {
            let mut rng = SmallRng::seed_from_u64(0x5151_4b41_5945_4e54);
            jitter(&mut x, &mut rng);
            jitter(&mut y, &mut rng);
        }
        let interval = shift_interval(&x, &y, self.confidence)?;
        let bound = self.tolerance * interval.estimate.abs();
        let (mx, my) = (mean(&x), mean(&y));
        let ratio = if mx == 0.0 || my == 0.0 { f64::NAN } else { mx / my };
        let increase = matches!(self.direction, Direction::Increase | Direction::Either);
        let decrease = matches!(self.direction, Direction::Decrease | Direction::Either);
        if increase && interval.lower > bound && (ratio.is_nan() || ratio >= self.allowed_increase) {
            return Some(Classification::High);
        }
        if decrease && interval.upper < -bound && (ratio.is_nan() || ratio <= self.allowed_decrease) {
            return Some(Classification::Low);
        }
        Some(Classification::Pass)
    }

    /// This window's value per arm, from an increment of cumulative data.
    fn window_values(&self, window: &Reading) -> Arms<Option<f64>> {
        match window {
            Reading::Counts(arms) => Arms {
                stable: arms.stable.error_ratio(),
                canary: arms.canary.error_ratio(),
            },
            Reading::Histogram(arms) => Arms {
                stable: arms.stable.quantile(self.quantile),
                canary: arms.canary.quantile(self.quantile),
            },
        }
    }

    fn series(&self, values: &[Option<f64>]) -> Vec<f64> {
        match self.nan_strategy {
            NanStrategy::Remove => values.iter().flatten().copied().collect(),
            NanStrategy::Replace => values.iter().map(|v| v.unwrap_or(0.0)).collect(),
        }
    }
}

impl Judge for MannWhitneyJudge {
    type State = MannWhitneyState;

    fn evaluate(&self, state: &mut MannWhitneyState, observation: &Observation) -> Verdict {
        if self.validate().is_err() || !self.record(state, observation) {
            return Verdict::Inconclusive;
        }
        self.judge(state)
    }
}

impl MannWhitneyJudge {
    /// Adds the latest window's values to the series; `false` when the
    /// observation gave none (missing, invalid, or the first reading, which
    /// only sets the baseline for cumulative counters).
    pub fn record(&self, state: &mut MannWhitneyState, observation: &Observation) -> bool {
        let values = match observation {
            Observation::Values(arms) => Arms {
                stable: Some(arms.stable).filter(|v| v.is_finite()),
                canary: Some(arms.canary).filter(|v| v.is_finite()),
            },
            Observation::Counts(_) | Observation::Histogram(_) => {
                let Some(reading) = Reading::of(observation) else {
                    return false;
                };
                let window = state.last.as_ref().and_then(|last| reading.since(last));
                state.last = Some(reading);
                match window {
                    Some(window) => self.window_values(&window),
                    None => return false,
                }
            }
            Observation::Value(_) | Observation::Missing => return false,
        };
        for (series, value) in [(&mut state.stable, values.stable), (&mut state.canary, values.canary)] {
            series.push(value);
            let excess = series.len().saturating_sub(self.max_points);
            series.drain(..excess);
        }
        true
    }

    /// One Kayenta judgement of the series so far (Kayenta judges every
    /// `analysisIntervalMins`; `evaluate` judges at every evaluation).
    pub fn judge(&self, state: &MannWhitneyState) -> Verdict {
        let (canary, stable) = (self.series(&state.canary), self.series(&state.stable));
        if canary.len() < self.min_points || stable.len() < self.min_points {
            return Verdict::Inconclusive;
        }
        let Some(classification) = self.classify(&canary, &stable) else {
            return Verdict::Inconclusive;
        };
        if classification == Classification::Nodata {
            return Verdict::Inconclusive;
        }
        let result = MetricResult {
            group: String::new(),
            classification,
            critical: false,
        };
        let score = kayenta_score(&[result], &BTreeMap::new());
        if score <= self.marginal_score {
            Verdict::Regression
        } else if score >= self.pass_score {
            Verdict::NonInferior
        } else {
            Verdict::Continue
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judge_values(judge: &MannWhitneyJudge, pairs: &[(f64, f64)]) -> Vec<Verdict> {
        let mut state = MannWhitneyState::default();
        pairs
            .iter()
            .map(|(stable, canary)| {
                judge.evaluate(
                    &mut state,
                    &Observation::Values(Arms {
                        stable: *stable,
                        canary: *canary,
                    }),
                )
            })
            .collect()
    }

    #[test]
    fn flags_an_increase_beyond_the_tolerance() {
        let judge = MannWhitneyJudge::default();
        let stable = [1.0, 1.1, 0.9, 1.05, 0.95, 1.02, 0.98, 1.01, 0.99, 1.03];
        let canary: Vec<f64> = stable.iter().map(|v| v * 2.0).collect();
        assert_eq!(judge.classify(&canary, &stable), Some(Classification::High));
        assert_eq!(judge.classify(&stable, &canary), Some(Classification::Low));
        let increase_only = MannWhitneyJudge {
            direction: Direction::Increase,
            ..judge
        };
        assert_eq!(increase_only.classify(&stable, &canary), Some(Classification::Pass));
    }

    #[test]
    fn passes_identical_and_overlapping_series() {
        let judge = MannWhitneyJudge::default();
        let stable = [1.0, 1.1, 0.9, 1.05, 0.95];
        assert_eq!(judge.classify(&stable, &stable), Some(Classification::Pass));
        let canary = [1.02, 0.93, 1.08, 0.97, 1.01];
        assert_eq!(judge.classify(&canary, &stable), Some(Classification::Pass));
    }

    #[test]
    fn separates_two_constant_series_by_jitter() {
        let judge = MannWhitneyJudge::default();
        assert_eq!(judge.classify(&[2.0; 10], &[1.0; 10]), Some(Classification::High));
        assert_eq!(judge.classify(&[1.0; 10], &[1.0; 10]), Some(Classification::Pass));
    }

    #[test]
    fn the_effect_size_gate_can_veto_a_significant_shift() {
        let judge = MannWhitneyJudge {
            allowed_increase: 3.0,
            ..MannWhitneyJudge::default()
        };
        let stable = [1.0, 1.1, 0.9, 1.05, 0.95, 1.02, 0.98, 1.01, 0.99, 1.03];
        let canary: Vec<f64> = stable.iter().map(|v| v * 2.0).collect();
        assert_eq!(judge.classify(&canary, &stable), Some(Classification::Pass));
    }

    #[test]
    fn aborts_when_canary_error_ratio_doubles() {
        let pairs: Vec<(f64, f64)> = (0..8)
            .map(|k| (0.01 + 0.001 * f64::from(k % 3), 0.02 + 0.001 * f64::from(k % 4)))
            .collect();
        let verdicts = judge_values(&MannWhitneyJudge::default(), &pairs);
        assert_eq!(&verdicts[..2], &[Verdict::Inconclusive, Verdict::Inconclusive]);
        assert_eq!(verdicts.last(), Some(&Verdict::Regression));
    }

    #[test]
    fn never_passes_without_data() {
        let judge = MannWhitneyJudge::default();
        let verdicts = judge_values(&judge, &[(f64::NAN, 1.0); 20]);
        assert!(verdicts.iter().all(|v| *v == Verdict::Inconclusive));
        let mut state = MannWhitneyState::default();
        assert_eq!(judge.evaluate(&mut state, &Observation::Missing), Verdict::Inconclusive);
        assert_eq!(
            judge.evaluate(&mut state, &Observation::Value(1.0)),
            Verdict::Inconclusive
        );
    }

    #[test]
    fn keeps_a_sliding_window() {
        let judge = MannWhitneyJudge {
            max_points: 5,
            ..MannWhitneyJudge::default()
        };
        let pairs = vec![(1.0, 1.0); 12];
        let verdicts = judge_values(&judge, &pairs);
        assert_eq!(verdicts.last(), Some(&Verdict::NonInferior));
        let mut state = MannWhitneyState::default();
        for (s, c) in pairs {
            judge.evaluate(&mut state, &Observation::Values(Arms { stable: s, canary: c }));
        }
        assert_eq!(state.canary.len(), 5);
    }

    #[test]
    fn scores_groups_as_kayenta_does() {
        let result = |group: &str, classification, critical| MetricResult {
            group: group.into(),
            classification,
            critical,
        };
        use Classification::*;
        let results = [
            result("errors", Pass, false),
            result("errors", High, false),
            result("latency", Pass, false),
            result("latency", Nodata, false),
        ];
        // errors 50, latency 100 (Nodata is not counted), equal weights.
        assert_eq!(kayenta_score(&results, &BTreeMap::new()), 75.0);
        let weights = BTreeMap::from([("errors".to_string(), 80.0)]);
        assert_eq!(kayenta_score(&results, &weights), 60.0);
        let critical = [result("errors", Pass, false), result("latency", Low, true)];
        assert_eq!(kayenta_score(&critical, &BTreeMap::new()), 0.0);
        let mostly_empty = [result("errors", Pass, false), result("latency", Nodata, false)];
        assert_eq!(kayenta_score(&mostly_empty, &BTreeMap::new()), 0.0);
    }

    #[test]
    fn r7_percentiles_and_iqr_outliers() {
        let sorted = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile_r7(&sorted, 0.25), 1.75);
        let values = [1.0, 1.1, 0.9, 1.0, 1.05, 0.95, 1.0, 50.0];
        assert!(!remove_outliers(&values, 3.0).contains(&50.0));
    }
}
