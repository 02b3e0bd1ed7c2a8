//! What metric providers report, as plain data the judges read: cumulative
//! counters and histograms per arm, and single values.
//!
//! Providers report *cumulative* counters (Prometheus counters and classic
//! histograms); the judges turn them into increments. A counter that went
//! down was reset, and its new value is the increment.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The same quantity read for both arms.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Arms<T> {
    pub stable: T,
    pub canary: T,
}

/// Cumulative request and error counters of one arm.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Counts {
    pub requests: f64,
    pub errors: f64,
}

/// One cumulative bucket of a classic Prometheus histogram: observations `<= le`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Bucket {
    pub le: f64,
    pub count: f64,
}

/// A cumulative latency histogram of one arm: the finite `le` buckets in
/// ascending order, and `count`, the `le="+Inf"` bucket (`_count`). Keeping
/// `+Inf` out of the buckets keeps the type JSON-friendly.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Histogram {
    pub buckets: Vec<Bucket>,
    pub count: f64,
}

/// What a provider reported for one metric at one evaluation.
#[derive(Clone, Debug, PartialEq)]
pub enum Observation {
    /// Cumulative request and error counters per arm.
    Counts(Arms<Counts>),
    /// Cumulative latency histograms per arm.
    Histogram(Arms<Histogram>),
    /// One value per arm for the latest window (e.g. a p99 computed by the query).
    Values(Arms<f64>),
    /// One canary-only value (threshold checks).
    Value(f64),
    /// The provider returned no data or failed.
    Missing,
}

/// A cumulative reading a judge keeps to turn counters into increments.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Reading {
    Counts(Arms<Counts>),
    Histogram(Arms<Histogram>),
}

impl Reading {
    /// The cumulative part of an observation, if it is valid.
    pub fn of(observation: &Observation) -> Option<Reading> {
        match observation {
            Observation::Counts(arms) if arms.stable.is_valid() && arms.canary.is_valid() => {
                Some(Reading::Counts(*arms))
            }
            Observation::Histogram(arms) if arms.stable.is_valid() && arms.canary.is_valid() => {
                Some(Reading::Histogram(arms.clone()))
            }
            _ => None,
        }
    }

    /// What happened between `earlier` and this reading, per arm; `None` when
    /// the two are not comparable (different kinds or bucket layouts).
    pub fn since(&self, earlier: &Reading) -> Option<Reading> {
        match (self, earlier) {
            (Reading::Counts(now), Reading::Counts(then)) => Some(Reading::Counts(Arms {
                stable: now.stable.since(&then.stable),
                canary: now.canary.since(&then.canary),
            })),
            (Reading::Histogram(now), Reading::Histogram(then)) => Some(Reading::Histogram(Arms {
                stable: now.stable.since(&then.stable)?,
                canary: now.canary.since(&then.canary)?,
            })),
            _ => None,
        }
    }

    /// Requests counted in each arm.
    pub fn requests(&self) -> Arms<f64> {
        match self {
            Reading::Counts(arms) => Arms {
                stable: arms.stable.requests,
                canary: arms.canary.requests,
            },
            Reading::Histogram(arms) => Arms {
                stable: arms.stable.count,
                canary: arms.canary.count,
            },
        }
    }
}

/// The increment of a cumulative counter; a counter that went down was reset.
fn increment(now: f64, then: f64) -> f64 {
    if now < then { now } else { now - then }
}

fn is_count(value: f64) -> bool {
    value.is_finite() && value >= 0.0
}

impl Counts {
    pub fn is_valid(&self) -> bool {
        is_count(self.requests) && is_count(self.errors)
    }

