//! The controller image, served from an OCI image layout (what `make image`
//! writes): a pod whose image is pinned by a digest found in the layout runs
//! the image's own files, unpacked once per digest.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use serde::Deserialize;

/// An OCI image layout on disk and where its images are unpacked.
pub struct ImageStore {
    layout: PathBuf,
    unpacked: PathBuf,
}

#[derive(Deserialize)]
struct Manifest {
    layers: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct Descriptor {
    digest: String,
}

impl ImageStore {
    pub fn new(layout: PathBuf, unpacked: PathBuf) -> Self {
        ImageStore { layout, unpacked }
    }

    /// The manifest digest (hex) of `image` if it is pinned by digest
    /// (`name@sha256:...`) and the layout holds that manifest. A tag names
    /// nothing here: the layout is a cache of builds, not a registry.
    pub fn resolve(&self, image: &str) -> Option<String> {
        let (_, hex) = image.rsplit_once("@sha256:")?;
        let valid = hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit());
        (valid && self.blob(hex).is_file()).then(|| hex.to_owned())
    }

    fn blob(&self, hex: &str) -> PathBuf {
        self.layout.join("blobs").join("sha256").join(hex)
    }

    /// The image's root filesystem, unpacked on first use. Layers are
    /// applied in order; whiteouts are not handled, which the single-layer
    /// controller image never has.
    pub fn rootfs(&self, hex: &str) -> anyhow::Result<PathBuf> {
        let root = self.unpacked.join(hex);
        if root.is_dir() {
            return Ok(root);
        }
        let manifest_path = self.blob(hex);
        let manifest: Manifest = serde_json::from_slice(
            &std::fs::read(&manifest_path).with_context(|| format!("reading {}", manifest_path.display()))?,
        )
        .with_context(|| format!("parsing the manifest {}", manifest_path.display()))?;
        let staging = self.unpacked.join(format!("{hex}.tmp"));
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(&staging)?;
        for layer in &manifest.layers {
            let Some(layer_hex) = layer.digest.strip_prefix("sha256:") else {
                bail!("layer digest {} is not sha256", layer.digest);
            };
            untar(&self.blob(layer_hex), &staging)?;
        }
        // The kubelet's mount point for the ServiceAccount token, and the
        // device nodes every container runtime provides (getrandom falls
        // back to /dev/urandom in a static binary).
        std::fs::create_dir_all(staging.join(SERVICE_ACCOUNT_DIR))?;
        std::fs::create_dir_all(staging.join("dev"))?;
        for device in DEVICES {
            std::fs::write(staging.join("dev").join(device), b"")?;
        }
        std::fs::rename(&staging, &root)?;
        Ok(root)
    }
}

/// Where a kubelet mounts a pod's ServiceAccount token, CA and namespace,
/// and where kube clients look for them in cluster.
pub const SERVICE_ACCOUNT_DIR: &str = "var/run/secrets/kubernetes.io/serviceaccount";

/// The host's device nodes bound into a container's /dev.
pub const DEVICES: [&str; 4] = ["null", "zero", "random", "urandom"];

fn untar(layer: &Path, into: &Path) -> anyhow::Result<()> {
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(layer)
        .arg("-C")
        .arg(into)
        .status()
        .context("running tar")?;
    if !status.success() {
        bail!("tar -xzf {} failed: {status}", layer.display());
    }
    Ok(())
}
