//! The installable artefacts the install tests use: helm, the chart, and the
//! controller image `make image` built.

use std::path::PathBuf;

use serde::Deserialize as _;

/// The chart, in this repository.
pub fn chart_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("charts/siskin")
}

fn cache_dir() -> PathBuf {
    std::env::var_os("SISKIN_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/siskin"))
}

/// helm: `$HELM`, else the one `tests/sandbox/sandbox install` built (the
/// newest under ~/.cache/siskin/helm), else whatever `helm` is on the PATH.
pub fn helm_bin() -> PathBuf {
    if let Some(helm) = std::env::var_os("HELM") {
        return helm.into();
    }
    let mut built: Vec<PathBuf> = std::fs::read_dir(cache_dir().join("helm"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("helm"))
        .filter(|p| p.is_file())
        .collect();
    built.sort();
    built.pop().unwrap_or_else(|| "helm".into())
}

/// Runs helm and returns its stdout; panics with its stderr on failure.
pub fn helm(args: &[&str]) -> String {
    let out = std::process::Command::new(helm_bin())
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "running {} (tests/sandbox/sandbox install builds it): {e}",
                helm_bin().display()
            )
        });
    assert!(
        out.status.success(),
        "helm {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The controller image `make image` built last, pinned by digest:
/// `siskin/controller@sha256:...`.
pub fn controller_image() -> String {
    let layout = std::env::var_os("SISKIN_IMAGE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_dir().join("image"));
    let latest = std::fs::read_to_string(layout.join("latest"))
        .unwrap_or_else(|e| panic!("no image in {}: run `make image` ({e})", layout.display()));
    format!("siskin/controller@{}", latest.trim())
}

/// The objects of a multi-document YAML stream, empty documents left out.
pub fn yaml_objects(yaml: &str) -> Vec<serde_json::Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .filter_map(|doc| serde_json::to_value(serde_yaml::Value::deserialize(doc).ok()?).ok())
        .filter(|v: &serde_json::Value| v.is_object())
        .collect()
}
