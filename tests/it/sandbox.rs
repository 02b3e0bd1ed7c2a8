//! The sandbox itself, as users of the tests rely on it: real Deployments get
//! Ready pods served by real demo-app processes, Traefik splits traffic by
//! HTTPRoute weights, and Prometheus counts what was sent.

use std::time::{Duration, Instant};

use crate::support::*;
use gateway_api::httproutes::HttpRoute;
use kube::api::{Patch, PatchParams};
use serde_json::json;

/// Two demo versions behind `app-v1` / `app-v2` and an HTTPRoute splitting
/// between them; the route's hostname is the namespace, so tests never share
/// a route. Returns the Host header to send.
async fn two_versions_behind_a_route(ns: &TestNamespace, v1_weight: i32, v2_weight: i32) -> String {
    for v in ["v1", "v2"] {
        create(&ns.api(), &demo_deployment(&format!("demo-{v}"), v, 2, &[])).await;
        create(
            &ns.api(),
            &service(&format!("app-{v}"), &[("app", &format!("demo-{v}"))]),
        )
        .await;
    }
    let host = test_host(ns);
    let backends = json!([
        {"name": "app-v1", "port": 80, "weight": v1_weight},
        {"name": "app-v2", "port": 80, "weight": v2_weight},
    ]);
    gateway_route(ns, "demo", &host, backends).await;
    wait_ready(ns, "demo-v1", 2).await;
    wait_ready(ns, "demo-v2", 2).await;
    // Ready pods may still be a few hundred ms from their process listening,
    // and Traefik needs a moment for the route: wait until both answer.
    let http = http();
    eventually(
        "both versions to answer through the Gateway",
        Duration::from_secs(30),
        || async {
            let mut seen = std::collections::BTreeSet::new();
            for _ in 0..40 {
                let resp = get_via_gateway(&http, &host).await?;
                if resp.status() != 200 {
                    return None;
                }
                seen.insert(resp.headers().get("x-version")?.to_str().ok()?.to_owned());
            }
            (seen.len() == 2 || v1_weight == 0 || v2_weight == 0).then_some(())
        },
    )
    .await;
    host
}

fn count(summary: &serde_json::Value, group: &str, key: &str) -> u64 {
    summary[group][key].as_u64().unwrap_or(0)
}

#[tokio::test]
#[ignore = "needs the sandbox: make test"]
async fn demo_deployment_gets_ready_pods_that_answer_with_their_version() {
    let ns = TestNamespace::new("sandbox-ready").await;
    create(&ns.api(), &demo_deployment("demo", "v7", 3, &[])).await;
    wait_ready(&ns, "demo", 3).await;
    let pods = pod_ips(&ns, "app=demo").await;
    assert_eq!(pods.len(), 3, "three pods with IPs: {pods:?}");
    let http = http();
    for (pod, ip) in pods {
        let body: serde_json::Value = eventually(
            &format!("pod {pod} at {ip} to answer"),
            Duration::from_secs(20),
            || async {
                http.get(format!("http://{ip}:8080/"))
                    .send()
                    .await
                    .ok()?
                    .json()
                    .await
                    .ok()
            },
        )
        .await;
        assert_eq!(body["version"], "v7", "pod {pod} answered {body}");
        assert_eq!(body["pod"], pod.as_str());
    }
}

