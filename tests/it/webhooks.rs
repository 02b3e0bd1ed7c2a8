//! Webhooks on the sandbox, against a real HTTP server the test runs: a
//! confirm-promotion gate that says no holds the rollout with a condition
//! saying so and yes lets it finish; a gate that times out is retried and
//! then aborts the rollout, while another Rollout's hook is still in
//! flight.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::*;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::json;
use siskin::api::{AbortReason, Rollout, RolloutPhase};

/// What the webhook server has seen and will answer.
#[derive(Default)]
struct Hooks {
    confirm: AtomicBool,
    confirm_calls: AtomicUsize,
    slow_calls: AtomicUsize,
    held_calls: AtomicUsize,
    /// Lets every held call answer.
    release: tokio::sync::Notify,
    released: AtomicBool,
    /// `type` and `reason` (for events) of every notification.
    notifications: Mutex<Vec<(String, String)>>,
}

async fn confirm(State(hooks): State<Arc<Hooks>>) -> (StatusCode, &'static str) {
    hooks.confirm_calls.fetch_add(1, Ordering::SeqCst);
    if hooks.confirm.load(Ordering::SeqCst) {
        (StatusCode::OK, "go")
    } else {
        (StatusCode::FORBIDDEN, "outside the change window")
    }
}

async fn slow(State(hooks): State<Arc<Hooks>>) -> StatusCode {
    hooks.slow_calls.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(60)).await;
    StatusCode::OK
}

async fn hold(State(hooks): State<Arc<Hooks>>) -> StatusCode {
    let released = hooks.release.notified();
    hooks.held_calls.fetch_add(1, Ordering::SeqCst);
    if !hooks.released.load(Ordering::SeqCst) {
        released.await;
    }
    StatusCode::OK
}

async fn notify(State(hooks): State<Arc<Hooks>>, body: Bytes) -> StatusCode {
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let kind = body["type"].as_str().unwrap_or_default().to_string();
    let reason = body["reason"].as_str().unwrap_or_default().to_string();
    hooks.notifications.lock().expect("lock").push((kind, reason));
    StatusCode::OK
}

