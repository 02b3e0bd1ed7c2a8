//! Blue/green end to end on the sandbox, measured through Traefik: green
//! runs at full size behind the preview Service while live traffic stays on
//! blue; the switch moves all of it at once; an abort inside the window
//! moves it back with one write. Both switches: the stable Service's
//! selector, and the weights of an HTTPRoute.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::support::*;
use gateway_api::httproutes::HttpRoute;
use k8s_openapi::api::core::v1::Service;
use kube::ResourceExt;
use serde_json::json;
use siskin::api::{AbortReason, Rollout, RolloutPhase};

const REPLICAS: i32 = 2;

/// A blue/green Rollout of the demo app; `routing` is its
/// `trafficRouting`, or null for the selector switch.
fn rollout(version: &str, routing: serde_json::Value, auto_promote: bool) -> Rollout {
    let mut strategy = json!({"autoPromote": auto_promote, "scaleDownDelay": "120s"});
    if !routing.is_null() {
        strategy["trafficRouting"] = routing;
    }
    if auto_promote {
        strategy["previewDuration"] = json!("15s");
    }
    demo_rollout(
        "demo",
        json!({
            "replicas": REPLICAS,
            "template": demo_template(version),
            "strategy": {"blueGreen": strategy},
        }),
    )
}

/// Route `demo-preview` to the preview (canary) Service; its hostname.
async fn preview_route(ns: &TestNamespace) -> String {
    let host = format!("preview.{}", test_host(ns));
    gateway_route(ns, "demo-preview", &host, json!([{"name": "demo-canary", "port": 80}])).await;
    host
}

/// Route `demo` to the stable Service, the active one, as users call it
/// without a router; its hostname.
async fn live_route_to_stable(ns: &TestNamespace) -> String {
    let host = test_host(ns);
    gateway_route(ns, "demo", &host, json!([{"name": "demo-stable", "port": 80}])).await;
    host
}

/// A fresh test namespace with its live and preview routes (the live one
/// on the demo route's two Services if `routed`, else on the stable Service
/// alone) and controller `a`; returns the hosts of both routes.
async fn blue_green_namespace(prefix: &str, routed: bool) -> (TestNamespace, String, String, ControllerProcess) {
    let ns = TestNamespace::new(prefix).await;
    let live = if routed {
        demo_route(&ns).await
    } else {
        live_route_to_stable(&ns).await
    };
    let preview = preview_route(&ns).await;
    let controller = ControllerProcess::start(&ns, "a");
    (ns, live, preview, controller)
}

/// Answers by version to a short burst through Traefik; `None` unless
/// every request was answered 200.
async fn burst(host: &str, requests: u64) -> Option<serde_json::Value> {
    let summary = through_gateway(host, 400, requests).await;
    (summary["by_status"]["200"].as_u64() == Some(requests)).then(|| summary["by_version"].clone())
}

/// Waits until a burst to `host` is answered by `version` alone; returns
/// how long that took.
async fn wait_all_on(host: &str, version: &str, what: &str) -> Duration {
    let start = Instant::now();
    eventually(what, Duration::from_secs(60), || async {
        let by_version = burst(host, 40).await?;
        (by_version.as_object()?.len() == 1 && by_version[version].as_u64() == Some(40)).then_some(())
    })
    .await;
    start.elapsed()
}

/// The resourceVersions of the objects a switch may write: the two
/// Services Siskin manages and the route, if there is one.
async fn traffic_objects(ns: &TestNamespace, routed: bool) -> Vec<(String, String)> {
    let mut versions = Vec::new();
    for name in ["demo-stable", "demo-canary"] {
        let svc: Service = ns.api().get(name).await.expect("Service");
        versions.push((format!("Service {name}"), svc.resource_version().unwrap_or_default()));
    }
    if routed {
        let route: HttpRoute = ns.api().get("demo").await.expect("route");
        versions.push(("HTTPRoute demo".into(), route.resource_version().unwrap_or_default()));
    }
    versions
}

