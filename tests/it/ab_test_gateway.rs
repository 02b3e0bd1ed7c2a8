//! An A/B test on a Gateway API HTTPRoute, end to end on the sandbox: only
//! requests with `x-beta: true` reach the canary, through one rule Siskin
//! adds to the user's route; promotion removes that rule again, leaving the
//! route exactly as the user wrote it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::support::*;
use gateway_api::httproutes::HttpRoute;
use serde_json::{Value, json};
use siskin::api::{AbortReason, Rollout, RolloutPhase};

const AB_RULE: &str = "siskin-ab-demo";
/// The header of beta users, as the load generator sends it.
const BETA: &str = "x-beta:true";

fn rollout(version: &str) -> Rollout {
    rollout_matching(version, json!([{"headers": [{"name": "x-beta", "value": "true"}]}]))
}

/// The demo A/B test, sending requests that match `matches` to the canary.
fn rollout_matching(version: &str, matches: Value) -> Rollout {
    demo_rollout(
        "demo",
        json!({
            "replicas": 2,
            "template": demo_template(version),
            "strategy": {"abTest": {
                "trafficRouting": {"gatewayAPI": {"httpRoute": {"name": "demo"}}},
                "match": matches,
                "duration": "1h",
                "scaleDownDelay": "3s",
            }},
        }),
    )
}

/// The route's rules as the API server holds them (with its defaults).
async fn rules(ns: &TestNamespace) -> Value {
    let route = ns.api::<HttpRoute>().get("demo").await.expect("route");
    serde_json::to_value(route.spec.rules.unwrap_or_default()).expect("rules as JSON")
}

/// The route's rules once the A/B rule is gone.
async fn rules_once_ab_rule_removed(ns: &TestNamespace) -> Value {
    eventually("the A/B rule removed", Duration::from_secs(30), || async {
        let rules = rules(ns).await;
        (!has_ab_rule(&rules)).then_some(rules)
    })
    .await
}

fn has_ab_rule(rules: &Value) -> bool {
    rules
        .as_array()
        .is_some_and(|r| r.iter().any(|rule| rule["name"] == AB_RULE))
}

/// Requests answered by each version, with `header` if given.
async fn versions(host: &str, header: Option<&str>, requests: u64) -> Value {
    let summary = burst(host, header, 300, requests).await;
    assert_eq!(
        summary["by_status"]["200"].as_u64(),
        Some(requests),
        "every request answered: {summary}"
    );
    summary["by_version"].clone()
}

/// The load generator's summary of `requests` to `host` through Traefik,
/// with `header` if given.
async fn burst(host: &str, header: Option<&str>, rate: u32, requests: u64) -> Value {
    let url = format!("{GATEWAY_URL}/");
    let host_header = format!("host:{host}");
    let (rate, count) = (rate.to_string(), requests.to_string());
    let mut args = vec![
        "--url",
        &url,
        "--rate",
        &rate,
        "--requests",
        &count,
        "--header",
        &host_header,
    ];
    if let Some(header) = header {
        args.extend(["--header", header]);
    }
    loadgen(&args).await
}

/// Waits until every request of a short burst reaches `version`.
async fn wait_all_on(host: &str, header: Option<&str>, version: &str) {
    let what = format!("requests with {header:?} to reach only {version}");
    eventually(&what, Duration::from_secs(60), || async {
        let summary = burst(host, header, 200, 50).await;
        (summary["by_version"][version].as_u64() == Some(50)).then_some(())
    })
    .await;
}

/// Creates `first`, the A/B test at v1, releases v2 and waits until the
/// A/B rule is in place and accepted; returns the route's rules as the
/// user wrote them.
async fn release_v2(ns: &TestNamespace, first: &Rollout) -> Value {
    create_stable(ns, first).await;
    let users_rules = rules(ns).await;
    release_version(ns, "demo", "v2").await;
    wait_rollout(ns, "demo", "the A/B rule in place and accepted", |s| {
        s.canary_revision.is_some() && s.step_started_at.is_some()
    })
    .await;
    users_rules
}

#[tokio::test]
#[ignore = "needs the sandbox: make test"]
async fn ab_test_sends_only_matching_requests_to_the_canary_and_promotion_restores_the_users_route() {
    let (ns, host, _controller) = namespace_with_demo_route("ab-gw").await;
    create_stable(&ns, &rollout("v1")).await;
    let users_rules = rules(&ns).await;
    wait_all_on(&host, None, "v1").await;

    release_version(&ns, "demo", "v2").await;
    let status = wait_rollout(&ns, "demo", "the A/B rule in place and accepted", |s| {
        s.phase == Some(RolloutPhase::Progressing) && s.canary_revision.is_some() && s.step_started_at.is_some()
    })
    .await;
    assert_eq!(status.strategy.as_deref(), Some("abTest"));
    let during = rules(&ns).await;
    assert!(has_ab_rule(&during), "the route has Siskin's rule: {during:#}");
    assert_eq!(during[0], users_rules[0], "the user's rule keeps its 100/0 weights");
    wait_all_on(&host, Some(BETA), "v2").await;

    let beta = versions(&host, Some(BETA), 500).await;
    let others = versions(&host, None, 500).await;
    println!("A/B through Traefik: with x-beta {beta}, without {others}");
    assert_eq!(
        beta,
        json!({"v2": 500}),
        "requests with the header reach only the canary"
    );
    assert_eq!(others, json!({"v1": 500}), "requests without it reach only stable");

    siskin(&["promote", "demo", "-n", &ns.name, "--full"]).await;
    let promoted = wait_rollout(&ns, "demo", "v2 promoted", |s| {
        s.phase == Some(RolloutPhase::Healthy) && s.canary_revision.is_none() && s.stable_revision.is_some()
    })
    .await;
    assert_eq!(promoted.stable_revision, status.canary_revision, "v2 is stable");
    let after = rules_once_ab_rule_removed(&ns).await;
    assert_eq!(after, users_rules, "the route is the user's again, at 100/0");
    wait_all_on(&host, None, "v2").await;
    assert_eq!(versions(&host, Some(BETA), 300).await, json!({"v2": 300}));
    assert_eq!(versions(&host, None, 300).await, json!({"v2": 300}));
    delete_rollouts(&ns).await;
}

