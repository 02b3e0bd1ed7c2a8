//! Mistakes and interference, on the sandbox: specs the API server refuses,
//! routes that are missing or carry no Siskin backends, a human editing the
//! route while the controller writes it, and a broken Rollout next to a
//! healthy one.

use std::sync::{Arc, Mutex};

use crate::support::api_proxy::{ApiProxy, Interception};
use crate::support::*;
use axum::http::Method;
use futures::future::BoxFuture;
use gateway_api::httproutes::HttpRoute;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use siskin::api::{Rollout, RolloutPhase};

fn gateway(route: &str) -> Value {
    json!({"gatewayAPI": {"httpRoute": {"name": route}}})
}

/// An HTTPRoute `name` on the sandbox Gateway with these rules.
async fn route_with_rules(ns: &TestNamespace, name: &str, rules: Value) {
    let route: HttpRoute = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "parentRefs": [{"name": "sandbox", "namespace": "siskin-sandbox"}],
            "hostnames": [format!("{name}.{}.sandbox.test", ns.name)],
            "rules": rules,
        }
    }))
    .expect("route");
    create(&ns.api(), &route).await;
}

/// The route users write for Service `service`: all on stable.
fn split_rules(service: &str) -> Value {
    json!([{"backendRefs": [
        {"name": format!("{service}-stable"), "port": 80, "weight": 100},
        {"name": format!("{service}-canary"), "port": 80, "weight": 0},
    ]}])
}

/// A fresh test namespace with route `demo` as users write it for
/// Service `demo`, and controller `a`.
async fn namespace_with_users_route(prefix: &str) -> (TestNamespace, ControllerProcess) {
    let ns = TestNamespace::new(prefix).await;
    route_with_rules(&ns, "demo", split_rules("demo")).await;
    let controller = ControllerProcess::start(&ns, "a");
    (ns, controller)
}

async fn route_json(ns: &TestNamespace, name: &str) -> Value {
    let route = ns.api::<HttpRoute>().get(name).await.expect("route");
    serde_json::to_value(route).expect("route JSON")
}

/// `(backend, weight)` of every backendRef of every rule.
async fn route_weights(ns: &TestNamespace, name: &str) -> Vec<(String, i64)> {
    let route = route_json(ns, name).await;
    let rules = route["spec"]["rules"].as_array().cloned().unwrap_or_default();
    rules
        .iter()
        .flat_map(|r| r["backendRefs"].as_array().cloned().unwrap_or_default())
        .map(|b| {
            (
                b["name"].as_str().unwrap_or_default().to_string(),
                b["weight"].as_i64().unwrap_or(1),
            )
        })
        .collect()
}

fn progressing(status: &siskin::api::RolloutStatus) -> (String, String, String) {
    condition_of(status, "Progressing").unwrap_or_default()
}

async fn paused_at(ns: &TestNamespace, name: &str, weight: i32) -> siskin::api::RolloutStatus {
    wait_rollout(ns, name, &format!("{name} paused at {weight}% on the route"), |s| {
        s.canary_weight == Some(weight)
            && s.observed_canary_weight == Some(weight)
            && s.phase == Some(RolloutPhase::Paused)
    })
    .await
}

async fn stable(ns: &TestNamespace, name: &str) -> String {
    let status = wait_rollout(ns, name, &format!("{name}'s first revision to be stable"), |s| {
        s.stable_revision.is_some()
    })
    .await;
    status.stable_revision.unwrap_or_default()
}

