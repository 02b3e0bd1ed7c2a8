//! The Helm chart (charts/siskin): it lints, renders what its values ask,
//! grants the same rights as the kustomization, and its manifests pass the
//! API server's own validation (a server-side dry run on the sandbox).
//!
//! The helm tests need helm (`tests/sandbox/sandbox install` builds it) and
//! are `#[ignore]`d like the sandbox tests; `make test` runs them.

use crate::support::deploy::{chart_dir, helm, yaml_objects};
use crate::support::*;
use serde_json::{Value, json};

fn render(release_namespace: &str, values: &[&str]) -> Vec<Value> {
    let chart = chart_dir();
    let mut args = vec!["template", "siskin", chart.to_str().expect("utf-8 path")];
    args.extend(["--namespace", release_namespace]);
    for v in values {
        args.extend(["--set", v]);
    }
    yaml_objects(&helm(&args))
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

fn controller_args(objects: &[Value]) -> Vec<String> {
    let deployment = of_kind(objects, "Deployment")[0];
    let args = &deployment["spec"]["template"]["spec"]["containers"][0]["args"];
    serde_json::from_value(args.clone()).expect("args")
}

/// The ClusterRole rules of manifests/rbac.yaml, the reviewed least privilege.
fn kustomize_cluster_rules() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/rbac.yaml");
    let objects = yaml_objects(&std::fs::read_to_string(path).expect("manifests/rbac.yaml"));
    let role = objects
        .iter()
        .find(|o| o["kind"] == "ClusterRole")
        .expect("a ClusterRole");
    role["rules"].clone()
}

#[test]
fn chart_crds_are_the_generated_ones() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let chart = std::fs::read_to_string(root.join("charts/siskin/crds/rollout.yaml")).expect("chart CRDs");
    let generated = std::fs::read_to_string(root.join("manifests/crds/rollout.yaml")).expect("manifests CRDs");
    assert!(
        chart == generated,
        "charts/siskin/crds/rollout.yaml differs from manifests/crds/rollout.yaml; copy it over"
    );
}

#[test]
#[ignore = "needs helm: tests/sandbox/sandbox install"]
fn chart_lints_clean_in_both_scopes() {
    let chart = chart_dir();
    let chart = chart.to_str().expect("utf-8 path");
    println!("{}", helm(&["lint", "--strict", chart]));
    println!(
        "{}",
        helm(&[
            "lint",
            "--strict",
            chart,
            "--set",
            "rbac.scope=namespaced,serviceMonitor.enabled=true"
        ])
    );
}

