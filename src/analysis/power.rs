//! How surely the traffic seen so far would have caught a regression of a
//! stated size: the power of a regression e-process, for promotion "on
//! power" and for saying how much more traffic a decision needs.
//!
//! The model is the one the test itself rests on. Hits (errors, or requests
//! above a latency edge) arrive as Poisson counts, `λ = n_s·p_s + n_c·p_c`
//! in all, and each is the canary's with probability `θ₁ = n_c·p_c / λ`.
//! Given `H` hits the e-value is a function of the canary's share `k` of
//! them, increasing in `k`, so the test crosses `1/α` exactly when `k`
//! reaches some `k*(H)`. The power is `Σ_H P(H) · P(Bin(H, θ₁) ≥ k*(H))`.
//!
//! Simplifications, both on the cautious side or checked by simulation:
//! - the e-value is taken as if every hit came in one window at the pooled
//!   canary share; the real test, window by window at each step's share, is
//!   judged against this estimate in tests/it/judge_simulation.rs and the
//!   benchmark;
//! - only a crossing *now* counts, although the running test may have
//!   crossed earlier, so the true chance of having caught the regression is
//!   at least this.
//!
//! Promotion on power then keeps its promise: if the canary were the stated
//! regression, the chance it is still uncaught when the power first reaches
//! `1 − β` is at most `β` (the number of hits, which decides that moment, says
//! nothing about how they split between the arms).

use statrs::distribution::{Binomial, DiscreteCDF};
use statrs::function::erf::erfc;
use statrs::function::gamma::ln_gamma;

use crate::analysis::eprocess::EProcess;
use crate::analysis::observation::Arms;

/// Up to this many expected hits the power is summed exactly; beyond, the
/// crossing boundary is straight enough over the likely hit counts for a
/// normal approximation (checked against the exact sum in the tests).
const EXACT_UP_TO: f64 = 60.0;

/// Beyond a million times the traffic so far, a decision is out of reach.
const MAX_FACTOR: f64 = 1e6;

/// Expected hits beyond which a reply is not taken as traffic (10^12).
const MAX_HITS: f64 = 1e12;

/// Enough halvings for any hit count up to [`MAX_HITS`].
const MAX_BISECTIONS: usize = 64;

/// Steps of 1.5× when the first estimate of the traffic that reaches a
/// power falls short: 1.5^30 is beyond [`MAX_FACTOR`].
const SEARCH_STEPS: usize = 40;

/// Bisection steps after that search.
const REFINE_STEPS: usize = 5;

/// What the regression test would see if the canary were the regression to
/// catch: requests per arm, and the hit rate per arm (stable's at the point
/// the test reads it, the canary's under the regression).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scenario {
    pub requests: Arms<f64>,
    pub rates: Arms<f64>,
}

impl Scenario {
    fn scaled(&self, factor: f64) -> Scenario {
        Scenario {
            requests: Arms {
                stable: self.requests.stable * factor,
                canary: self.requests.canary * factor,
            },
            ..*self
        }
    }

    fn is_usable(&self) -> bool {
        let finite = [
            self.requests.stable,
            self.requests.canary,
            self.rates.stable,
            self.rates.canary,
        ]
        .iter()
        .all(|v| v.is_finite() && *v >= 0.0);
        finite && self.requests.stable > 0.0 && self.requests.canary > 0.0 && self.rates.canary > 0.0
    }
}