/// What is wrong, how to break a valid Rollout that way, and what the API
/// server's answer must say.
type SchemaCase = (&'static str, Box<dyn Fn(&mut Value)>, &'static [&'static str]);

#[tokio::test]
#[ignore = "needs the sandbox: make test"]
async fn invalid_rollouts_are_rejected_by_the_schema_with_a_clear_message() {
    let ns = TestNamespace::new("bad-schema").await;
    let valid = || {
        serde_json::to_value(canary_rollout(
            "bad",
            "demo",
            "v1",
            gateway("demo"),
            json!([{"weight": 10}]),
        ))
    };
    let dry_run = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let api: Api<Rollout> = ns.api();
    let control: Rollout = serde_json::from_value(valid().expect("rollout")).expect("rollout");
    api.create(&dry_run, &control)
        .await
        .expect("the valid base is accepted");

    let workload_ref = json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "demo"});
    let cases: Vec<SchemaCase> = vec![
        (
            "template and workloadRef",
            Box::new(move |r| r["spec"]["workloadRef"] = workload_ref.clone()),
            &["set exactly one of template or workloadRef"],
        ),
        (
            "neither template nor workloadRef",
            Box::new(|r| {
                if let Some(spec) = r["spec"].as_object_mut() {
                    spec.remove("template");
                }
            }),
            &["set exactly one of template or workloadRef"],
        ),
        (
            "weight 150",
            Box::new(|r| r["spec"]["strategy"]["canary"]["steps"] = json!([{"weight": 150}])),
            &["steps[0].weight", "less than or equal to 100"],
        ),
        (
            "decreasing weights",
            Box::new(|r| {
                r["spec"]["strategy"]["canary"]["steps"] = json!([{"weight": 50}, {"pause": {}}, {"weight": 20}])
            }),
            &["spec.strategy.canary.steps", "step weights must not decrease"],
        ),
        (
            "hold.min above hold.max",
            Box::new(|r| {
                r["spec"]["strategy"]["canary"]["steps"] = json!([{"weight": 10, "hold": {"min": "5m", "max": "1m"}}])
            }),
            &["steps[0].hold", "hold.min must not exceed hold.max"],
        ),
        (
            "weight and pause in one step",
            Box::new(|r| r["spec"]["strategy"]["canary"]["steps"] = json!([{"weight": 10, "pause": {}}])),
            &["steps[0]", "a step sets exactly one of weight or pause"],
        ),
        (
            "two traffic routers",
            Box::new(|r| {
                r["spec"]["strategy"]["canary"]["trafficRouting"]["istio"] = json!({"virtualService": {"name": "demo"}})
            }),
            &["trafficRouting", "set exactly one of gatewayAPI or istio"],
        ),
    ];
    for (what, break_it, expected) in cases {
        let mut value = valid().expect("rollout");
        break_it(&mut value);
        let rollout: Rollout = serde_json::from_value(value).expect("still a Rollout to serde");
        let error = api
            .create(&PostParams::default(), &rollout)
            .await
            .expect_err(&format!("a Rollout with {what} must be refused"));
        let kube::Error::Api(status) = error else {
            panic!("{what}: expected an API error, got {error}");
        };
        println!("{what}: {} {}", status.code, status.message);
        assert_eq!(status.code, 422, "{what}: {status:?}");
        for text in expected {
            assert!(
                status.message.contains(text),
                "{what}: {:?} lacks {text:?}",
                status.message
            );
        }
    }
    assert!(api.get_opt("bad").await.expect("get").is_none(), "nothing was stored");
}