#[test]
#[ignore = "needs helm: tests/sandbox/sandbox install"]
fn cluster_scope_renders_two_replicas_a_budget_a_policy_and_the_kustomize_rights() {
    let objects = render("siskin-system", &[]);
    let deployment = of_kind(&objects, "Deployment")[0];
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
    assert_eq!(pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(of_kind(&objects, "PodDisruptionBudget")[0]["spec"]["minAvailable"], 1);
    assert_eq!(of_kind(&objects, "NetworkPolicy").len(), 1);
    assert!(of_kind(&objects, "ServiceMonitor").is_empty(), "off by default");
    let roles = of_kind(&objects, "ClusterRole");
    assert_eq!(roles.len(), 1);
    assert_eq!(
        roles[0]["rules"],
        kustomize_cluster_rules(),
        "the chart grants what manifests/rbac.yaml grants"
    );
    let args = controller_args(&objects);
    assert!(
        args.iter().all(|a| !a.starts_with("--namespace")),
        "watches every namespace"
    );
    assert!(
        args.iter().all(|a| !a.starts_with("--max-rollouts-in-progress")),
        "no cap unless asked: {args:?}"
    );
}

#[test]
#[ignore = "needs helm: tests/sandbox/sandbox install"]
fn namespaced_scope_grants_roles_in_the_watched_namespace_only() {
    let objects = render("siskin-system", &["rbac.scope=namespaced", "watchNamespace=team-a"]);
    let role = of_kind(&objects, "Role")
        .into_iter()
        .find(|r| r["metadata"]["name"] == "siskin-controller")
        .expect("the controller's Role");
    assert_eq!(role["metadata"]["namespace"], "team-a");
    let cluster_rules: Vec<&Value> = of_kind(&objects, "ClusterRole")
        .iter()
        .flat_map(|r| r["rules"].as_array().into_iter().flatten())
        .collect();
    let expected = json!({"apiGroups": ["siskin.io"], "resources": ["clusteranalysistemplates"], "verbs": ["get"]});
    assert_eq!(cluster_rules, vec![&expected], "the only cluster-wide right");
    assert!(controller_args(&objects).contains(&"--namespace=team-a".to_string()));
    let lease_role = of_kind(&objects, "Role")
        .into_iter()
        .find(|r| r["metadata"]["name"] == "siskin-leader-election")
        .expect("leader election Role");
    assert_eq!(
        lease_role["metadata"]["namespace"], "siskin-system",
        "the Lease stays home"
    );
}

#[test]
#[ignore = "needs helm: tests/sandbox/sandbox install"]
fn values_become_controller_flags() {
    let objects = render(
        "siskin-system",
        &[
            "image.digest=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "controller.concurrency=8",
            "controller.maxRolloutsInProgress=3",
            "controller.instanceId=blue",
            "destinations.allow={10.0.0.0/8,192.168.1.0/24}",
            "destinations.deny={10.1.0.0/16}",
            "destinations.allowOnly=true",
            "destinations.reflectResponseBodies=true",
            "destinations.outboundConcurrency=5",
            "destinations.outboundPerNamespace=2",
            "serviceMonitor.enabled=true",
        ],
    );
    let args = controller_args(&objects);
    for expected in [
        "controller",
        "--concurrency=8",
        "--max-rollouts-in-progress=3",
        "--instance-id=blue",
        "--allow-destination=10.0.0.0/8",
        "--allow-destination=192.168.1.0/24",
        "--deny-destination=10.1.0.0/16",
        "--destinations-allow-only",
        "--reflect-response-bodies",
        "--outbound-concurrency=5",
        "--outbound-per-namespace=2",
    ] {
        assert!(args.contains(&expected.to_string()), "{expected} in {args:?}");
    }
    let deployment = of_kind(&objects, "Deployment")[0];
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["image"],
        "siskin/controller@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "a digest pins the image"
    );
    let lease_role = of_kind(&objects, "Role")
        .into_iter()
        .find(|r| r["metadata"]["name"] == "siskin-leader-election")
        .expect("leader election Role");
    assert_eq!(
        lease_role["rules"][1]["resourceNames"],
        json!(["siskin-controller-blue"]),
        "an instance elects its leader on a Lease of its own"
    );
    assert_eq!(of_kind(&objects, "ServiceMonitor").len(), 1);
}

/// `kubectl apply --dry-run=server` of the rendered chart in `namespace`.
async fn server_dry_run(namespace: &str, values: &[&str]) -> String {
    let chart = chart_dir();
    let mut args = vec!["template", "siskin-dry-run", chart.to_str().expect("utf-8 path")];
    args.extend(["--namespace", namespace, "--include-crds"]);
    for v in values {
        args.extend(["--set", v]);
    }
    let rendered = helm(&args);
    let mut child = tokio::process::Command::new("kubectl")
        .args([
            "apply",
            "--dry-run=server",
            "--server-side",
            "--field-manager=siskin-chart-test",
            "--force-conflicts",
            "-f",
            "-",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run kubectl");
    use tokio::io::AsyncWriteExt as _;
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(rendered.as_bytes()).await.expect("write manifests");
    drop(stdin);
    let out = child.wait_with_output().await.expect("kubectl");
    assert!(
        out.status.success(),
        "server-side dry run of the chart ({values:?}) failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
#[ignore = "needs the sandbox: make test"]
async fn rendered_chart_passes_a_server_side_dry_run_in_both_scopes() {
    let ns = TestNamespace::new("chart-dry-run").await;
    let image = "image.digest=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let cluster = server_dry_run(&ns.name, &[image, "controller.maxRolloutsInProgress=2"]).await;
    println!("cluster scope:\n{cluster}");
    let namespaced = server_dry_run(&ns.name, &[image, "rbac.scope=namespaced"]).await;
    println!("namespaced scope:\n{namespaced}");
    for kind in [
        "deployment.apps",
        "poddisruptionbudget.policy",
        "networkpolicy.networking.k8s.io",
    ] {
        assert!(cluster.contains(kind), "{kind} validated: {cluster}");
    }
}
