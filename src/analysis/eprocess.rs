//! A mixture e-process for "is the canary's share of the hits larger (or
//! smaller) than its share of the requests allows?"
//!
//! In each window, given that a hit (an error, or a request above a latency
//! edge) happened, it came from the canary with probability
//! `θ = rρ / (rρ + 1 − ρ)`: `ρ` is the canary's share of the window's
//! requests and `r` the canary/stable hit-rate ratio. The common base rate
//! cancels. For each alternative `r` beyond the null ratio `r0`, the binomial
//! likelihood ratio of `θ(r)` against `θ(r0)` has expectation at most 1 under
//! any true ratio on the null side (monotone likelihood ratio), so it is a
//! non-negative supermartingale; so is any average of them with weights fixed
//! in advance, which is what this is.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::observation::Arms;

/// Regression alternatives, as multiples `m` of the null ratio: 12 points
/// geometric in `δ = ln m` from `m = 1.2` to `m = 20`, weighted ∝ `δ^¼`.
///
/// Not knowing the effect costs about `−ln(prior mass near it)` nats on top
/// of the oracle's `ln(1/α)`. When the test stops, the likelihood is about
/// `δ` wide in `ln m`, so a grid geometric in `δ` with equal weights would
/// cost the same at every scale. The `δ^¼` tilt moves some weight to large
/// effects: they are caught within a handful of errors, where a nat costs a
/// whole extra error. Below `m ≈ 1.1` nothing is detectable within a canary
/// (millions of requests at 0.1 % errors), so no weight is spent there.
/// Against the former equal-weight grid (1.1…10) in the benchmark, this
/// aborts 0.1 → 0.5 % and → 1 % errors with 7–12 % fewer requests, 0.1 →
/// 0.2 % with as many, and latency ×1.1 with 6 % more
/// (docs/benchmarks.md).
const REGRESSION_GRID: Grid = Grid {
    smallest: 1.2,
    largest: 20.0,
    points: 12,
    tilt: 0.25,
};

/// Non-inferiority alternatives, as divisors of the null ratio, equally
/// weighted. A healthy canary sits at `1 + margin` (1.5) here, a small effect,
/// so this grid stays dense near small effects.
const NON_INFERIORITY_ALTERNATIVES: [f64; 9] = [1.1, 1.2, 1.35, 1.5, 1.75, 2.0, 3.0, 5.0, 10.0];

/// A grid geometric in `ln m` with weights ∝ `(ln m)^tilt`.
struct Grid {
    smallest: f64,
    largest: f64,
    points: usize,
    tilt: f64,
}

impl Grid {
    /// The multiples and their weights (summing to 1).
    fn multiples_and_weights(&self) -> (Vec<f64>, Vec<f64>) {
        let (lo, hi) = (self.smallest.ln().ln(), self.largest.ln().ln());
        let steps = (self.points.max(2) - 1) as f64;
        let deltas: Vec<f64> = (0..self.points)
            .map(|i| (lo + (hi - lo) * i as f64 / steps).exp())
            .collect();
        let raw: Vec<f64> = deltas.iter().map(|d| d.powf(self.tilt)).collect();
        let total: f64 = raw.iter().sum();
        (
            deltas.iter().map(|d| d.exp()).collect(),
            raw.iter().map(|w| w / total).collect(),
        )
    }
}

/// A mixture of likelihood ratios for the canary's share of the "hits"
/// (errors, or requests above an edge), against a null rate ratio.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EProcess {
    /// Canary/stable rate ratio at the boundary of the null hypothesis.
    pub null_ratio: f64,
    /// The alternatives mixed.
    pub ratios: Vec<f64>,
    /// Weight of each alternative, fixed when the test starts. Status
    /// written before weights existed has none: equal weights.
    #[serde(default)]
    pub weights: Vec<f64>,
    /// Log likelihood ratio of each alternative so far.
    pub log_lr: Vec<f64>,
    /// Largest log e-value reached so far.
    pub peak_log_e: f64,
}

/// The probability that a hit came from the canary when the canary has
/// `share` of the requests and `ratio` times stable's hit rate.
pub fn canary_probability(ratio: f64, share: f64) -> f64 {
    ratio * share / (ratio * share + 1.0 - share)
}