    /// The requests and errors since `earlier`, reset-aware. Errors are capped
    /// at the requests of the same window: the two counters are scraped at
    /// slightly different moments, and an error without its request would
    /// otherwise be impossible data.
    pub fn since(&self, earlier: &Counts) -> Counts {
        let reset = self.requests < earlier.requests || self.errors < earlier.errors;
        let (requests, errors) = if reset {
            (self.requests, self.errors)
        } else {
            (
                increment(self.requests, earlier.requests),
                increment(self.errors, earlier.errors),
            )
        };
        Counts {
            requests,
            errors: errors.min(requests),
        }
    }

    /// Errors per request, or `None` without requests.
    pub fn error_ratio(&self) -> Option<f64> {
        (self.requests > 0.0).then(|| self.errors / self.requests)
    }
}

impl Histogram {
    /// Builds a histogram from Prometheus `(le, cumulative count)` pairs in any
    /// order, one of them `le = +Inf`. `None` if the data is not a histogram.
    pub fn from_cumulative(pairs: impl IntoIterator<Item = (f64, f64)>) -> Option<Histogram> {
        let mut buckets = Vec::new();
        let mut count = None;
        for (le, value) in pairs {
            if le == f64::INFINITY {
                count = Some(value);
            } else {
                buckets.push(Bucket { le, count: value });
            }
        }
        buckets.sort_by(|a, b| a.le.total_cmp(&b.le));
        let histogram = Histogram { buckets, count: count? };
        histogram.is_valid().then_some(histogram)
    }

    /// Finite ascending edges, non-decreasing counts, nothing above `count`.
    pub fn is_valid(&self) -> bool {
        let edges_ascend = self.buckets.windows(2).all(|w| w[0].le < w[1].le);
        let counts_ascend = self.buckets.windows(2).all(|w| w[0].count <= w[1].count);
        edges_ascend
            && counts_ascend
            && is_count(self.count)
            && self
                .buckets
                .iter()
                .all(|b| b.le.is_finite() && is_count(b.count) && b.count <= self.count)
    }

    /// The observations since `earlier`, reset-aware as a whole: if any bucket
    /// went down the process restarted, and every bucket restarted with it.
    pub fn since(&self, earlier: &Histogram) -> Option<Histogram> {
        let same_layout = self.buckets.len() == earlier.buckets.len()
            && self.buckets.iter().zip(&earlier.buckets).all(|(a, b)| a.le == b.le);
        if !same_layout {
            return None;
        }
        let reset = self.count < earlier.count
            || self
                .buckets
                .iter()
                .zip(&earlier.buckets)
                .any(|(a, b)| a.count < b.count);
        if reset {
            return Some(self.clone());
        }
        Some(Histogram {
            buckets: self
                .buckets
                .iter()
                .zip(&earlier.buckets)
                .map(|(now, then)| Bucket {
                    le: now.le,
                    count: now.count - then.count,
                })
                .collect(),
            count: self.count - earlier.count,
        })
    }

    /// Observations strictly above `edge`, which must be one of the buckets.
    pub fn above(&self, edge: f64) -> Option<f64> {
        self.buckets
            .iter()
            .find(|b| b.le == edge)
            .map(|b| (self.count - b.count).max(0.0))
    }

    /// Observations above `x`, read between buckets the way
    /// `histogram_quantile` reads them: spread evenly within the bucket that
    /// holds `x` (the first bucket starting at 0). Exact at a bucket edge;
    /// elsewhere the truth lies between the counts above the bucket's two
    /// edges. Above the highest finite edge, the count above that edge.
    pub fn above_interpolated(&self, x: f64) -> Option<f64> {
        self.interpolate(x, |lower, upper, x| (upper - x) / (upper - lower))
    }