#[tokio::test]
#[ignore = "needs the sandbox: make test"]
async fn aborting_an_ab_test_removes_the_rule_and_keeps_everyone_on_stable() {
    let (ns, host, _controller) = namespace_with_demo_route("ab-abort").await;
    let users_rules = release_v2(&ns, &rollout("v1")).await;
    wait_all_on(&host, Some(BETA), "v2").await;

    siskin(&["abort", "demo", "-n", &ns.name]).await;
    wait_rollout(&ns, "demo", "the Aborted phase", is_aborted).await;
    let after = rules_once_ab_rule_removed(&ns).await;
    assert_eq!(after, users_rules, "the route is the user's again");
    wait_all_on(&host, Some(BETA), "v1").await;
    assert_eq!(versions(&host, Some(BETA), 300).await, json!({"v1": 300}));
    delete_rollouts(&ns).await;
}

/// Load through Traefik, with `header` if given, until `stop`.
fn steady_load(host: String, header: Option<&'static str>, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            burst(&host, header, 100, 50).await;
        }
    })
}

/// With analysis, the requests the rule sends to the canary are the
/// evidence: a canary answering 30% 5xx to beta users is aborted on its
/// own, and the rule goes with it.
#[tokio::test]
#[ignore = "needs the sandbox: make test"]
async fn ab_test_with_analysis_aborts_a_faulty_canary_on_the_matched_requests() {
    let ns = TestNamespace::new("ab-analysis").await;
    let host = demo_route(&ns).await;
    create(&ns.api(), &traefik_errors()).await;
    let _controller = ControllerProcess::start(&ns, "a");
    create_stable(&ns, &rollout("v1")).await;
    let users_rules = rules(&ns).await;
    wait_all_on(&host, None, "v1").await;

    let stop = Arc::new(AtomicBool::new(false));
    let load = [
        steady_load(host.clone(), Some(BETA), stop.clone()),
        steady_load(host.clone(), None, stop.clone()),
    ];
    patch_spec(&ns, "demo", analysed_release("v2", "0.3", "pause")).await;
    let aborted = wait_aborted(&ns, "demo", "the A/B test aborted", Duration::from_secs(150)).await;
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.expect("load");
    }
    let abort = aborted.abort.expect("abort recorded");
    println!("A/B with analysis: {}", abort.message);
    assert_eq!(abort.reason, AbortReason::Regression, "{}", abort.message);
    let after = rules_once_ab_rule_removed(&ns).await;
    assert_eq!(after, users_rules, "the route is the user's again");
    wait_all_on(&host, Some(BETA), "v1").await;
    delete_rollouts(&ns).await;
}

/// A/B by cookie: the match is a cookie, which the route matches as a
/// regular expression on the Cookie header; only requests carrying exactly
/// that cookie reach the canary, wherever it sits among other cookies.
#[tokio::test]
#[ignore = "needs the sandbox: make test"]
async fn ab_test_by_cookie_sends_only_requests_with_that_cookie_to_the_canary() {
    let (ns, host, _controller) = namespace_with_demo_route("ab-cookie").await;
    let by_cookie = json!([{"cookie": {"name": "canary", "value": "always"}}]);
    let users_rules = release_v2(&ns, &rollout_matching("v1", by_cookie)).await;
    let with_cookie = Some("cookie:theme=dark; canary=always; lang=en");
    wait_all_on(&host, with_cookie, "v2").await;

    let mut seen = Vec::new();
    for (header, version) in [
        (with_cookie, "v2"),
        (Some("cookie:canary=always"), "v2"),
        (Some("cookie:canary=never"), "v1"),
        (Some("cookie:xcanary=always"), "v1"),
        (Some("cookie:canary=always2"), "v1"),
        (None, "v1"),
    ] {
        let answered = versions(&host, header, 200).await;
        seen.push(format!("{header:?} → {answered}"));
        assert_eq!(answered, json!({version: 200}), "{header:?}");
    }
    println!("A/B by cookie through Traefik: {}", seen.join(", "));

    siskin(&["abort", "demo", "-n", &ns.name]).await;
    let after = rules_once_ab_rule_removed(&ns).await;
    assert_eq!(after, users_rules, "the route is the user's again");
    delete_rollouts(&ns).await;
}
