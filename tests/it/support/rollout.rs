//! Rollouts of the demo app for the sandbox tests of the controller: their
//! objects and routes, waiting on their status and Events, and waking the
//! controller for one.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;
use serde_json::json;

use super::{ControllerProcess, TestNamespace, create, delete_all, eventually};

/// The demo app's pod template at `version`, as a Rollout's `spec.template`.
pub fn demo_template(version: &str) -> serde_json::Value {
    json!({
        "metadata": {"labels": {"app": "demo"}},
        "spec": {"containers": [{
            "name": "app", "image": format!("siskin/demo-app:{version}"),
            "ports": [{"name": "http", "containerPort": 8080}],
            "env": [{"name": "DEMO_VERSION", "value": version}],
        }]}
    })
}

/// The demo app's pod template at `version`, answering a share
/// `error_rate` of requests with 500.
pub fn demo_template_with_errors(version: &str, error_rate: &str) -> serde_json::Value {
    let mut template = demo_template(version);
    template["spec"]["containers"][0]["env"]
        .as_array_mut()
        .expect("env")
        .push(json!({"name": "DEMO_ERROR_RATE", "value": error_rate}));
    template
}

/// AnalysisTemplate `errors`: one metric `error-rate` counting `errors`
/// of `total` requests per arm in the Prometheus at `address`, judged by
/// the sequential judge with a tolerance of 0.25.
pub fn error_count_template(address: &str, total: String, errors: String) -> siskin::api::AnalysisTemplate {
    serde_json::from_value(json!({
        "apiVersion": "siskin.io/v1alpha1", "kind": "AnalysisTemplate",
        "metadata": {"name": "errors"},
        "spec": {"metrics": [{
            "name": "error-rate",
            "provider": {"prometheus": {"address": address}},
            "counts": {"total": total, "errors": errors},
            "judge": {"sequential": {"alpha": 0.05, "tolerance": 0.25, "margin": 1.0}},
        }]}
    }))
    .expect("template")
}

/// [`error_count_template`] over the counters of Traefik's leaf services,
/// per arm, as the shipped Traefik template reads them; `total` names the
/// metric counted as all requests.
pub fn traefik_error_template(address: &str, total: &str) -> siskin::api::AnalysisTemplate {
    let selector = r#"service=~".*-svc-{{namespace}}-{{service}}-.*""#;
    error_count_template(
        address,
        format!("sum({total}{{{selector}}})"),
        format!(r#"sum(traefik_service_requests_total{{{selector},code=~"5.."}})"#),
    )
}

/// [`traefik_error_template`] on the sandbox's Prometheus, counting all of
/// Traefik's requests per arm: the analysis most sandbox tests run.
pub fn traefik_errors() -> siskin::api::AnalysisTemplate {
    traefik_error_template(super::PROMETHEUS_URL, "traefik_service_requests_total")
}

/// Rollout `name` of the demo app behind Service `name` (port 80 to the
/// pods' 8080); `spec` gives the rest and may name another Service.
pub fn demo_rollout(name: &str, spec: serde_json::Value) -> siskin::api::Rollout {
    let mut full = json!({"service": {"name": name, "port": 80, "targetPort": 8080}});
    for (key, value) in spec.as_object().expect("a spec object") {
        full[key] = value.clone();
    }
    serde_json::from_value(json!({
        "apiVersion": "siskin.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": name},
        "spec": full,
    }))
    .unwrap_or_else(|e| panic!("Rollout {name}: {e}"))
}

/// Whether a Rollout serves a stable revision with nothing in flight.
pub fn is_stable(status: &siskin::api::RolloutStatus) -> bool {
    status.phase == Some(siskin::api::RolloutPhase::Healthy) && status.stable_revision.is_some()
}

/// Whether a Rollout's release was rolled back.
pub fn is_aborted(status: &siskin::api::RolloutStatus) -> bool {
    status.phase == Some(siskin::api::RolloutPhase::Aborted)
}

/// Waits up to `timeout` until Rollout `name` is aborted, and returns
/// that status.
pub async fn wait_aborted(ns: &TestNamespace, name: &str, what: &str, timeout: Duration) -> siskin::api::RolloutStatus {
    wait_rollout_within(ns, name, what, timeout, is_aborted).await
}