#[tokio::test]
#[ignore = "needs the sandbox: make test"]
async fn httproute_weights_split_live_traffic_and_changes_apply_within_seconds() {
    let ns = TestNamespace::new("sandbox-split").await;
    let host = two_versions_behind_a_route(&ns, 80, 20).await;

    let summary = through_gateway(&host, 400, 2000).await;
    assert_eq!(
        count(&summary, "by_status", "200"),
        2000,
        "every request answered 200: {summary}"
    );
    let v2_share = count(&summary, "by_version", "v2") as f64 / 2000.0;
    println!("80/20 route: v2 got {:.1}% of 2000 requests", v2_share * 100.0);
    assert!(
        (v2_share - 0.20).abs() <= 0.03,
        "v2 share {v2_share} is not 20% ± 3 points: {summary}"
    );

    let routes: kube::Api<HttpRoute> = ns.api();
    let patch = json!([
        {"op": "replace", "path": "/spec/rules/0/backendRefs/0/weight", "value": 50},
        {"op": "replace", "path": "/spec/rules/0/backendRefs/1/weight", "value": 50},
    ]);
    let changed_at = Instant::now();
    let patch: json_patch::Patch = serde_json::from_value(patch).expect("json patch");
    routes
        .patch("demo", &PatchParams::default(), &Patch::Json::<()>(patch))
        .await
        .expect("patch weights");
    // Windows of 100 requests: 50/50 is in effect once a window shows v2 at
    // 40% or more, which 20% traffic reaches with negligible probability.
    let http = http();
    let took = eventually("the 50/50 weights to take effect", Duration::from_secs(30), || async {
        let mut v2 = 0;
        for _ in 0..100 {
            let resp = get_via_gateway(&http, &host).await?;
            v2 += usize::from(resp.headers().get("x-version").is_some_and(|v| v == "v2"));
        }
        (v2 >= 40).then(|| changed_at.elapsed())
    })
    .await;
    println!("weights 80/20 → 50/50 took effect in {:.2}s", took.as_secs_f64());
    assert!(took < Duration::from_secs(10), "took {took:?}");

    let summary = through_gateway(&host, 400, 2000).await;
    let v2_share = count(&summary, "by_version", "v2") as f64 / 2000.0;
    println!("50/50 route: v2 got {:.1}% of 2000 requests", v2_share * 100.0);
    assert!(
        (v2_share - 0.50).abs() <= 0.03,
        "v2 share {v2_share} is not 50% ± 3 points: {summary}"
    );
}

/// The raw per-Service counter of Traefik's leaf services for `service`.
async fn traefik_requests(prom: &prometheus_http_query::Client, ns: &str, service: &str) -> Option<f64> {
    let query = format!(r#"sum(traefik_service_requests_total{{service=~".*-svc-{ns}-{service}-.*"}})"#);
    let result = prom.query(query).get().await.ok()?;
    let sample = result.data().as_vector()?.first()?.sample().value();
    Some(sample)
}

#[tokio::test]
#[ignore = "needs the sandbox: make test"]
async fn prometheus_counts_per_service_match_what_was_sent() {
    let ns = TestNamespace::new("sandbox-prom").await;
    let host = two_versions_behind_a_route(&ns, 70, 30).await;
    let prom = prometheus_http_query::Client::try_from(PROMETHEUS_URL).expect("prometheus client");
    // Series start counting at their first scrape: wait until both exist.
    let before = eventually(
        "Traefik series for both services in Prometheus",
        Duration::from_secs(30),
        || async {
            Some((
                traefik_requests(&prom, &ns.name, "app-v1").await?,
                traefik_requests(&prom, &ns.name, "app-v2").await?,
            ))
        },
    )
    .await;
    // Let earlier requests settle into a scrape before taking the baseline.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = (
        traefik_requests(&prom, &ns.name, "app-v1").await.unwrap_or(before.0),
        traefik_requests(&prom, &ns.name, "app-v2").await.unwrap_or(before.1),
    );
    let summary = through_gateway(&host, 300, 600).await;
    let sent = (
        count(&summary, "by_version", "v1") as f64,
        count(&summary, "by_version", "v2") as f64,
    );
    assert_eq!(sent.0 + sent.1, 600.0, "every request reached a version: {summary}");
    let deltas = eventually(
        "Prometheus to have scraped every request",
        Duration::from_secs(20),
        || async {
            let v1 = traefik_requests(&prom, &ns.name, "app-v1").await? - before.0;
            let v2 = traefik_requests(&prom, &ns.name, "app-v2").await? - before.1;
            (v1 + v2 >= 600.0).then_some((v1, v2))
        },
    )
    .await;
    println!(
        "sent v1={} v2={}; Prometheus counted v1={} v2={}",
        sent.0, sent.1, deltas.0, deltas.1
    );
    assert_eq!(
        deltas, sent,
        "Prometheus counter deltas equal what the load generator saw"
    );
}
