//! A canary without a traffic router, end to end on the sandbox: the stable
//! and canary revisions share the user's one Service, so the canary's share
//! of live traffic is its share of the pods (9 stable : 1 canary is 10 %).

use std::time::Duration;

use crate::support::*;
use k8s_openapi::api::core::v1::Service;
use serde_json::json;
use siskin::api::{Rollout, RolloutPhase};

const REPLICAS: i32 = 10;

/// What users write for a replica-ratio canary: one Service selecting the
/// label every revision's pods share, exposed through a plain route.
async fn user_service_and_route(ns: &TestNamespace) -> String {
    let svc: Service = service("demo", &[("app", "demo")]);
    create(&ns.api(), &svc).await;
    let host = test_host(ns);
    gateway_route(ns, "demo", &host, json!([{"name": "demo", "port": 80}])).await;
    host
}

fn rollout(version: &str) -> Rollout {
    demo_rollout(
        "demo",
        json!({
            "replicas": REPLICAS,
            "template": demo_template(version),
            "strategy": {"canary": {
                "steps": [{"weight": 10}, {"pause": {}}],
                "scaleDownDelay": "3s",
            }},
        }),
    )
}

/// The share of `requests` answered by `version` through Traefik, after
/// checking (nearly) every request was answered.
async fn share_of(host: &str, version: &str, requests: u64) -> f64 {
    let summary = through_gateway(host, 400, requests).await;
    let ok = summary["by_status"]["200"].as_u64().unwrap_or(0);
    assert!(ok * 100 >= requests * 99, "nearly every request answered: {summary}");
    summary["by_version"][version].as_u64().unwrap_or(0) as f64 / ok as f64
}

/// Waits until Traefik answers every request of a short burst, i.e. it has
/// the route and the Service's current endpoints.
async fn wait_serving(host: &str) {
    eventually("Traefik to serve the route", Duration::from_secs(60), || async {
        let summary = through_gateway(host, 200, 100).await;
        (summary["by_status"]["200"].as_u64() == Some(100)).then_some(())
    })
    .await;
}

/// Every pod of the Rollout (terminating ones too) belongs to the expected
/// revisions in the expected numbers, so endpoints have settled.
async fn wait_pods(ns: &TestNamespace, what: &str, expected: &[(&str, usize)]) {
    eventually(what, Duration::from_secs(90), || async {
        let all = pod_ips(ns, "app=demo").await.len();
        let total: usize = expected.iter().map(|(_, n)| n).sum();
        for (revision, n) in expected {
            if revision_pod_uids(ns, revision).await.len() != *n {
                return None;
            }
        }
        (all == total).then_some(())
    })
    .await;
}

#[tokio::test]
#[ignore = "needs the sandbox: make test"]
async fn replica_ratio_canary_gets_its_pod_share_of_one_service_then_all_on_promote() {
    let ns = TestNamespace::new("canary-ratio").await;
    let host = user_service_and_route(&ns).await;
    let _controller = ControllerProcess::start(&ns, "a");
    let v1 = create_stable(&ns, &rollout("v1")).await;
    wait_pods(&ns, "ten v1 pods", &[(&v1, 10)]).await;
    wait_serving(&host).await;
    assert_eq!(share_of(&host, "v1", 300).await, 1.0, "before a release all on v1");

    release_version(&ns, "demo", "v2").await;
    let status = wait_rollout(&ns, "demo", "the canary at 10% of the pods", |s| {
        s.phase == Some(RolloutPhase::Paused) && s.canary_weight == Some(10) && s.observed_canary_weight == Some(10)
    })
    .await;
    let v2 = status.canary_revision.expect("canary revision");
    assert_eq!(revision_replicas(&ns, &v1).await, 9, "stable shrinks to make room");
    assert_eq!(revision_replicas(&ns, &v2).await, 1, "one canary pod");
    wait_pods(&ns, "9 stable and 1 canary pods", &[(&v1, 9), (&v2, 1)]).await;
    wait_serving(&host).await;
    let share = share_of(&host, "v2", 2000).await;
    println!(
        "9:1 replica ratio: v2 got {:.1}% of 2000 requests through Traefik",
        share * 100.0
    );
    assert!((share - 0.10).abs() <= 0.03, "v2 share {share} at 1 of 10 pods");

    siskin(&["promote", "demo", "-n", &ns.name]).await;
    wait_rollout(&ns, "demo", "v2 to be promoted", |s| {
        s.phase == Some(RolloutPhase::Healthy) && s.stable_revision.as_deref() == Some(v2.as_str())
    })
    .await;
    wait_pods(&ns, "only v2 pods after promotion", &[(&v2, 10)]).await;
    wait_serving(&host).await;
    assert_eq!(revision_replicas(&ns, &v1).await, 0, "the old revision is gone");
    assert_eq!(
        share_of(&host, "v2", 500).await,
        1.0,
        "after promotion all traffic is on v2"
    );
    delete_rollouts(&ns).await;
}
