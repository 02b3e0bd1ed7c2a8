//! Simulated stable and canary arms serving traffic, for the judge benchmark
//! and the judges' statistical tests. Deterministic for a given seed.
//!
//! Requests arrive as a Poisson process whose volume, base error rate and
//! latency scale swing together over a day (a common load factor), so a
//! judge that compares the canary with a fixed number is confounded while one
//! that compares it with stable is not. Latency is lognormal and reported as
//! cumulative Prometheus-style buckets, on a layout a real exporter uses
//! ([`BucketLayout`]) or a fine reference grid. Binomial draws are exact (inversion)
//! below a mean of 30 and normal-approximated above, which keeps day-long
//! runs cheap.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use statrs::function::erf::erfc;

use super::judge::{Arms, Bucket, Counts, Histogram, Observation};

mod layouts;
pub use layouts::{BucketLayout, exponential_edges};

/// How a diurnal load factor moves each quantity (relative amplitude).
#[derive(Clone, Debug, PartialEq)]
pub struct Diurnal {
    pub volume: f64,
    pub error_rate: f64,
    pub latency: f64,
    pub period_seconds: f64,
}

/// Stable's traffic.
#[derive(Clone, Debug, PartialEq)]
pub struct Traffic {
    /// Requests per second, both arms together.
    pub requests_per_second: f64,
    pub error_rate: f64,
    /// Median latency, seconds.
    pub latency_median: f64,
    /// Standard deviation of log latency.
    pub latency_sigma: f64,
    pub diurnal: Diurnal,
    /// Histogram bucket edges; empty to skip latency entirely.
    pub edges: Vec<f64>,
}

impl Default for Traffic {
    fn default() -> Self {
        Traffic {
            requests_per_second: 100.0,
            error_rate: 0.001,
            latency_median: 0.1,
            latency_sigma: 0.5,
            diurnal: Diurnal {
                volume: 0.5,
                error_rate: 0.8,
                latency: 0.1,
                period_seconds: 86_400.0,
            },
            edges: exponential_edges(0.02, 1.1, 51),
        }
    }
}

impl Diurnal {
    /// No daily swing: the level a grid cell names holds for the whole run.
    pub fn flat() -> Diurnal {
        Diurnal {
            volume: 0.0,
            error_rate: 0.0,
            latency: 0.0,
            period_seconds: 86_400.0,
        }
    }
}

/// The standard normal's 99th percentile.
const Z_99: f64 = 2.326_347_874;

impl Traffic {
    /// A service as users of canary analysis run it: lognormal latency with
    /// median 20 ms and p99 80 ms, a steady level (a canary lasts minutes),
    /// latency reported on `layout`.
    pub fn service(requests_per_second: f64, error_rate: f64, layout: BucketLayout) -> Traffic {
        let (median, p99) = (0.020, 0.080);
        Traffic {
            requests_per_second,
            error_rate,
            latency_median: median,
            latency_sigma: (p99 / median).ln() / Z_99,
            diurnal: Diurnal::flat(),
            edges: layout.edges(),
        }
    }
}

/// What differs in the canary.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Effect {
    None,
    /// Canary error rate = ratio × stable's.
    ErrorRatio(f64),
    /// Canary error rate = the larger of `ratio` × stable's and stable's
    /// plus `increase` (0.005 = +0.5 percentage points).
    Errors {
        ratio: f64,
        increase: f64,
    },
    /// Every canary latency multiplied by this factor.
    LatencyScale(f64),
    /// A `fraction` of canary requests take a slow path, `factor` times slower.
    SlowTail {
        fraction: f64,
        factor: f64,
    },
}

/// Standard normal CDF.
pub fn normal_cdf(z: f64) -> f64 {
    0.5 * erfc(-z / std::f64::consts::SQRT_2)
}

impl Effect {
    /// The slow-tail fraction that raises p99 by `increase` (0.25 = +25 %)
    /// when slow requests are `factor` times slower, for log-sd `sigma`.
    pub fn slow_tail_for_p99(increase: f64, factor: f64, sigma: f64) -> Effect {
        let p99 = |fraction: f64| {
            let cdf =
                |z: f64| (1.0 - fraction) * normal_cdf(z / sigma) + fraction * normal_cdf((z - factor.ln()) / sigma);
            bisect(|z| cdf(z) < 0.99, -20.0, 20.0)
        };
        let target = p99(0.0) + (1.0 + increase).ln();
        let fraction = bisect(|w| p99(w) < target, 0.0, 0.5);
        Effect::SlowTail { fraction, factor }
    }
}

/// The boundary between `below` holding and failing, by bisection.
fn bisect(below: impl Fn(f64) -> bool, mut lo: f64, mut hi: f64) -> f64 {
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if below(mid) { lo = mid } else { hi = mid }
    }
    0.5 * (lo + hi)
}

/// One simulated window: increments and the true probabilities behind them.
#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    pub requests: Arms<f64>,
    pub errors: Arms<f64>,
    pub error_probability: Arms<f64>,
    /// Requests per latency cell: `≤ edge[0]`, ..., `> edge[last]`.
    pub cells: Arms<Vec<f64>>,
    pub cell_probability: Arms<Vec<f64>>,
}

