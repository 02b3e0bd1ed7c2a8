//! A steady request rate through the Gateway, counted by status and version.
//!
//! `loadgen --url http://127.0.0.1:8000/ --rate 200 --requests 2000 [--header x-beta:true] [--json]`
//! Requests are started on a fixed schedule (open loop), so a slow backend
//! does not lower the offered rate; `--concurrency` caps requests in flight.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use tokio::sync::{Mutex, Semaphore};

#[derive(Parser, Debug)]
#[command(about = "Sends a steady request rate and counts answers by status and version")]
struct Args {
    /// Where to send requests.
    #[arg(long, default_value = "http://127.0.0.1:8000/")]
    url: String,
    /// Requests per second.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Stop after this many requests…
    #[arg(long)]
    requests: Option<u64>,
    /// …or after this long (e.g. 30s, 2m).
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Extra request header, NAME:VALUE; repeatable.
    #[arg(long = "header")]
    headers: Vec<String>,
    /// Maximum requests in flight.
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len()));
    let n: f64 = num.parse().map_err(|_| format!("bad duration {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" | "" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("bad duration unit in {s:?}; use ms, s, m or h")),
    };
    Ok(Duration::from_secs_f64(secs))
}

#[derive(Default)]
struct Tally {
    by_status: BTreeMap<String, u64>,
    by_version: BTreeMap<String, u64>,
    latencies_ms: Vec<f64>,
}

impl Tally {
    fn record(&mut self, status: String, version: Option<String>, latency: Duration) {
        *self.by_status.entry(status).or_default() += 1;
        *self
            .by_version
            .entry(version.unwrap_or_else(|| "none".into()))
            .or_default() += 1;
        self.latencies_ms.push(latency.as_secs_f64() * 1000.0);
    }

    fn quantile(&mut self, q: f64) -> f64 {
        if self.latencies_ms.is_empty() {
            return 0.0;
        }
        self.latencies_ms.sort_by(f64::total_cmp);
        let idx = ((self.latencies_ms.len() as f64 - 1.0) * q).round() as usize;
        self.latencies_ms[idx]
    }
}

fn header_map(raw: &[String]) -> anyhow::Result<reqwest::header::HeaderMap> {
    let mut map = reqwest::header::HeaderMap::new();
    for h in raw {
        let (name, value) = h
            .split_once(':')
            .with_context(|| format!("header {h:?} must be NAME:VALUE"))?;
        map.insert(
            reqwest::header::HeaderName::from_bytes(name.trim().as_bytes())?,
            reqwest::header::HeaderValue::from_str(value.trim())?,
        );
    }
    Ok(map)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.rate > 0.0, "--rate must be positive");
    anyhow::ensure!(
        args.requests.is_some() || args.duration.is_some(),
        "give --requests or --duration"
    );
    let client = reqwest::Client::builder()
        .no_proxy()
        .default_headers(header_map(&args.headers)?)
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    let tally = Arc::new(Mutex::new(Tally::default()));
    let gate = Arc::new(Semaphore::new(args.concurrency));
    let period = Duration::from_secs_f64(1.0 / args.rate);
    let start = Instant::now();
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sent = 0u64;
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        if args.requests.is_some_and(|n| sent >= n) || args.duration.is_some_and(|d| start.elapsed() >= d) {
            break;
        }
        ticker.tick().await;
        let permit = gate.clone().acquire_owned().await?;
        let (client, tally, url) = (client.clone(), tally.clone(), args.url.clone());
        tasks.spawn(async move {
            let t0 = Instant::now();
            let (status, version) = match client.get(&url).send().await {
                Ok(resp) => {
                    let version = resp
                        .headers()
                        .get("x-version")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    let status = resp.status().as_u16().to_string();
                    let _ = resp.bytes().await;
                    (status, version)
                }
                Err(e) if e.is_timeout() => ("timeout".to_owned(), None),
                Err(_) => ("transport-error".to_owned(), None),
            };
            tally.lock().await.record(status, version, t0.elapsed());
            drop(permit);
        });
        sent += 1;
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let elapsed = start.elapsed().as_secs_f64();
    let mut t = tally.lock().await;
    let (p50, p99) = (t.quantile(0.5), t.quantile(0.99));
    if args.json {
        let out = serde_json::json!({
            "sent": sent, "elapsed_s": elapsed, "by_status": t.by_status, "by_version": t.by_version,
            "latency_ms": {"p50": p50, "p99": p99},
        });
        println!("{out}");
    } else {
        println!("sent {sent} requests in {elapsed:.1}s ({:.0}/s)", sent as f64 / elapsed);
        for (k, v) in &t.by_status {
            println!(
                "  status {k:>15}: {v:>7} ({:.1}%)",
                100.0 * *v as f64 / sent.max(1) as f64
            );
        }
        for (k, v) in &t.by_version {
            println!(
                "  version {k:>14}: {v:>7} ({:.1}%)",
                100.0 * *v as f64 / sent.max(1) as f64
            );
        }
        println!("  latency p50 {p50:.1} ms, p99 {p99:.1} ms");
    }
    Ok(())
}
