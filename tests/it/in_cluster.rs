//! The controller in cluster, as users install it: the image `make image`
//! built, run by the sandbox's pod runner with the pod's ServiceAccount
//! token and CA where a kubelet mounts them, and nothing but that
//! ServiceAccount's RBAC. Installed with kustomize and with helm, each takes
//! a canary through Traefik to promotion; the kustomize one loses its leader
//! pod mid-rollout and the other replica finishes the rollout.

use std::path::PathBuf;
use std::time::Duration;

use crate::support::deploy::{chart_dir, controller_image, helm};
use crate::support::*;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;
use serde_json::json;
use siskin::api::{INSTANCE_LABEL, RolloutPhase, RolloutStatus};

const NAME: &str = "demo";
/// Controller pods start, and releases run, slowly on a busy sandbox.
const TIMEOUT: Duration = Duration::from_secs(180);
const CONTROLLER_PODS: &str = "app.kubernetes.io/name=siskin,app.kubernetes.io/component=controller";

/// Commands that remove an install, run on drop even when the test fails.
/// The controller pods go first and without grace: kwok is slow to confirm
/// graceful deletions, which would hold the namespace for minutes.
struct Uninstall(Vec<Vec<String>>);

impl Drop for Uninstall {
    fn drop(&mut self) {
        for command in &self.0 {
            let _ = std::process::Command::new(&command[0])
                .args(&command[1..])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

fn force_delete_pods(ns: &str) -> Vec<String> {
    [
        "kubectl",
        "delete",
        "pods",
        "-l",
        CONTROLLER_PODS,
        "-n",
        ns,
        "--grace-period=0",
        "--force",
    ]
    .map(String::from)
    .to_vec()
}

/// The live controller pods of the namespace.
async fn controller_pods(ns: &TestNamespace) -> Vec<String> {
    let pods: Api<Pod> = ns.api();
    let list = pods.list(&ListParams::default().labels(CONTROLLER_PODS)).await;
    list.map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| p.metadata.name)
        .collect()
}

/// Waits until a live controller pod other than `not` holds `lease`: the
/// holder's identity is its POD_NAME, so only that pod's process can hold it.
async fn wait_leader(ns: &TestNamespace, lease: &str, not: Option<&str>) -> String {
    let leases: Api<Lease> = ns.api();
    eventually(
        &format!("a controller pod to lead (Lease {lease}, not {not:?})"),
        TIMEOUT,
        || async {
            let holder = leases.get(lease).await.ok()?.spec?.holder_identity?;
            (Some(holder.as_str()) != not && controller_pods(ns).await.contains(&holder)).then_some(holder)
        },
    )
    .await
}

/// What the pod runner logged for a pod's process.
fn pod_log(ns: &TestNamespace, pod: &str) -> String {
    let dir = std::env::var("SISKIN_SANDBOX").unwrap_or_else(|_| "/tmp/siskin-sandbox".into());
    std::fs::read_to_string(format!("{dir}/logs/pods/{}_{pod}.log", ns.name)).unwrap_or_default()
}

fn assert_nothing_forbidden(ns: &TestNamespace, pod: &str) {
    let log = pod_log(ns, pod);
    assert!(!log.is_empty(), "the pod runner ran {pod} (no log)");
    assert!(
        !log.to_lowercase().contains("forbidden"),
        "nothing was forbidden to {pod}:\n{log}"
    );
}

/// The share of `requests` requests through Traefik answered by `version`.
async fn share_of(host: &str, version: &str, requests: u64) -> f64 {
    let summary = through_gateway(host, 400, requests).await;
    let ok = summary["by_status"]["200"].as_u64().unwrap_or(0);
    if ok != requests {
        return -1.0;
    }
    summary["by_version"][version].as_u64().unwrap_or(0) as f64 / requests as f64
}

async fn wait_share(host: &str, version: &str, target: f64, tolerance: f64) {
    eventually(
        &format!("{version} to get {:.0}% of the traffic", target * 100.0),
        Duration::from_secs(60),
        || async { ((share_of(host, version, 200).await - target).abs() <= tolerance).then_some(()) },
    )
    .await;
}

fn healthy(s: &RolloutStatus) -> bool {
    s.phase == Some(RolloutPhase::Healthy) && s.stable_revision.is_some()
}

/// Releases v1, then v2 to promotion; `mid_rollout` runs while v2 is the
/// canary at 50%, paused. Returns v2's revision.
async fn release_through_a_pause(
    ns: &TestNamespace,
    host: &str,
    labels: serde_json::Value,
    mid_rollout: impl AsyncFnOnce(),
) -> String {
    let routing = json!({"gatewayAPI": {"httpRoute": {"name": NAME}}});
    let steps = json!([{"weight": 50}, {"pause": {}}]);
    let mut rollout = canary_rollout(NAME, NAME, "v1", routing, steps);
    rollout.metadata.labels = serde_json::from_value(labels).expect("labels");
    create(&ns.api(), &rollout).await;
    let v1 = wait_rollout_within(ns, NAME, "v1 stable", TIMEOUT, healthy)
        .await
        .stable_revision
        .expect("v1");
    wait_share(host, "v1", 1.0, 0.0).await;

    release_version(ns, NAME, "v2").await;
    wait_rollout_within(ns, NAME, "v2 at 50%, paused", TIMEOUT, |s| {
        s.canary_weight == Some(50) && s.observed_canary_weight == Some(50) && s.phase == Some(RolloutPhase::Paused)
    })
    .await;
    wait_share(host, "v2", 0.5, 0.1).await;
    mid_rollout().await;

    siskin(&["promote", NAME, "-n", &ns.name]).await;
    let status = wait_rollout_within(ns, NAME, "v2 promoted", TIMEOUT, |s| {
        healthy(s) && s.stable_revision.as_deref() != Some(v1.as_str())
    })
    .await;
    wait_share(host, "v2", 1.0, 0.0).await;
    status.stable_revision.expect("v2")
}

/// A path to `to` relative to `from`: kustomize takes only relative paths
/// to other kustomizations.
fn relative(from: &std::path::Path, to: &std::path::Path) -> PathBuf {
    let ups = from.components().count().saturating_sub(1);
    let mut path: PathBuf = std::iter::repeat_n("..", ups).collect();
    path.push(to.strip_prefix("/").unwrap_or(to));
    path
}

/// An overlay of manifests/namespaced for the test namespace with the image
/// pinned to the built digest: `kubectl apply -k` of it is the install.
fn namespaced_overlay(ns: &TestNamespace, image: &str) -> PathBuf {
    let dir = std::env::var("SISKIN_SANDBOX").unwrap_or_else(|_| "/tmp/siskin-sandbox".into());
    let overlay = PathBuf::from(dir).join(format!("{}-kustomize", ns.name));
    std::fs::create_dir_all(&overlay).expect("overlay dir");
    let base = relative(
        &overlay,
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("manifests/namespaced"),
    );
    let (name, digest) = image.split_once('@').expect("image by digest");
    let kustomization = json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": ns.name,
        "resources": [base],
        "images": [{"name": "siskin/controller", "newName": name, "digest": digest}],
        // As manifests/namespaced/kustomization.yaml asks of an overlay that
        // changes the namespace: the ClusterRoleBinding's name ends in it.
        "replacements": [{
            "source": {"kind": "ServiceAccount", "name": "siskin", "fieldPath": "metadata.namespace"},
            "targets": [{
                "select": {"kind": "ClusterRoleBinding"},
                "fieldPaths": ["metadata.name"],
                "options": {"delimiter": ".", "index": 1},
            }],
        }],
    });
    std::fs::write(overlay.join("kustomization.yaml"), kustomization.to_string()).expect("kustomization");
    overlay
}

