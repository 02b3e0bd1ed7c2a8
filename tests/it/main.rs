//! Siskin's integration tests, one binary: each module was once its own
//! test file. Most need the sandbox and are `#[ignore]`d, so a plain `cargo
//! test` stays offline; `make test` brings the sandbox up and runs this
//! binary once per module, one module after another, so timing-sensitive
//! tests never share the machine with another module's load.

mod ab_test_gateway;
mod analysis_gateway;
mod argocd_lua;
mod autoscaling;
mod bad_input;
mod bench_scale;
mod blue_green;
mod canary_gateway;
mod canary_istio;
mod canary_replica_ratio;
mod chart;
mod controller_resilience;
mod crd_drift;
mod decisions_on_real_services;
mod hardening;
mod in_cluster;
mod judge_simulation;
mod krew;
mod leader_fencing;
mod manifests;
mod metric_providers;
mod real_services;
mod rolling;
mod rollout_queue;
mod sandbox;
mod support;
mod webhooks;
