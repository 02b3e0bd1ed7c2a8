//! A canary on an Istio VirtualService, end to end on the sandbox. The
//! sandbox has Istio's CRDs but no Istio data plane, so what users would get
//! is read off the object: the weights of the named HTTP route follow the
//! steps, every other route stays exactly as its owner wrote it, and
//! promotion ends at 100/0 on the canary's own pods. An A/B test puts one
//! named route of Siskin's first and takes it off again.

use std::time::Duration;

use crate::support::*;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::{Value, json};
use siskin::api::RolloutPhase;

fn virtual_services(ns: &TestNamespace) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("networking.istio.io", "v1", "VirtualService");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "virtualservices");
    Api::namespaced_with(ns.client.clone(), &ns.name, &resource)
}

/// The VirtualService users write. `primary` splits between the stable and
/// canary Services; `other` pins beta testers to the canary Service. It names
/// both Services too, so only the Rollout's `routes: [primary]` keeps Siskin
/// off it.
async fn virtual_service(ns: &TestNamespace) {
    let vs: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "demo"},
        "spec": {
            "hosts": [format!("demo.{}.svc.cluster.local", ns.name)],
            "http": [
                {
                    "name": "other",
                    "match": [{"headers": {"x-beta": {"exact": "true"}}}],
                    "route": [
                        {"destination": {"host": "demo-canary", "port": {"number": 80}}, "weight": 100},
                        {"destination": {"host": "demo-stable", "port": {"number": 80}}, "weight": 0},
                    ],
                    "timeout": "3s",
                },
                {
                    "name": "primary",
                    "route": [
                        {"destination": {"host": "demo-stable", "port": {"number": 80}}, "weight": 100},
                        {"destination": {"host": "demo-canary", "port": {"number": 80}}, "weight": 0},
                    ],
                },
            ]
        }
    }))
    .expect("virtual service");
    virtual_services(ns)
        .create(&Default::default(), &vs)
        .await
        .expect("create the VirtualService");
}

/// The HTTP route of the VirtualService with this name, as stored.
async fn http_route(ns: &TestNamespace, name: &str) -> Value {
    let vs = virtual_services(ns).get("demo").await.expect("VirtualService");
    vs.data["spec"]["http"]
        .as_array()
        .and_then(|routes| routes.iter().find(|r| r["name"] == name))
        .cloned()
        .unwrap_or_else(|| panic!("the VirtualService lost its route {name:?}: {:#}", vs.data))
}

/// `(host, weight)` of each destination of the `primary` route.
async fn primary_weights(ns: &TestNamespace) -> Vec<(String, i64)> {
    let primary = http_route(ns, "primary").await;
    primary["route"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            let host = d["destination"]["host"].as_str().unwrap_or_default().to_string();
            (host, d["weight"].as_i64().unwrap_or(0))
        })
        .collect()
}

fn split(stable: i64, canary: i64) -> Vec<(String, i64)> {
    vec![("demo-stable".into(), stable), ("demo-canary".into(), canary)]
}

