//! The benchmark's figures as Markdown tables.

use std::collections::BTreeMap;
use std::time::Duration;

use siskin::analysis::observation::Histogram;

use super::{Args, Sample, Seen, TICKS_PER_SECOND, WRITE_KINDS};

/// The reconcile-latency histogram's increase between two samples.
fn reconcile_latency(from: &Sample, to: &Sample) -> Option<Histogram> {
    let prefix = "siskin_reconcile_duration_seconds_bucket{le=\"";
    Histogram::from_cumulative(to.series.iter().filter_map(|(k, v)| {
        let le = k.strip_prefix(prefix)?.strip_suffix("\"}")?;
        let le = if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? };
        Some((le, v - from.get(k)))
    }))
}

/// The `q` quantile of reconcile latency between two samples, as
/// Prometheus's `histogram_quantile` reads it; `None` without data,
/// `Err(top)` when it lies beyond the top bucket edge `top`.
fn quantile(from: &Sample, to: &Sample, q: f64) -> Option<Result<f64, f64>> {
    let histogram = reconcile_latency(from, to)?;
    let value = histogram.quantile(q)?;
    Some(histogram.edge_at_quantile(q).map_or(Err(value), |_| Ok(value)))
}

/// The share of reconciles between two samples that took at most `le` seconds
/// (an exact bucket edge).
fn share_within(from: &Sample, to: &Sample, le: &str) -> Option<f64> {
    let key = format!("siskin_reconcile_duration_seconds_bucket{{le=\"{le}\"}}");
    let count = "siskin_reconcile_duration_seconds_count";
    let total = to.get(count) - from.get(count);
    (total > 0.0 && to.series.contains_key(&key)).then(|| (to.get(&key) - from.get(&key)) / total)
}

pub(super) struct Phase {
    pub name: String,
    pub rollouts: usize,
    /// Until the phase's goal was reached; `to` is taken once the controller
    /// went quiet afterwards.
    pub took: Duration,
    pub from: Sample,
    pub to: Sample,
}

/// Prints one Markdown table row.
fn row(cells: &[String]) {
    println!("| {} |", cells.join(" | "));
}

/// Prints a Markdown table header.
fn header(columns: &[&str]) {
    println!("\n| {} |\n|{}", columns.join(" | "), "---|".repeat(columns.len()));
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn latency(quantile: Option<Result<f64, f64>>) -> String {
    match quantile {
        Some(Ok(s)) => ms(Some(s)),
        Some(Err(top)) => format!("> {}", ms(Some(top))),
        None => "–".into(),
    }
}

fn ms(seconds: Option<f64>) -> String {
    seconds.map_or_else(|| "–".into(), |s| format!("{:.1} ms", s * 1000.0))
}

/// The `q` quantile of sorted durations (nearest rank).
fn nearest_rank(sorted: &[Duration], q: f64) -> Option<f64> {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted
        .get(rank.clamp(1, sorted.len().max(1)) - 1)
        .map(Duration::as_secs_f64)
}

/// What the run measured, ready to print.
pub(super) struct Report<'a> {
    pub args: &'a Args,
    pub phases: Vec<Phase>,
    /// API round trips of the benchmark's probe, per phase.
    pub probes: Vec<Vec<Duration>>,
    pub releases: Vec<Seen>,
    pub events: BTreeMap<String, i32>,
    /// Increase of the API server's non-2xx answers on Rollouts over the run.
    pub refusals: BTreeMap<String, f64>,
}

