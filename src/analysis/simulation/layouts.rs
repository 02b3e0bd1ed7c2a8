//! The latency histograms real exporters publish: where the edges are
//! decides what a judge can resolve.

/// Histogram bucket layouts of real exporters (upper edges, seconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BucketLayout {
    /// Traefik as this project's sandbox starts it (`tests/sandbox/up.sh`,
    /// `--metrics.prometheus.buckets`).
    Traefik,
    /// The Prometheus client libraries' default `DefBuckets`.
    Prometheus,
    /// Istio's default `istio_request_duration_milliseconds` buckets.
    Istio,
    /// A 10 % grid from 2 ms no exporter has; a reference for the others.
    Fine,
}

impl BucketLayout {
    pub const ALL: [BucketLayout; 4] = [
        BucketLayout::Traefik,
        BucketLayout::Prometheus,
        BucketLayout::Istio,
        BucketLayout::Fine,
    ];

    pub fn name(self) -> &'static str {
        match self {
            BucketLayout::Traefik => "Traefik (sandbox)",
            BucketLayout::Prometheus => "Prometheus default",
            BucketLayout::Istio => "Istio default",
            BucketLayout::Fine => "fine 10 % grid",
        }
    }

    pub fn edges(self) -> Vec<f64> {
        match self {
            BucketLayout::Traefik => vec![
                0.002, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.5,
                5.0,
            ],
            BucketLayout::Prometheus => vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
            BucketLayout::Istio => [
                0.5,
                1.0,
                5.0,
                10.0,
                25.0,
                50.0,
                100.0,
                250.0,
                500.0,
                1000.0,
                2500.0,
                5000.0,
                10000.0,
                30000.0,
                60000.0,
                300_000.0,
                600_000.0,
                1_800_000.0,
                3_600_000.0,
            ]
            .iter()
            .map(|ms| ms / 1000.0)
            .collect(),
            BucketLayout::Fine => exponential_edges(0.002, 1.1, 60),
        }
    }
}

/// `count` edges from `start`, each `factor` times the previous.
pub fn exponential_edges(start: f64, factor: f64, count: i32) -> Vec<f64> {
    (0..count).map(|k| start * factor.powi(k)).collect()
}