#[tokio::test]
#[ignore = "needs the sandbox: make test"]
async fn canary_on_a_virtual_service_weights_only_the_named_route_and_promotes_the_same_pods() {
    let ns = TestNamespace::new("canary-istio").await;
    virtual_service(&ns).await;
    let other = http_route(&ns, "other").await;
    let _controller = ControllerProcess::start(&ns, "a");
    let routing = json!({"istio": {"virtualService": {"name": "demo", "routes": ["primary"]}}});
    let steps = json!([{"weight": 10}, {"pause": {}}, {"weight": 50}, {"pause": {}}, {"weight": 100}, {"pause": {}}]);
    let mut rollout = canary_rollout("demo", "demo", "v1", routing, steps);
    rollout.spec.replicas = 2;
    create(&ns.api(), &rollout).await;
    let status = wait_rollout(&ns, "demo", "v1 to become stable", |s| {
        s.phase == Some(RolloutPhase::Healthy) && condition_of(s, "Healthy").is_some_and(|c| c.0 == "True")
    })
    .await;
    let v1 = status.stable_revision.expect("stable revision");
    assert_eq!(
        primary_weights(&ns).await,
        split(100, 0),
        "before a release all on stable"
    );

    release_version(&ns, "demo", "v2").await;
    let mut canary_pods = Default::default();
    for weight in [10, 50, 100] {
        let status = wait_rollout(&ns, "demo", &format!("the canary paused at {weight}%"), |s| {
            s.canary_weight == Some(weight)
                && s.observed_canary_weight == Some(weight)
                && s.phase == Some(RolloutPhase::Paused)
        })
        .await;
        let weights = primary_weights(&ns).await;
        println!("step {weight}%: primary route {weights:?}");
        assert_eq!(weights, split(100 - i64::from(weight), i64::from(weight)));
        assert_eq!(
            http_route(&ns, "other").await,
            other,
            "the route Siskin was not given stays untouched"
        );
        if weight == 100 {
            let v2 = status.canary_revision.expect("canary revision");
            canary_pods = revision_pod_uids(&ns, &v2).await;
            assert_eq!(canary_pods.len(), 2, "at 100% the canary runs at full size");
        }
        siskin(&["promote", "demo", "-n", &ns.name]).await;
    }

    let status = wait_rollout(&ns, "demo", "v2 to be promoted", |s| {
        s.phase == Some(RolloutPhase::Healthy) && s.stable_revision.as_deref() != Some(v1.as_str())
    })
    .await;
    let v2 = status.stable_revision.expect("stable revision");
    assert_eq!(primary_weights(&ns).await, split(100, 0), "promotion ends at 100/0");
    assert_eq!(
        revision_pod_uids(&ns, &v2).await,
        canary_pods,
        "promotion kept the canary's pods: nothing re-created"
    );
    assert_eq!(http_route(&ns, "other").await, other);
    eventually(
        "v1 to scale down after scaleDownDelay",
        Duration::from_secs(30),
        || async { (revision_replicas(&ns, &v1).await == 0).then_some(()) },
    )
    .await;
}

/// The VirtualService's HTTP routes, as stored.
async fn http_routes(ns: &TestNamespace) -> Value {
    let vs = virtual_services(ns).get("demo").await.expect("VirtualService");
    vs.data["spec"]["http"].clone()
}

#[tokio::test]
#[ignore = "needs the sandbox: make test"]
async fn ab_test_on_a_virtual_service_adds_one_named_route_first_and_removes_it_after() {
    let ns = TestNamespace::new("ab-istio").await;
    virtual_service(&ns).await;
    let _controller = ControllerProcess::start(&ns, "a");
    let rollout = |version: &str| -> siskin::api::Rollout {
        demo_rollout(
            "demo",
            json!({
                "replicas": 1,
                "template": demo_template(version),
                "strategy": {"abTest": {
                    "trafficRouting": {"istio": {"virtualService": {"name": "demo", "routes": ["primary"]}}},
                    "match": [{"headers": [{"name": "x-tester", "value": "yes"}]}],
                    "scaleDownDelay": "3s",
                }},
            }),
        )
    };
    create_stable(&ns, &rollout("v1")).await;
    let users_routes = http_routes(&ns).await;

    release_version(&ns, "demo", "v2").await;
    wait_rollout(&ns, "demo", "the A/B route in place", |s| {
        s.canary_revision.is_some() && s.step_started_at.is_some()
    })
    .await;
    let during = http_routes(&ns).await;
    println!("VirtualService routes during the A/B test: {during:#}");
    assert_eq!(
        during[0],
        json!({
            "name": "siskin-ab-demo",
            "match": [{"headers": {"x-tester": {"exact": "yes"}}}],
            "route": [{"destination": {"host": "demo-canary", "port": {"number": 80}}}],
        }),
        "Siskin's route comes first and sends the matching requests to the canary"
    );
    let rest: Vec<Value> = during.as_array().into_iter().flatten().skip(1).cloned().collect();
    assert_eq!(
        Value::Array(rest),
        users_routes,
        "the user's routes follow, untouched, at 100/0"
    );

    siskin(&["promote", "demo", "-n", &ns.name, "--full"]).await;
    wait_rollout(&ns, "demo", "v2 promoted", |s| {
        s.phase == Some(RolloutPhase::Healthy) && s.canary_revision.is_none()
    })
    .await;
    let after = eventually("the A/B route removed", Duration::from_secs(30), || async {
        let routes = http_routes(&ns).await;
        (routes != during).then_some(routes)
    })
    .await;
    assert_eq!(after, users_routes, "the VirtualService is the user's again");
    delete_rollouts(&ns).await;
}

