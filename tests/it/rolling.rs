//! A rolling update end to end on the sandbox: the new revision's pods
//! replace the old ones in batches of maxSurge, never more than
//! replicas + maxSurge pods and never fewer than replicas − maxUnavailable
//! ready, sampled throughout; a regression found by the analysis half-way
//! walks back to the old revision under the same bounds.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::support::*;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::Api;
use kube::api::ListParams;
use serde_json::json;
use siskin::api::{AnalysisTemplate, Rollout, RolloutPhase};

const REPLICAS: usize = 5;
const MAX_SURGE: usize = 1;
const MAX_UNAVAILABLE: usize = 0;

fn rollout() -> Rollout {
    demo_rollout(
        "demo",
        json!({
            "replicas": REPLICAS,
            "template": demo_template_with_errors("v1", "0"),
            "strategy": {"rolling": {
                "maxSurge": MAX_SURGE,
                "maxUnavailable": MAX_UNAVAILABLE,
                "batchHold": {"min": "3s"},
            }},
        }),
    )
}

/// The demo app's own per-pod counters; `{{revision}}` picks each arm's
/// pods, which share the one Service.
fn error_template() -> AnalysisTemplate {
    let pods = r#"namespace="{{namespace}}",pod=~"{{rollout}}-{{revision}}-.*""#;
    error_count_template(
        PROMETHEUS_URL,
        format!("sum(demo_requests_total{{{pods}}})"),
        format!(r#"sum(demo_requests_total{{{pods},code=~"5.."}})"#),
    )
}

/// The extremes seen by the pod sampler.
#[derive(Debug, Default, Clone)]
struct Extremes {
    samples: usize,
    most_pods: usize,
    fewest_ready: usize,
    /// Counts of pods not of the `from` revision seen while it had pods.
    mixes: BTreeSet<usize>,
}

/// Lists the demo pods every 100 ms until `stop`: pods not terminating,
/// and of those the ones Ready, as a Deployment counts them for maxSurge and
/// maxUnavailable.
fn sample_pods(ns: &TestNamespace, from: &str, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<Extremes> {
    let from = from.to_string();
    let pods: Api<Pod> = ns.api();
    tokio::spawn(async move {
        let mut seen = Extremes {
            fewest_ready: usize::MAX,
            ..Extremes::default()
        };
        while !stop.load(Ordering::Relaxed) {
            if let Ok(list) = pods.list(&ListParams::default().labels("app=demo")).await {
                let live: Vec<&Pod> = list
                    .items
                    .iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                    .collect();
                let ready = live.iter().filter(|p| is_ready(p)).count();
                let old = live.iter().filter(|p| revision_of(p) == Some(from.as_str())).count();
                if old > 0 && old < live.len() {
                    seen.mixes.insert(live.len() - old);
                }
                seen.samples += 1;
                seen.most_pods = seen.most_pods.max(live.len());
                seen.fewest_ready = seen.fewest_ready.min(ready);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        seen
    })
}

fn revision_of(pod: &Pod) -> Option<&str> {
    let labels = pod.metadata.labels.as_ref()?;
    labels.get(siskin::api::REVISION_LABEL).map(String::as_str)
}

fn is_ready(pod: &Pod) -> bool {
    let conditions = pod.status.as_ref().and_then(|s| s.conditions.as_ref());
    conditions.is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn assert_within_bounds(seen: &Extremes, what: &str) {
    println!(
        "rolling {what}: {} samples, at most {} pods (bound {}), at least {} ready (bound {}), new pods seen beside old: {:?}",
        seen.samples,
        seen.most_pods,
        REPLICAS + MAX_SURGE,
        seen.fewest_ready,
        REPLICAS - MAX_UNAVAILABLE,
        seen.mixes
    );
    assert!(seen.samples >= 20, "the sampler ran throughout: {seen:?}");
    assert!(seen.most_pods <= REPLICAS + MAX_SURGE, "{what}: too many pods {seen:?}");
    assert!(
        seen.fewest_ready >= REPLICAS - MAX_UNAVAILABLE,
        "{what}: too few ready {seen:?}"
    );
}

#[tokio::test]
#[ignore = "needs the sandbox: make test"]
async fn rolling_update_keeps_surge_and_availability_and_walks_back_on_a_regression() {
    let ns = TestNamespace::new("rolling").await;
    let svc: Service = service("demo", &[("app", "demo")]);
    create(&ns.api(), &svc).await;
    create(&ns.api(), &error_template()).await;
    let _controller = ControllerProcess::start(&ns, "a");
    let rollouts: Api<Rollout> = ns.api();
    create(&rollouts, &rollout()).await;
    let v1 = wait_rollout(&ns, "demo", "v1 to become stable", |s| {
        s.phase == Some(RolloutPhase::Healthy) && s.stable_revision.is_some()
    })
    .await
    .stable_revision
    .expect("stable revision");

    // A healthy release rolls through every batch.
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample_pods(&ns, &v1, stop.clone());
    release_version(&ns, "demo", "v2").await;
    let v2 = wait_rollout_within(&ns, "demo", "v2 promoted", Duration::from_secs(180), |s| {
        s.phase == Some(RolloutPhase::Healthy) && s.stable_revision.as_deref() != Some(v1.as_str())
    })
    .await
    .stable_revision
    .expect("stable revision");
    eventually("v1 scaled away", Duration::from_secs(60), || async {
        (revision_pod_uids(&ns, &v1).await.is_empty()).then_some(())
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let seen = sampler.await.expect("sampler");
    assert_within_bounds(&seen, "v1 → v2");
    let batches: BTreeSet<usize> = (1..REPLICAS).collect();
    assert!(
        seen.mixes.is_superset(&batches),
        "one batch of one pod at a time: {seen:?}"
    );

    // A faulty release with analysis: load flows through the one Service
    // while the batches advance, until the analysis finds the regression.
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample_pods(&ns, &v2, stop.clone());
    let traffic = spawn_service_load(&ns);
    patch_spec(&ns, "demo", analysed_release("v3", "0.3", "abort")).await;
    let aborted = wait_aborted(&ns, "demo", "v3 aborted", Duration::from_secs(180)).await;
    let v3 = aborted.canary_revision.clone().expect("canary revision");
    println!(
        "rolling v2 → v3: aborted at batch {} of {} ({})",
        aborted.current_step_index.unwrap_or(0) + 1,
        REPLICAS - 1,
        aborted.abort.as_ref().map_or("", |a| a.message.as_str())
    );
    eventually("v2 back at full size and v3 gone", Duration::from_secs(120), || async {
        let back = revision_pod_uids(&ns, &v2).await.len() == REPLICAS && revision_pod_uids(&ns, &v3).await.is_empty();
        back.then_some(())
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    traffic.abort();
    assert_within_bounds(&sampler.await.expect("sampler"), "v2 → v3 → v2");
    let status = rollout_status(&ns, "demo").await.expect("status");
    assert_eq!(status.stable_revision.as_deref(), Some(v2.as_str()), "v2 stays stable");
    delete_rollouts(&ns).await;
}

/// Requests to the demo Service's pods, spread over every ready pod, so
/// both revisions' counters grow in proportion to their pods.
fn spawn_service_load(ns: &TestNamespace) -> tokio::task::JoinHandle<()> {
    let ns_name = ns.name.clone();
    let client = ns.client.clone();
    tokio::spawn(async move {
        let pods: Api<Pod> = Api::namespaced(client, &ns_name);
        let http = http();
        loop {
            let list = pods.list(&ListParams::default().labels("app=demo")).await;
            let ips: Vec<String> = list
                .map(|l| l.items)
                .unwrap_or_default()
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none() && is_ready(p))
                .filter_map(|p| p.status.as_ref()?.pod_ip.clone())
                .collect();
            for _ in 0..5 {
                for ip in &ips {
                    let _ = http.get(format!("http://{ip}:8080/")).send().await;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
}