    /// The part of the bucket holding `x` that lies above it, read as a
    /// tail falling geometrically: `S(x) = S(lo)·(S(hi)/S(lo))^t` with `t`
    /// how far `x` is from `lo` to `hi` in log latency. Exact for a
    /// power-law tail and close for a log-normal one, where spreading evenly
    /// overstates what lies near the bucket's top. Evenly spread in the
    /// first bucket and wherever nothing lies above the bucket (no tail to
    /// follow). `None` for a point that is not finite.
    pub fn tail_share(&self, x: f64) -> Option<f64> {
        if !x.is_finite() {
            return None;
        }
        let mut lower = (0.0, 0.0);
        for bucket in &self.buckets {
            if x <= bucket.le {
                if x <= lower.0 || bucket.le <= lower.0 {
                    return Some(1.0);
                }
                let (above_lower, above_upper) = (self.count - lower.1, self.count - bucket.count);
                let even = (bucket.le - x) / (bucket.le - lower.0);
                if lower.0 <= 0.0 || above_upper <= 0.0 || above_lower <= above_upper {
                    return Some(even.clamp(0.0, 1.0));
                }
                let t = (x / lower.0).ln() / (bucket.le / lower.0).ln();
                let above_x = above_lower * (above_upper / above_lower).powf(t);
                return Some(((above_x - above_upper) / (above_lower - above_upper)).clamp(0.0, 1.0));
            }
            lower = (bucket.le, bucket.count);
        }
        Some(1.0)
    }

    /// Observations above `x`: those above the bucket holding it, and
    /// `share` of that bucket's.
    pub fn above_with_share(&self, x: f64, share: f64) -> Option<f64> {
        self.interpolate(x, |_, _, _| share)
    }

    /// Observations above `x`, the tail followed as [`Histogram::tail_share`] reads it.
    pub fn above_tail_interpolated(&self, x: f64) -> Option<f64> {
        self.above_with_share(x, self.tail_share(x)?)
    }

    /// Count above `x` with `share(lower, upper, x)`, the part of the bucket
    /// `(lower, upper]` holding `x` that lies above it.
    fn interpolate(&self, x: f64, share: impl Fn(f64, f64, f64) -> f64) -> Option<f64> {
        if !x.is_finite() {
            return None;
        }
        if self.count <= 0.0 {
            return Some(0.0);
        }
        let mut lower = (0.0, 0.0);
        for bucket in &self.buckets {
            if x <= bucket.le {
                let above_upper = (self.count - bucket.count).max(0.0);
                if x <= lower.0 || bucket.le <= lower.0 {
                    return Some((self.count - lower.1).max(0.0));
                }
                let in_bucket = (bucket.count - lower.1).max(0.0);
                return Some(above_upper + in_bucket * share(lower.0, bucket.le, x).clamp(0.0, 1.0));
            }
            lower = (bucket.le, bucket.count);
        }
        Some((self.count - lower.1).max(0.0))
    }

    /// The smallest finite edge at or above the `q` quantile, if there is one.
    pub fn edge_at_quantile(&self, q: f64) -> Option<f64> {
        let rank = q * self.count;
        self.buckets.iter().find(|b| b.count >= rank).map(|b| b.le)
    }

    /// `histogram_quantile(q, ...)` with Prometheus semantics: linear
    /// interpolation inside the bucket holding the rank, the lower edge of the
    /// first bucket taken as 0, and the highest finite edge returned when the
    /// rank falls into `+Inf`. `None` without observations.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count <= 0.0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        let rank = q * self.count;
        let mut lower_edge = 0.0;
        let mut below = 0.0;
        for (i, bucket) in self.buckets.iter().enumerate() {
            if bucket.count >= rank {
                if i == 0 && bucket.le <= 0.0 {
                    return Some(bucket.le);
                }
                let in_bucket = bucket.count - below;
                let fraction = if in_bucket > 0.0 {
                    (rank - below) / in_bucket
                } else {
                    1.0
                };
                return Some(lower_edge + (bucket.le - lower_edge) * fraction);
            }
            lower_edge = bucket.le;
            below = bucket.count;
        }
        self.buckets.last().map(|b| b.le)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_between_buckets_within_their_bounds() {
        // 100 observations: 20 up to 10 ms, 50 more up to 25 ms, 30 above.
        let h = histogram(&[(0.01, 20.0), (0.025, 70.0), (f64::INFINITY, 100.0)]);
        assert_eq!(h.above_interpolated(0.025), Some(30.0));
        assert_eq!(h.above_interpolated(0.01), Some(80.0));
        // 20 ms is two thirds of the way from 10 to 25: a third of 50 above it.
        let linear = h.above_interpolated(0.02).unwrap_or_default();
        assert!((linear - (30.0 + 50.0 / 3.0)).abs() < 1e-9, "{linear}");
        // Read as a falling tail, less of the bucket lies near its top.
        let tail = h.above_tail_interpolated(0.02).unwrap_or_default();
        assert!(tail > 30.0 && tail < linear, "{tail}");
        assert_eq!(h.above_tail_interpolated(0.025), Some(30.0));
        // Inside the first bucket, from 0; beyond the last finite edge, +Inf's count.
        assert_eq!(h.above_interpolated(0.005), Some(90.0));
        assert_eq!(h.above_interpolated(1.0), Some(30.0));
        assert_eq!(h.above_interpolated(f64::NAN), None);
    }

