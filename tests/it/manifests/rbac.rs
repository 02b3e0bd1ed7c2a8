//! The kustomizations read without a cluster: their objects, and what
//! Kubernetes RBAC would let the controller's ServiceAccount do, decided the
//! way `kubectl auth can-i` asks it. Only what Siskin's kustomizations use:
//! `resources` files, `namespace:`, Roles, ClusterRoles and their bindings.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

/// Kinds that have no namespace; kustomize's `namespace:` leaves them alone.
const CLUSTER_KINDS: &[&str] = &[
    "Namespace",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
];
/// Resources the controller uses that have no namespace.
const CLUSTER_RESOURCES: &[&str] = &["clusteranalysistemplates", "namespaces"];

/// The objects of `manifests/<dir>`, with the kustomization's namespace set.
pub fn objects(dir: &str) -> Vec<Value> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("manifests").join(dir);
    let kustomization = documents(&root.join("kustomization.yaml")).remove(0);
    let namespace = kustomization["namespace"].as_str().map(str::to_owned);
    let files = kustomization["resources"].as_array().cloned().unwrap_or_default();
    let mut out = Vec::new();
    for file in files.iter().filter_map(Value::as_str) {
        for mut object in documents(&root.join(file)) {
            if let Some(ns) = &namespace {
                set_namespace(&mut object, ns);
            }
            out.push(object);
        }
    }
    out
}

fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .filter(|v| !v.is_null())
        .collect()
}

/// What kustomize's namespace transformer does to these objects: namespaced
/// objects move, and bindings' ServiceAccount subjects follow them.
fn set_namespace(object: &mut Value, ns: &str) {
    let kind = object["kind"].as_str().unwrap_or_default().to_owned();
    if !CLUSTER_KINDS.contains(&kind.as_str()) {
        object["metadata"]["namespace"] = ns.into();
    }
    if let Some(subjects) = object.get_mut("subjects").and_then(Value::as_array_mut) {
        for subject in subjects.iter_mut().filter(|s| s["kind"] == "ServiceAccount") {
            subject["namespace"] = ns.into();
        }
    }
}

pub fn of_kind<'a>(objects: &'a [Value], kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    objects.iter().filter(move |o| o["kind"] == kind)
}

pub fn named<'a>(objects: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
}

/// One `kubectl auth can-i` question.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub verb: String,
    pub group: String,
    /// With the subresource, e.g. `rollouts/status`.
    pub resource: String,
    pub name: Option<String>,
    /// `None`: all namespaces, or a resource without one.
    pub namespace: Option<String>,
}

impl Request {
    /// Parses `kubectl auth can-i` arguments: `verb resource[.group][/name]`
    /// with `-n NS`, `--all-namespaces` and `--subresource=SUB`.
    pub fn parse(args: &[&str]) -> Request {
        let (resource, name) = match args[1].split_once('/') {
            Some((r, n)) => (r, Some(n.to_owned())),
            None => (args[1], None),
        };
        let (mut resource, group) = match resource.split_once('.') {
            Some((r, g)) => (r.to_owned(), g.to_owned()),
            None => (resource.to_owned(), String::new()),
        };
        let mut namespace = None;
        let mut flags = args[2..].iter();
        while let Some(flag) = flags.next() {
            match *flag {
                "-n" => namespace = flags.next().map(|s| s.to_string()),
                "--all-namespaces" => namespace = None,
                f => match f.strip_prefix("--subresource=") {
                    Some(sub) => resource = format!("{resource}/{sub}"),
                    None => panic!("unknown flag {f}"),
                },
            }
        }
        if CLUSTER_RESOURCES.contains(&resource.as_str()) {
            namespace = None;
        }
        Request {
            verb: args[0].into(),
            group,
            resource,
            name,
            namespace,
        }
    }

    /// The same question about another namespace (`None`: all of them).
    /// A resource without a namespace stays as it is.
    pub fn in_namespace(&self, namespace: Option<&str>) -> Request {
        let mut moved = self.clone();
        if !CLUSTER_RESOURCES.contains(&self.resource.as_str()) {
            moved.namespace = namespace.map(str::to_owned);
        }
        moved
    }
}

/// Whether the ServiceAccount `namespace/name` may do `request`: a
/// ClusterRoleBinding grants its ClusterRole everywhere, a RoleBinding its
/// Role (or ClusterRole) in the binding's namespace only.
pub fn can(objects: &[Value], (sa_namespace, sa_name): (&str, &str), request: &Request) -> bool {
    let binds = |binding: &Value| {
        binding["subjects"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|s| s["kind"] == "ServiceAccount" && s["name"] == sa_name && s["namespace"] == sa_namespace)
    };
    let role = |binding: &Value| {
        let kind = binding["roleRef"]["kind"].as_str().unwrap_or_default();
        let name = binding["roleRef"]["name"].as_str().unwrap_or_default();
        objects.iter().find(|o| {
            o["kind"] == kind
                && o["metadata"]["name"] == name
                && (kind == "ClusterRole" || o["metadata"]["namespace"] == binding["metadata"]["namespace"])
        })
    };
    let cluster_wide = of_kind(objects, "ClusterRoleBinding")
        .filter(|b| binds(b))
        .filter_map(role)
        .any(|r| grants(r, request));
    let in_namespace = of_kind(objects, "RoleBinding")
        .filter(|b| binds(b))
        .filter(|b| {
            request
                .namespace
                .as_deref()
                .is_some_and(|ns| b["metadata"]["namespace"] == ns)
        })
        .filter_map(role)
        .any(|r| grants(r, request));
    cluster_wide || in_namespace
}

fn grants(role: &Value, request: &Request) -> bool {
    let lists = |rule: &Value, key: &str, want: &str| {
        rule[key]
            .as_array()
            .into_iter()
            .flatten()
            .any(|v| v == want || v == "*")
    };
    role["rules"].as_array().into_iter().flatten().any(|rule| {
        let names = rule["resourceNames"].as_array().filter(|n| !n.is_empty());
        lists(rule, "apiGroups", &request.group)
            && lists(rule, "resources", &request.resource)
            && lists(rule, "verbs", &request.verb)
            && names.is_none_or(|n| request.name.as_ref().is_some_and(|want| n.iter().any(|v| v == want)))
    })
}
