//! plugins/siskin.yaml is a krew Plugin whose every platform installs the
//! CLI as `kubectl-siskin`, the name kubectl looks for.

#[test]
fn the_krew_manifest_installs_kubectl_siskin() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/plugins/siskin.yaml");
    let text = std::fs::read_to_string(path).expect("plugins/siskin.yaml");
    let plugin: serde_json::Value = serde_yaml::from_str(&text).expect("YAML");
    assert_eq!(plugin["apiVersion"], "krew.googlecontainertools.github.com/v1alpha2");
    assert_eq!(plugin["kind"], "Plugin");
    assert_eq!(plugin["metadata"]["name"], "siskin");
    let version = format!("v{}", env!("CARGO_PKG_VERSION"));
    assert_eq!(plugin["spec"]["version"], version.as_str(), "the crate's version");
    let platforms = plugin["spec"]["platforms"].as_array().expect("platforms");
    assert!(!platforms.is_empty());
    for platform in platforms {
        assert_eq!(platform["bin"], "kubectl-siskin");
        let uri = platform["uri"].as_str().expect("uri");
        assert!(uri.contains(&version), "{uri} names the version");
    }
}
