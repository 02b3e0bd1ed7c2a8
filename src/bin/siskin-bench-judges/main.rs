//! Benchmarks canary analysis on simulated services as it runs in
//! production: Siskin (the shipped Traefik templates' sequential judges),
//! Flagger's threshold loop and Kayenta's judgement each drive their own
//! rollout through canary steps of 10, 25 and 50 % and stop at their own
//! promotion, abort or pause. Prints Markdown.
//!
//! Services: 20, 100 or 500 req/s; stable erring 0, 0.01, 0.1 or 1 %;
//! lognormal latency with median 20 ms and p99 80 ms, published in
//! Traefik's buckets as the sandbox configures them (and, for the latency
//! table, in Prometheus' and Istio's default buckets and a fine reference
//! grid). Siskin evaluates every 15 s and holds each step 1 to 5 minutes;
//! Flagger checks every minute; Kayenta judges once per 5-minute step.
//!
//! `--continuous` runs the earlier study instead: Siskin's default judge
//! under 12 h of continuous monitoring against SPRT oracles.

mod continuous;
mod grid;
mod rollout;

use std::thread;
use std::time::Instant;

use clap::Parser;
use serde::Deserialize;
use siskin::analysis::simulation::BucketLayout;
use siskin::api::ClusterAnalysisTemplate;

use grid::{Bench, Change, Service, percent};
use rollout::{Judges, MAX_HOLD, MIN_HOLD, Reads, STEPS};

#[derive(Parser, Debug)]
#[command(about = "Simulation benchmark of canary analysis (Siskin, Flagger, Kayenta)")]
struct Args {
    /// Rollouts per method, service and change.
    #[arg(long, default_value_t = 4000)]
    replications: usize,
    /// Seed of the whole benchmark; a run is reproducible from it.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// A smoke run: 100 replications.
    #[arg(long)]
    quick: bool,
    /// The 12 h continuous-monitoring study of the judge against oracles.
    #[arg(long)]
    continuous: bool,
}

/// The templates users apply for a Gateway API canary behind Traefik.
const TEMPLATES: &str = include_str!("../../../analysis-templates/traefik-gateway-api.yaml");

/// The shipped templates' judges, alpha split over their metrics as the
/// controller splits it (src/controller/analysis.rs).
fn shipped_judges() -> Result<Judges, String> {
    let mut metrics = Vec::new();
    for document in serde_yaml::Deserializer::from_str(TEMPLATES) {
        let template = ClusterAnalysisTemplate::deserialize(document).map_err(|e| e.to_string())?;
        for metric in template.spec.template.metrics {
            let reads = match (&metric.counts, &metric.histogram) {
                (Some(_), _) => Reads::Counts,
                (_, Some(_)) => Reads::Histogram,
                _ => return Err(format!("metric {} reads neither counts nor a histogram", metric.name)),
            };
            metrics.push((metric.judge, reads));
        }
    }
    let count = metrics.len();
    Ok(metrics
        .into_iter()
        .map(|(judge, reads)| (judge.split_alpha(count), reads))
        .collect())
}

/// The regressions of the promotion table.
const REGRESSIONS: [Change; 5] = [
    Change::Errors,
    Change::ErrorsTenfold,
    Change::Slower(1.2),
    Change::Slower(1.5),
    Change::SlowerTail(1.2),
];

/// The grid of the promotion table: every error rate and traffic level,
/// latency in Traefik's buckets.
fn services() -> Vec<(String, Service)> {
    let mut services = Vec::new();
    for error_rate in [0.0, 0.0001, 0.001, 0.01] {
        for requests_per_second in [20.0, 100.0, 500.0] {
            let label = format!("{} % errors, {requests_per_second:.0} req/s", 100.0 * error_rate);
            let service = Service {
                error_rate,
                requests_per_second,
                layout: BucketLayout::Traefik,
            };
            services.push((label, service));
        }
    }
    services
}

fn promotion_tables(bench: &mut Bench, services: &[(String, Service)]) {
    println!("### Healthy canaries: promoted · median time to promote · falsely aborted\n");
    println!("The rest paused (Siskin: no `NonInferior` within a step's maximum hold).\n");
    bench.table(services, Change::Healthy);
    for change in REGRESSIONS {
        println!("### {}: aborted · shipped\n", change.name());
        println!("The rest paused.\n");
        bench.table(services, change);
    }
}