fn changed(before: &[(String, String)], after: &[(String, String)]) -> Vec<String> {
    before
        .iter()
        .zip(after)
        .filter(|(b, a)| b.1 != a.1)
        .map(|(b, _)| b.0.clone())
        .collect()
}

/// Runs one blue/green release and its rollback: v1 is blue, v2 green.
/// `live` is the host users call, `preview` the one on the preview Service.
async fn release_switch_and_roll_back(ns: &TestNamespace, live: &str, preview: &str, routed: bool, manual: bool) {
    let v1 = wait_rollout(ns, "demo", "v1 to become stable", |s| {
        s.phase == Some(RolloutPhase::Healthy) && s.stable_revision.is_some()
    })
    .await
    .stable_revision
    .expect("stable revision");
    wait_all_on(live, "v1", "Traefik to serve v1").await;

    release_version(ns, "demo", "v2").await;
    let status = wait_rollout(ns, "demo", "green in preview", |s| {
        let previewing = if manual {
            s.phase == Some(RolloutPhase::Paused)
        } else {
            s.current_step_index == Some(0) && s.step_started_at.is_some()
        };
        previewing && s.canary_revision.is_some()
    })
    .await;
    let v2 = status.canary_revision.expect("canary revision");
    assert_eq!(revision_replicas(ns, &v2).await, REPLICAS, "green runs at full size");
    assert_eq!(revision_replicas(ns, &v1).await, REPLICAS, "blue keeps full size");
    wait_all_on(preview, "v2", "the preview to answer with green").await;
    let live_before = burst(live, 200).await.expect("live traffic answered");
    assert_eq!(
        live_before["v1"].as_u64(),
        Some(200),
        "before the switch live traffic is blue only: {live_before}"
    );

    if manual {
        siskin(&["promote", "demo", "-n", &ns.name]).await;
    }
    let switch_index = if manual { 2 } else { 1 };
    wait_rollout(ns, "demo", "the switch decided", |s| {
        s.current_step_index == Some(switch_index)
    })
    .await;
    let switched = wait_all_on(live, "v2", "all live traffic on green").await;
    let live_after = burst(live, 200).await.expect("live traffic answered");
    assert_eq!(
        live_after["v2"].as_u64(),
        Some(200),
        "after the switch, green only: {live_after}"
    );
    let status = rollout_status(ns, "demo").await.expect("status");
    assert_eq!(
        status.stable_revision.as_deref(),
        Some(v1.as_str()),
        "blue is still the rollback target"
    );
    assert_eq!(
        revision_replicas(ns, &v1).await,
        REPLICAS,
        "blue stays at full size in the window"
    );

    let before = traffic_objects(ns, routed).await;
    siskin(&["abort", "demo", "-n", &ns.name]).await;
    let rolled_back = wait_all_on(live, "v1", "all live traffic back on blue").await;
    wait_rollout(ns, "demo", "the abort recorded", is_aborted).await;
    let after = traffic_objects(ns, routed).await;
    let written = changed(&before, &after);
    assert_eq!(written.len(), 1, "a rollback is one write, wrote {written:?}");
    let how = if routed {
        "HTTPRoute weights"
    } else {
        "stable Service selector"
    };
    println!(
        "blue/green ({how}): switch decided → all live traffic on green in {:.2}s; \
         abort → all back on blue in {:.2}s (one write: {})",
        switched.as_secs_f64(),
        rolled_back.as_secs_f64(),
        written[0]
    );
}

#[tokio::test]
#[ignore = "needs the sandbox: make test"]
async fn blue_green_switches_the_stable_services_selector_and_rolls_back_with_one_write() {
    let (ns, live, preview, _controller) = blue_green_namespace("bg-selector", false).await;
    create(&ns.api(), &rollout("v1", serde_json::Value::Null, false)).await;
    release_switch_and_roll_back(&ns, &live, &preview, false, true).await;
    delete_rollouts(&ns).await;
}