/// The chance that `process`, started afresh on this scenario's traffic,
/// would now stand at or above `e^log_threshold`.
pub fn power(process: &EProcess, scenario: &Scenario, log_threshold: f64) -> f64 {
    if !scenario.is_usable() || process.ratios.is_empty() {
        return 0.0;
    }
    let Arms {
        stable: n_s,
        canary: n_c,
    } = scenario.requests;
    let share = n_c / (n_s + n_c);
    let canary_mean = n_c * scenario.rates.canary;
    let mean = n_s * scenario.rates.stable + canary_mean;
    let theta = (canary_mean / mean).clamp(0.0, 1.0);
    let steps = process.per_hit(share);
    let log_total_weight = log_sum_exp(steps.iter().map(|(_, _, w)| *w));
    let crosses = |k: f64, hits: f64| {
        let log_e = log_sum_exp(steps.iter().map(|(a, b, w)| w + k * a + (hits - k) * b)) - log_total_weight;
        log_e >= log_threshold
    };
    // Counts no service produces: say nothing rather than compute on them.
    if !mean.is_finite() || mean > MAX_HITS {
        return 0.0;
    }
    if mean > EXACT_UP_TO {
        normal_power(mean, theta, &crosses)
    } else {
        exact_power(mean, theta, &crosses)
    }
}

/// `Σ_H P(H) · P(Bin(H, θ) ≥ k*(H))` over every likely `H`.
fn exact_power(mean: f64, theta: f64, crosses: &impl Fn(f64, f64) -> bool) -> f64 {
    let spread = 8.0 * mean.sqrt();
    let lowest = (mean - spread - 2.0).max(0.0).floor();
    let highest = (mean + spread + 10.0).ceil();
    // k*(H) never falls as H grows (a stable hit only lowers the e-value),
    // so one pointer walks up through all of them.
    let mut k_star = first_crossing(lowest, crosses);
    let mut total = 0.0;
    let mut hits = lowest;
    while hits <= highest {
        while k_star <= hits && !crosses(k_star, hits) {
            k_star += 1.0;
        }
        if k_star <= hits {
            total += poisson_pmf(hits, mean) * at_least(hits, theta, k_star);
        }
        hits += 1.0;
    }
    total.clamp(0.0, 1.0)
}

/// How many more canary requests (at the current share between the arms)
/// bring the power to `target`; `None` when no reachable amount would
/// (above all when the regression to catch is inside what the test
/// tolerates).
pub fn canary_requests_needed(process: &EProcess, scenario: &Scenario, log_threshold: f64, target: f64) -> Option<f64> {
    if !scenario.is_usable() {
        return None;
    }
    let power_at = |factor: f64| power(process, &scenario.scaled(factor), log_threshold);
    let now = power_at(1.0);
    if now >= target {
        return Some(0.0);
    }
    // Power grows about like Φ(a + b·√factor): two looks place the
    // factor, and a few more steps make sure it is reached. Cheap enough to
    // run at every evaluation of every Rollout.
    let probit = |p: f64| normal_quantile(p.clamp(1e-6, 1.0 - 1e-6));
    let later = power_at(4.0);
    let slope = probit(later) - probit(now);
    let mut factor = if slope > 0.0 {
        ((probit(target) - probit(now) + slope) / slope).powi(2).max(1.0)
    } else {
        4.0
    };
    let mut below = 1.0;
    for _ in 0..SEARCH_STEPS {
        if factor > MAX_FACTOR {
            return None;
        }
        if power_at(factor) >= target {
            break;
        }
        below = factor;
        factor *= 1.5;
    }
    // Narrow down between the last factor short of the target and the first
    // that reaches it, to within about 5 %.
    for _ in 0..REFINE_STEPS {
        let middle = (below * factor).sqrt();
        if power_at(middle) >= target {
            factor = middle
        } else {
            below = middle
        }
    }
    (power_at(factor) >= target).then_some(scenario.requests.canary * (factor - 1.0))
}

/// `Φ⁻¹(p)`.
fn normal_quantile(p: f64) -> f64 {
    use statrs::distribution::{ContinuousCDF, Normal};
    Normal::standard().inverse_cdf(p)
}