#[tokio::test]
#[ignore = "needs the sandbox: make test"]
async fn mirroring_stage_carries_the_mirror_on_the_named_route_and_drops_it_after() {
    let (ns, before, _controller) = in_mirror_stage("mirror-istio").await;
    let primary = http_route(&ns, "primary").await;
    println!("mirror stage: primary route {primary}");
    assert_eq!(
        primary["mirror"],
        json!({"host": "demo-canary", "port": {"number": 80}}),
        "the canary destination as the route names it"
    );
    assert_eq!(primary["mirrorPercentage"]["value"].as_f64(), Some(50.0));
    assert_eq!(
        primary_weights(&ns).await,
        split(100, 0),
        "users stay on stable while mirrored"
    );
    assert_eq!(
        http_route(&ns, "other").await,
        before[0],
        "the other route stays untouched"
    );

    siskin(&["promote", "demo", "-n", &ns.name]).await;
    wait_rollout(&ns, "demo", "the first weight step", |s| {
        s.canary_weight == Some(20) && s.observed_canary_weight == Some(20) && s.phase == Some(RolloutPhase::Paused)
    })
    .await;
    let primary = http_route(&ns, "primary").await;
    assert!(
        primary.get("mirror").is_none(),
        "the mirror is gone after its stage: {primary}"
    );
    assert!(primary.get("mirrorPercentage").is_none(), "{primary}");
    assert_eq!(primary_weights(&ns).await, split(80, 20));

    siskin(&["promote", "demo", "-n", &ns.name]).await;
    wait_rollout(&ns, "demo", "v2 promoted", |s| {
        s.phase == Some(RolloutPhase::Healthy) && s.canary_revision.is_none()
    })
    .await;
    assert_eq!(
        http_routes(&ns).await,
        before,
        "the VirtualService is as the user wrote it"
    );
    delete_rollouts(&ns).await;
}

#[tokio::test]
#[ignore = "needs the sandbox: make test"]
async fn deleting_a_rollout_during_its_mirror_stage_takes_the_mirror_off_the_route() {
    let (ns, before, _controller) = in_mirror_stage("mirror-delete").await;
    assert!(http_route(&ns, "primary").await.get("mirror").is_some(), "mirroring");

    delete_rollouts(&ns).await;
    let primary = http_route(&ns, "primary").await;
    assert!(
        primary.get("mirror").is_none(),
        "no mirror left after the deletion: {primary}"
    );
    assert!(primary.get("mirrorPercentage").is_none(), "{primary}");
    assert_eq!(
        http_routes(&ns).await,
        before,
        "the VirtualService is as the user wrote it"
    );
}

/// A fresh test namespace with a canary on the VirtualService `demo` whose
/// v2 holds in a 50 % mirror stage (for an hour), with the routes as they
/// were before the release.
async fn in_mirror_stage(prefix: &str) -> (TestNamespace, Value, ControllerProcess) {
    let namespace = TestNamespace::new(prefix).await;
    let ns = &namespace;
    virtual_service(ns).await;
    let before = http_routes(ns).await;
    let controller = ControllerProcess::start(ns, "a");
    let routing = json!({"istio": {"virtualService": {"name": "demo", "routes": ["primary"]}}});
    let mut rollout = canary_rollout("demo", "demo", "v1", routing, json!([{"weight": 20}, {"pause": {}}]));
    rollout.spec.strategy.canary.as_mut().expect("canary").mirror =
        serde_json::from_value(json!({"percent": 50, "hold": {"min": "1h"}})).expect("mirror");
    create_stable(ns, &rollout).await;
    assert_eq!(http_routes(ns).await, before, "no mirror before a release");
    release_version(ns, "demo", "v2").await;
    wait_rollout(ns, "demo", "the mirror stage holding", |s| {
        s.current_step_index == Some(0) && s.step_started_at.is_some()
    })
    .await;
    (namespace, before, controller)
}
