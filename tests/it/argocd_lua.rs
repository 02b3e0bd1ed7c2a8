//! The Argo CD health and actions in gitops/argocd, run by Debian's Lua
//! 5.4 against Rollouts captured from sandbox runs. `make test` installs
//! lua5.4 (tests/sandbox/install.sh); a plain `cargo test` without it says
//! so and passes.

use std::process::{Command, Output};

/// Runs `program` on `script`, a path in the repository, from its root.
fn run_from_root(program: &str, script: &str) -> std::io::Result<Output> {
    Command::new(program)
        .arg(script)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
}

#[test]
fn argo_cd_health_and_actions_read_real_rollouts() {
    let run = run_from_root("lua5.4", "gitops/argocd/test.lua");
    let out = match run {
        Ok(out) => out,
        Err(e) if std::env::var_os("SISKIN_SANDBOX").is_none() => {
            eprintln!("skipped: lua5.4 is not installed ({e}); `make test` installs it");
            return;
        }
        Err(e) => panic!("lua5.4 is missing under `make test`: {e}"),
    };
    let report = String::from_utf8_lossy(&out.stdout);
    println!("{report}");
    assert!(
        out.status.success(),
        "the Lua tests failed:\n{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The argocd-cm patch holds the health check and the five actions, each
/// script as it is in the repository.
#[test]
fn the_argocd_cm_patch_carries_every_script() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = run_from_root("bash", "gitops/argocd/render.sh").expect("run render.sh");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let patch: serde_json::Value = serde_yaml::from_slice(&out.stdout).expect("YAML");
    let data = &patch["data"];
    let health = data["resource.customizations.health.siskin.io_Rollout"]
        .as_str()
        .expect("health");
    let on_disk =
        std::fs::read_to_string(format!("{root}/gitops/argocd/siskin.io/Rollout/health.lua")).expect("health.lua");
    assert_eq!(health, on_disk);
    let actions = data["resource.customizations.actions.siskin.io_Rollout"]
        .as_str()
        .expect("actions");
    let actions: serde_json::Value = serde_yaml::from_str(actions).expect("actions YAML");
    let names: Vec<&str> = actions["definitions"]
        .as_array()
        .expect("definitions")
        .iter()
        .filter_map(|d| d["name"].as_str())
        .collect();
    assert_eq!(names, ["promote", "promote-full", "abort", "retry", "resume"]);
    assert!(actions["discovery.lua"].as_str().is_some_and(|s| s.contains("retry")));
}