/// `ln(mean(exp(values)))`, computed without overflow.
pub fn log_mean_exp(values: impl Iterator<Item = f64> + Clone) -> f64 {
    log_weighted_mean_exp(values.map(|v| (v, 1.0)))
}

/// `ln(Σ wᵢ·exp(vᵢ) / Σ wᵢ)` over `(vᵢ, wᵢ)` pairs, without overflow.
fn log_weighted_mean_exp(pairs: impl Iterator<Item = (f64, f64)> + Clone) -> f64 {
    let max = pairs
        .clone()
        .filter(|(_, w)| *w > 0.0)
        .fold(f64::NEG_INFINITY, |m, (v, _)| m.max(v));
    if max == f64::NEG_INFINITY {
        return max;
    }
    let (sum, total) = pairs
        .filter(|(_, w)| *w > 0.0)
        .fold((0.0, 0.0), |(s, t), (v, w)| (s + w * (v - max).exp(), t + w));
    max + (sum / total).ln()
}

impl EProcess {
    fn new(null_ratio: f64, ratios: Vec<f64>, weights: Vec<f64>) -> EProcess {
        EProcess {
            null_ratio,
            log_lr: vec![0.0; ratios.len()],
            ratios,
            weights,
            peak_log_e: 0.0,
        }
    }

    /// Evidence that the canary's rate is above `null_ratio` × stable's.
    pub fn regression(null_ratio: f64) -> EProcess {
        let (multiples, weights) = REGRESSION_GRID.multiples_and_weights();
        EProcess::new(null_ratio, multiples.iter().map(|m| null_ratio * m).collect(), weights)
    }

    /// Evidence that the canary's rate is below `null_ratio` × stable's.
    pub fn non_inferiority(null_ratio: f64) -> EProcess {
        let ratios: Vec<f64> = NON_INFERIORITY_ALTERNATIVES.iter().map(|m| null_ratio / m).collect();
        let weights = vec![1.0 / ratios.len() as f64; ratios.len()];
        EProcess::new(null_ratio, ratios, weights)
    }

    fn usable_weights(&self) -> bool {
        self.weights.len() == self.log_lr.len()
            && self.weights.len() == self.ratios.len()
            && self.weights.iter().all(|w| w.is_finite() && *w >= 0.0)
            && self.weights.iter().any(|w| *w > 0.0)
    }

    /// The current log e-value.
    pub fn log_e(&self) -> f64 {
        // Weights that don't fit (status from before they existed, or edited
        // by hand) fall back to equal weights, which are just as valid.
        if self.usable_weights() {
            log_weighted_mean_exp(self.log_lr.iter().copied().zip(self.weights.iter().copied()))
        } else {
            log_mean_exp(self.log_lr.iter().copied())
        }
    }

    /// Per alternative, the log likelihood ratio one hit adds when it came
    /// from the canary and when it came from stable, at canary `share`, and
    /// the log weight: what [`crate::analysis::power`] needs to find the
    /// evidence a window would bring without updating anything.
    pub fn per_hit(&self, share: f64) -> Vec<(f64, f64, f64)> {
        let null = canary_probability(self.null_ratio, share);
        let usable = self.usable_weights();
        self.ratios
            .iter()
            .enumerate()
            .map(|(i, ratio)| {
                let alt = canary_probability(*ratio, share);
                let weight = if usable { self.weights[i] } else { 1.0 };
                ((alt / null).ln(), ((1.0 - alt) / (1.0 - null)).ln(), weight.ln())
            })
            .collect()
    }

