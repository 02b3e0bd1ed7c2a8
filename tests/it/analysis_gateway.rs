//! Automated analysis on the sandbox: Traefik's per-Service counters read
//! from Prometheus decide the canary's fate. A faulty canary is aborted on its
//! own, a healthy one promoted, and missing data never passes.

use std::time::Duration;

use crate::support::*;
use gateway_api::httproutes::HttpRoute;
use serde_json::json;
use siskin::api::{AnalysisTemplate, Rollout, RolloutPhase, RolloutStatus};

/// The stable version's error rate in these tests.
const BASE_ERROR_RATE: &str = "0.01";
/// The faulty release: 2% 5xx against a stable at 0.1%.
const FAULTY_STABLE_RATE: &str = "0.001";
const FAULTY_CANARY_RATE: &str = "0.02";

struct Setup {
    ns: TestNamespace,
    host: String,
    _controller: ControllerProcess,
}

async fn setup(prefix: &str, analysis: AnalysisTemplate, hold: serde_json::Value) -> Setup {
    setup_with_stable_rate(prefix, analysis, hold, BASE_ERROR_RATE).await
}

async fn setup_with_stable_rate(
    prefix: &str,
    analysis: AnalysisTemplate,
    hold: serde_json::Value,
    stable_rate: &str,
) -> Setup {
    let ns = TestNamespace::new(prefix).await;
    let host = demo_route(&ns).await;
    create(&ns.api(), &analysis).await;
    let controller = ControllerProcess::start(&ns, "a");
    let rollout: Rollout = analysed_canary(stable_rate, hold);
    create_stable(&ns, &rollout).await;
    Setup {
        ns,
        host,
        _controller: controller,
    }
}

/// Steady load through the Gateway for the whole test; stopped on drop.
fn load(host: &str) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args([
            "--url",
            &format!("{GATEWAY_URL}/"),
            "--rate",
            "300",
            "--duration",
            "240s",
        ])
        .args(["--header", &format!("host:{host}")])
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start loadgen")
}

async fn release(ns: &TestNamespace, error_rate: &str) {
    patch_spec(
        ns,
        "demo",
        json!({"template": demo_template_with_errors("v2", error_rate)}),
    )
    .await;
}

async fn wait_long(ns: &TestNamespace, what: &str, pred: impl Fn(&RolloutStatus) -> bool) -> RolloutStatus {
    eventually(what, Duration::from_secs(200), || async {
        rollout_status(ns, "demo").await.filter(|s| pred(s))
    })
    .await
}

/// Releases v2 and waits for the analysis to pause it, inconclusive;
/// returns that status and its message.
async fn paused_inconclusive(s: &Setup) -> (RolloutStatus, String) {
    release(&s.ns, BASE_ERROR_RATE).await;
    let status = wait_long(&s.ns, "an inconclusive pause", |st| {
        st.phase == Some(RolloutPhase::Paused)
    })
    .await;
    let message = status.message.clone().unwrap_or_default();
    println!("paused: {message}");
    (status, message)
}

fn evidence(status: &RolloutStatus) -> String {
    status.analysis.as_ref().map(|a| a.to_string()).unwrap_or_default()
}

/// The faulty release's minimum hold: long, so that an abort before its end
/// shows the analysis is not waiting for it.
const MIN_HOLD: Duration = Duration::from_secs(150);

#[tokio::test]
#[ignore = "needs the sandbox: make test"]
async fn canary_at_2_percent_errors_against_0_1_is_aborted_automatically_and_traffic_returns_to_stable() {
    let s = setup_with_stable_rate(
        "analysis-faulty",
        traefik_errors(),
        json!({"min": format!("{}s", MIN_HOLD.as_secs()), "max": "180s"}),
        FAULTY_STABLE_RATE,
    )
    .await;
    let _load = load(&s.host);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let released = jiff::Timestamp::now();
    release(&s.ns, FAULTY_CANARY_RATE).await;
    let status = wait_long(&s.ns, "the faulty canary to be aborted", |st| {
        st.phase == Some(RolloutPhase::Aborted)
    })
    .await;
    println!("aborted: {:?}\nevidence: {}", status.message, evidence(&status));
    let (_, reason, message) = condition_of(&status, "Aborted").expect("Aborted condition");
    assert_eq!(reason, "Regression", "aborted by the analysis: {message}");
    let aborted_at = status.abort.as_ref().expect("abort").at.0;
    let after = aborted_at.duration_since(released);
    println!("aborted {:.0}s after the release", after.as_secs_f64());
    assert!(
        after < jiff::SignedDuration::try_from(MIN_HOLD).expect("duration"),
        "a regression aborts during the step's minimum hold, not at its end"
    );
    let route = s.ns.api::<HttpRoute>().get("demo").await.expect("route");
    let weights: Vec<_> = route.spec.rules.unwrap_or_default()[0]
        .backend_refs
        .iter()
        .flatten()
        .map(|b| b.weight)
        .collect();
    assert_eq!(weights, vec![Some(100), Some(0)], "all traffic back on stable");
}

#[tokio::test]
#[ignore = "needs the sandbox: make test"]
async fn healthy_canary_is_promoted_on_evidence() {
    let s = setup(
        "analysis-healthy",
        traefik_errors(),
        json!({"min": "10s", "max": "180s"}),
    )
    .await;
    let v1 = rollout_status(&s.ns, "demo")
        .await
        .and_then(|st| st.stable_revision)
        .expect("v1");
    let _load = load(&s.host);
    tokio::time::sleep(Duration::from_secs(3)).await;
    release(&s.ns, BASE_ERROR_RATE).await;
    let status = wait_long(&s.ns, "the healthy canary to be promoted", |st| {
        st.phase == Some(RolloutPhase::Healthy) && st.stable_revision.as_deref() != Some(v1.as_str())
    })
    .await;
    println!("promoted: {:?}", status.message);
}

#[tokio::test]
#[ignore = "needs the sandbox: make test"]
async fn canary_whose_query_returns_nothing_pauses_inconclusive_and_is_never_promoted() {
    let s = setup(
        "analysis-nodata",
        traefik_error_template(PROMETHEUS_URL, "no_such_metric_total"),
        json!({"min": "5s", "max": "60s"}),
    )
    .await;
    let _load = load(&s.host);
    let (status, message) = paused_inconclusive(&s).await;
    assert!(
        message.contains("no_such_metric_total"),
        "the status names the query: {message}"
    );
    let (_, reason, _) = condition_of(&status, "Paused").expect("Paused condition");
    assert_eq!(reason, "Inconclusive");
    // A paused canary is still measured; after the next evaluation, which
    // finds no data again, it must still be paused.
    let later = next_evaluation(&s.ns, "demo", &status, Duration::from_secs(200)).await;
    assert_eq!(later.phase, Some(RolloutPhase::Paused), "still paused, never promoted");
    assert_ne!(later.stable_revision, later.canary_revision);
}

#[tokio::test]
#[ignore = "needs the sandbox: make test"]
async fn unreachable_prometheus_is_inconclusive_not_a_crash_or_a_promotion() {
    let s = setup(
        "analysis-noprom",
        traefik_error_template("http://127.0.0.1:1", "traefik_service_requests_total"),
        json!({"min": "5s", "max": "60s"}),
    )
    .await;
    let _load = load(&s.host);
    let (status, message) = paused_inconclusive(&s).await;
    assert!(
        message.contains("127.0.0.1:1") || message.contains("failed"),
        "the status says why: {message}"
    );
    assert_ne!(status.stable_revision, status.canary_revision, "never promoted");
}
