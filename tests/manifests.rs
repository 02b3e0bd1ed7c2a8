//! `kubectl apply -k manifests/` installs a working controller: namespace,
//! CRDs, a ServiceAccount whose RBAC grants exactly what the code calls, and
//! a two-replica Deployment. The RBAC is shown sufficient by a real canary
//! run with the ServiceAccount's own token, and narrow by `kubectl auth can-i`.

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{Api, Client};
use serde_json::json;
use siskin::api::RolloutPhase;
use support::*;

const SYSTEM: &str = "siskin-system";
const SERVICE_ACCOUNT: &str = "system:serviceaccount:siskin-system:siskin";
const NAME: &str = "demo";
/// How long a release may take on a busy sandbox (pod starts are slow).
const TIMEOUT: Duration = Duration::from_secs(180);

async fn kubectl(args: &[&str]) -> String {
    let out = tokio::process::Command::new("kubectl")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .await
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What the kustomization installs besides the CRDs, removed on drop even
/// when the test fails. The CRDs stay: every other sandbox test uses them.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        // The controller's pods go first and without grace: kwok is slow to
        // confirm graceful deletions, which would hold the namespace (and
        // the next run, which waits for it) for minutes.
        let deletions: [&[&str]; 4] = [
            &[
                "delete",
                "deployment",
                "siskin-controller",
                "-n",
                SYSTEM,
                "--ignore-not-found",
            ],
            &["delete", "pods", "--all", "-n", SYSTEM, "--grace-period=0", "--force"],
            &[
                "delete",
                "clusterrolebinding,clusterrole",
                "siskin-controller",
                "--ignore-not-found",
            ],
            &["delete", "namespace", SYSTEM, "--ignore-not-found", "--wait=false"],
        ];
        for args in deletions {
            let _ = std::process::Command::new("kubectl")
                .args(args)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

/// Applies the kustomization, after any earlier run's namespace is gone.
async fn install(client: &Client) -> Installed {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    eventually(
        "an earlier siskin-system to finish terminating",
        Duration::from_secs(180),
        || async {
            match namespaces.get_opt(SYSTEM).await {
                Ok(None) => Some(()),
                Ok(Some(ns)) => ns.metadata.deletion_timestamp.is_none().then_some(()),
                Err(_) => None,
            }
        },
    )
    .await;
    let installed = Installed;
    let out = kubectl(&["apply", "-k", "manifests/", "--server-side"]).await;
    println!("kubectl apply -k manifests/ --server-side:\n{out}");
    installed
}

async fn assert_objects_exist(client: &Client) {
    let (c, n) = (client.clone(), SYSTEM);
    Api::<Namespace>::all(c.clone())
        .get(n)
        .await
        .expect("namespace siskin-system");
    Api::<ServiceAccount>::namespaced(c.clone(), n)
        .get("siskin")
        .await
        .expect("ServiceAccount");
    Api::<ClusterRole>::all(c.clone())
        .get("siskin-controller")
        .await
        .expect("ClusterRole");
    Api::<ClusterRoleBinding>::all(c.clone())
        .get("siskin-controller")
        .await
        .expect("ClusterRoleBinding");
    Api::<Role>::namespaced(c.clone(), n)
        .get("siskin-leader-election")
        .await
        .expect("Role");
    Api::<RoleBinding>::namespaced(c.clone(), n)
        .get("siskin-leader-election")
        .await
        .expect("RoleBinding");
    Api::<Service>::namespaced(c.clone(), n)
        .get("siskin-controller-metrics")
        .await
        .expect("metrics Service");
    let crd = Api::<CustomResourceDefinition>::all(c.clone())
        .get("rollouts.siskin.io")
        .await
        .expect("CRD");
    let established = crd.status.and_then(|s| s.conditions).unwrap_or_default();
    assert!(
        established
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True"),
        "CRD established"
    );

    let deployments: Api<Deployment> = Api::namespaced(c, n);
    let deployment = deployments
        .get("siskin-controller")
        .await
        .expect("controller Deployment");
    let spec = deployment.spec.expect("spec");
    assert_eq!(spec.replicas, Some(2), "two replicas for leader election");
    let pod = spec.template.spec.expect("pod spec");
    assert_eq!(pod.service_account_name.as_deref(), Some("siskin"));
    let container = &pod.containers[0];
    assert_eq!(container.args, Some(vec!["controller".to_string()]));
    for (name, field) in [("POD_NAME", "metadata.name"), ("POD_NAMESPACE", "metadata.namespace")] {
        let from = container.env.iter().flatten().find(|e| e.name == name);
        let path = from
            .and_then(|e| e.value_from.as_ref()?.field_ref.as_ref())
            .map(|f| f.field_path.as_str());
        assert_eq!(path, Some(field), "{name} comes from the pod's {field}");
    }
    let probe = container
        .liveness_probe
        .as_ref()
        .and_then(|p| p.http_get.as_ref())
        .expect("liveness");
    assert_eq!(probe.path.as_deref(), Some("/healthz"));
    let limits = container
        .resources
        .as_ref()
        .and_then(|r| r.limits.as_ref())
        .expect("limits");
    assert!(limits.contains_key("memory"), "a memory limit");
    eventually("both controller pods ready", Duration::from_secs(60), || async {
        let status = deployments.get("siskin-controller").await.ok()?.status?;
        (status.ready_replicas == Some(2)).then_some(())
    })
    .await;
}

/// `kubectl auth can-i` as the controller's ServiceAccount.
async fn can(args: &[&str]) -> bool {
    let out = tokio::process::Command::new("kubectl")
        .args(["auth", "can-i"])
        .args(args)
        .args(["--as", SERVICE_ACCOUNT])
        .output()
        .await
        .expect("run kubectl auth can-i");
    String::from_utf8_lossy(&out.stdout).trim() == "yes"
}

/// What the code calls is allowed; a sample of what it never calls is not.
async fn assert_least_privilege() {
    let lease = "leases.coordination.k8s.io";
    let allowed: &[&[&str]] = &[
        &["list", "rollouts.siskin.io", "--all-namespaces"],
        &["watch", "rollouts.siskin.io", "--all-namespaces"],
        &["patch", "rollouts.siskin.io", "-n", "default"],
        &["patch", "rollouts.siskin.io", "--subresource=status", "-n", "default"],
        &["get", "analysistemplates.siskin.io", "-n", "default"],
        &["get", "clusteranalysistemplates.siskin.io"],
        &["watch", "deployments.apps", "--all-namespaces"],
        &["create", "deployments.apps", "-n", "default"],
        &["patch", "services", "-n", "default"],
        &["patch", "httproutes.gateway.networking.k8s.io", "-n", "default"],
        &["patch", "virtualservices.networking.istio.io", "-n", "default"],
        &["watch", "httproutes.gateway.networking.k8s.io", "--all-namespaces"],
        &["watch", "virtualservices.networking.istio.io", "--all-namespaces"],
        &["create", "events.events.k8s.io", "-n", "default"],
        &["create", lease, "-n", SYSTEM],
        &["patch", "leases.coordination.k8s.io/siskin-controller", "-n", SYSTEM],
    ];
    let denied: &[&[&str]] = &[
        &["get", "rollouts.siskin.io", "-n", "default"],
        &["update", "rollouts.siskin.io", "-n", "default"],
        &["delete", "rollouts.siskin.io", "-n", "default"],
        &["delete", "deployments.apps", "-n", "default"],
        &["update", "deployments.apps", "-n", "default"],
        &["delete", "services", "-n", "default"],
        &["update", "httproutes.gateway.networking.k8s.io", "-n", "default"],
        &["delete", "virtualservices.networking.istio.io", "-n", "default"],
        &["get", "secrets", "-n", SYSTEM],
        &["list", "pods", "-n", "default"],
        &["create", "events", "-n", "default"],
        &["update", lease, "-n", SYSTEM],
        &["patch", "leases.coordination.k8s.io/other", "-n", SYSTEM],
        &["create", lease, "-n", "default"],
    ];
    for args in allowed {
        assert!(can(args).await, "the controller may {args:?}");
    }
    for args in denied {
        assert!(!can(args).await, "the controller may not {args:?}");
    }
    println!(
        "RBAC: {} verbs the code uses allowed, {} it never uses denied",
        allowed.len(),
        denied.len()
    );
}

/// A kubeconfig that authenticates as the controller's ServiceAccount, with
/// a short-lived token, as a pod of the Deployment would.
async fn service_account_kubeconfig(ns: &TestNamespace) -> std::path::PathBuf {
    let token = kubectl(&["create", "token", "siskin", "-n", SYSTEM, "--duration=10m"]).await;
    let view = ["config", "view", "--minify", "--raw", "-o"];
    let server = kubectl(&[&view[..], &["jsonpath={.clusters[0].cluster.server}"]].concat()).await;
    let ca = kubectl(
        &[
            &view[..],
            &["jsonpath={.clusters[0].cluster.certificate-authority-data}"],
        ]
        .concat(),
    )
    .await;
    let config = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "sandbox", "cluster": {"server": server, "certificate-authority-data": ca}}],
        "users": [{"name": "siskin", "user": {"token": token.trim()}}],
        "contexts": [{"name": "siskin", "context": {"cluster": "sandbox", "user": "siskin"}}],
        "current-context": "siskin",
    });
    let dir = std::env::var("SISKIN_SANDBOX").unwrap_or_else(|_| "/tmp".into());
    let path = std::path::PathBuf::from(format!("{dir}/{}-siskin.kubeconfig", ns.name));
    std::fs::write(&path, config.to_string()).expect("write kubeconfig");
    path
}