impl Report<'_> {
    pub fn print(&self) {
        let (args, releases) = (self.args, &self.releases);
        println!("## {} Rollouts, {} released at once\n", args.rollouts, releases.len());
        let routing = if args.no_route {
            "none (replica-ratio canary)"
        } else {
            "one HTTPRoute each, Traefik"
        };
        println!(
            "Replicas per Rollout: {}; routing: {routing}; steps: 10 % then 50 %, each held {}; controller --concurrency {}.",
            args.replicas, args.hold, args.concurrency
        );
        self.resources();
        self.reconciles();
        self.writes();
        self.milestones();
        let last = self.phases.last().map(|p| &p.to.series);
        let errors: Vec<String> = last
            .into_iter()
            .flatten()
            .filter(|(k, _)| k.starts_with("siskin_reconcile_errors_total"))
            .map(|(k, v)| format!("`{k}` {v}"))
            .collect();
        let errors = if errors.is_empty() {
            "none".into()
        } else {
            errors.join(", ")
        };
        println!("\nReconcile errors (whole run): {errors}.\n");
        let events: Vec<String> = self.events.iter().map(|(k, v)| format!("{k} {v}")).collect();
        println!("Events (whole run): {}.\n", events.join(", "));
        let refusals: Vec<String> = self.refusals.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        println!(
            "API server non-2xx answers on Rollouts during the run (whole cluster): {}.\n",
            refusals.join(", ")
        );
        let flags = std::env::var("SISKIN_BENCH_ARGS").unwrap_or_default();
        println!(
            "Reproduce (sandbox up): `SISKIN_BENCH_ARGS=\"{flags}\" tests/sandbox/sandbox exec -- \
             cargo test --offline --release --test it bench_scale:: -- --ignored --nocapture`"
        );
    }

    fn resources(&self) {
        header(&[
            "phase",
            "Rollouts",
            "took",
            "RSS at end",
            "peak RSS",
            "controller CPU",
            "load average",
        ]);
        for p in &self.phases {
            let cpu = p.to.cpu_ticks.saturating_sub(p.from.cpu_ticks) as f64 / TICKS_PER_SECOND;
            let took = format!("{:.1} s", p.took.as_secs_f64());
            let (rss, peak) = (mib(p.to.rss_kib), mib(p.to.hwm_kib));
            row(&[
                p.name.clone(),
                p.rollouts.to_string(),
                took,
                rss,
                peak,
                format!("{cpu:.1} s"),
                format!("{:.1}", p.to.load),
            ]);
        }
    }

    fn reconciles(&self) {
        let columns = [
            "phase",
            "reconciles / Rollout",
            "reconcile p50",
            "p99",
            "≤ 20 ms",
            "CPU / reconcile",
        ];
        header(&[&columns[..], &["one API GET p50 / p99", "reconcile p99 ÷ GET p99"]].concat());
        for (p, probes) in self.phases.iter().zip(&self.probes).filter(|(p, _)| p.rollouts > 0) {
            let reconciles = p.to.get("siskin_reconciles_total") - p.from.get("siskin_reconciles_total");
            let within =
                share_within(&p.from, &p.to, "0.02").map_or_else(|| "–".into(), |s| format!("{:.1} %", s * 100.0));
            let cpu = p.to.cpu_ticks.saturating_sub(p.from.cpu_ticks) as f64 / TICKS_PER_SECOND;
            let p99 = quantile(&p.from, &p.to, 0.99);
            let get_p99 = nearest_rank(probes, 0.99);
            let ratio = match (p99, get_p99) {
                (Some(Ok(reconcile)), Some(get)) if get > 0.0 => format!("{:.1}×", reconcile / get),
                (Some(Err(beyond)), Some(get)) if get > 0.0 => format!("> {:.1}×", beyond / get),
                _ => "–".into(),
            };
            row(&[
                p.name.clone(),
                format!("{:.1}", reconciles / p.rollouts as f64),
                latency(quantile(&p.from, &p.to, 0.5)),
                latency(p99),
                within,
                ms((reconciles > 0.0).then(|| cpu / reconciles)),
                format!("{} / {}", ms(nearest_rank(probes, 0.5)), ms(get_p99)),
                ratio,
            ]);
        }
    }

    fn writes(&self) {
        println!("\nAPI writes per Rollout (attempts, `siskin_api_writes_total`):");
        header(&[&["phase"], &WRITE_KINDS[..], &["total"]].concat());
        for p in self.phases.iter().filter(|p| p.rollouts > 0) {
            let per: Vec<f64> = WRITE_KINDS
                .iter()
                .map(|k| (p.to.writes(k) - p.from.writes(k)) / p.rollouts as f64)
                .collect();
            let line = |name: &str, div: f64| {
                let total = per.iter().sum::<f64>();
                let cells = per.iter().chain([&total]).map(|v| format!("{:.2}", v / div));
                row(&[name.to_string()].into_iter().chain(cells).collect::<Vec<_>>());
            };
            line(&p.name, 1.0);
            // A route write is one weight change: 10 %, 50 %, back to 0 % on promotion.
            if per[0] > 0.0 && p.name.starts_with("release") {
                line("… per route weight change", per[0]);
            }
        }
    }

    fn milestones(&self) {
        let releases = &self.releases;
        println!(
            "\nFrom each Rollout's release patch to (floor: two holds of {}):",
            self.args.hold
        );
        header(&["milestone", "p50", "p99", "max", "reached"]);
        let labels = ["canary at 10 % on the route", "canary at 50 % on the route", "promoted"];
        for (i, label) in labels.iter().enumerate() {
            let mut times: Vec<Duration> = releases.iter().filter_map(|s| s.reached[i]).collect();
            times.sort();
            let secs = |q| nearest_rank(&times, q).map_or_else(|| "–".into(), |s| format!("{s:.1} s"));
            let reached = format!("{}/{}", times.len(), releases.len());
            row(&[label.to_string(), secs(0.5), secs(0.99), secs(1.0), reached]);
        }
    }
}
