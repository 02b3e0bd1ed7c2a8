//! The CRDs are what the API server enforces: these tests check what it will
//! see, for every CRD [`crds`] installs.

use serde_json::{Value, json};

use super::*;

fn schema_of(crd: &CustomResourceDefinition) -> Value {
    let crd = serde_json::to_value(crd).unwrap_or(Value::Null);
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

fn rollout_schema() -> Value {
    schema_of(&Rollout::crd())
}

/// The object under `path` (property names, `[]` for array items).
fn at<'a>(schema: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(schema, |node, step| match step {
        "[]" => &node["items"],
        name => &node["properties"][name],
    })
}

/// What each CRD must be, one row per CRD: kind, scope, short name, and
/// every CEL rule its schema carries (exactly these: a rule lost or added
/// by a derive change shows here).
const EXPECTED: [(&str, &str, &str, &[&str]); 3] = [
    (
        "Rollout",
        "Namespaced",
        "sro",
        &[
            "size(self.metadata.name) <= 52",
            "has(self.template) != has(self.workloadRef)",
            "self.kind == 'Deployment' && self.apiVersion == 'apps/v1'",
            "[has(self.canary), has(self.abTest), has(self.blueGreen), has(self.rolling)].filter(x, x).size() == 1",
            "self.filter(s, has(s.weight)).map(s, s.weight).isSorted()",
            "has(self.weight) != has(self.pause)",
            "!has(self.hold) || has(self.weight)",
            "!has(self.min) || !has(self.max) || duration(self.min) <= duration(self.max)",
            "[has(self.gatewayAPI), has(self.istio)].filter(x, x).size() == 1",
        ],
    ),
    (
        "AnalysisTemplate",
        "Namespaced",
        "sat",
        &["!has(self.pinned) || !self.pinned || has(self.value)"],
    ),
    (
        "ClusterAnalysisTemplate",
        "Cluster",
        "scat",
        &["!has(self.pinned) || !self.pinned || has(self.value)"],
    ),
];

fn expected(kind: &str) -> (&'static str, &'static str, &'static [&'static str]) {
    let row = EXPECTED.iter().find(|(k, ..)| *k == kind);
    let (_, scope, short, rules) = row.unwrap_or_else(|| panic!("CRD {kind} has no row in EXPECTED"));
    (scope, short, rules)
}

/// The rules of a structural schema that generated schemas tend to break:
/// every node has a type (unless it preserves unknown fields or is
/// int-or-string), no `$ref`, and no types inside `anyOf`/`oneOf`/`allOf`.
fn structural_violations(node: &Value, path: &str, out: &mut Vec<String>) {
    let Some(obj) = node.as_object() else { return };
    if obj.contains_key("$ref") {
        out.push(format!("{path}: $ref"));
    }
    let opaque = obj.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true))
        || obj.get("x-kubernetes-int-or-string") == Some(&json!(true));
    if !obj.contains_key("type") && !opaque {
        out.push(format!("{path}: no type"));
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        for (i, branch) in obj.get(key).and_then(Value::as_array).into_iter().flatten().enumerate() {
            if branch.get("type").is_some() || branch.get("properties").is_some() {
                out.push(format!("{path}.{key}[{i}]: types inside a junctor"));
            }
        }
    }
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        for (name, child) in props {
            structural_violations(child, &format!("{path}.{name}"), out);
        }
    }
    if let Some(items) = obj.get("items") {
        structural_violations(items, &format!("{path}[]"), out);
    }
    if let Some(extra) = obj.get("additionalProperties").filter(|v| v.is_object()) {
        structural_violations(extra, &format!("{path}{{}}"), out);
    }
}

