//! The demo application Siskin rolls out in the sandbox and the demo.
//!
//! An HTTP server that reports its version and whose behaviour is set by env,
//! so a release can be made faulty on purpose:
//! - `DEMO_VERSION` (default `v1`): reported in the body and the `x-version` header;
//! - `DEMO_ERROR_RATE` (default `0`): the share of requests answered 500;
//! - `DEMO_LATENCY_P50_MS` / `DEMO_LATENCY_P99_MS` (default 5 / 20): a
//!   log-normal latency with that median and 99th percentile;
//! - `DEMO_LISTEN` (default `127.0.0.1:8080`): the address to bind, set by the
//!   sandbox's pod runner to the pod IP and container port.
//!
//! `/metrics` serves `demo_requests_total{code}` and a latency histogram.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use rand::Rng;

/// Φ⁻¹(0.99): turns the p50→p99 ratio into the log-normal's σ.
const Z_99: f64 = 2.326_347_874;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabel {
    code: u16,
}

struct Behaviour {
    version: String,
    pod: String,
    error_rate: f64,
    latency_mu: f64,
    latency_sigma: f64,
}

struct App {
    behaviour: Behaviour,
    requests: Family<CodeLabel, Counter>,
    latency: Histogram,
    registry: Registry,
}

fn env_f64(name: &str, default: f64) -> anyhow::Result<f64> {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .with_context(|| format!("{name}={v:?} is not a number")),
        Err(_) => Ok(default),
    }
}

impl Behaviour {
    fn from_env() -> anyhow::Result<Self> {
        let error_rate = env_f64("DEMO_ERROR_RATE", 0.0)?;
        anyhow::ensure!((0.0..=1.0).contains(&error_rate), "DEMO_ERROR_RATE must be within 0..1");
        let p50 = env_f64("DEMO_LATENCY_P50_MS", 5.0)?;
        let p99 = env_f64("DEMO_LATENCY_P99_MS", 20.0)?;
        anyhow::ensure!(
            p50 > 0.0 && p99 >= p50,
            "need 0 < DEMO_LATENCY_P50_MS <= DEMO_LATENCY_P99_MS"
        );
        Ok(Behaviour {
            version: std::env::var("DEMO_VERSION").unwrap_or_else(|_| "v1".into()),
            pod: std::env::var("DEMO_POD").unwrap_or_default(),
            error_rate,
            latency_mu: p50.ln(),
            latency_sigma: (p99 / p50).ln() / Z_99,
        })
    }

    fn sample_latency(&self, rng: &mut impl Rng) -> Duration {
        // Box–Muller: one standard normal from two uniforms.
        let (u1, u2): (f64, f64) = (rng.random_range(f64::EPSILON..1.0), rng.random());
        let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        Duration::from_secs_f64((self.latency_mu + self.latency_sigma * z).exp() / 1000.0)
    }
}

async fn serve(State(app): State<Arc<App>>) -> Response {
    let started = Instant::now();
    let (delay, fail) = {
        let mut rng = rand::rng();
        (
            app.behaviour.sample_latency(&mut rng),
            rng.random_bool(app.behaviour.error_rate),
        )
    };
    tokio::time::sleep(delay).await;
    let code = if fail {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    app.requests.get_or_create(&CodeLabel { code: code.as_u16() }).inc();
    app.latency.observe(started.elapsed().as_secs_f64());
    let b = &app.behaviour;
    let body = format!(
        "{{\"version\":\"{}\",\"pod\":\"{}\",\"code\":{}}}\n",
        b.version,
        b.pod,
        code.as_u16()
    );
    let mut resp = (code, [(header::CONTENT_TYPE, "application/json")], body).into_response();
    if let Ok(v) = HeaderValue::from_str(&b.version) {
        resp.headers_mut().insert("x-version", v);
    }
    resp
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    let mut out = String::new();
    match prometheus_client::encoding::text::encode(&mut out, &app.registry) {
        Ok(()) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let behaviour = Behaviour::from_env()?;
    let listen: SocketAddr = std::env::var("DEMO_LISTEN")
        .unwrap_or_else(|_| "127.0.0.1:8080".into())
        .parse()
        .context("DEMO_LISTEN must be IP:PORT")?;
    let requests = Family::<CodeLabel, Counter>::default();
    let buckets = [0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0];
    let latency = Histogram::new(buckets);
    let mut registry = Registry::default();
    registry.register("demo_requests", "Requests served, by status code", requests.clone());
    registry.register(
        "demo_request_duration_seconds",
        "Time to answer a request",
        latency.clone(),
    );
    let app = Arc::new(App {
        behaviour,
        requests,
        latency,
        registry,
    });
    let router = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .fallback(serve)
        .with_state(app.clone());
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    eprintln!("demo-app {} listening on {listen}", app.behaviour.version);
    axum::serve(listener, router).await?;
    Ok(())
}
