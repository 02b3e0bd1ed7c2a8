//! One controller serves every Rollout in the cluster, so no tenant may stop,
//! starve or steer it. These run everything a careless or hostile tenant
//! tried at once, against one controller watching all namespaces, next to a
//! bystander canary in a namespace of its own that must be promoted on time.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{StatusCode, header};
use axum::response::Response;
use axum::routing::post;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

use crate::support::*;
use siskin::api::{AnalysisTemplate, RolloutPhase, RolloutStatus};

/// Rollouts whose gate never answers, all in one tenant's namespace: more
/// than the controller's 32 reconcile slots.
const HANGING: usize = 40;
/// The controller of this test manages only Rollouts with this label value.
const INSTANCE: &str = "hardening";

/// The bystander's whole schedule: one step held this long.
const BYSTANDER_HOLD: Duration = Duration::from_secs(20);

/// Calls of the never-answering endpoint so far.
static HANGING_CALLS: AtomicUsize = AtomicUsize::new(0);

/// Endpoints as a hostile tenant would run them: one that never answers, one
/// that answers 500 with a gigabyte of body, one that redirects to the
/// cloud metadata address.
async fn hostile_server() -> String {
    async fn hang() -> StatusCode {
        HANGING_CALLS.fetch_add(1, Ordering::SeqCst);
        std::future::pending::<()>().await;
        StatusCode::OK
    }
    async fn huge() -> Response {
        let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
        let chunks = futures::stream::iter((0..16 * 1024).map(move |_| Ok::<_, Infallible>(chunk.clone())));
        Response::builder()
            .status(StatusCode::INTERNAL_SERVER_ERROR)
            .header(header::CONTENT_LENGTH, (1u64 << 30).to_string())
            .body(Body::from_stream(chunks))
            .expect("response")
    }
    async fn redirect() -> Response {
        Response::builder()
            .status(StatusCode::FOUND)
            .header(header::LOCATION, "http://169.254.169.254/latest/meta-data/")
            .body(Body::empty())
            .expect("response")
    }
    let app = Router::new()
        .route("/hang", post(hang))
        .route("/huge", post(huge))
        .route("/redirect", post(redirect));
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("bind the hostile server");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}")
}

/// A replica-ratio canary (no router) with one pod of the demo app.
fn rollout(name: &str, version: &str, steps: serde_json::Value, extra: serde_json::Value) -> siskin::api::Rollout {
    let mut spec = json!({
        "replicas": 1,
        "service": {"name": name, "port": 80, "targetPort": 8080},
        "template": demo_template(version),
        "strategy": {"canary": {"steps": steps, "scaleDownDelay": "1s"}},
    });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    serde_json::from_value(json!({
        "apiVersion": "siskin.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": name, "labels": {"siskin.io/instance": INSTANCE}},
        "spec": spec,
    }))
    .expect("rollout object")
}

/// A gate called before the canary's traffic, failing on the first error.
fn gate(url: &str) -> serde_json::Value {
    json!({"webhooks": [{"name": "gate", "type": "preRollout", "url": url, "timeout": "30s", "retries": 0}]})
}

/// A gate that is called again and again: each call takes the longest a
/// call may, and the Rollout pauses only after a hundred of them.
fn persistent_gate(url: &str) -> serde_json::Value {
    json!({"webhooks": [{"name": "gate", "type": "preRollout", "url": url, "timeout": "30s",
                         "retries": 100, "onFailure": "pause"}]})
}

fn is_healthy_at(status: &RolloutStatus, revision: Option<&String>) -> bool {
    status.phase == Some(RolloutPhase::Healthy)
        && status.canary_revision.is_none()
        && status.stable_revision.as_ref() != revision
}

async fn create_all(ns: &TestNamespace, rollouts: Vec<siskin::api::Rollout>) {
    for r in rollouts {
        create(&ns.api(), &r).await;
    }
}

async fn wait_stable(ns: &TestNamespace, names: &[String], within: Duration) {
    for name in names {
        wait_rollout_within(ns, name, "v1 to become stable", within, |s| {
            s.phase == Some(RolloutPhase::Healthy) && s.stable_revision.is_some()
        })
        .await;
    }
}