#[tokio::test]
#[ignore = "needs the sandbox: make test"]
async fn rollout_naming_a_missing_route_waits_with_a_condition_and_moves_no_traffic() {
    let ns = TestNamespace::new("bad-noroute").await;
    let controller = ControllerProcess::launch(&ns, "a").serving_metrics().start();
    let steps = json!([{"weight": 10}, {"pause": {}}]);
    create(&ns.api(), &canary_rollout("demo", "demo", "v1", gateway("demo"), steps)).await;
    let v1 = stable(&ns, "demo").await;
    let status = wait_rollout(&ns, "demo", "a RouteNotFound condition", |s| {
        progressing(s).1 == "RouteNotFound"
    })
    .await;
    let (_, _, message) = progressing(&status);
    println!("without the route: Progressing=False RouteNotFound: {message}");
    assert!(message.contains("HTTPRoute demo not found"), "{message}");
    assert_eq!(condition_of(&status, "Healthy").map(|c| c.0), Some("False".into()));
    let note = wait_event(&ns, "demo", "Warning", "RouteNotFound").await;
    assert!(note.contains("HTTPRoute demo"), "{note}");

    // A release while the route is still missing starts the canary's pods
    // but moves no traffic and starts no step.
    release_version(&ns, "demo", "v2").await;
    let status = wait_rollout(&ns, "demo", "the canary waiting for its route", |s| {
        s.canary_revision.is_some() && progressing(s).2.contains("no traffic moved")
    })
    .await;
    assert_eq!(progressing(&status).1, "RouteNotFound");
    poke(&ns, "demo", &controller).await;
    let status = rollout_status(&ns, "demo").await.expect("status");
    assert_eq!(status.stable_revision.as_deref(), Some(v1.as_str()));
    assert_eq!(status.current_step_index, Some(0), "no step advanced");
    assert_eq!(status.step_started_at, None, "no hold started");
    assert_eq!(status.observed_canary_weight, None, "no route, no weight");
    assert_eq!(status.phase, Some(RolloutPhase::Progressing));

    route_with_rules(&ns, "demo", split_rules("demo")).await;
    paused_at(&ns, "demo", 10).await;
    assert_eq!(
        route_weights(&ns, "demo").await,
        vec![("demo-stable".into(), 90), ("demo-canary".into(), 10)]
    );
    siskin(&["promote", "demo", "-n", &ns.name]).await;
    wait_rollout(&ns, "demo", "v2 promoted", |s| {
        s.phase == Some(RolloutPhase::Healthy) && s.stable_revision.as_deref() != Some(v1.as_str())
    })
    .await;
    assert_eq!(route_weights(&ns, "demo").await[0], ("demo-stable".into(), 100));
}

#[tokio::test]
#[ignore = "needs the sandbox: make test"]
async fn rollout_naming_a_route_without_its_backends_waits() {
    let ns = TestNamespace::new("bad-backends").await;
    // The user's route still sends everything to their own Service.
    create(&ns.api(), &service("demo", &[("app", "demo")])).await;
    route_with_rules(&ns, "demo", json!([{"backendRefs": [{"name": "demo", "port": 80}]}])).await;
    let before = route_json(&ns, "demo").await;
    let _controller = ControllerProcess::start(&ns, "a");
    let steps = json!([{"weight": 10}, {"pause": {}}]);
    create(&ns.api(), &canary_rollout("demo", "demo", "v1", gateway("demo"), steps)).await;
    let status = wait_rollout(&ns, "demo", "a RouteMissingBackends condition", |s| {
        progressing(s).1 == "RouteMissingBackends"
    })
    .await;
    let (_, _, message) = progressing(&status);
    println!("route without Siskin's backends: Progressing=False RouteMissingBackends: {message}");
    assert!(
        message.contains("HTTPRoute demo") && message.contains("demo-stable") && message.contains("demo-canary"),
        "the condition names the route and the backends it lacks: {message}"
    );
    assert_eq!(
        message.matches("HTTPRoute demo").count(),
        1,
        "the route is named once: {message}"
    );
    assert_eq!(condition_of(&status, "Healthy").map(|c| c.0), Some("False".into()));
    wait_event(&ns, "demo", "Warning", "RouteMissingBackends").await;
    assert_eq!(
        route_json(&ns, "demo").await["spec"],
        before["spec"],
        "a route without Siskin's backends is not Siskin's to change"
    );

    // The user adds the two backends; the Rollout takes over from there.
    let patch = json!({"spec": {"rules": split_rules("demo")}});
    ns.api::<HttpRoute>()
        .patch("demo", &PatchParams::default(), &Patch::Merge(patch))
        .await
        .expect("fix the route");
    wait_rollout(&ns, "demo", "Healthy once the route has both backends", |s| {
        condition_of(s, "Healthy").is_some_and(|c| c.0 == "True")
    })
    .await;
    release_version(&ns, "demo", "v2").await;
    paused_at(&ns, "demo", 10).await;
}

