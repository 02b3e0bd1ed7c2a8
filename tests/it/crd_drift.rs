//! `manifests/crds/` is generated from `src/api`; this test fails when the two
//! drift apart, so a CRD change can't be merged without its YAML.

use std::path::PathBuf;

const REGENERATE: &str = "cargo run -- crd > manifests/crds/rollout.yaml";

fn manifest_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("manifests/crds/rollout.yaml")
}

#[test]
fn crd_manifest_matches_the_types() {
    let generated = siskin::api::crds_yaml();
    let path = manifest_path();
    // SISKIN_UPDATE_CRDS=1 rewrites the file from the types, for when the CLI
    // itself does not build.
    if std::env::var_os("SISKIN_UPDATE_CRDS").is_some() {
        std::fs::write(&path, &generated).expect("manifests/crds/rollout.yaml is writable");
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    if on_disk != generated {
        let first_difference = on_disk
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .map_or_else(
                || "one file is a prefix of the other".to_string(),
                |i| format!("first difference at line {}", i + 1),
            );
        panic!(
            "{} is out of date with src/api ({first_difference}).\nRegenerate it with:\n    {REGENERATE}",
            path.display()
        );
    }
}
