//! Revisions: a stable name for one pod template.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The label on each Siskin-owned Deployment, its pods and the selectors of
/// the `-stable`/`-canary` Services.
pub const REVISION_LABEL: &str = "siskin.io/revision";

/// The label naming the Rollout that owns a Deployment or Service.
pub const ROLLOUT_LABEL: &str = "siskin.io/rollout";

/// Assigns a Rollout to the controller started with `--instance-id <value>`;
/// a controller without one manages the Rollouts without this label.
pub const INSTANCE_LABEL: &str = "siskin.io/instance";

/// Opts an object Siskin did not create into being managed by one Rollout:
/// its value names that Rollout. Siskin never takes over a `<service>-stable`
/// or `<service>-canary` Service it did not create, nor scales a
/// `workloadRef` Deployment to zero, without it.
pub const ADOPT_ANNOTATION: &str = "siskin.io/adopt";

/// Hex digits kept from the digest: short enough for names and labels, long
/// enough that two templates of one Rollout never collide in practice.
const REVISION_LEN: usize = 10;

/// The revision of a pod template: a hash of its canonical JSON (object keys
/// sorted, absent fields omitted), so the same template always gets the same
/// revision, whichever process or version of the types computed it.
pub fn revision_hash(template: &PodTemplateSpec) -> String {
    let value = serde_json::to_value(template).unwrap_or(Value::Null);
    revision_of_value(&value)
}

/// The revision of a template already in JSON form (e.g. read from an
/// unstructured object).
pub fn revision_of_value(template: &Value) -> String {
    let mut canonical = String::new();
    write_canonical(template, &mut canonical);
    let digest = Sha256::digest(canonical.as_bytes());
    let mut hex = String::with_capacity(REVISION_LEN);
    for byte in digest.iter() {
        if hex.len() >= REVISION_LEN {
            break;
        }
        hex.push_str(&format!("{byte:02x}"));
    }
    hex.truncate(REVISION_LEN);
    hex
}

/// serde_json's map order depends on a cargo feature that any dependency may
/// switch on, so the order is fixed here rather than trusted.
fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => write_object(map.iter().collect(), out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// An object's entries in key order, whatever order they come in.
fn write_object(mut entries: Vec<(&String, &Value)>, out: &mut String) {
    entries.sort_by(|a, b| a.0.cmp(b.0));
    out.push('{');
    for (i, (key, value)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&Value::String(key.clone()).to_string());
        out.push(':');
        write_canonical(value, out);
    }
    out.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template(image: &str) -> PodTemplateSpec {
        serde_json::from_value(json!({
            "metadata": {"labels": {"app": "shop", "tier": "web"}},
            "spec": {"containers": [{"name": "app", "image": image}]}
        }))
        .unwrap_or_default()
    }

    #[test]
    fn same_template_same_revision() {
        assert_eq!(revision_hash(&template("shop:1")), revision_hash(&template("shop:1")));
        assert_eq!(revision_hash(&template("shop:1")).len(), REVISION_LEN);
    }

    #[test]
    fn any_change_makes_a_new_revision() {
        assert_ne!(revision_hash(&template("shop:1")), revision_hash(&template("shop:2")));
    }

    #[test]
    fn key_order_does_not_matter() {
        let a = json!({"a": 1, "b": {"c": 2, "d": [1, 2]}});
        let b = json!({"b": {"d": [1, 2], "c": 2}, "a": 1});
        assert_eq!(revision_of_value(&a), revision_of_value(&b));
        // serde_json may keep insertion order (a cargo feature any crate can
        // switch on): entries arriving in any order are written sorted.
        let (one, two) = ("one".to_string(), "two".to_string());
        let (x, y) = (json!(1), json!([2]));
        let mut out = String::new();
        write_object(vec![(&two, &y), (&one, &x)], &mut out);
        assert_eq!(out, r#"{"one":1,"two":[2]}"#);
    }

    #[test]
    fn revisions_are_valid_label_values() {
        let revision = revision_hash(&template("shop:1"));
        assert!(revision.chars().all(|c| c.is_ascii_hexdigit()));
    }
}