/// The spec change releasing the demo app's `version` answering a share
/// `error_rate` of requests with 500, analysed by AnalysisTemplate
/// `errors` and acting `on_inconclusive` as it says.
pub fn analysed_release(version: &str, error_rate: &str, on_inconclusive: &str) -> serde_json::Value {
    json!({
        "template": demo_template_with_errors(version, error_rate),
        "analysis": {"templates": [{"name": "errors"}], "onInconclusive": on_inconclusive},
    })
}

/// Creates `rollout` and waits up to 90 s until its first revision is
/// stable; returns that revision.
pub async fn create_stable(ns: &TestNamespace, rollout: &siskin::api::Rollout) -> String {
    create_stable_within(ns, rollout, Duration::from_secs(90)).await
}

/// [`create_stable`] with a timeout of the caller's choosing.
pub async fn create_stable_within(ns: &TestNamespace, rollout: &siskin::api::Rollout, timeout: Duration) -> String {
    create(&ns.api(), rollout).await;
    let name = rollout.metadata.name.as_deref().expect("a named Rollout");
    let status = wait_rollout_within(ns, name, "its first revision to become stable", timeout, is_stable).await;
    status.stable_revision.expect("a stable revision")
}

/// The demo canary on route `demo` whose one 50 % step is held by `hold`
/// and analysed by AnalysisTemplate `errors`, pausing when inconclusive;
/// stable answers `stable_rate` of requests with 500.
pub fn analysed_canary(stable_rate: &str, hold: serde_json::Value) -> siskin::api::Rollout {
    demo_rollout(
        "demo",
        json!({
            "replicas": 1,
            "template": demo_template_with_errors("v1", stable_rate),
            "strategy": {"canary": {
                "trafficRouting": {"gatewayAPI": {"httpRoute": {"name": "demo"}}},
                "steps": [{"weight": 50, "hold": hold}],
                "scaleDownDelay": "3s",
            }},
            "analysis": {"templates": [{"name": "errors"}], "onInconclusive": "pause"},
        }),
    )
}

/// A canary Rollout `name` of the demo app behind Service `service`, with
/// `routing` as its `trafficRouting` and a short scale-down delay.
pub fn canary_rollout(
    name: &str,
    service: &str,
    version: &str,
    routing: serde_json::Value,
    steps: serde_json::Value,
) -> siskin::api::Rollout {
    demo_rollout(
        name,
        json!({
            "replicas": 1,
            "service": {"name": service, "port": 80, "targetPort": 8080},
            "template": demo_template(version),
            "strategy": {"canary": {"trafficRouting": routing, "steps": steps, "scaleDownDelay": "3s"}},
        }),
    )
}

pub async fn rollout_status(ns: &TestNamespace, name: &str) -> Option<siskin::api::RolloutStatus> {
    ns.api::<siskin::api::Rollout>().get(name).await.ok()?.status
}

/// Waits up to 90 s until Rollout `name`'s status satisfies `pred` and
/// returns it; panics with the last status seen.
pub async fn wait_rollout(
    ns: &TestNamespace,
    name: &str,
    what: &str,
    pred: impl Fn(&siskin::api::RolloutStatus) -> bool,
) -> siskin::api::RolloutStatus {
    wait_rollout_within(ns, name, what, Duration::from_secs(90), pred).await
}

/// Points Rollout `name` at the demo app's `version`: a new revision.
pub async fn release_version(ns: &TestNamespace, name: &str, version: &str) {
    patch_spec(ns, name, json!({"template": demo_template(version)})).await;
}

/// Merges `spec` into Rollout `name`'s spec, as `kubectl patch --type=merge`
/// would; a `null` field removes it.
pub async fn patch_spec(ns: &TestNamespace, name: &str, spec: serde_json::Value) {
    ns.api::<siskin::api::Rollout>()
        .patch(
            name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": spec})),
        )
        .await
        .unwrap_or_else(|e| panic!("patch the spec of Rollout {name}: {e}"));
}

/// When the analysis in `status` last read its metrics.
pub fn evaluated_at(status: &siskin::api::RolloutStatus) -> Option<jiff::Timestamp> {
    let analysis: siskin::analysis::status::AnalysisStatus =
        serde_json::from_value(status.analysis.clone()?).expect("status.analysis is an AnalysisStatus");
    analysis.evaluated_at
}

