//! The Wilcoxon rank-sum (Mann-Whitney) confidence interval for a location
//! shift, as R's `wilcox.test(x, y, conf.int = TRUE, exact = FALSE,
//! correct = TRUE)` computes it and Kayenta's judge uses it: the interval and
//! estimate are the shifts `μ` at which the normal-approximated, tie- and
//! continuity-corrected rank-sum statistic of `x − μ` against `y` crosses the
//! quantiles `±z` and 0.
//!
//! The statistic is a step function of `μ`, so the root is a jump point
//! (a difference `x_i − y_j`); R's `uniroot` stops within `1e-4` of it, and
//! we stop within a few ulps, so results agree to R's tolerance. One
//! exception: with the continuity correction the statistic is exactly 0 on a
//! whole interval of shifts, and R's estimate is whichever point of it
//! `uniroot` hits first; we take the interval's midpoint, like the
//! Hodges-Lehmann median of pairwise differences.

use statrs::distribution::{ContinuousCDF, Normal};

/// A confidence interval for the shift `x − y`, with its point estimate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ShiftInterval {
    pub lower: f64,
    pub upper: f64,
    pub estimate: f64,
}

/// Rank sum of `x − shift` in the pooled sample with `y` (average ranks for
/// ties), and the tie term `Σ (t³ − t)` over tie groups. Both inputs sorted.
fn rank_sum(x: &[f64], shift: f64, y: &[f64]) -> (f64, f64) {
    let (mut i, mut j, mut position) = (0, 0, 0.0);
    let (mut sum, mut ties) = (0.0, 0.0);
    while i < x.len() || j < y.len() {
        let next_x = x.get(i).map(|v| v - shift).unwrap_or(f64::INFINITY);
        let next_y = y.get(j).copied().unwrap_or(f64::INFINITY);
        let value = next_x.min(next_y);
        let mut in_x = 0.0;
        while i < x.len() && x[i] - shift == value {
            i += 1;
            in_x += 1.0;
        }
        let mut in_y = 0.0;
        while j < y.len() && y[j] == value {
            j += 1;
            in_y += 1.0;
        }
        let group: f64 = in_x + in_y;
        if group == 0.0 {
            break; // Only reachable with infinities, which callers exclude.
        }
        sum += in_x * (position + (group + 1.0) / 2.0);
        ties += group * group * group - group;
        position += group;
    }
    (sum, ties)
}

/// The standardised, continuity-corrected statistic minus `z`; decreasing in
/// `shift`. `None` when every observation is tied (no variance).
fn standardised(x: &[f64], y: &[f64], shift: f64, z: f64) -> Option<f64> {
    let (nx, ny) = (x.len() as f64, y.len() as f64);
    let (w, ties) = rank_sum(x, shift, y);
    let dz = w - nx * (nx + 1.0) / 2.0 - nx * ny / 2.0;
    let correction = if dz == 0.0 { 0.0 } else { 0.5 * dz.signum() };
    let n = nx + ny;
    let sigma = (nx * ny / 12.0 * ((n + 1.0) - ties / (n * (n - 1.0)))).sqrt();
    (sigma > 0.0).then(|| (dz - correction) / sigma - z)
}

/// Brent's method on `[a, b]`, where `f(a)` and `f(b)` have opposite signs.
fn brent(f: impl Fn(f64) -> Option<f64>, mut a: f64, mut b: f64, tolerance: f64) -> Option<f64> {
    let (mut fa, mut fb) = (f(a)?, f(b)?);
    let (mut c, mut fc) = (b, fb);
    let (mut d, mut e) = (b - a, b - a);
    for _ in 0..300 {
        if (fb > 0.0) == (fc > 0.0) && fb != 0.0 && fc != 0.0 {
            (c, fc) = (a, fa);
            d = b - a;
            e = d;
        }
        if fc.abs() < fb.abs() {
            (a, fa) = (b, fb);
            (b, fb) = (c, fc);
            (c, fc) = (a, fa);
        }
        let tol = 2.0 * f64::EPSILON * b.abs() + 0.5 * tolerance;
        let half = 0.5 * (c - b);
        if half.abs() <= tol || fb == 0.0 {
            return Some(b);
        }
        if e.abs() >= tol && fa.abs() > fb.abs() {
            // Interpolate: secant when only two points are known, else inverse quadratic.
            let s = fb / fa;
            let (mut p, mut q) = if a == c {
                (2.0 * half * s, 1.0 - s)
            } else {
                let (qa, r) = (fa / fc, fb / fc);
                (
                    s * (2.0 * half * qa * (qa - r) - (b - a) * (r - 1.0)),
                    (qa - 1.0) * (r - 1.0) * (s - 1.0),
                )
            };
            if p > 0.0 {
                q = -q;
            } else {
                p = -p;
            }
            if 2.0 * p < (3.0 * half * q - (tol * q).abs()).min((e * q).abs()) {
                e = d;
                d = p / q;
            } else {
                d = half;
                e = d;
            }
        } else {
            d = half;
            e = d;
        }
        (a, fa) = (b, fb);
        b += if d.abs() > tol { d } else { tol.copysign(half) };
        fb = f(b)?;
    }
    Some(b)
}