/// The abort message of Rollout `name`, once it is aborted.
async fn aborted_with(ns: &TestNamespace, name: &str, within: Duration) -> String {
    let status = wait_aborted(ns, name, "the abort", within).await;
    let note = wait_event(ns, name, "Warning", "Aborted").await;
    let (_, reason, _) = condition_of(&status, "Aborted").expect("an Aborted condition");
    assert_eq!(reason, "Webhook", "{name}: {note}");
    note
}

#[tokio::test]
#[ignore = "needs the sandbox: make test"]
async fn one_tenant_cannot_stop_starve_or_steer_the_controller() {
    let system = TestNamespace::new("hard-system").await;
    let hanging = TestNamespace::new("hard-hang").await;
    let hostile = TestNamespace::new("hard-hostile").await;
    let bystander = TestNamespace::new("hard-bystander").await;
    let base = hostile_server().await;
    let mut controller = ControllerProcess::launch(&system, "a").cluster_wide(INSTANCE).start();

    // The bystander and the tenants' Rollouts start at v1.
    let shrink_steps = json!([{"weight": 50}, {"pause": {}}, {"weight": 100}]);
    create_all(
        &bystander,
        vec![rollout(
            "calm",
            "v1",
            json!([{"weight": 50, "hold": {"min": "20s"}}]),
            json!({}),
        )],
    )
    .await;
    let hang_names: Vec<String> = (0..HANGING).map(|i| format!("hang-{i:02}")).collect();
    create_all(
        &hanging,
        hang_names
            .iter()
            .map(|n| {
                // No stable pods: the canary's one pod is all the gate needs.
                let gate = persistent_gate(&format!("{base}/hang"));
                let mut r = rollout(n, "v1", json!([{"weight": 50}]), gate);
                r.spec.replicas = 0;
                r
            })
            .collect(),
    )
    .await;
    let api_server = std::env::var("SISKIN_API_SERVER").unwrap_or_else(|_| "https://127.0.0.1:6443".into());
    let hostile_gates = [
        ("huge-body", format!("{base}/huge")),
        ("redirect", format!("{base}/redirect")),
        ("metadata", "http://169.254.169.254/latest/meta-data/".to_string()),
        ("api-server", format!("{api_server}/api/v1/secrets")),
    ];
    let mut hostile_rollouts: Vec<_> = hostile_gates
        .iter()
        .map(|(name, url)| rollout(name, "v1", json!([{"weight": 50}]), gate(url)))
        .collect();
    hostile_rollouts.push(rollout("shrink", "v1", shrink_steps, json!({})));
    hostile_rollouts.push(rollout(
        "inject",
        "v1",
        json!([{"weight": 50, "hold": {"max": "2m"}}]),
        json!({"analysis": {
            "templates": [{"name": "errors"}],
            "args": [{"name": "route", "value": "x\"}) or vector(1) #"}],
            "onInconclusive": "abort",
        }}),
    ));
    let template: AnalysisTemplate = serde_json::from_value(json!({
        "apiVersion": "siskin.io/v1alpha1", "kind": "AnalysisTemplate",
        "metadata": {"name": "errors"},
        "spec": {
            "args": [{"name": "route"}],
            "metrics": [{
                "name": "error-rate",
                "provider": {"prometheus": {"address": PROMETHEUS_URL}},
                "counts": {
                    "total": "sum(demo_requests_total{route=\"{{args.route}}\",namespace=\"{{namespace}}\"})",
                    "errors": "sum(demo_requests_total{route=\"{{args.route}}\",namespace=\"{{namespace}}\",code=~\"5..\"})",
                },
                "judge": {"sequential": {"alpha": 0.05}},
            }],
        }
    }))
    .expect("template");
    create(&hostile.api(), &template).await;
    create_all(&hostile, hostile_rollouts).await;

    // Objects Siskin did not create are not taken over: a Service named like
    // Siskin's own, and a workloadRef Deployment, neither opted in. The
    // latter's Rollout also asks for the most replicas, in batches of one.
    let foreign: Service = serde_json::from_value(json!({
        "metadata": {"name": "taken-stable"},
        "spec": {"selector": {"app": "someone-else"}, "ports": [{"port": 80}]},
    }))
    .expect("service");
    create(&hostile.api(), &foreign).await;
    create(
        &hostile.api(),
        &rollout("taken", "v1", json!([{"weight": 50}]), json!({})),
    )
    .await;
    let legacy: Deployment = demo_deployment("legacy", "v1", 0, &[]);
    create(&hostile.api(), &legacy).await;
    let huge: siskin::api::Rollout = serde_json::from_value(json!({
        "apiVersion": "siskin.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "huge", "labels": {"siskin.io/instance": INSTANCE}},
        "spec": {
            "replicas": 10_000,
            "service": {"name": "huge", "port": 80},
            "workloadRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "legacy"},
            "strategy": {"rolling": {"maxSurge": 1}},
        }
    }))
    .expect("rollout");
    create(&hostile.api(), &huge).await;
    // Fifty million replicas never reach the controller: the schema refuses them.
    let mut larger = huge.clone();
    larger.metadata.name = Some("larger".into());
    larger.spec.replicas = 50_000_000;
    let refused = hostile
        .api::<siskin::api::Rollout>()
        .create(&PostParams::default(), &larger)
        .await;
    let refusal = format!("{:?}", refused.expect_err("50,000,000 replicas are refused"));
    assert!(refusal.contains("10000"), "the refusal names the bound: {refusal}");

    let mut hostile_names: Vec<String> = hostile_gates.iter().map(|(n, _)| n.to_string()).collect();
    hostile_names.extend(["shrink".into(), "inject".into()]);
    wait_stable(&bystander, &["calm".into()], Duration::from_secs(120)).await;
    wait_stable(&hostile, &hostile_names, Duration::from_secs(180)).await;
    wait_stable(&hanging, &hang_names, Duration::from_secs(240)).await;

    for (name, reason, needle) in [
        ("taken", "AdoptionRequired", "Service"),
        ("huge", "AdoptionRequired", "Deployment"),
    ] {
        let status = wait_rollout_within(&hostile, name, "the takeover refused", Duration::from_secs(60), |s| {
            s.phase == Some(RolloutPhase::InvalidSpec)
        })
        .await;
        let (value, why, message) = condition_of(&status, "InvalidSpec").expect("an InvalidSpec condition");
        assert_eq!((value.as_str(), why.as_str()), ("True", reason), "{name}: {message}");
        assert!(
            message.contains(needle) && message.contains("siskin.io/adopt"),
            "{name}: {message}"
        );
        wait_event(&hostile, name, "Warning", reason).await;
    }
    let services: kube::Api<Service> = hostile.api();
    let untouched = services.get("taken-stable").await.expect("the foreign Service");
    assert_eq!(
        untouched
            .spec
            .and_then(|s| s.selector)
            .and_then(|s| s.get("app").cloned())
            .as_deref(),
        Some("someone-else"),
        "the foreign Service's selector is left alone"
    );

    // Every hanging gate is called at once, and the hostile gates too.
    for name in &hang_names {
        release_version(&hanging, name, "v2").await;
    }
    for name in &hostile_names {
        release_version(&hostile, name, "v2").await;
    }
    let shrink = wait_rollout_within(&hostile, "shrink", "the pause step", Duration::from_secs(90), |s| {
        s.phase == Some(RolloutPhase::Paused) && s.current_step_index == Some(1)
    })
    .await;
    // One patch: fewer steps, and a resume meant for this canary.
    let resume = format!(
        "resume@{}@{}",
        jiff::Timestamp::now(),
        shrink.canary_revision.clone().unwrap_or_default()
    );
    hostile
        .api::<siskin::api::Rollout>()
        .patch(
            "shrink",
            &PatchParams::default(),
            &Patch::Merge(json!({
                "metadata": {"annotations": {"siskin.io/request": resume}},
                "spec": {"strategy": {"canary": {"steps": [{"weight": 50, "hold": {"min": "1h"}}]}}},
            })),
        )
        .await
        .expect("patch shrink");

    // The bystander releases while all of that is in flight.
    eventually("the hanging gates to be called", Duration::from_secs(120), || async {
        (HANGING_CALLS.load(Ordering::SeqCst) >= 4).then_some(())
    })
    .await;
    let released = Instant::now();
    let before = rollout_status(&bystander, "calm").await.and_then(|s| s.stable_revision);
    release_version(&bystander, "calm", "v2").await;
    let allowed = BYSTANDER_HOLD + Duration::from_secs(30);
    wait_rollout_within(&bystander, "calm", "the bystander's promotion", allowed, |s| {
        is_healthy_at(s, before.as_ref())
    })
    .await;
    println!(
        "bystander promoted {:.1}s after its release (schedule {}s + 30s allowed)",
        released.elapsed().as_secs_f64(),
        BYSTANDER_HOLD.as_secs()
    );

    // Each hostile Rollout got a condition and an Event saying what was wrong.
    let note = aborted_with(&hostile, "huge-body", Duration::from_secs(90)).await;
    assert!(
        note.contains("HTTP 500") && !note.contains("xxxx"),
        "no body reflected: {note}"
    );
    let note = aborted_with(&hostile, "redirect", Duration::from_secs(90)).await;
    assert!(
        note.contains("HTTP 302"),
        "the redirect is an answer, never followed: {note}"
    );
    for name in ["metadata", "api-server"] {
        let note = aborted_with(&hostile, name, Duration::from_secs(90)).await;
        assert!(note.contains("denied by destination policy"), "{name}: {note}");
    }
    let status = wait_rollout_within(
        &hostile,
        "inject",
        "the injection refused",
        Duration::from_secs(180),
        |s| s.phase == Some(RolloutPhase::Aborted),
    )
    .await;
    let (_, reason, message) = condition_of(&status, "Aborted").expect("Aborted condition");
    let evidence = format!(
        "{message} {}",
        serde_json::to_string(&status.analysis).unwrap_or_default()
    );
    assert_eq!(reason, "Inconclusive", "{evidence}");
    assert!(
        evidence.contains("refused"),
        "the analysis names the refused argument: {evidence}"
    );
    let shrunk = rollout_status(&hostile, "shrink").await.expect("shrink status");
    assert_eq!(
        shrunk.current_step_index,
        Some(0),
        "the shortened steps start again from the first"
    );
    wait_event(&hostile, "shrink", "Normal", "StepsChanged").await;
    // Four calls of that namespace are in flight at a time, thirty seconds
    // each: every hanging Rollout waits at its gate, and the first ones
    // called have failed calls on record.
    let failed = eventually("a hanging gate's failed call", Duration::from_secs(90), || async {
        for name in &hang_names {
            let status = rollout_status(&hanging, name).await?;
            if condition_of(&status, "Progressing").is_some_and(|(_, _, m)| m.contains("no answer within 30s")) {
                return Some(name.clone());
            }
        }
        None
    })
    .await;
    let note = wait_event(&hanging, &failed, "Warning", "WebhookFailed").await;
    assert!(note.contains("no answer within 30s"), "{note}");
    for name in &hang_names {
        let status = rollout_status(&hanging, name).await.expect("status");
        let (_, reason, message) = condition_of(&status, "Progressing").expect("Progressing condition");
        assert_eq!(reason, "AwaitingWebhook", "{name}: {message}");
    }
    println!("calls of the hanging gates: {}", HANGING_CALLS.load(Ordering::SeqCst));

    assert!(controller.is_running(), "the controller never exited");
    let peak = controller.peak_rss_kib().expect("the controller's peak RSS");
    println!("controller peak RSS: {:.1} MiB", peak as f64 / 1024.0);
    assert!(peak < 100 * 1024, "peak RSS {peak} KiB stays under 100 MiB");

    for ns in [&bystander, &hanging, &hostile] {
        delete_rollouts(ns).await;
    }
}