/// Serves the hooks on a free port inside the sandbox's network namespace.
async fn serve() -> (Arc<Hooks>, String) {
    let hooks = Arc::new(Hooks::default());
    let app = Router::new()
        .route("/confirm", post(confirm))
        .route("/slow", post(slow))
        .route("/hold", post(hold))
        .route("/notify", post(notify))
        .with_state(hooks.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (hooks, format!("http://{addr}"))
}

fn hooked_rollout(name: &str, webhooks: serde_json::Value) -> Rollout {
    let mut rollout = canary_rollout(
        name,
        name,
        "v1",
        json!({"gatewayAPI": {"httpRoute": {"name": "demo"}}}),
        json!([{"weight": 50}]),
    );
    rollout.spec.webhooks = serde_json::from_value(webhooks).expect("webhooks");
    rollout
}

fn notified(hooks: &Hooks, kind: &str, reason: &str) -> bool {
    let seen = hooks.notifications.lock().expect("lock");
    seen.iter()
        .any(|(k, r)| k == kind && (reason.is_empty() || r == reason))
}

/// A test namespace with the demo route, a controller, and the webhook
/// server at the returned base URL.
async fn hooked_namespace(prefix: &str) -> (TestNamespace, Arc<Hooks>, String, ControllerProcess) {
    let (ns, _, controller) = namespace_with_demo_route(prefix).await;
    let (hooks, base) = serve().await;
    (ns, hooks, base, controller)
}

#[tokio::test]
#[ignore = "needs the sandbox: make test"]
async fn confirm_promotion_webhook_holds_on_no_and_promotes_on_yes() {
    let (ns, hooks, base, _controller) = hooked_namespace("hooks-confirm").await;
    let rollout = hooked_rollout(
        "demo",
        json!([
            {"name": "change-window", "type": "confirmPromotion", "url": format!("{base}/confirm")},
            {"name": "audit", "type": "event", "url": format!("{base}/notify")},
            {"name": "done", "type": "postRollout", "url": format!("{base}/notify")},
        ]),
    );
    let v1 = Some(create_stable(&ns, &rollout).await);

    release_version(&ns, "demo", "v2").await;
    let held = wait_rollout(&ns, "demo", "the webhook to say no", |s| {
        condition_of(s, "Progressing").is_some_and(|(_, reason, _)| reason == "AwaitingConfirmation")
    })
    .await;
    let (_, _, message) = condition_of(&held, "Progressing").expect("Progressing");
    // Only the status code: answer bodies reach status and Events only
    // under --reflect-response-bodies.
    assert!(message.contains("change-window said no (HTTP 403)"), "{message}");
    assert!(!message.contains("outside the change window"), "{message}");
    // Asked again, and still held at the last step's weight.
    eventually("a second call", Duration::from_secs(30), || async {
        (hooks.confirm_calls.load(Ordering::SeqCst) >= 2).then_some(())
    })
    .await;
    let status = rollout_status(&ns, "demo").await.expect("status");
    assert_eq!(status.stable_revision, v1, "not promoted while the webhook says no");
    assert_eq!(demo_route_weights(&ns).await[1].1, 50, "traffic stays at the last step");

    hooks.confirm.store(true, Ordering::SeqCst);
    let promoted = wait_rollout(&ns, "demo", "v2 promoted once the webhook says yes", |s| {
        s.phase == Some(RolloutPhase::Healthy) && s.stable_revision != v1
    })
    .await;
    assert_eq!(promoted.canary_revision, None);
    eventually(
        "the postRollout and event webhooks",
        Duration::from_secs(30),
        || async { (notified(&hooks, "postRollout", "") && notified(&hooks, "event", "Promoted")).then_some(()) },
    )
    .await;
    delete_rollouts(&ns).await;
}

#[tokio::test]
#[ignore = "needs the sandbox: make test"]
async fn a_webhook_that_times_out_is_retried_then_aborts_while_other_rollouts_carry_on() {
    let (ns, hooks, base, _controller) = hooked_namespace("hooks-timeout").await;
    let rollout = hooked_rollout(
        "demo",
        json!([
            {"name": "slow-gate", "type": "confirmPromotion", "url": format!("{base}/slow"),
             "timeout": "3s", "retries": 1},
            {"name": "tell", "type": "rollback", "url": format!("{base}/notify")},
        ]),
    );
    create(&ns.api(), &rollout).await;
    // Another Rollout, without a router, whose gate does not answer until
    // the end of the test: its reconcile stays inside that one call.
    let other: Rollout = demo_rollout(
        "other",
        json!({
            "replicas": 1,
            "template": demo_template("v1"),
            "strategy": {"canary": {"steps": [{"weight": 50}]}},
            "webhooks": [{"name": "held", "type": "confirmPromotion", "url": format!("{base}/hold"),
                           "timeout": "30s", "retries": 100, "onFailure": "pause"}],
        }),
    );
    create(&ns.api(), &other).await;
    for name in ["demo", "other"] {
        wait_rollout(&ns, name, "v1 to become stable", |s| {
            s.phase == Some(RolloutPhase::Healthy) && s.stable_revision.is_some()
        })
        .await;
    }
    release_version(&ns, "other", "v2").await;
    eventually("the held webhook to be called", Duration::from_secs(90), || async {
        (hooks.held_calls.load(Ordering::SeqCst) >= 1).then_some(())
    })
    .await;

    release_version(&ns, "demo", "v2").await;
    let aborted = wait_aborted(&ns, "demo", "the abort", Duration::from_secs(120)).await;
    let abort = aborted.abort.expect("abort");
    assert_eq!(abort.reason, AbortReason::Webhook);
    assert!(
        abort
            .message
            .contains("slow-gate failed 2 time(s): no answer within 3s"),
        "{}",
        abort.message
    );
    assert_eq!(hooks.slow_calls.load(Ordering::SeqCst), 2, "one call and one retry");
    assert_eq!(
        demo_route_weights(&ns).await,
        [("demo-stable".to_string(), 100), ("demo-canary".to_string(), 0)],
        "traffic back on stable"
    );
    eventually("the rollback webhook", Duration::from_secs(30), || async {
        notified(&hooks, "rollback", "").then_some(())
    })
    .await;
    // The held hook takes the longest a call may (30 s) and is called
    // again after each timeout; the abort above came meanwhile.
    assert!(
        hooks.held_calls.load(Ordering::SeqCst) >= 1,
        "the other Rollout's gate was in flight: a slow hook held only its own Rollout"
    );
    let other = rollout_status(&ns, "other").await.expect("status of other");
    assert!(
        other.canary_revision.is_some(),
        "the other Rollout still waits at its gate"
    );

    hooks.released.store(true, Ordering::SeqCst);
    hooks.release.notify_waiters();
    wait_rollout(&ns, "other", "the other Rollout to finish once its hook answers", |s| {
        s.phase == Some(RolloutPhase::Healthy) && s.canary_revision.is_none()
    })
    .await;
    delete_rollouts(&ns).await;
}