/// Waits until Rollout `name`'s analysis has read its metrics again since
/// `seen`, or its phase has changed, and returns that status: what the
/// controller decided on fresh evidence, not a look before its next one.
pub async fn next_evaluation(
    ns: &TestNamespace,
    name: &str,
    seen: &siskin::api::RolloutStatus,
    timeout: Duration,
) -> siskin::api::RolloutStatus {
    let last = evaluated_at(seen).expect("an analysis evaluated before");
    wait_rollout_within(ns, name, "the next analysis evaluation", timeout, |s| {
        evaluated_at(s).is_some_and(|at| at > last) || s.phase != seen.phase
    })
    .await
}

/// The condition of `type_` as `(status, reason, message)`, if set.
pub fn condition_of(status: &siskin::api::RolloutStatus, type_: &str) -> Option<(String, String, String)> {
    siskin::api::conditions::find_condition(&status.conditions, type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// The Event objects about Rollout `name`.
pub async fn rollout_event_objects(ns: &TestNamespace, name: &str) -> Vec<k8s_openapi::api::events::v1::Event> {
    let events: Api<k8s_openapi::api::events::v1::Event> = ns.api();
    let list = events.list(&ListParams::default()).await.expect("list events");
    list.items
        .into_iter()
        .filter(|e| {
            e.regarding
                .as_ref()
                .is_some_and(|r| r.kind.as_deref() == Some("Rollout") && r.name.as_deref() == Some(name))
        })
        .collect()
}

/// The Events published about Rollout `name`, as `(type, reason, note)`.
pub async fn rollout_events(ns: &TestNamespace, name: &str) -> Vec<(String, String, String)> {
    rollout_event_objects(ns, name)
        .await
        .into_iter()
        .map(|e| {
            (
                e.type_.unwrap_or_default(),
                e.reason.unwrap_or_default(),
                e.note.unwrap_or_default(),
            )
        })
        .collect()
}

/// Waits for an Event about Rollout `name` with this type and reason, and
/// returns its note.
pub async fn wait_event(ns: &TestNamespace, name: &str, type_: &str, reason: &str) -> String {
    eventually(
        &format!("a {type_} Event {reason} on Rollout {name}"),
        Duration::from_secs(30),
        || async {
            rollout_events(ns, name)
                .await
                .into_iter()
                .find(|(t, r, _)| t == type_ && r == reason)
                .map(|(_, _, note)| note)
        },
    )
    .await
}

/// The UIDs of the live pods of one revision.
pub async fn revision_pod_uids(ns: &TestNamespace, revision: &str) -> std::collections::BTreeSet<String> {
    let pods: Api<Pod> = ns.api();
    let selector = format!("{}={revision}", siskin::api::REVISION_LABEL);
    let list = pods.list(&ListParams::default().labels(&selector)).await.expect("pods");
    list.items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| p.metadata.uid)
        .collect()
}

/// `spec.replicas` of the Deployment running one revision (0 if none).
pub async fn revision_replicas(ns: &TestNamespace, revision: &str) -> i32 {
    let deployments: Api<Deployment> = ns.api();
    let selector = format!("{}={revision}", siskin::api::REVISION_LABEL);
    let list = deployments.list(&ListParams::default().labels(&selector)).await;
    list.ok()
        .and_then(|l| l.items.into_iter().next())
        .and_then(|d| d.spec?.replicas)
        .unwrap_or(0)
}

/// Deletes the namespace's Rollouts and waits until they are gone, which
/// needs a running controller to release the `siskin.io/cleanup` finalizer;
/// without this the test namespace would never finish terminating.
pub async fn delete_rollouts(ns: &TestNamespace) {
    let api: Api<siskin::api::Rollout> = ns.api();
    delete_all(&api).await;
    eventually(
        "the Rollouts to be deleted (finalizer released)",
        Duration::from_secs(30),
        || async {
            api.list(&ListParams::default())
                .await
                .ok()?
                .items
                .is_empty()
                .then_some(())
        },
    )
    .await;
}

/// Like [`wait_rollout`], with a timeout of the caller's choosing: pod starts
/// on a busy sandbox can take most of a minute each.
pub async fn wait_rollout_within(
    ns: &TestNamespace,
    name: &str,
    what: &str,
    timeout: Duration,
    pred: impl Fn(&siskin::api::RolloutStatus) -> bool,
) -> siskin::api::RolloutStatus {
    let start = Instant::now();
    loop {
        let status = rollout_status(ns, name).await;
        if let Some(status) = status.as_ref().filter(|s| pred(s)) {
            return status.clone();
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}; last status of {name}: {status:#?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// HTTPRoute `name` for `host` on the sandbox Gateway, one rule with these
/// `backendRefs`.
pub async fn gateway_route(ns: &TestNamespace, name: &str, host: &str, backend_refs: serde_json::Value) {
    let route: gateway_api::httproutes::HttpRoute = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "parentRefs": [{"name": "sandbox", "namespace": "siskin-sandbox"}],
            "hostnames": [host],
            "rules": [{"backendRefs": backend_refs}]
        }
    }))
    .unwrap_or_else(|e| panic!("HTTPRoute {name}: {e}"));
    create(&ns.api(), &route).await;
}

