//! A HorizontalPodAutoscaler scaling a Rollout mid-canary, on the sandbox:
//! first through the scale subresource as the HPA controller writes it,
//! then with a real HPA object. Both revisions follow the new size; the
//! step, its weight and the route stay where they were.

use std::time::Duration;

use crate::support::*;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::api::{Patch, PatchParams};
use serde_json::json;
use siskin::api::{Rollout, RolloutPhase, RolloutStatus};

const TIMEOUT: Duration = Duration::from_secs(120);

fn steps() -> serde_json::Value {
    json!([{"weight": 50}, {"pause": {}}])
}

fn routing() -> serde_json::Value {
    json!({"gatewayAPI": {"httpRoute": {"name": "demo"}}})
}

fn paused_at_half(s: &RolloutStatus) -> bool {
    s.phase == Some(RolloutPhase::Paused) && s.canary_weight == Some(50) && s.current_step_index == Some(1)
}

/// Waits until the two revisions' Deployments ask for these sizes.
async fn wait_sizes(ns: &TestNamespace, (stable, stable_pods): (&str, i32), (canary, canary_pods): (&str, i32)) {
    eventually(
        &format!("stable at {stable_pods} and canary at {canary_pods} pods"),
        TIMEOUT,
        || async {
            let sizes = (revision_replicas(ns, stable).await, revision_replicas(ns, canary).await);
            (sizes == (stable_pods, canary_pods)).then_some(())
        },
    )
    .await;
}

#[tokio::test]
#[ignore = "needs the sandbox: make test"]
async fn scaling_mid_canary_keeps_the_step_and_resizes_both_revisions() {
    let (ns, _, _controller) = namespace_with_demo_route("autoscaling").await;
    let mut rollout = canary_rollout("demo", "demo", "v1", routing(), steps());
    rollout.spec.replicas = 2;
    let v1 = create_stable_within(&ns, &rollout, TIMEOUT).await;
    release_version(&ns, "demo", "v2").await;
    let status = wait_rollout_within(&ns, "demo", "the canary paused at 50%", TIMEOUT, paused_at_half).await;
    let v2 = status.canary_revision.expect("canary");
    wait_sizes(&ns, (&v1, 2), (&v2, 1)).await;

    // What the HPA controller sends: a patch of the scale subresource.
    let api = ns.api::<Rollout>();
    let scale = json!({"spec": {"replicas": 4}});
    api.patch_scale("demo", &PatchParams::default(), &Patch::Merge(&scale))
        .await
        .expect("patch rollouts/demo/scale");
    wait_sizes(&ns, (&v1, 4), (&v2, 2)).await;
    let status = wait_rollout_within(&ns, "demo", "status.replicas at 6", TIMEOUT, |s| {
        paused_at_half(s) && s.replicas == Some(6)
    })
    .await;
    assert_eq!(status.canary_revision.as_deref(), Some(v2.as_str()), "the same canary");
    let weights = demo_route_weights(&ns).await;
    assert_eq!(
        weights,
        [("demo-stable".to_string(), 50), ("demo-canary".to_string(), 50)],
        "the route keeps the step's weights"
    );
    let read = api.get_scale("demo").await.expect("get rollouts/demo/scale");
    assert_eq!(read.spec.and_then(|s| s.replicas), Some(4));
    let read_status = read.status.expect("scale status");
    assert_eq!(read_status.replicas, 6, "stable and canary pods");
    assert_eq!(read_status.selector.as_deref(), Some("siskin.io/rollout=demo"));

    // A real HPA: with no metrics server it cannot measure, but it raises a
    // target below its minimum before it measures anything.
    let hpa: HorizontalPodAutoscaler = serde_json::from_value(json!({
        "metadata": {"name": "demo"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "siskin.io/v1alpha1", "kind": "Rollout", "name": "demo"},
            "minReplicas": 6, "maxReplicas": 8,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 80}}}],
        }
    }))
    .expect("hpa");
    create(&ns.api(), &hpa).await;
    eventually("the HPA to scale the Rollout to 6", TIMEOUT, || async {
        let rollout = api.get("demo").await.ok()?;
        (rollout.spec.replicas == 6).then_some(())
    })
    .await;
    wait_sizes(&ns, (&v1, 6), (&v2, 3)).await;
    let status = wait_rollout_within(&ns, "demo", "status.replicas at 9", TIMEOUT, |s| {
        paused_at_half(s) && s.replicas == Some(9)
    })
    .await;
    assert_eq!(status.current_step_index, Some(1));

    siskin(&["promote", "demo", "-n", &ns.name]).await;
    wait_rollout_within(&ns, "demo", "v2 promoted at the HPA's size", TIMEOUT, |s| {
        s.phase == Some(RolloutPhase::Healthy) && s.stable_revision.as_deref() == Some(v2.as_str())
    })
    .await;
    assert_eq!(revision_replicas(&ns, &v2).await, 6, "the promoted revision at 6 pods");
    delete_rollouts(&ns).await;
}