/// The shift at which the statistic crosses `z`, clamped to the range of
/// possible shifts as R does.
fn root(x: &[f64], y: &[f64], z: f64, low: f64, high: f64) -> Option<f64> {
    let f = |shift| standardised(x, y, shift, z);
    if f(low)? <= 0.0 {
        return Some(low);
    }
    if f(high)? >= 0.0 {
        return Some(high);
    }
    let tolerance = 1e-12 * (high - low).abs().max(f64::MIN_POSITIVE);
    brent(f, low, high, tolerance)
}

/// Crossing just above and just below 0 finds both ends of the interval on
/// which the corrected statistic is exactly 0 (nonzero values are at least
/// `0.5 / σ` away from it).
const FLAT: f64 = 1e-9;

/// The two-sided `confidence` interval and Hodges-Lehmann-type estimate of
/// the shift `x − y`. `None` for empty or non-finite samples, or when every
/// observation is tied.
pub fn shift_interval(x: &[f64], y: &[f64], confidence: f64) -> Option<ShiftInterval> {
    if x.is_empty() || y.is_empty() || !(confidence > 0.0 && confidence < 1.0) {
        return None;
    }
    if x.iter().chain(y).any(|v| !v.is_finite()) {
        return None;
    }
    let mut x = x.to_vec();
    let mut y = y.to_vec();
    x.sort_by(f64::total_cmp);
    y.sort_by(f64::total_cmp);
    let low = x[0] - y[y.len() - 1];
    let high = x[x.len() - 1] - y[0];
    let z = Normal::standard().inverse_cdf(1.0 - (1.0 - confidence) / 2.0);
    Some(ShiftInterval {
        lower: root(&x, &y, z, low, high)?,
        upper: root(&x, &y, -z, low, high)?,
        estimate: 0.5 * (root(&x, &y, FLAT, low, high)? + root(&x, &y, -FLAT, low, high)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(actual: f64, expected: f64) -> bool {
        (actual - expected).abs() <= 1e-9 * expected.abs().max(1.0)
    }

    #[test]
    fn ranks_ties_by_their_average() {
        // Pooled: 1 2 2 3 -> ranks 1, 2.5, 2.5, 4; x holds one 2 and the 3.
        assert_eq!(rank_sum(&[2.0, 3.0], 0.0, &[1.0, 2.0]), (6.5, 6.0));
    }

    /// Expected values: R's algorithm (`wilcox.test`, two-sample, `exact =
    /// FALSE, correct = TRUE, conf.int = TRUE`) re-implemented in Python with
    /// `scipy.stats.norm.ppf` and `scipy.optimize.brentq(xtol = 1e-14)`; the
    /// roots were confirmed to be the jump points `x_i − y_j` by exhaustive
    /// search over all pairwise differences; the estimate is the midpoint of
    /// the interval of exact zeros found by that search.
    /// The interval and estimate of R's `wilcox.test(x, y, conf.int =
    /// TRUE, conf.level = 0.98)` for these samples.
    fn assert_matches_r(x: &[f64], y: &[f64], (lower, upper, estimate): (f64, f64, f64)) {
        let interval = shift_interval(x, y, 0.98);
        assert!(
            interval.is_some_and(|i| close(i.lower, lower) && close(i.upper, upper) && close(i.estimate, estimate)),
            "{interval:?} != ({lower}, {upper}, {estimate})"
        );
    }

    #[test]
    fn matches_r_wilcox_test_conf_int() {
        let x = [1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30];
        let y = [0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06];
        assert_matches_r(&x, &y, FIXTURE_A);
    }

    #[test]
    fn matches_r_with_ties_and_a_clear_shift() {
        let x = [12.0, 15.0, 15.0, 17.0, 19.0, 19.0, 22.0];
        let y = [10.0, 11.0, 11.0, 12.0, 13.0];
        assert_matches_r(&x, &y, FIXTURE_B);
    }

    const FIXTURE_A: (f64, f64, f64) = (-0.22, 1.42, 0.707);
    const FIXTURE_B: (f64, f64, f64) = (1.0, 11.0, 5.5);

    #[test]
    fn refuses_samples_without_variance_or_values() {
        assert_eq!(shift_interval(&[1.0, 1.0], &[1.0], 0.98), None);
        assert_eq!(shift_interval(&[], &[1.0], 0.98), None);
        assert_eq!(shift_interval(&[f64::NAN], &[1.0], 0.98), None);
    }
}