impl Window {
    /// The log-likelihood ratio of a two-arm SPRT oracle that knows the true
    /// per-cell rates: given that a request fell in a cell (error or not,
    /// latency bucket), which arm served it; the common base rate is
    /// conditioned away as in the sequential judge. The null it tests is the
    /// canary erring at `null_error_ratio` × stable's true rate (1 for
    /// equality; `1 + tolerance` for the null the judge tests), with latency
    /// equal. The benchmark's yardstick.
    pub fn oracle_log_likelihood_ratio(&self, errors: bool, latency: bool, null_error_ratio: f64) -> f64 {
        let (nc, nb) = (self.requests.canary, self.requests.stable);
        if nc <= 0.0 || nb <= 0.0 {
            return 0.0;
        }
        let share = nc / (nc + nb);
        let canary_probability = |pc: f64, pb: f64| pc * share / (pc * share + pb * (1.0 - share));
        // Counts `xc`, `xb` in a cell with true probabilities `pc`, `pb` and
        // probabilities `qc`, `qb` under the null.
        let cell = |xc: f64, xb: f64, (pc, pb): (f64, f64), (qc, qb): (f64, f64)| {
            if pc <= 0.0 || pb <= 0.0 || qc <= 0.0 || qb <= 0.0 || (pc == qc && pb == qb) {
                return 0.0;
            }
            let (theta, null) = (canary_probability(pc, pb), canary_probability(qc, qb));
            xc * (theta / null).ln() + xb * ((1.0 - theta) / (1.0 - null)).ln()
        };
        let p = self.error_probability;
        let mut llr = 0.0;
        if errors {
            let null_canary = (null_error_ratio * p.stable).min(1.0);
            llr += cell(
                self.errors.canary,
                self.errors.stable,
                (p.canary, p.stable),
                (null_canary, p.stable),
            );
            let (ok_c, ok_b) = (nc - self.errors.canary, nb - self.errors.stable);
            llr += cell(
                ok_c,
                ok_b,
                (1.0 - p.canary, 1.0 - p.stable),
                (1.0 - null_canary, 1.0 - p.stable),
            );
        }
        if latency {
            let cells = self.cells.canary.iter().zip(&self.cells.stable);
            let probabilities = self.cell_probability.canary.iter().zip(&self.cell_probability.stable);
            llr += cells
                .zip(probabilities)
                .map(|((xc, xb), (pc, pb))| cell(*xc, *xb, (*pc, *pb), (*pb, *pb)))
                .sum::<f64>();
        }
        llr
    }
}

/// Stable and canary serving traffic over simulated time.
pub struct Simulation {
    traffic: Traffic,
    effect: Effect,
    rng: SmallRng,
    phase: f64,
    seconds: f64,
    counts: Arms<Counts>,
    histograms: Arms<Histogram>,
}