    /// Folds in one window: hits and requests per arm.
    pub fn update(&mut self, hits: Arms<f64>, requests: Arms<f64>) {
        if requests.canary <= 0.0 || requests.stable <= 0.0 {
            return; // No comparison is possible in this window.
        }
        let canary_hits = hits.canary.clamp(0.0, requests.canary);
        let stable_hits = hits.stable.clamp(0.0, requests.stable);
        let share = requests.canary / (requests.canary + requests.stable);
        let null = canary_probability(self.null_ratio, share);
        for (ratio, log_lr) in self.ratios.iter().zip(&mut self.log_lr) {
            let alt = canary_probability(*ratio, share);
            *log_lr += canary_hits * (alt / null).ln() + stable_hits * ((1.0 - alt) / (1.0 - null)).ln();
        }
        self.peak_log_e = self.peak_log_e.max(self.log_e());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use statrs::function::factorial::ln_binomial;

    /// E[e-value after one window] when `hits` hits split between the arms
    /// with the canary's probability `theta`, summed exactly over outcomes.
    fn expected_e_value(process: &EProcess, hits: u64, share: f64, theta: f64) -> f64 {
        let requests = Arms {
            stable: 1e6 * (1.0 - share),
            canary: 1e6 * share,
        };
        (0..=hits)
            .map(|k| {
                let mut p = process.clone();
                let canary = k as f64;
                p.update(
                    Arms {
                        stable: hits as f64 - canary,
                        canary,
                    },
                    requests,
                );
                let pmf = (ln_binomial(hits, k) + canary * theta.ln() + (hits - k) as f64 * (1.0 - theta).ln()).exp();
                pmf * p.log_e().exp()
            })
            .sum()
    }

    #[test]
    fn is_fair_at_the_null_and_loses_below_it() {
        let share = 0.2;
        let process = EProcess::regression(1.1);
        let at_null = expected_e_value(&process, 40, share, canary_probability(1.1, share));
        assert!((at_null - 1.0).abs() < 1e-9, "{at_null}");
        let below = expected_e_value(&process, 40, share, canary_probability(0.9, share));
        assert!(below < 1.0, "{below}");
        let mirror = EProcess::non_inferiority(1.5);
        let above = expected_e_value(&mirror, 40, share, canary_probability(2.0, share));
        assert!(above < 1.0, "{above}");
    }

    #[test]
    fn stays_a_supermartingale_after_any_history() {
        // Whatever the windows so far (here ones that favour the largest and
        // then the smallest alternatives, at changing shares), the next
        // window's expected e-value is the current one at the null boundary
        // and less below it: Ville's inequality applies to the whole path.
        let mut process = EProcess::regression(1.1);
        let history = [
            ((0.0, 9.0), 0.05),
            ((3.0, 2.0), 0.5),
            ((1.0, 40.0), 0.25),
            ((12.0, 9.0), 0.5),
        ];
        for ((stable, canary), share) in history {
            let requests = Arms {
                stable: 1e5 * (1.0 - share),
                canary: 1e5 * share,
            };
            process.update(Arms { stable, canary }, requests);
            let now = process.log_e().exp();
            for next_share in [0.05, 0.5] {
                let null = canary_probability(1.1, next_share);
                let at_null = expected_e_value(&process, 30, next_share, null);
                assert!((at_null / now - 1.0).abs() < 1e-9, "{at_null} vs {now}");
                let inside = canary_probability(1.0, next_share);
                assert!(expected_e_value(&process, 30, next_share, inside) < now);
            }
        }
    }

    #[test]
    fn regression_weights_are_fixed_and_lean_to_larger_effects() {
        let process = EProcess::regression(1.1);
        assert_eq!(process.ratios.len(), process.weights.len());
        assert!((process.weights.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(process.weights.windows(2).all(|w| w[0] < w[1]));
        let (first, last) = (process.ratios[0] / 1.1, process.ratios[process.ratios.len() - 1] / 1.1);
        assert!(
            (first - 1.2).abs() < 1e-9 && (last - 20.0).abs() < 1e-9,
            "{first}..{last}"
        );
        // Evidence moves the mixture, never the weights.
        let mut updated = process.clone();
        updated.update(
            Arms {
                stable: 1.0,
                canary: 5.0,
            },
            Arms {
                stable: 950.0,
                canary: 50.0,
            },
        );
        assert_eq!(updated.weights, process.weights);
    }

    #[test]
    fn status_written_before_weights_existed_mixes_equally() {
        let stored = r#"{"nullRatio":1.1,"ratios":[1.21,2.2],"logLr":[0.5,2.0],"peakLogE":1.4}"#;
        let process: EProcess = serde_json::from_str(stored).expect("old status deserializes");
        assert!(process.weights.is_empty());
        let equal = log_mean_exp([0.5, 2.0].into_iter());
        assert!((process.log_e() - equal).abs() < 1e-12);
    }

    #[test]
    fn grows_under_the_alternative() {
        let share = 0.5;
        let grows = expected_e_value(&EProcess::regression(1.0), 40, share, canary_probability(2.0, share));
        assert!(grows > 20.0, "{grows}");
    }
}
