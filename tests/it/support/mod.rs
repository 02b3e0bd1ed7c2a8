//! Shared harness of the sandbox tests: a kube `Client` for the sandbox, a
//! fresh namespace per test (so tests run in parallel and clean up), and
//! builders for the demo app's objects.
//!
//! Sandbox tests are `#[ignore]`d so a plain `cargo test` stays offline; the
//! project's test command (`make test`) brings the sandbox up and runs them
//! with `--include-ignored` inside the sandbox's network namespace.
#![allow(dead_code)]

pub mod api_proxy;
pub mod controller;
pub mod deploy;
pub mod realistic;
pub mod recorded;
pub mod rollout;

pub use controller::{ControllerProcess, controller_log};
pub use recorded::Recorded;
pub use rollout::*;

use std::future::Future;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

/// The address of the sandbox Gateway's HTTP listener (inside the netns).
pub const GATEWAY_URL: &str = "http://127.0.0.1:8000";
/// Prometheus inside the netns.
pub const PROMETHEUS_URL: &str = "http://127.0.0.1:9090";

pub async fn client() -> Client {
    assert!(
        std::env::var_os("SISKIN_SANDBOX").is_some(),
        "this test needs the sandbox: run it with `make test` or inside `tests/sandbox/sandbox exec -- cargo test`"
    );
    Client::try_default()
        .await
        .expect("a kube client for the sandbox (KUBECONFIG)")
}

/// A namespace that lives as long as the test; on drop, the finalizers of
/// the Rollouts left in it are dropped and it is deleted.
pub struct TestNamespace {
    pub client: Client,
    pub name: String,
}

impl TestNamespace {
    pub async fn new(prefix: &str) -> Self {
        let client = client().await;
        let suffix: u32 = rand::random::<u32>() % 1_000_000;
        let name = format!("{prefix}-{suffix:06}");
        let ns: Namespace =
            serde_json::from_value(json!({"metadata": {"name": name, "labels": {"siskin.io/test": "true"}}}))
                .expect("namespace object");
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .expect("create test namespace");
        TestNamespace { client, name }
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        release_finalizers(&self.name);
        // Drop cannot await; a detached delete through kubectl is enough since
        // the namespace controller finishes the cleanup.
        let _ = std::process::Command::new("kubectl")
            .args(["delete", "namespace", &self.name, "--wait=false"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// Drops the finalizers of the namespace's remaining Rollouts, so that a
/// test that ends (or fails) while its controller is gone still lets its
/// namespace go. Tests that check the controller releases them delete their
/// Rollouts before they end ([`delete_rollouts`]).
fn release_finalizers(namespace: &str) {
    let Ok(out) = std::process::Command::new("kubectl")
        .args(["get", "rollouts.siskin.io", "-n", namespace, "-o", "name"])
        .output()
    else {
        return;
    };
    for rollout in String::from_utf8_lossy(&out.stdout).lines() {
        let _ = std::process::Command::new("kubectl")
            .args(["patch", rollout, "-n", namespace, "--type=merge"])
            .args(["-p", r#"{"metadata":{"finalizers":null}}"#])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// Polls `check` until it returns `Some`, or panics naming `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A Deployment of the demo app at `version` with `replicas` pods.
pub fn demo_deployment(name: &str, version: &str, replicas: i32, env: &[(&str, &str)]) -> Deployment {
    let mut env_list = vec![json!({"name": "DEMO_VERSION", "value": version})];
    env_list.extend(env.iter().map(|(k, v)| json!({"name": k, "value": v})));
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name, "version": version}},
                "spec": {"containers": [{
                    "name": "app", "image": format!("siskin/demo-app:{version}"),
                    "ports": [{"name": "http", "containerPort": 8080}],
                    "env": env_list,
                }]}
            }
        }
    }))
    .expect("deployment object")
}

/// A Service selecting `selector` on the named port `http`, which Traefik
/// needs to match EndpointSlice ports.
pub fn service(name: &str, selector: &[(&str, &str)]) -> Service {
    let selector: serde_json::Map<String, serde_json::Value> =
        selector.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"selector": selector, "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]}
    }))
    .expect("service object")
}

pub async fn create<K>(api: &Api<K>, obj: &K) -> K
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    api.create(&PostParams::default(), obj).await.expect("create object")
}

/// Waits until the Deployment reports `replicas` ready pods.
pub async fn wait_ready(ns: &TestNamespace, name: &str, replicas: i32) {
    let api: Api<Deployment> = ns.api();
    eventually(
        &format!("deployment {name} to have {replicas} ready replicas"),
        Duration::from_secs(60),
        || async {
            let d = api.get(name).await.ok()?;
            (d.status?.ready_replicas.unwrap_or(0) == replicas).then_some(())
        },
    )
    .await;
}

/// The Running pods matching `selector`, with their IPs.
pub async fn pod_ips(ns: &TestNamespace, selector: &str) -> Vec<(String, String)> {
    let pods: Api<Pod> = ns.api();
    let list = pods
        .list(&ListParams::default().labels(selector))
        .await
        .expect("list pods");
    list.items
        .into_iter()
        .filter_map(|p| Some((p.metadata.name?, p.status?.pod_ip?)))
        .collect()
}

pub async fn delete_all<K>(api: &Api<K>)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let _ = api
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await;
}

/// A plain HTTP client that never goes through a proxy.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("http client")
}

/// One GET of `/` for `host` through the sandbox Gateway, if answered.
pub async fn get_via_gateway(http: &reqwest::Client, host: &str) -> Option<reqwest::Response> {
    http.get(format!("{GATEWAY_URL}/"))
        .header("host", host)
        .send()
        .await
        .ok()
}

/// Runs `program` with `args` and returns its stdout; panics with its
/// stderr if it failed.
pub async fn run(program: &str, args: &[&str]) -> String {
    let out = tokio::process::Command::new(program)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .await
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs kubectl (the sandbox's, on the PATH) from the repository's root.
pub async fn kubectl(args: &[&str]) -> String {
    run("kubectl", args).await
}

/// Runs the project's load generator and returns its JSON summary.
pub async fn loadgen(args: &[&str]) -> serde_json::Value {
    let args = [args, &["--json"]].concat();
    serde_json::from_str(&run(env!("CARGO_BIN_EXE_loadgen"), &args).await).expect("loadgen JSON")
}

/// `requests` requests for `host` through the sandbox Gateway at `rate`
/// per second; the load generator's JSON summary.
pub async fn through_gateway(host: &str, rate: u32, requests: u64) -> serde_json::Value {
    loadgen(&[
        "--url",
        &format!("{GATEWAY_URL}/"),
        "--rate",
        &rate.to_string(),
        "--requests",
        &requests.to_string(),
        "--header",
        &format!("host:{host}"),
    ])
    .await
}

/// Runs `siskin <args>` (the CLI) and asserts it succeeded.
pub async fn siskin(args: &[&str]) -> String {
    run(env!("CARGO_BIN_EXE_siskin"), args).await
}
