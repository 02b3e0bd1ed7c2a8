//! A canary on a Gateway API HTTPRoute, end to end on the sandbox: the
//! controller moves live traffic through Traefik step by step, promotes
//! without re-creating pods, and aborts with one route write.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::support::*;
use gateway_api::httproutes::HttpRoute;
use k8s_openapi::api::apps::v1::Deployment;
use kube::{Api, ResourceExt};
use serde_json::json;
use siskin::api::{Rollout, RolloutPhase};

const SERVICE: &str = "demo";

fn rollout(version: &str, steps: serde_json::Value) -> Rollout {
    demo_rollout(
        "demo",
        json!({
            "replicas": 2,
            "service": {"name": SERVICE, "port": 80, "targetPort": 8080},
            "template": demo_template(version),
            "strategy": {"canary": {
                "trafficRouting": {"gatewayAPI": {"httpRoute": {"name": "demo"}}},
                "steps": steps,
                "scaleDownDelay": "3s",
            }},
        }),
    )
}

async fn share_of(host: &str, version: &str, requests: u64) -> f64 {
    let summary = through_gateway(host, 400, requests).await;
    assert_eq!(
        summary["by_status"]["200"].as_u64(),
        Some(requests),
        "every request answered: {summary}"
    );
    summary["by_version"][version].as_u64().unwrap_or(0) as f64 / requests as f64
}

/// Starts the first revision and waits until it is stable with all traffic.
async fn first_release(ns: &TestNamespace, steps: serde_json::Value) -> String {
    create_stable(ns, &rollout("v1", steps)).await
}

/// The `demo` route's `metadata.generation`: it counts the writes to its spec.
async fn route_generation(ns: &TestNamespace) -> Option<i64> {
    let route = ns.api::<HttpRoute>().get("demo").await.expect("route");
    route.metadata.generation
}

async fn wait_at_weight(ns: &TestNamespace, weight: i32) {
    wait_rollout(ns, "demo", &format!("canary at {weight}% on the route"), |s| {
        s.canary_weight == Some(weight)
            && s.observed_canary_weight == Some(weight)
            && s.phase == Some(RolloutPhase::Paused)
    })
    .await;
}