/// The power for many expected hits. Near `H = λ` the boundary is a line,
/// `k*(H) ≈ k*(λ) + s·(H − λ)`, so the test crosses when the sum over hits
/// of `1{canary} − s` reaches `k*(λ) − s·λ`; that sum is compound Poisson
/// with mean `λ(θ − s)` and variance `λ·E[(1{canary} − s)²]`.
fn normal_power(mean: f64, theta: f64, crosses: &impl Fn(f64, f64) -> bool) -> f64 {
    let spread = mean.sqrt();
    let at = |hits: f64| first_crossing(hits.round(), crosses);
    let (low, middle, high) = (at(mean - spread), at(mean), at(mean + spread));
    if middle > mean.round() {
        return 0.0;
    }
    let slope = ((high - low) / (2.0 * spread)).clamp(0.0, 1.0);
    let drift = mean * (theta - slope);
    let variance = mean * (theta * (1.0 - slope).powi(2) + (1.0 - theta) * slope.powi(2));
    // Half a hit of continuity correction: k* is a whole number of hits.
    let needed = middle - 0.5 - slope * mean.round();
    if variance <= 0.0 {
        return if drift >= needed { 1.0 } else { 0.0 };
    }
    let z = (drift - needed) / variance.sqrt();
    0.5 * erfc(-z / std::f64::consts::SQRT_2)
}

/// The smallest `k ≤ hits` at which `crosses(k, hits)`, or `hits + 1`.
fn first_crossing(hits: f64, crosses: impl Fn(f64, f64) -> bool) -> f64 {
    if !crosses(hits, hits) {
        return hits + 1.0;
    }
    let (mut low, mut high) = (0.0, hits);
    // Bounded: beyond 2^53 hits a float bisection can stop moving.
    for _ in 0..MAX_BISECTIONS {
        if low >= high {
            break;
        }
        let middle = ((low + high) / 2.0).floor();
        if crosses(middle, hits) {
            high = middle
        } else {
            low = middle + 1.0
        }
    }
    low
}

fn poisson_pmf(k: f64, mean: f64) -> f64 {
    if mean <= 0.0 {
        return if k == 0.0 { 1.0 } else { 0.0 };
    }
    (k * mean.ln() - mean - ln_gamma(k + 1.0)).exp()
}

/// `P(Bin(n, p) ≥ k)`.
fn at_least(n: f64, p: f64, k: f64) -> f64 {
    if k <= 0.0 {
        return 1.0;
    }
    match Binomial::new(p, n as u64) {
        Ok(binomial) => binomial.sf(k as u64 - 1),
        Err(_) => 0.0,
    }
}