/// A whole canary (deploy, route writes, promotion, scale-down, Events,
/// Lease, finalizer) by a controller holding only the ServiceAccount's RBAC.
async fn assert_rbac_runs_a_canary(client: &Client) {
    let ns = TestNamespace::new("manifests-rbac").await;
    let _finalizers = ReleaseFinalizersOnDrop(ns.name.clone());
    demo_route(&ns).await;
    let kubeconfig = service_account_kubeconfig(&ns).await;
    let kubeconfig_env = kubeconfig.to_string_lossy().into_owned();
    let _controller = ControllerProcess::start_with(&ns, "rbac", SYSTEM, &[("KUBECONFIG", &kubeconfig_env)]);
    let routing = json!({"gatewayAPI": {"httpRoute": {"name": NAME}}});
    let steps = json!([{"weight": 50, "hold": {"min": "1s"}}]);
    create(&ns.api(), &canary_rollout(NAME, NAME, "v1", routing, steps)).await;
    let healthy =
        |s: &siskin::api::RolloutStatus| s.phase == Some(RolloutPhase::Healthy) && s.stable_revision.is_some();
    let v1 = wait_rollout_within(&ns, NAME, "v1 stable", TIMEOUT, healthy)
        .await
        .stable_revision
        .expect("v1");
    release_version(&ns, NAME, "v2").await;
    let status = wait_rollout_within(&ns, NAME, "v2 promoted", TIMEOUT, |s| {
        healthy(s) && s.stable_revision.as_deref() != Some(v1.as_str())
    })
    .await;
    println!("as the ServiceAccount: v2 {:?} promoted", status.stable_revision);
    eventually("v1 scaled down", Duration::from_secs(30), || async {
        (revision_replicas(&ns, &v1).await == 0).then_some(())
    })
    .await;
    let lease = Api::<Lease>::namespaced(client.clone(), SYSTEM)
        .get("siskin-controller")
        .await;
    let holder = lease
        .expect("Lease in siskin-system")
        .spec
        .and_then(|s| s.holder_identity);
    assert_eq!(holder.as_deref(), Some("rbac"), "the Lease is held in siskin-system");
    delete_rollouts(&ns).await;
    let events = rollout_events(&ns, NAME).await;
    assert!(
        events.iter().any(|(_, reason, _)| reason == "Promoted"),
        "Events published: {events:?}"
    );
    let warnings: Vec<_> = events.iter().filter(|(t, _, _)| t == "Warning").collect();
    assert!(warnings.is_empty(), "no reconcile failed: {warnings:?}");
    let log = std::fs::read_to_string(controller_log(&ns, "rbac")).unwrap_or_default();
    assert!(
        !log.to_lowercase().contains("forbidden"),
        "nothing was forbidden:\n{log}"
    );
    let _ = std::fs::remove_file(kubeconfig);
}

#[tokio::test]
#[ignore = "needs the sandbox: make test"]
async fn kustomization_installs_a_controller_with_exactly_the_rbac_it_needs() {
    let client = client().await;
    let _installed = install(&client).await;
    assert_objects_exist(&client).await;
    assert_least_privilege().await;
    assert_rbac_runs_a_canary(&client).await;
}