    fn histogram(pairs: &[(f64, f64)]) -> Histogram {
        Histogram::from_cumulative(pairs.iter().copied()).expect("valid test histogram")
    }

    fn counts(requests: f64, errors: f64) -> Counts {
        Counts { requests, errors }
    }

    #[test]
    fn a_counter_that_goes_down_was_reset() {
        let then = counts(1000.0, 10.0);
        let now = counts(40.0, 1.0);
        assert_eq!(now.since(&then), now);
        let later = counts(100.0, 3.0);
        assert_eq!(later.since(&now), counts(60.0, 2.0));
    }

    #[test]
    fn errors_never_exceed_requests_in_a_window() {
        let then = counts(100.0, 1.0);
        let now = counts(101.0, 4.0);
        assert_eq!(now.since(&then), counts(1.0, 1.0));
    }

    #[test]
    fn a_histogram_resets_as_a_whole() {
        let then = histogram(&[(0.1, 50.0), (0.5, 90.0), (f64::INFINITY, 100.0)]);
        let now = histogram(&[(0.1, 5.0), (0.5, 9.0), (f64::INFINITY, 120.0)]);
        assert_eq!(now.since(&then), Some(now.clone()));
        let layout_changed = histogram(&[(0.2, 5.0), (f64::INFINITY, 9.0)]);
        assert_eq!(layout_changed.since(&then), None);
    }

    #[test]
    fn rejects_histograms_without_a_total_or_out_of_order() {
        assert_eq!(Histogram::from_cumulative([(0.1, 1.0)]), None);
        assert_eq!(
            Histogram::from_cumulative([(0.1, 5.0), (0.2, 3.0), (f64::INFINITY, 5.0)]),
            None
        );
        assert_eq!(
            Histogram::from_cumulative([(0.1, f64::NAN), (f64::INFINITY, 5.0)]),
            None
        );
    }

    #[test]
    fn quantiles_follow_prometheus_histogram_quantile() {
        let h = histogram(&[(0.1, 50.0), (0.2, 90.0), (0.4, 99.0), (f64::INFINITY, 100.0)]);
        assert_eq!(h.quantile(0.5), Some(0.1));
        assert!((h.quantile(0.7).unwrap_or(f64::NAN) - 0.15).abs() < 1e-12);
        assert!((h.quantile(0.25).unwrap_or(f64::NAN) - 0.05).abs() < 1e-12);
        // In the +Inf bucket Prometheus answers the highest finite edge.
        assert_eq!(h.quantile(0.995), Some(0.4));
        assert_eq!(Histogram::default().quantile(0.5), None);
        assert_eq!(h.edge_at_quantile(0.9), Some(0.2));
        assert_eq!(h.above(0.2), Some(10.0));
        assert_eq!(h.above(0.3), None);
    }
}