/// Between the controller and the API server, an [`ApiProxy`] that, once
/// armed, makes a "user" edit between the controller's read of a route and
/// its write, so the race a guarded patch exists for happens on every run,
/// not by luck.
struct Interposer {
    route_path: String,
    edit: Mutex<Option<BoxFuture<'static, ()>>>,
    /// The status code of every PATCH of the route, in order.
    patches: Mutex<Vec<u16>>,
}

impl Interception for Interposer {
    /// Whether the request patches the route.
    type Ticket = bool;

    fn arrived(&self, method: &Method, path: &str) -> BoxFuture<'_, bool> {
        let route_patch = method == Method::PATCH && path == self.route_path;
        let edit = route_patch.then(|| self.edit.lock().expect("lock").take()).flatten();
        Box::pin(async move {
            if let Some(edit) = edit {
                edit.await;
            }
            route_patch
        })
    }

    fn answered(&self, route_patch: bool, status: u16) {
        if route_patch {
            self.patches.lock().expect("lock").push(status);
        }
    }
}

impl Interposer {
    fn new(ns: &TestNamespace, route: &str) -> Arc<Self> {
        Arc::new(Interposer {
            route_path: format!(
                "/apis/gateway.networking.k8s.io/v1/namespaces/{}/httproutes/{route}",
                ns.name
            ),
            edit: Mutex::new(None),
            patches: Mutex::new(Vec::new()),
        })
    }

    fn arm(&self, edit: BoxFuture<'static, ()>) {
        *self.edit.lock().expect("lock") = Some(edit);
    }

    fn patches(&self) -> Vec<u16> {
        self.patches.lock().expect("lock").clone()
    }
}

async fn json_patch(api: &Api<HttpRoute>, ops: Value) {
    let patch: json_patch::Patch = serde_json::from_value(ops).expect("JSON patch");
    api.patch("demo", &PatchParams::default(), &Patch::Json::<()>(patch))
        .await
        .expect("the user's edit");
}

#[tokio::test]
#[ignore = "needs the sandbox: make test"]
async fn concurrent_route_edit_is_retried_on_fresh_data_never_clobbered() {
    let ns = TestNamespace::new("bad-race").await;
    create(&ns.api(), &service("demo-admin", &[("app", "demo")])).await;
    route_with_rules(&ns, "demo", split_rules("demo")).await;
    let interposer = Interposer::new(&ns, "demo");
    let proxy = ApiProxy::start(&ns, interposer.clone()).await;
    let _controller = ControllerProcess::launch(&ns, "a")
        .kubeconfig(proxy.kubeconfig())
        .start();
    let steps = json!([{"weight": 10}, {"pause": {}}, {"weight": 50}, {"pause": {}}]);
    create(&ns.api(), &canary_rollout("demo", "demo", "v1", gateway("demo"), steps)).await;
    stable(&ns, "demo").await;
    release_version(&ns, "demo", "v2").await;
    paused_at(&ns, "demo", 10).await;

    // While paused, a user adds a filter to the rule Siskin weights: a field
    // Siskin never writes.
    let routes: Api<HttpRoute> = ns.api();
    let filter = json!({"type": "RequestHeaderModifier",
        "requestHeaderModifier": {"set": [{"name": "x-edited-by", "value": "user"}]}});
    json_patch(
        &routes,
        json!([{"op": "add", "path": "/spec/rules/0/filters", "value": [filter]}]),
    )
    .await;

    // Between the controller's read and its write for the next step, the
    // user puts an admin rule on top (shifting Siskin's rule to index 1) and
    // pulls the canary's weight back to 0 by hand.
    let admin_rule = json!({
        "matches": [{"headers": [{"name": "x-admin", "value": "true"}]}],
        "backendRefs": [{"name": "demo-admin", "port": 80}],
    });
    let user_routes = routes.clone();
    let user_rule = admin_rule;
    let written = Arc::new(Mutex::new(Value::Null));
    let user_wrote = written.clone();
    interposer.arm(Box::pin(async move {
        json_patch(
            &user_routes,
            json!([
                {"op": "add", "path": "/spec/rules/0", "value": user_rule},
                {"op": "replace", "path": "/spec/rules/1/backendRefs/0/weight", "value": 100},
                {"op": "replace", "path": "/spec/rules/1/backendRefs/1/weight", "value": 0},
            ]),
        )
        .await;
        let route = serde_json::to_value(user_routes.get("demo").await.expect("route")).expect("route JSON");
        *user_wrote.lock().expect("lock") = route["spec"]["rules"].clone();
    }));
    let already = interposer.patches().len();
    siskin(&["promote", "demo", "-n", &ns.name]).await;
    paused_at(&ns, "demo", 50).await;

    let patches = interposer.patches()[already..].to_vec();
    println!("the controller's route patches after promote: {patches:?}");
    assert_eq!(
        patches,
        vec![422, 200],
        "the first patch fails its test operations; the retry on fresh data succeeds"
    );
    let note = wait_event(&ns, "demo", "Warning", "RouteConflict").await;
    println!("Event RouteConflict: {note}");
    let route = route_json(&ns, "demo").await;
    let rules = &route["spec"]["rules"];
    let user_rules = written.lock().expect("lock").clone();
    assert_eq!(rules[0], user_rules[0], "the user's new rule survives as stored");
    assert_eq!(rules[0]["backendRefs"][0]["name"], "demo-admin");
    assert_eq!(rules[1]["filters"], json!([filter]), "the user's filter survives");
    assert_eq!(
        route_weights(&ns, "demo").await,
        vec![
            ("demo-admin".into(), 1),
            ("demo-stable".into(), 50),
            ("demo-canary".into(), 50)
        ],
        "the weights are where the step says, on the rule that moved"
    );
}

