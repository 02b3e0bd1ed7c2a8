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
//! non-negative supermartingale, and so is the equal-weight average of them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::observation::Arms;

/// Alternatives, as multiples of the null ratio: dense near small effects,
/// which are the slow ones to detect, and reaching 10× for outages.
const ALTERNATIVES: [f64; 9] = [1.1, 1.2, 1.35, 1.5, 1.75, 2.0, 3.0, 5.0, 10.0];

/// A mixture of likelihood ratios for the canary's share of the "hits"
/// (errors, or requests above an edge), against a null rate ratio.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EProcess {
    /// Canary/stable rate ratio at the boundary of the null hypothesis.
    pub null_ratio: f64,
    /// The alternatives mixed with equal weights.
    pub ratios: Vec<f64>,
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
    let max = values.clone().fold(f64::NEG_INFINITY, f64::max);
    if max == f64::NEG_INFINITY {
        return max;
    }
    let (sum, n) = values.fold((0.0, 0.0), |(s, n), v| (s + (v - max).exp(), n + 1.0));
    max + (sum / n).ln()
}

impl EProcess {
    fn new(null_ratio: f64, ratios: Vec<f64>) -> EProcess {
        EProcess {
            null_ratio,
            log_lr: vec![0.0; ratios.len()],
            ratios,
            peak_log_e: 0.0,
        }
    }

    /// Evidence that the canary's rate is above `null_ratio` × stable's.
    pub fn regression(null_ratio: f64) -> EProcess {
        EProcess::new(null_ratio, ALTERNATIVES.iter().map(|m| null_ratio * m).collect())
    }

    /// Evidence that the canary's rate is below `null_ratio` × stable's.
    pub fn non_inferiority(null_ratio: f64) -> EProcess {
        EProcess::new(null_ratio, ALTERNATIVES.iter().map(|m| null_ratio / m).collect())
    }

    /// The current log e-value.
    pub fn log_e(&self) -> f64 {
        log_mean_exp(self.log_lr.iter().copied())
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
    fn grows_under_the_alternative() {
        let share = 0.5;
        let grows = expected_e_value(&EProcess::regression(1.0), 40, share, canary_probability(2.0, share));
        assert!(grows > 20.0, "{grows}");
    }
}
