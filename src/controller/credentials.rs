//! The Secret values a metric's provider uses, read where the template's
//! scope says: a ClusterAnalysisTemplate's from the controller's own
//! namespace, an AnalysisTemplate's from its (the Rollout's) namespace. Only
//! Secrets labelled `siskin.io/analysis-credentials: "true"` are used.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};

use crate::analysis::provider::SecretValues;
use crate::api::analysis_template::{CREDENTIALS_LABEL, ConnectionSpec};

/// Reads every Secret key `spec` names from `namespace`, one `get` per
/// Secret. Errors name the Secret and key, never a value.
pub async fn read(client: &Client, namespace: &str, spec: Option<&ConnectionSpec>) -> Result<SecretValues, String> {
    let mut values = SecretValues::new();
    let Some(spec) = spec else {
        return Ok(values);
    };
    let mut wanted: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (secret, key) in spec.secret_keys() {
        wanted.entry(secret).or_default().push(key);
    }
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    for (name, keys) in wanted {
        let secret = match api.get_opt(&name).await {
            Ok(Some(secret)) => secret,
            Ok(None) => return Err(format!("Secret {namespace}/{name} not found")),
            Err(e) => return Err(format!("reading Secret {namespace}/{name}: {}", kube_reason(&e))),
        };
        let labelled = secret
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(CREDENTIALS_LABEL))
            .is_some_and(|v| v == "true");
        if !labelled {
            return Err(format!(
                "Secret {namespace}/{name} is not labelled {CREDENTIALS_LABEL}=true, so analysis may not use it"
            ));
        }
        let data = secret.data.unwrap_or_default();
        for key in keys {
            let value = data
                .get(&key)
                .ok_or_else(|| format!("Secret {namespace}/{name} has no key {key:?}"))?;
            values.insert((name.clone(), key), value.0.clone());
        }
    }
    Ok(values)
}

/// The API server's reason (e.g. `Forbidden`), not its whole message.
fn kube_reason(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => format!("{} ({})", status.reason, status.code),
        other => other.to_string(),
    }
}