fn log_sum_exp(values: impl Iterator<Item = f64> + Clone) -> f64 {
    let max = values.clone().fold(f64::NEG_INFINITY, f64::max);
    if max == f64::NEG_INFINITY {
        return max;
    }
    max + values.map(|v| (v - max).exp()).sum::<f64>().ln()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    /// Knuth's method: fine for the small means of one window's hits.
    fn poisson(mean: f64, rng: &mut SmallRng) -> f64 {
        let limit = (-mean).exp();
        let (mut k, mut product) = (0.0, rng.random::<f64>());
        while product > limit {
            k += 1.0;
            product *= rng.random::<f64>();
        }
        k
    }

    fn scenario(requests: (f64, f64), rates: (f64, f64)) -> Scenario {
        Scenario {
            requests: Arms {
                stable: requests.0,
                canary: requests.1,
            },
            rates: Arms {
                stable: rates.0,
                canary: rates.1,
            },
        }
    }

    #[test]
    fn grows_with_traffic_and_with_the_effect() {
        let process = EProcess::regression(1.25);
        let threshold = 20f64.ln();
        let small = power(&process, &scenario((4000.0, 1000.0), (0.001, 0.006)), threshold);
        let more = power(&process, &scenario((16000.0, 4000.0), (0.001, 0.006)), threshold);
        let larger = power(&process, &scenario((4000.0, 1000.0), (0.001, 0.02)), threshold);
        assert!(small < more && small < larger, "{small} {more} {larger}");
        assert!(more > 0.9, "{more}");
    }

    #[test]
    fn absurd_counts_end_in_no_power_not_a_hang() {
        let process = EProcess::regression(1.1);
        for n in [1e15, 1e300, f64::MAX] {
            let p = power(&process, &scenario((n, n), (0.5, 0.9)), 20f64.ln());
            assert!(p == 0.0, "{n}: {p}");
            let needed = canary_requests_needed(&process, &scenario((n, n), (0.5, 0.9)), 20f64.ln(), 0.9);
            assert_eq!(needed, None);
        }
    }

    #[test]
    fn concludes_with_no_errors_in_either_arm() {
        // Stable at 0 %: the canary's +0.5 pt would show as canary errors only.
        let process = EProcess::regression(1.25);
        let p = power(&process, &scenario((8000.0, 2000.0), (0.0, 0.005)), 20f64.ln());
        assert!(p > 0.9, "{p}");
    }

    #[test]
    fn is_nil_against_an_effect_the_test_tolerates() {
        let process = EProcess::regression(1.25);
        let p = power(&process, &scenario((1e6, 1e6), (0.01, 0.012)), 20f64.ln());
        assert!(p < 0.05, "{p}");
        let needed = canary_requests_needed(&process, &scenario((1e3, 1e3), (0.01, 0.0125)), 20f64.ln(), 0.9);
        assert_eq!(needed, None);
    }

    #[test]
    fn the_traffic_it_asks_for_reaches_the_power() {
        let process = EProcess::regression(1.25);
        let now = scenario((4000.0, 1000.0), (0.001, 0.006));
        let threshold = 20f64.ln();
        let needed = canary_requests_needed(&process, &now, threshold, 0.95).unwrap_or(f64::NAN);
        assert!(needed > 0.0, "{needed}");
        let factor = 1.0 + needed / 1000.0;
        let reached = power(&process, &now.scaled(factor), threshold);
        // Within about 5 %, never less than needed.
        let short = power(&process, &now.scaled(1.0 + 0.9 * needed / 1000.0), threshold);
        assert!(reached >= 0.95 && short < 0.95, "{reached} {short}");
    }

    #[test]
    fn the_normal_approximation_agrees_with_the_exact_sum() {
        let process = EProcess::regression(1.25);
        let threshold = 40f64.ln();
        for (share, theta, mean) in [
            (0.2, 0.35, 80.0),
            (0.2, 0.3, 300.0),
            (0.5, 0.62, 150.0),
            (0.1, 0.2, 600.0),
        ] {
            let steps = process.per_hit(share);
            let total = log_sum_exp(steps.iter().map(|(_, _, w)| *w));
            let crosses = |k: f64, hits: f64| {
                log_sum_exp(steps.iter().map(|(a, b, w)| w + k * a + (hits - k) * b)) - total >= threshold
            };
            let (exact, normal) = (exact_power(mean, theta, &crosses), normal_power(mean, theta, &crosses));
            assert!(
                (exact - normal).abs() < 0.03,
                "θ {theta}, λ {mean}: exact {exact}, normal {normal}"
            );
        }
    }

    #[test]
    fn matches_the_test_run_on_simulated_traffic() {
        // The formula against the e-process itself, one window at a time
        // at a fixed share: the share of runs standing above 1/α at the end.
        let threshold = 20f64.ln();
        let now = scenario((20_000.0, 5_000.0), (0.001, 0.006));
        let predicted = power(&EProcess::regression(1.25), &now, threshold);
        let mut rng = SmallRng::seed_from_u64(7);
        let runs = 2000;
        let windows = 20.0;
        let crossed = (0..runs)
            .filter(|_| {
                let mut process = EProcess::regression(1.25);
                for _ in 0..windows as usize {
                    let draw = poisson;
                    let hits = Arms {
                        stable: draw(20_000.0 / windows * 0.001, &mut rng),
                        canary: draw(5_000.0 / windows * 0.006, &mut rng),
                    };
                    let requests = Arms {
                        stable: 20_000.0 / windows,
                        canary: 5_000.0 / windows,
                    };
                    process.update(hits, requests);
                }
                process.log_e() >= threshold
            })
            .count() as f64
            / f64::from(runs);
        assert!(
            (crossed - predicted).abs() < 0.04,
            "simulated {crossed}, predicted {predicted}"
        );
    }
}