#[tokio::test]
#[ignore = "needs the sandbox: make test"]
async fn blue_green_on_an_http_route_switches_the_weights_and_rolls_back_with_one_write() {
    let (ns, live, preview, _controller) = blue_green_namespace("bg-route", true).await;
    let routing = json!({"gatewayAPI": {"httpRoute": {"name": "demo"}}});
    create(&ns.api(), &rollout("v1", routing, true)).await;
    release_switch_and_roll_back(&ns, &live, &preview, true, false).await;
    assert_eq!(
        demo_route_weights(&ns).await,
        [("demo-stable".to_string(), 100), ("demo-canary".to_string(), 0)],
        "the route is back where the user had it"
    );
    delete_rollouts(&ns).await;
}

/// Sends `host` steady load through Traefik until `stop`; returns the
/// answers counted by version.
fn steady_load(host: String, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<BTreeMap<String, u64>> {
    tokio::spawn(async move {
        let mut by_version = BTreeMap::new();
        while !stop.load(Ordering::Relaxed) {
            let summary = through_gateway(&host, 100, 50).await;
            for (version, n) in summary["by_version"].as_object().into_iter().flatten() {
                *by_version.entry(version.clone()).or_default() += n.as_u64().unwrap_or(0);
            }
        }
        by_version
    })
}

/// Blue/green analysis judges the preview: requests sent to the preview
/// Service (a smoke or load test's) are compared with blue's live traffic,
/// and a faulty green is aborted before the switch, so no live request
/// ever reaches it.
#[tokio::test]
#[ignore = "needs the sandbox: make test"]
async fn blue_green_analysis_of_the_preview_aborts_a_faulty_green_before_any_live_traffic_reaches_it() {
    let ns = TestNamespace::new("bg-analysis").await;
    let live = live_route_to_stable(&ns).await;
    let preview = preview_route(&ns).await;
    create(&ns.api(), &traefik_errors()).await;
    let _controller = ControllerProcess::start(&ns, "a");
    let v1 = create_stable(&ns, &rollout("v1", serde_json::Value::Null, true)).await;
    wait_all_on(&live, "v1", "Traefik to serve v1").await;

    let stop = Arc::new(AtomicBool::new(false));
    let live_load = steady_load(live.clone(), stop.clone());
    // A verdict inconclusive for the whole preview would pause, not abort:
    // only evidence of a regression ends this release.
    let release = json!({
        "template": demo_template_with_errors("v2", "0.3"),
        "strategy": {"blueGreen": {"previewDuration": "120s"}},
        "analysis": {"templates": [{"name": "errors"}], "onInconclusive": "pause"},
    });
    patch_spec(&ns, "demo", release).await;
    eventually("the preview to answer with green", Duration::from_secs(60), || async {
        let by_version = through_gateway(&preview, 200, 20).await["by_version"].clone();
        (by_version.as_object()?.keys().collect::<Vec<_>>() == ["v2"]).then_some(())
    })
    .await;
    let preview_load = steady_load(preview.clone(), stop.clone());
    let aborted = wait_aborted(&ns, "demo", "green aborted in preview", Duration::from_secs(150)).await;
    stop.store(true, Ordering::Relaxed);
    let live_seen = live_load.await.expect("live load");
    let preview_seen = preview_load.await.expect("preview load");
    println!("blue/green preview analysis: live answers {live_seen:?}, preview answers {preview_seen:?}");

    let abort = aborted.abort.expect("abort recorded");
    assert_eq!(abort.reason, AbortReason::Regression, "{}", abort.message);
    assert_eq!(aborted.current_step_index, Some(0), "aborted during the preview");
    assert!(
        preview_seen.get("v2").is_some_and(|n| *n > 0),
        "the preview served green"
    );
    assert_eq!(
        live_seen.keys().collect::<Vec<_>>(),
        ["v1"],
        "no live request reached green"
    );
    assert_eq!(aborted.stable_revision.as_deref(), Some(v1.as_str()));
    wait_all_on(&live, "v1", "live traffic still on blue").await;
    delete_rollouts(&ns).await;
}