#[tokio::test]
#[ignore = "needs the sandbox: make test"]
async fn other_rollouts_keep_progressing_meanwhile() {
    let (ns, _controller) = namespace_with_users_route("bad-neighbour").await;
    let steps = json!([{"weight": 20, "hold": {"min": "2s"}}, {"weight": 60, "hold": {"min": "2s"}}]);
    let broken = canary_rollout("broken", "broken", "v1", gateway("nowhere"), steps.clone());
    create(&ns.api(), &broken).await;
    create(&ns.api(), &canary_rollout("demo", "demo", "v1", gateway("demo"), steps)).await;
    let broken_v1 = stable(&ns, "broken").await;
    let v1 = stable(&ns, "demo").await;
    release_version(&ns, "broken", "v2").await;
    release_version(&ns, "demo", "v2").await;

    wait_rollout(&ns, "demo", "the healthy Rollout to promote v2", |s| {
        s.phase == Some(RolloutPhase::Healthy) && s.stable_revision.as_deref().is_some_and(|r| r != v1)
    })
    .await;
    assert_eq!(
        route_weights(&ns, "demo").await,
        vec![("demo-stable".into(), 100), ("demo-canary".into(), 0)]
    );
    let broken = rollout_status(&ns, "broken").await.expect("status");
    println!("meanwhile the broken Rollout: {:?}", progressing(&broken));
    assert_eq!(progressing(&broken).1, "RouteNotFound");
    assert_eq!(broken.stable_revision.as_deref(), Some(broken_v1.as_str()));
    assert!(broken.canary_revision.is_some());
    assert_eq!(
        broken.current_step_index,
        Some(0),
        "the broken Rollout moved no traffic"
    );
}