fn standard_normal(rng: &mut SmallRng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn poisson(rng: &mut SmallRng, mean: f64) -> f64 {
    if mean <= 0.0 {
        return 0.0;
    }
    if mean >= 30.0 {
        return (mean + mean.sqrt() * standard_normal(rng)).round().max(0.0);
    }
    let limit = (-mean).exp();
    let (mut k, mut product) = (0.0, rng.random::<f64>());
    while product > limit {
        k += 1.0;
        product *= rng.random::<f64>();
    }
    k
}

fn binomial(rng: &mut SmallRng, n: f64, p: f64) -> f64 {
    if n <= 0.0 || p <= 0.0 {
        return 0.0;
    }
    if p >= 1.0 {
        return n;
    }
    if p > 0.5 {
        return n - binomial(rng, n, 1.0 - p);
    }
    let mean = n * p;
    if mean >= 30.0 {
        let draw = mean + (mean * (1.0 - p)).sqrt() * standard_normal(rng);
        return draw.round().clamp(0.0, n);
    }
    // Inversion: walk the probability mass function from 0.
    let odds = p / (1.0 - p);
    let mut mass = (n * (-p).ln_1p()).exp();
    let mut u: f64 = rng.random();
    let mut k = 0.0;
    while u > mass && k < n {
        u -= mass;
        k += 1.0;
        mass *= (n - k + 1.0) / k * odds;
    }
    k
}

impl Simulation {
    pub fn new(traffic: Traffic, effect: Effect, seed: u64) -> Simulation {
        let mut rng = SmallRng::seed_from_u64(seed);
        let phase = rng.random::<f64>() * std::f64::consts::TAU;
        let empty = Histogram {
            buckets: traffic.edges.iter().map(|le| Bucket { le: *le, count: 0.0 }).collect(),
            count: 0.0,
        };
        Simulation {
            traffic,
            effect,
            rng,
            phase,
            seconds: 0.0,
            counts: Arms::default(),
            histograms: Arms {
                stable: empty.clone(),
                canary: empty,
            },
        }
    }

    /// Simulated seconds so far.
    pub fn seconds(&self) -> f64 {
        self.seconds
    }

    /// The common load factor at `seconds`, in `[-1, 1]`.
    fn load(&self, seconds: f64) -> f64 {
        (std::f64::consts::TAU * seconds / self.traffic.diurnal.period_seconds + self.phase).sin()
    }

    fn latency_cdf(&self, edge: f64, median: f64, canary: bool) -> f64 {
        let sigma = self.traffic.latency_sigma;
        let at = |median: f64| normal_cdf((edge / median).ln() / sigma);
        match (canary, self.effect) {
            (true, Effect::LatencyScale(scale)) => at(median * scale),
            (true, Effect::SlowTail { fraction, factor }) => {
                (1.0 - fraction) * at(median) + fraction * at(median * factor)
            }
            _ => at(median),
        }
    }

    fn cell_probabilities(&self, median: f64, canary: bool) -> Vec<f64> {
        let mut below = 0.0;
        let mut cells: Vec<f64> = self
            .traffic
            .edges
            .iter()
            .map(|edge| {
                let cdf = self.latency_cdf(*edge, median, canary);
                let cell = (cdf - below).max(0.0);
                below = cdf;
                cell
            })
            .collect();
        cells.push((1.0 - below).max(0.0));
        cells
    }

    fn sample_cells(&mut self, requests: f64, probabilities: &[f64]) -> Vec<f64> {
        let (mut left, mut mass) = (requests, 1.0);
        probabilities
            .iter()
            .map(|p| {
                let drawn = if mass > 0.0 {
                    binomial(&mut self.rng, left, (p / mass).min(1.0))
                } else {
                    0.0
                };
                left -= drawn;
                mass -= p;
                drawn
            })
            .collect()
    }

    /// Serves `seconds` of traffic with the canary taking `share` of it.
    pub fn advance(&mut self, seconds: f64, share: f64) -> Window {
        self.advance_shares(
            seconds,
            Arms {
                stable: 1.0 - share,
                canary: share,
            },
        )
    }

    /// Serves `seconds` with each arm taking its share of the traffic; the
    /// rest goes elsewhere. With `stable` equal to `canary`'s share the
    /// stable arm is a same-size baseline (stable's version beside the
    /// canary, as Kayenta is usually run).
    pub fn advance_shares(&mut self, seconds: f64, shares: Arms<f64>) -> Window {
        let load = self.load(self.seconds + 0.5 * seconds);
        let diurnal = &self.traffic.diurnal;
        let volume = self.traffic.requests_per_second * seconds * (1.0 + diurnal.volume * load);
        let stable_error = self.traffic.error_rate * (1.0 + diurnal.error_rate * load);
        let median = self.traffic.latency_median * (1.0 + diurnal.latency * load);
        let canary_error = match self.effect {
            Effect::ErrorRatio(ratio) => (stable_error * ratio).min(1.0),
            Effect::Errors { ratio, increase } => (stable_error * ratio).max(stable_error + increase).min(1.0),
            _ => stable_error,
        };
        let requests = Arms {
            stable: poisson(&mut self.rng, volume * shares.stable),
            canary: poisson(&mut self.rng, volume * shares.canary),
        };
        let errors = Arms {
            stable: binomial(&mut self.rng, requests.stable, stable_error),
            canary: binomial(&mut self.rng, requests.canary, canary_error),
        };
        let (cells, cell_probability) = if self.traffic.edges.is_empty() {
            (Arms::default(), Arms::default())
        } else {
            let probability = Arms {
                stable: self.cell_probabilities(median, false),
                canary: self.cell_probabilities(median, true),
            };
            let cells = Arms {
                stable: self.sample_cells(requests.stable, &probability.stable),
                canary: self.sample_cells(requests.canary, &probability.canary),
            };
            (cells, probability)
        };
        for (counts, histogram, n, e, cells) in [
            (
                &mut self.counts.stable,
                &mut self.histograms.stable,
                requests.stable,
                errors.stable,
                &cells.stable,
            ),
            (
                &mut self.counts.canary,
                &mut self.histograms.canary,
                requests.canary,
                errors.canary,
                &cells.canary,
            ),
        ] {
            counts.requests += n;
            counts.errors += e;
            histogram.count += n;
            let mut below = 0.0;
            for (bucket, cell) in histogram.buckets.iter_mut().zip(cells) {
                below += cell;
                bucket.count += below;
            }
        }
        self.seconds += seconds;
        Window {
            requests,
            errors,
            error_probability: Arms {
                stable: stable_error,
                canary: canary_error,
            },
            cells,
            cell_probability,
        }
    }

    /// Cumulative request and error counters, as a provider reports them.
    pub fn counts(&self) -> Observation {
        Observation::Counts(self.counts)
    }

    /// Cumulative latency histograms, as a provider reports them.
    pub fn histograms(&self) -> Observation {
        Observation::Histogram(self.histograms.clone())
    }

    /// The cumulative counters themselves.
    pub fn cumulative(&self) -> (&Arms<Counts>, &Arms<Histogram>) {
        (&self.counts, &self.histograms)
    }
}

#[cfg(test)]
mod tests;
