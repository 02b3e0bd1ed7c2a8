//! A pod's ServiceAccount credentials, written as a kubelet projects them:
//! a token bound to the pod from the TokenRequest API, the cluster CA from
//! the namespace's kube-root-ca.crt ConfigMap, and the namespace.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use kube::api::PostParams;
use kube::{Api, Client};
use serde_json::json;

/// A kubelet asks for an hour and refreshes once 80% of it has passed.
const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// The projected volume of one pod.
pub struct Projected {
    pub dir: PathBuf,
    namespace: String,
    pod: String,
    uid: String,
    service_account: String,
    written: Instant,
}

impl Projected {
    pub async fn write(
        client: &Client,
        dir: PathBuf,
        namespace: &str,
        pod: &str,
        uid: &str,
        service_account: &str,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let roots: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
        let ca = roots
            .get("kube-root-ca.crt")
            .await
            .context("reading ConfigMap kube-root-ca.crt")?
            .data
            .and_then(|mut d| d.remove("ca.crt"))
            .context("ConfigMap kube-root-ca.crt has no ca.crt")?;
        write_file(&dir, "ca.crt", ca.as_bytes())?;
        write_file(&dir, "namespace", namespace.as_bytes())?;
        let mut projected = Projected {
            dir,
            namespace: namespace.to_owned(),
            pod: pod.to_owned(),
            uid: uid.to_owned(),
            service_account: service_account.to_owned(),
            written: Instant::now(),
        };
        projected.write_token(client).await?;
        Ok(projected)
    }

    /// Replaces the token once it is 80% through its life; kube clients
    /// read the file again on their own.
    pub async fn refresh(&mut self, client: &Client) -> anyhow::Result<()> {
        if self.written.elapsed() < TOKEN_LIFETIME.mul_f64(0.8) {
            return Ok(());
        }
        self.write_token(client).await
    }

    async fn write_token(&mut self, client: &Client) -> anyhow::Result<()> {
        let request: TokenRequest = serde_json::from_value(json!({
            "spec": {
                "audiences": [],
                "expirationSeconds": TOKEN_LIFETIME.as_secs(),
                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": self.pod, "uid": self.uid},
            }
        }))?;
        let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &self.namespace);
        let issued = accounts
            .create_token_request(&self.service_account, &PostParams::default(), &request)
            .await
            .with_context(|| format!("requesting a token for ServiceAccount {}", self.service_account))?;
        let token = issued
            .status
            .and_then(|s| s.token)
            .context("the TokenRequest came back without a token")?;
        write_file(&self.dir, "token", token.as_bytes())?;
        self.written = Instant::now();
        Ok(())
    }
}

impl Drop for Projected {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Written aside and renamed, so a reader never sees half a token; 0644 as
/// a projected volume's default mode, readable by the pod's non-root user.
fn write_file(dir: &Path, name: &str, data: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, data)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))?;
    std::fs::rename(&tmp, dir.join(name))?;
    Ok(())
}