/// Specs the schema accepts but the controller cannot act on: each Rollout
/// says what is wrong in its InvalidSpec condition and a Warning Event, and
/// deploys nothing.
#[tokio::test]
#[ignore = "needs the sandbox: make test"]
async fn specs_the_controller_cannot_act_on_are_named_in_a_condition_and_an_event() {
    let ns = TestNamespace::new("bad-spec").await;
    let _controller = ControllerProcess::start(&ns, "a");
    let hook = |name: &str, url: &str| json!({"name": name, "type": "preRollout", "url": url});
    let cases: Vec<SchemaCase> = vec![
        (
            "rolling with maxSurge and maxUnavailable both zero",
            Box::new(|r| {
                r["spec"]["strategy"] = json!({"rolling": {"maxSurge": 0, "maxUnavailable": 0}});
            }),
            &["rolling: maxSurge and maxUnavailable must not both be zero"],
        ),
        (
            "mirroring on an HTTPRoute",
            Box::new(|r| r["spec"]["strategy"]["canary"]["mirror"] = json!({"percent": 10})),
            &["canary.mirror needs an Istio VirtualService"],
        ),
        (
            "a webhook name used twice",
            Box::new(move |r| {
                r["spec"]["webhooks"] = json!([hook("check", "http://a.test/"), hook("check", "http://b.test/")]);
            }),
            &["webhooks: the name \"check\" is used twice"],
        ),
        (
            "a relative webhook URL",
            Box::new(move |r| r["spec"]["webhooks"] = json!([hook("check", "/hooks/check")])),
            &["webhooks[0].url must be an absolute"],
        ),
    ];
    let mut names = Vec::new();
    for (index, (what, break_it, expected)) in cases.into_iter().enumerate() {
        let name = format!("bad-{index}");
        let rollout = canary_rollout(&name, &name, "v1", gateway("demo"), json!([{"weight": 10}]));
        let mut value = serde_json::to_value(rollout).expect("rollout");
        break_it(&mut value);
        let rollout: Rollout = serde_json::from_value(value).expect("still a Rollout to serde");
        create(&ns.api(), &rollout).await;
        names.push((name, what, expected));
    }
    for (name, what, expected) in names {
        let status = wait_rollout(&ns, &name, what, |s| s.phase == Some(RolloutPhase::InvalidSpec)).await;
        let (state, _, message) = condition_of(&status, "InvalidSpec").expect("InvalidSpec condition");
        println!("{what}: {message}");
        assert_eq!(state, "True", "{what}");
        let event = wait_event(&ns, &name, "Warning", "InvalidSpec").await;
        for text in expected {
            assert!(message.contains(text), "{what}: condition {message:?} lacks {text:?}");
            assert!(event.contains(text), "{what}: event {event:?} lacks {text:?}");
        }
        assert_eq!(status.stable_revision, None, "{what}: nothing was deployed");
    }
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> = ns.api();
    let list = deployments.list(&Default::default()).await.expect("deployments");
    assert!(list.items.is_empty(), "no Deployment was created");
}

/// A running Rollout given a spec it cannot act on keeps what it had: no
/// new pods, the route as it was; fixing the spec carries on from there.
#[tokio::test]
#[ignore = "needs the sandbox: make test"]
async fn an_invalid_change_freezes_the_rollout_where_it_is_until_fixed() {
    let (ns, _controller) = namespace_with_users_route("bad-change").await;
    let steps = json!([{"weight": 50, "hold": {"min": "2s"}}]);
    create(&ns.api(), &canary_rollout("demo", "demo", "v1", gateway("demo"), steps)).await;
    let v1 = stable(&ns, "demo").await;

    let hook = json!({"name": "check", "type": "preRollout", "url": "http://hooks.test/"});
    let broken = json!({"template": demo_template("v2"), "webhooks": [hook.clone(), hook]});
    patch_spec(&ns, "demo", broken).await;
    let status = wait_rollout(&ns, "demo", "the spec refused", |s| {
        s.phase == Some(RolloutPhase::InvalidSpec)
    })
    .await;
    assert_eq!(status.stable_revision.as_deref(), Some(v1.as_str()));
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> = ns.api();
    let list = deployments.list(&Default::default()).await.expect("deployments");
    assert_eq!(list.items.len(), 1, "only stable's Deployment exists");
    assert_eq!(
        route_weights(&ns, "demo").await,
        vec![("demo-stable".into(), 100), ("demo-canary".into(), 0)]
    );

    patch_spec(&ns, "demo", json!({"webhooks": null})).await;
    wait_rollout(&ns, "demo", "v2 promoted once the spec is fixed", |s| {
        s.phase == Some(RolloutPhase::Healthy) && s.stable_revision.as_deref().is_some_and(|r| r != v1)
    })
    .await;
}