/// Where Siskin aborts under 95 %, and where and why it paused.
fn shortfalls(bench: &mut Bench, services: &[(String, Service)]) {
    println!("### Where Siskin falls short, and what its status says\n");
    for change in REGRESSIONS {
        let misses = bench.siskin_misses(services, change);
        let verdict = if misses.is_empty() {
            "aborted ≥ 95 % in every row".to_string()
        } else {
            format!("aborted < 95 % in {}", misses.join(", "))
        };
        println!("- {}: {verdict}.", change.name());
    }
    println!();
    println!("Siskin's pauses, share of its rollouts over every service above, by step; its status says");
    println!("\"no conclusive analysis within the maximum hold\" unless counted as inconclusive (no data):\n");
    let steps: Vec<String> = STEPS.iter().map(|s| format!("at {:.0} %", 100.0 * s)).collect();
    println!("| change | {} | inconclusive |", steps.join(" | "));
    println!("|---|{}---|", "---|".repeat(STEPS.len()));
    for change in [Change::Healthy].into_iter().chain(REGRESSIONS) {
        let pooled = bench.siskin_pooled(services, change);
        let share = |k: usize| percent(100.0 * k as f64 / pooled.runs.max(1) as f64);
        let at_max: Vec<String> = pooled.paused.iter().map(|[at_max, _]| share(*at_max)).collect();
        let inconclusive = share(pooled.paused.iter().map(|[_, k]| k).sum());
        println!("| {} | {} | {inconclusive} |", change.name(), at_max.join(" | "));
    }
    println!();
}

/// The latency changes on every bucket layout, stable erring 0.1 %.
fn layout_tables(bench: &mut Bench) {
    println!("## Latency regressions by bucket layout\n");
    println!("Stable errs 0.1 %; cells as above.\n");
    let mut layouts = Vec::new();
    for layout in BucketLayout::ALL {
        for requests_per_second in [20.0, 100.0, 500.0] {
            let label = format!("{}, {requests_per_second:.0} req/s", layout.name());
            let service = Service {
                error_rate: 0.001,
                requests_per_second,
                layout,
            };
            layouts.push((label, service));
        }
    }
    for change in [
        Change::Healthy,
        Change::Slower(1.2),
        Change::Slower(1.5),
        Change::SlowerTail(1.2),
    ] {
        println!("### {}\n", change.name());
        bench.table(&layouts, change);
    }
}

fn main() {
    let args = Args::parse();
    if args.continuous {
        continuous::run(args.replications, args.seed, args.quick);
        return;
    }
    let judges = match shipped_judges() {
        Ok(judges) => judges,
        Err(e) => {
            eprintln!("analysis-templates/traefik-gateway-api.yaml: {e}");
            std::process::exit(1);
        }
    };
    let replications = if args.quick { 100 } else { args.replications.max(1) };
    let started = Instant::now();
    let mut bench = Bench::new(judges.clone(), replications, args.seed);

    println!("## Promotion on real services\n");
    println!(
        "{replications} rollouts per method, service and change; seed {}. Steps {} % of traffic, \
         Siskin holding each {:.0}–{:.0} min. Siskin's judges, from \
         analysis-templates/traefik-gateway-api.yaml, alpha split over {} metrics:\n",
        args.seed,
        STEPS.map(|s| format!("{:.0}", 100.0 * s)).join("/"),
        MIN_HOLD / 60.0,
        MAX_HOLD / 60.0,
        judges.len()
    );
    for (judge, reads) in &judges {
        println!("- {reads:?}: `{}`", serde_json::to_string(judge).unwrap_or_default());
    }
    println!();
    let services = services();
    promotion_tables(&mut bench, &services);
    shortfalls(&mut bench, &services);
    layout_tables(&mut bench);
    print_reproduction(started, "", args.quick, replications, args.seed);
}

/// How long the report took and the command that prints it again; `mode`
/// is the flag of the study, if not this one.
fn print_reproduction(started: Instant, mode: &str, quick: bool, replications: usize, seed: u64) {
    let size = if quick {
        "--quick".to_string()
    } else {
        format!("--replications {replications}")
    };
    println!(
        "Finished in {:.0} s. Reproduce with:\n",
        started.elapsed().as_secs_f64()
    );
    println!("    cargo run --release --bin siskin-bench-judges -- {mode}{size} --seed {seed}");
}

/// `run` for each replication in `0..replications`, spread over the
/// machine's cores: thread `t` runs replications `t`, `t + threads`, … The
/// results come thread by thread, each thread's in the order it ran them.
fn on_all_cores<T: Send>(replications: usize, run: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let threads = thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(replications.max(1));
    let run = &run;
    thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| scope.spawn(move || (t..replications).step_by(threads).map(run).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            .collect()
    })
}