fn rules_with_messages(node: &Value, out: &mut Vec<(String, String)>) {
    match node {
        Value::Object(map) => {
            for (key, child) in map {
                if key == "x-kubernetes-validations" {
                    for rule in child.as_array().into_iter().flatten() {
                        let text = |field: &str| rule[field].as_str().unwrap_or_default().to_string();
                        out.push((text("rule"), text("message")));
                    }
                } else {
                    rules_with_messages(child, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| rules_with_messages(i, out)),
        _ => {}
    }
}

#[test]
fn every_crd_is_checked_here() {
    let kinds: Vec<String> = crds().iter().map(|c| c.spec.names.kind.clone()).collect();
    let checked: Vec<&str> = EXPECTED.iter().map(|(kind, ..)| *kind).collect();
    assert_eq!(kinds, checked, "a new CRD needs its row in EXPECTED");
}

#[test]
fn every_crd_schema_is_structural() {
    for crd in crds() {
        let mut violations = Vec::new();
        structural_violations(&schema_of(&crd), "", &mut violations);
        let kind = &crd.spec.names.kind;
        assert!(
            violations.is_empty(),
            "non-structural schema of {kind}: {violations:#?}"
        );
    }
}

#[test]
fn every_crd_carries_exactly_its_cel_rules_each_with_a_message() {
    for crd in crds() {
        let kind = crd.spec.names.kind.clone();
        let mut found = Vec::new();
        rules_with_messages(&schema_of(&crd), &mut found);
        for (rule, message) in &found {
            assert!(!message.is_empty(), "{kind}: rule {rule} has no message for the user");
        }
        let mut rules: Vec<&str> = found.iter().map(|(rule, _)| rule.as_str()).collect();
        rules.sort_unstable();
        rules.dedup();
        let mut wanted = expected(&kind).2.to_vec();
        wanted.sort_unstable();
        assert_eq!(rules, wanted, "the CEL rules of {kind}");
    }
}

#[test]
fn every_crd_has_its_scope_short_name_and_one_served_version() {
    for crd in crds() {
        let kind = &crd.spec.names.kind;
        let (scope, short, _) = expected(kind);
        assert_eq!(crd.spec.group, "siskin.io", "{kind}");
        assert_eq!(crd.spec.scope, scope, "{kind}");
        assert_eq!(crd.spec.names.short_names, Some(vec![short.to_string()]), "{kind}");
        let versions: Vec<(&str, bool, bool)> = crd
            .spec
            .versions
            .iter()
            .map(|v| (v.name.as_str(), v.served, v.storage))
            .collect();
        assert_eq!(versions, [("v1alpha1", true, true)], "{kind}");
    }
}

/// What a template author writes is bounded where the controller holds
/// it in memory or sends it out (URLs, bodies, headers), and a template
/// has at least one metric.
#[test]
fn template_strings_and_lists_are_bounded() {
    for crd in [AnalysisTemplate::crd(), ClusterAnalysisTemplate::crd()] {
        let kind = &crd.spec.names.kind;
        let schema = schema_of(&crd);
        let spec = at(&schema, "spec");
        let bounds = |path: &str, key: &str| at(spec, path)[key].as_u64();
        assert_eq!(bounds("metrics", "minItems"), Some(1), "{kind}");
        let web = "metrics.[].provider.web";
        assert_eq!(bounds(&format!("{web}.url"), "minLength"), Some(1), "{kind}");
        assert_eq!(bounds(&format!("{web}.url"), "maxLength"), Some(4096), "{kind}");
        assert_eq!(bounds(&format!("{web}.body"), "maxLength"), Some(16384), "{kind}");
        for provider in ["prometheus", "web"] {
            let headers = format!("metrics.[].provider.{provider}.headers");
            assert_eq!(bounds(&headers, "maxItems"), Some(16), "{kind} {provider}");
            assert_eq!(
                bounds(&format!("{headers}.[].name"), "maxLength"),
                Some(256),
                "{kind} {provider}"
            );
        }
    }
}

#[test]
fn weights_are_percentages_and_steps_are_bounded() {
    let steps = &rollout_schema()["properties"]["spec"]["properties"]["strategy"]["properties"]["canary"]["properties"]
        ["steps"];
    assert_eq!(steps["maxItems"], json!(MAX_STEPS));
    let weight = &steps["items"]["properties"]["weight"];
    assert_eq!(weight["minimum"].as_f64(), Some(0.0));
    assert_eq!(weight["maximum"].as_f64(), Some(100.0));
}

#[test]
fn pod_template_is_stored_opaque() {
    let template = &rollout_schema()["properties"]["spec"]["properties"]["template"];
    assert_eq!(template["x-kubernetes-preserve-unknown-fields"], json!(true));
}

#[test]
fn kubectl_get_shows_the_rollout_at_a_glance() {
    let crd = Rollout::crd();
    let version = &crd.spec.versions[0];
    let columns: Vec<&str> = version
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(columns, ["Strategy", "Phase", "Step", "Weight", "Verdict", "Age"]);
    assert_eq!(crd.spec.names.short_names, Some(vec!["sro".to_string()]));
    assert_eq!(crd.spec.scope, "Namespaced");
    assert!(version.subresources.as_ref().is_some_and(|s| s.status.is_some()));
}

#[test]
fn crds_yaml_is_one_document_per_crd() {
    let yaml = crds_yaml();
    assert!(yaml.starts_with("---\n"));
    assert_eq!(yaml.matches("\n---\n").count() + 1, crds().len());
    assert!(yaml.contains("name: rollouts.siskin.io"));
}

#[test]
fn the_design_example_deserializes() {
    let rollout: Result<Rollout, _> = serde_yaml::from_str(
        r#"
apiVersion: siskin.io/v1alpha1
kind: Rollout
metadata: {name: product-service, namespace: shop}
spec:
  workloadRef: {apiVersion: apps/v1, kind: Deployment, name: product-service}
  replicas: 10
  service: {name: product-service, port: 80, targetPort: 8080}
  strategy:
    canary:
      trafficRouting:
        gatewayAPI: {httpRoute: {name: product-service}}
      steps:
        - {weight: 5,  hold: {min: 1m, max: 10m}}
        - {weight: 25, hold: {min: 2m, max: 10m}}
        - {pause: {}}
      scaleDownDelay: 30s
  analysis:
    templates: [{name: http-errors}]
    args: [{name: route, value: product-service}]
    onInconclusive: abort
"#,
    );
    let rollout = rollout.expect("the design's example is a valid Rollout");
    let canary = rollout.spec.canary().expect("canary strategy");
    assert_eq!(canary.steps.len(), 3);
    assert_eq!(canary.steps[2], CanaryStep::pause(None));
    assert_eq!(
        rollout.spec.analysis.map(|a| a.on_inconclusive),
        Some(InconclusivePolicy::Abort)
    );
}