#[tokio::test]
#[ignore = "needs the sandbox: make test"]
async fn canary_moves_live_traffic_step_by_step_and_promotes_the_same_pods() {
    let (ns, host, _controller) = namespace_with_demo_route("canary-gw").await;
    let steps = json!([{"weight": 10}, {"pause": {}}, {"weight": 50}, {"pause": {}}, {"weight": 100}, {"pause": {}}]);
    let v1 = first_release(&ns, steps).await;
    // The route existed before its Services: give Traefik a moment to resolve
    // them before measuring.
    let http = http();
    eventually("Traefik to serve v1 on the route", Duration::from_secs(30), || async {
        for _ in 0..20 {
            let resp = get_via_gateway(&http, &host).await?;
            if resp.status() != 200 {
                return None;
            }
        }
        Some(())
    })
    .await;
    assert_eq!(
        share_of(&host, "v1", 200).await,
        1.0,
        "before a release all traffic is on v1"
    );

    release_version(&ns, "demo", "v2").await;
    let mut canary_pods = BTreeSet::new();
    for weight in [10, 50, 100] {
        wait_at_weight(&ns, weight).await;
        let status = rollout_status(&ns, "demo").await.expect("status");
        let v2 = status.canary_revision.clone().expect("canary revision");
        assert_eq!(
            demo_route_weights(&ns).await,
            vec![
                ("demo-stable".to_string(), 100 - weight),
                ("demo-canary".to_string(), weight)
            ],
            "the route carries the step's weights"
        );
        // A parent reports Accepted once it has the route, which may be a
        // moment before the new weights carry traffic: settle first.
        let target = f64::from(weight) / 100.0;
        eventually(
            "Traefik to carry the step's weights",
            Duration::from_secs(30),
            || async { ((share_of(&host, "v2", 200).await - target).abs() <= 0.05).then_some(()) },
        )
        .await;
        let share = share_of(&host, "v2", 1000).await;
        println!(
            "step {weight}%: v2 got {:.1}% of 1000 requests through Traefik",
            share * 100.0
        );
        assert!(
            (share - f64::from(weight) / 100.0).abs() <= 0.04,
            "v2 share {share} at weight {weight}"
        );
        if weight == 100 {
            canary_pods = revision_pod_uids(&ns, &v2).await;
            assert_eq!(canary_pods.len(), 2, "at 100% the canary runs at full size");
        }
        siskin(&["promote", "demo", "-n", &ns.name]).await;
    }

    wait_rollout(&ns, "demo", "v2 to be promoted", |s| {
        s.phase == Some(RolloutPhase::Healthy) && s.stable_revision != Some(v1.clone())
    })
    .await;
    let v2 = rollout_status(&ns, "demo")
        .await
        .and_then(|s| s.stable_revision)
        .expect("stable");
    assert_eq!(
        revision_pod_uids(&ns, &v2).await,
        canary_pods,
        "promotion kept the canary's pods: nothing re-created"
    );
    assert_eq!(demo_route_weights(&ns).await[0], ("demo-stable".to_string(), 100));
    assert_eq!(
        share_of(&host, "v2", 300).await,
        1.0,
        "after promotion all traffic is on v2"
    );
    eventually(
        "v1 to scale down after scaleDownDelay",
        Duration::from_secs(30),
        || async {
            (revision_replicas(&ns, &v1).await == 0 && revision_pod_uids(&ns, &v1).await.is_empty()).then_some(())
        },
    )
    .await;

    // Deleting the Rollout leaves the route pointing at live pods: the
    // stable revision and both Services stay, no longer owned.
    delete_rollouts(&ns).await;
    let services: Api<k8s_openapi::api::core::v1::Service> = ns.api();
    for name in ["demo-stable", "demo-canary"] {
        let service = services.get(name).await.expect("Service left behind");
        assert!(service.owner_references().is_empty(), "{name} is no longer owned");
    }
    let deployments: Api<Deployment> = ns.api();
    let stable = deployments
        .get(&format!("demo-{v2}"))
        .await
        .expect("the stable Deployment is left behind");
    assert!(stable.owner_references().is_empty());
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(revision_pod_uids(&ns, &v2).await, canary_pods, "its pods keep running");
    assert_eq!(
        share_of(&host, "v2", 300).await,
        1.0,
        "after the Rollout is deleted, v2 still serves every request"
    );
}

#[tokio::test]
#[ignore = "needs the sandbox: make test"]
async fn abort_returns_all_traffic_to_stable_with_one_route_write() {
    let (ns, host, _controller) = namespace_with_demo_route("canary-abort").await;
    let v1 = first_release(&ns, json!([{"weight": 50}, {"pause": {}}])).await;
    release_version(&ns, "demo", "v2").await;
    wait_at_weight(&ns, 50).await;
    let v2 = rollout_status(&ns, "demo")
        .await
        .and_then(|s| s.canary_revision)
        .expect("canary");
    let generation_before = route_generation(&ns).await;

    let asked = Instant::now();
    siskin(&["abort", "demo", "-n", &ns.name]).await;
    let http = http();
    let took = eventually("all traffic back on v1", Duration::from_secs(30), || async {
        for _ in 0..50 {
            let resp = get_via_gateway(&http, &host).await?;
            if resp.headers().get("x-version")? != "v1" {
                return None;
            }
        }
        Some(asked.elapsed())
    })
    .await;
    println!(
        "abort: from `siskin abort` to all traffic on stable in {:.2}s",
        took.as_secs_f64()
    );

    wait_rollout(&ns, "demo", "the Aborted status", is_aborted).await;
    let status = rollout_status(&ns, "demo").await.expect("status");
    let aborted = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Aborted")
        .expect("Aborted condition");
    assert_eq!(aborted.status, "True");
    println!("Aborted condition: {}: {}", aborted.reason, aborted.message);
    assert_eq!(status.stable_revision.as_deref(), Some(v1.as_str()));
    assert_eq!(demo_route_weights(&ns).await[1], ("demo-canary".to_string(), 0));
    let generation_after = route_generation(&ns).await;
    assert_eq!(
        generation_after.zip(generation_before).map(|(a, b)| a - b),
        Some(1),
        "abort is one route write"
    );
    eventually("the canary to scale down", Duration::from_secs(30), || async {
        (revision_replicas(&ns, &v2).await == 0).then_some(())
    })
    .await;
}
