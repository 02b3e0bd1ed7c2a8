//! The CRD is what the API server enforces: these tests check what it will see.

use serde_json::{Value, json};

use super::*;

fn rollout_schema() -> Value {
    let crd = serde_json::to_value(Rollout::crd()).unwrap_or(Value::Null);
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
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

fn all_rules(node: &Value, out: &mut Vec<String>) {
    match node {
        Value::Object(map) => {
            for (key, child) in map {
                if key == "x-kubernetes-validations" {
                    for rule in child.as_array().into_iter().flatten() {
                        out.push(rule["rule"].as_str().unwrap_or_default().to_string());
                    }
                } else {
                    all_rules(child, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| all_rules(i, out)),
        _ => {}
    }
}

#[test]
fn rollout_schema_is_structural() {
    let mut violations = Vec::new();
    structural_violations(&rollout_schema(), "", &mut violations);
    assert!(violations.is_empty(), "non-structural schema: {violations:#?}");
}

#[test]
fn crd_carries_the_cel_rules() {
    let mut rules = Vec::new();
    all_rules(&rollout_schema(), &mut rules);
    for expected in [
        "has(self.template) != has(self.workloadRef)",
        "self.filter(s, has(s.weight)).map(s, s.weight).isSorted()",
        "has(self.weight) != has(self.pause)",
        "[has(self.gatewayAPI), has(self.istio)].filter(x, x).size() == 1",
    ] {
        assert!(
            rules.iter().any(|r| r == expected),
            "missing rule {expected}: {rules:#?}"
        );
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
