//! Realistic traffic for the sandbox tests: the demo app with a service's
//! latency and error rate, a steady request rate through Traefik, and the
//! shipped analysis templates installed as a user installs them.

use std::io::Write as _;
use std::process::{Command, Stdio};

use serde_json::json;

use super::{GATEWAY_URL, PROMETHEUS_URL};

/// How one version of the demo app behaves: its share of 5xx answers and
/// its log-normal latency (median and 99th percentile).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Behaviour {
    pub error_rate: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

impl Behaviour {
    /// A healthy web service: p50 20 ms, p99 80 ms, 0.1 % 5xx.
    pub const HEALTHY: Behaviour = Behaviour {
        error_rate: 0.001,
        p50_ms: 20.0,
        p99_ms: 80.0,
    };

    pub const fn with_errors(self, error_rate: f64) -> Behaviour {
        Behaviour { error_rate, ..self }
    }

    /// Every request `factor` times as slow (the whole distribution scaled).
    pub const fn slower(self, factor: f64) -> Behaviour {
        Behaviour {
            p50_ms: self.p50_ms * factor,
            p99_ms: self.p99_ms * factor,
            ..self
        }
    }

    /// The demo app's environment for this behaviour.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("DEMO_ERROR_RATE", self.error_rate.to_string()),
            ("DEMO_LATENCY_P50_MS", self.p50_ms.to_string()),
            ("DEMO_LATENCY_P99_MS", self.p99_ms.to_string()),
        ]
    }
}

/// The demo app's pod template at `version`, behaving as `behaviour`.
pub fn demo_template_behaving(version: &str, behaviour: Behaviour) -> serde_json::Value {
    let mut template = super::demo_template(version);
    let env = template["spec"]["containers"][0]["env"]
        .as_array_mut()
        .expect("the demo template has an env list");
    env.extend(
        behaviour
            .env()
            .into_iter()
            .map(|(name, value)| json!({"name": name, "value": value})),
    );
    template
}

/// `rate` requests per second for `host` through the sandbox Gateway, on a
/// fixed schedule, until the child is dropped (or 20 minutes pass).
pub fn steady_load(host: &str, rate: u32) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["--url", &format!("{GATEWAY_URL}/")])
        .args(["--rate", &rate.to_string(), "--duration", "20m"])
        .args(["--header", &format!("host:{host}")])
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start loadgen")
}

/// The shipped Traefik/Gateway API templates, in this repository.
pub const SHIPPED_TRAEFIK_TEMPLATES: &str = "analysis-templates/traefik-gateway-api.yaml";

/// The Prometheus address the shipped templates carry, which their comment
/// tells users to set for their cluster.
const SHIPPED_PROMETHEUS: &str = "http://prometheus.monitoring:9090";

/// Installs the shipped Traefik templates as a user would: `kubectl apply
/// -f` of the file with only the Prometheus address set, here to the
/// sandbox's. Returns the names of the ClusterAnalysisTemplates applied.
pub fn install_shipped_traefik_templates() -> Vec<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(SHIPPED_TRAEFIK_TEMPLATES);
    let shipped = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    assert!(
        shipped.contains(SHIPPED_PROMETHEUS),
        "{SHIPPED_TRAEFIK_TEMPLATES} no longer names {SHIPPED_PROMETHEUS}; update this helper"
    );
    let yaml = shipped.replace(SHIPPED_PROMETHEUS, PROMETHEUS_URL);
    let names = super::deploy::yaml_objects(&yaml)
        .iter()
        .filter(|o| o["kind"] == "ClusterAnalysisTemplate")
        .filter_map(|o| o["metadata"]["name"].as_str().map(str::to_owned))
        .collect();
    let mut kubectl = Command::new("kubectl")
        .args(["apply", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kubectl");
    kubectl
        .stdin
        .take()
        .expect("kubectl's stdin")
        .write_all(yaml.as_bytes())
        .expect("write the templates to kubectl");
    let out = kubectl.wait_with_output().expect("wait for kubectl");
    assert!(
        out.status.success(),
        "kubectl apply -f {SHIPPED_TRAEFIK_TEMPLATES}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    names
}