/// The hostname of the test namespace's routes, unique to it.
pub fn test_host(ns: &TestNamespace) -> String {
    format!("{}.sandbox.test", ns.name)
}

/// The route users write for the demo Service: `demo` on the sandbox
/// Gateway, all traffic on `demo-stable`, `demo-canary` at 0. Returns its
/// hostname, unique to the test namespace.
pub async fn demo_route(ns: &TestNamespace) -> String {
    let host = test_host(ns);
    let backends = json!([
        {"name": "demo-stable", "port": 80, "weight": 100},
        {"name": "demo-canary", "port": 80, "weight": 0},
    ]);
    gateway_route(ns, "demo", &host, backends).await;
    host
}

/// A fresh test namespace with the [`demo_route`] and controller `a`
/// watching it, where most tests of one Rollout begin; returns the route's
/// hostname too. The controller stops when dropped.
pub async fn namespace_with_demo_route(prefix: &str) -> (TestNamespace, String, ControllerProcess) {
    let ns = TestNamespace::new(prefix).await;
    let host = demo_route(&ns).await;
    let controller = ControllerProcess::start(&ns, "a");
    (ns, host, controller)
}

/// `(backend, weight)` of every backendRef of the `demo` route, in order.
pub async fn demo_route_weights(ns: &TestNamespace) -> Vec<(String, i32)> {
    let route = ns
        .api::<gateway_api::httproutes::HttpRoute>()
        .get("demo")
        .await
        .expect("route");
    let rules = route.spec.rules.unwrap_or_default();
    rules
        .iter()
        .flat_map(|r| r.backend_refs.iter().flatten())
        .map(|b| (b.name.clone(), b.weight.unwrap_or(1)))
        .collect()
}

/// The canary's weight on `route`: the sum over its rules of the weights of
/// backend `demo-canary`.
pub fn canary_weight_on(route: &gateway_api::httproutes::HttpRoute) -> i32 {
    let backends = route
        .spec
        .rules
        .iter()
        .flatten()
        .flat_map(|r| r.backend_refs.iter().flatten());
    backends
        .filter(|b| b.name == "demo-canary")
        .map(|b| b.weight.unwrap_or(1))
        .sum()
}

/// Changes an annotation of Rollout `name`, which wakes the controller for
/// it at once.
async fn annotate(ns: &TestNamespace, name: &str) {
    let now = jiff::Timestamp::now().to_string();
    ns.api::<siskin::api::Rollout>()
        .patch(
            name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"metadata": {"annotations": {"siskin.io/test-poke": now}}})),
        )
        .await
        .unwrap_or_else(|e| panic!("annotate Rollout {name}: {e}"));
}

/// Wakes `controller` for Rollout `name` and waits until a reconcile that
/// began after this call has finished: a check that "nothing moved" after
/// this has seen the controller look, not only the time between two looks.
/// It counts the controller's every reconcile, so the controller must
/// manage only this Rollout and be launched [`Launch::serving_metrics`].
///
/// [`Launch::serving_metrics`]: super::controller::Launch::serving_metrics
pub async fn poke(ns: &TestNamespace, name: &str, controller: &ControllerProcess) {
    annotate(ns, name).await;
    let before = eventually("the controller's /metrics", Duration::from_secs(30), || {
        controller.reconciles()
    })
    .await;
    // The count moves as a reconcile ends. One running now may have begun
    // before the change; the next began after it. Annotating again until
    // then keeps the controller reconciling instead of waiting for its
    // requeue.
    eventually(
        &format!("two reconciles of Rollout {name} after the change"),
        Duration::from_secs(60),
        || async {
            if controller.reconciles().await? >= before + 2.0 {
                return Some(());
            }
            annotate(ns, name).await;
            None
        },
    )
    .await;
}
