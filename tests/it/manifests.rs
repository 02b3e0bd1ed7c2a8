//! `kubectl apply -k manifests/` installs a working controller: namespace,
//! CRDs, a ServiceAccount whose RBAC grants exactly what the code calls, and
//! a two-replica Deployment. The RBAC is shown sufficient by a real canary
//! run with the ServiceAccount's own token, and narrow by `kubectl auth can-i`.

use std::time::Duration;

use crate::support::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{Api, Client};
use serde_json::json;
use siskin::api::RolloutPhase;

const SYSTEM: &str = "siskin-system";
const SERVICE_ACCOUNT: &str = "system:serviceaccount:siskin-system:siskin";
const NAME: &str = "demo";
/// How long a release may take on a busy sandbox (pod starts are slow).
const TIMEOUT: Duration = Duration::from_secs(180);

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

/// Gets object `name` through `api`; a missing one fails the test.
async fn get_installed<K>(api: Api<K>, name: &str) -> K
where
    K: k8s_openapi::Resource + kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.get(name)
        .await
        .unwrap_or_else(|e| panic!("{} {name}: {e}", K::KIND))
}

async fn assert_objects_exist(client: &Client) {
    let (c, n) = (client.clone(), SYSTEM);
    get_installed(Api::<Namespace>::all(c.clone()), n).await;
    get_installed(Api::<ServiceAccount>::namespaced(c.clone(), n), "siskin").await;
    get_installed(Api::<ClusterRole>::all(c.clone()), "siskin-controller").await;
    get_installed(Api::<ClusterRoleBinding>::all(c.clone()), "siskin-controller").await;
    get_installed(Api::<Role>::namespaced(c.clone(), n), "siskin-leader-election").await;
    get_installed(Api::<RoleBinding>::namespaced(c.clone(), n), "siskin-leader-election").await;
    get_installed(Api::<Service>::namespaced(c.clone(), n), "siskin-controller-metrics").await;
    let crd = get_installed(Api::<CustomResourceDefinition>::all(c.clone()), "rollouts.siskin.io").await;
    let established = crd.status.and_then(|s| s.conditions).unwrap_or_default();
    assert!(
        established
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True"),
        "CRD established"
    );

    let deployments: Api<Deployment> = Api::namespaced(c, n);
    let deployment = get_installed(deployments.clone(), "siskin-controller").await;
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

/// Every call the controller makes, as `kubectl auth can-i` arguments for
/// the cluster-wide install ("default" stands for any app's namespace).
const ALLOWED: &[&[&str]] = &[
    &["list", "rollouts.siskin.io", "--all-namespaces"],
    &["watch", "rollouts.siskin.io", "--all-namespaces"],
    &["patch", "rollouts.siskin.io", "-n", "default"],
    &["patch", "rollouts.siskin.io", "--subresource=status", "-n", "default"],
    &[
        "update",
        "rollouts.siskin.io",
        "--subresource=finalizers",
        "-n",
        "default",
    ],
    &["get", "analysistemplates.siskin.io", "-n", "default"],
    &["get", "clusteranalysistemplates.siskin.io"],
    &["get", "secrets", "-n", "default"],
    &["get", "secrets", "-n", SYSTEM],
    &["list", "deployments.apps", "--all-namespaces"],
    &["watch", "deployments.apps", "--all-namespaces"],
    &["get", "deployments.apps", "-n", "default"],
    &["create", "deployments.apps", "-n", "default"],
    &["patch", "deployments.apps", "-n", "default"],
    &["list", "services", "--all-namespaces"],
    &["watch", "services", "--all-namespaces"],
    &["get", "services", "-n", "default"],
    &["create", "services", "-n", "default"],
    &["patch", "services", "-n", "default"],
    &["list", "httproutes.gateway.networking.k8s.io", "--all-namespaces"],
    &["watch", "httproutes.gateway.networking.k8s.io", "--all-namespaces"],
    &["get", "httproutes.gateway.networking.k8s.io", "-n", "default"],
    &["patch", "httproutes.gateway.networking.k8s.io", "-n", "default"],
    &["list", "virtualservices.networking.istio.io", "--all-namespaces"],
    &["watch", "virtualservices.networking.istio.io", "--all-namespaces"],
    &["get", "virtualservices.networking.istio.io", "-n", "default"],
    &["patch", "virtualservices.networking.istio.io", "-n", "default"],
    &["create", "events.events.k8s.io", "-n", "default"],
    &["patch", "events.events.k8s.io", "-n", "default"],
    &["create", "leases.coordination.k8s.io", "-n", SYSTEM],
    &["get", "leases.coordination.k8s.io/siskin-controller", "-n", SYSTEM],
    &["patch", "leases.coordination.k8s.io/siskin-controller", "-n", SYSTEM],
];

/// A sample of what the controller never calls.
const DENIED: &[&[&str]] = &[
    &["get", "rollouts.siskin.io", "-n", "default"],
    &["update", "rollouts.siskin.io", "-n", "default"],
    &["delete", "rollouts.siskin.io", "-n", "default"],
    &["delete", "deployments.apps", "-n", "default"],
    &["update", "deployments.apps", "-n", "default"],
    &["delete", "services", "-n", "default"],
    &["update", "httproutes.gateway.networking.k8s.io", "-n", "default"],
    &["delete", "virtualservices.networking.istio.io", "-n", "default"],
    &["list", "secrets", "-n", "default"],
    &["watch", "secrets", "--all-namespaces"],
    &["update", "secrets", "-n", SYSTEM],
    &["list", "pods", "-n", "default"],
    &["create", "events", "-n", "default"],
    &["update", "leases.coordination.k8s.io", "-n", SYSTEM],
    &["patch", "leases.coordination.k8s.io/other", "-n", SYSTEM],
    &["create", "leases.coordination.k8s.io", "-n", "default"],
    &["list", "clusteranalysistemplates.siskin.io"],
];

/// What the code calls is allowed; a sample of what it never calls is not.
async fn assert_least_privilege() {
    for args in ALLOWED {
        assert!(can(args).await, "the controller may {args:?}");
    }
    for args in DENIED {
        assert!(!can(args).await, "the controller may not {args:?}");
    }
    println!(
        "RBAC: {} verbs the code uses allowed, {} it never uses denied",
        ALLOWED.len(),
        DENIED.len()
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
    demo_route(&ns).await;
    let kubeconfig = service_account_kubeconfig(&ns).await;
    let _controller = ControllerProcess::launch(&ns, "rbac")
        .lease_namespace(SYSTEM)
        .kubeconfig(&kubeconfig)
        .start();
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

// Without a cluster: the same questions, answered from the YAML files.

mod rbac;

use rbac::Request;

/// The namespace the namespaced kustomization installs into (and watches).
fn watched(objects: &[serde_json::Value]) -> String {
    let account = rbac::named(objects, "ServiceAccount", "siskin").expect("a ServiceAccount siskin");
    let ns = account["metadata"]["namespace"].as_str();
    ns.expect("manifests/namespaced sets a namespace").to_owned()
}

#[test]
fn cluster_wide_rbac_allows_every_call_and_nothing_sampled_beyond() {
    let objects = rbac::objects("");
    for args in ALLOWED {
        let request = Request::parse(args);
        assert!(rbac::can(&objects, (SYSTEM, "siskin"), &request), "may {args:?}");
    }
    for args in DENIED {
        let request = Request::parse(args);
        assert!(!rbac::can(&objects, (SYSTEM, "siskin"), &request), "may not {args:?}");
    }
}

#[test]
fn namespaced_rbac_allows_every_call_in_its_own_namespace_only() {
    let objects = rbac::objects("namespaced");
    let ns = watched(&objects);
    let account = (ns.as_str(), "siskin");
    let allowed: Vec<Request> = ALLOWED
        .iter()
        .map(|args| Request::parse(args).in_namespace(Some(&ns)))
        .collect();
    for request in &allowed {
        assert!(rbac::can(&objects, account, request), "may {request:?}");
        for elsewhere in [Some("elsewhere"), None] {
            let moved = request.in_namespace(elsewhere);
            if moved != *request {
                assert!(!rbac::can(&objects, account, &moved), "may not {moved:?}");
            }
        }
    }
    for args in DENIED {
        let request = Request::parse(args).in_namespace(Some(&ns));
        // Denied in the cluster-wide install only for its namespace (a Lease
        // outside siskin-system): here that namespace is the watched one.
        if !allowed.contains(&request) {
            assert!(!rbac::can(&objects, account, &request), "may not {request:?}");
        }
    }
}

#[test]
fn namespaced_install_leaves_crds_to_the_admin_and_reads_cluster_templates_only() {
    let objects = rbac::objects("namespaced");
    for kind in ["Namespace", "CustomResourceDefinition"] {
        assert_eq!(rbac::of_kind(&objects, kind).count(), 0, "no {kind}");
    }
    let rules: Vec<_> = rbac::of_kind(&objects, "ClusterRole")
        .flat_map(|role| role["rules"].as_array().cloned().unwrap_or_default())
        .collect();
    let expected = json!({
        "apiGroups": ["siskin.io"],
        "resources": ["clusteranalysistemplates"],
        "verbs": ["get"],
    });
    assert_eq!(rules, vec![expected], "the only cluster-wide right");
}

#[test]
fn namespaced_controller_is_the_cluster_wide_one_watching_its_own_namespace() {
    let (base, namespaced) = (rbac::objects(""), rbac::objects("namespaced"));
    for (kind, name) in [
        ("Deployment", "siskin-controller"),
        ("Service", "siskin-controller-metrics"),
    ] {
        let mut ours = rbac::named(&namespaced, kind, name)
            .expect("in manifests/namespaced")
            .clone();
        let mut theirs = rbac::named(&base, kind, name).expect("in manifests").clone();
        for object in [&mut ours, &mut theirs] {
            if let Some(meta) = object["metadata"].as_object_mut() {
                meta.remove("namespace");
            }
        }
        if kind == "Deployment" {
            let env = ours["spec"]["template"]["spec"]["containers"][0]["env"]
                .as_array_mut()
                .expect("env");
            let at = env.iter().position(|e| e["name"] == "SISKIN_WATCH_NAMESPACE");
            let watch = env.remove(at.expect("SISKIN_WATCH_NAMESPACE is set"));
            let field = &watch["valueFrom"]["fieldRef"]["fieldPath"];
            assert_eq!(field, "metadata.namespace", "the pod's own namespace");
        }
        assert_eq!(ours, theirs, "{kind} {name} differs beyond the watched namespace");
    }
}