#[tokio::test]
#[ignore = "needs the sandbox: make test"]
async fn kustomize_install_promotes_in_cluster_and_survives_losing_its_leader() {
    let ns = TestNamespace::new("incluster-kustomize").await;
    let image = controller_image();
    let overlay = namespaced_overlay(&ns, &image);
    let binding = format!("siskin-cluster-templates.{}", ns.name);
    let _uninstall = Uninstall(vec![
        force_delete_pods(&ns.name),
        [
            "kubectl",
            "delete",
            "clusterrolebinding",
            &binding,
            "--ignore-not-found",
        ]
        .map(String::from)
        .to_vec(),
    ]);
    let out = kubectl(&["apply", "-k", overlay.to_str().expect("utf-8"), "--server-side"]).await;
    println!("kubectl apply -k (manifests/namespaced, image {image}):\n{out}");
    let host = demo_route(&ns).await;
    let first = wait_leader(&ns, "siskin-controller", None).await;
    println!("leader: {first}");

    let v2 = release_through_a_pause(&ns, &host, json!({}), async || {
        kubectl(&["delete", "pod", &first, "-n", &ns.name, "--wait=false"]).await;
        let next = wait_leader(&ns, "siskin-controller", Some(&first)).await;
        println!("deleted the leader {first} mid-rollout; {next} leads now");
    })
    .await;
    let leader = wait_leader(&ns, "siskin-controller", Some(&first)).await;
    println!("{leader} promoted {v2}");
    assert_nothing_forbidden(&ns, &leader);
    delete_rollouts(&ns).await;
}

#[tokio::test]
#[ignore = "needs the sandbox: make test"]
async fn helm_install_promotes_in_cluster_with_its_own_rbac() {
    let ns = TestNamespace::new("incluster-helm").await;
    let image = controller_image();
    let digest = image.split_once('@').expect("image by digest").1;
    // Cluster-wide RBAC, but only this test's Rollouts: they carry the
    // instance label, and the controller has a Lease of its own.
    let release = format!("siskin-{}", ns.name.rsplit('-').next().unwrap_or("test"));
    let instance = ns.name.clone();
    let _uninstall = Uninstall(vec![
        force_delete_pods(&ns.name),
        ["helm", "uninstall", &release, "-n", &ns.name]
            .map(String::from)
            .to_vec(),
    ]);
    // The sandbox has the CRDs already (up.sh applies manifests/crds);
    // tests/chart.rs dry-runs the chart's own.
    let chart = chart_dir();
    let out = helm(&[
        "install",
        "--skip-crds",
        &release,
        chart.to_str().expect("utf-8"),
        "-n",
        &ns.name,
        "--set",
        &format!("image.digest={digest}"),
        "--set",
        &format!("controller.instanceId={instance}"),
    ]);
    println!("helm install {release}:\n{out}");
    let host = demo_route(&ns).await;
    let lease = format!("siskin-controller-{instance}");
    let leader = wait_leader(&ns, &lease, None).await;
    println!("leader: {leader}");
    let v2 = release_through_a_pause(&ns, &host, json!({INSTANCE_LABEL: instance}), async || {}).await;
    println!("{leader} promoted {v2}");
    assert_nothing_forbidden(&ns, &leader);
    delete_rollouts(&ns).await;
}
