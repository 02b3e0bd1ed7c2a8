//! Metric backends beyond a plain Prometheus, on the sandbox. A second,
//! real Prometheus requiring basic auth over TLS (its credentials and CA
//! from Secrets), and the web provider reading a JSON endpoint of this test
//! harness, each decide canaries: a healthy one is promoted, a faulty one
//! aborted, and a wrong password or an untrusted certificate is
//! inconclusive, named, and never promoted.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::*;
use k8s_openapi::api::core::v1::Secret;
use serde_json::json;
use siskin::api::{AnalysisTemplate, Rollout, RolloutPhase, RolloutStatus};

/// The second Prometheus' user and password, and the password's bcrypt hash
/// for its `--web.config.file` (python3 `bcrypt.hashpw(b"canary-s3cret",
/// bcrypt.gensalt(rounds=10))`: a throwaway credential of this test).
const USER: &str = "siskin";
const PASSWORD: &str = "canary-s3cret";
const PASSWORD_BCRYPT: &str = "$2b$10$2jiRolycLL.9VS5pRNIfyeSGQdjBG1rW75qVloqXU64cSzWdMuVXi";

/// The stable and canary error rates of the scenarios.
const BASE_RATE: &str = "0.01";
const FAULTY_STABLE_RATE: &str = "0.001";
const FAULTY_CANARY_RATE: &str = "0.02";
/// Requests per second through the Gateway per scenario.
const LOAD_RATE: &str = "200";

/// Runs `script` with bash; panics with its output if it fails.
fn sh(script: &str) {
    let out = std::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .output()
        .expect("run bash");
    assert!(
        out.status.success(),
        "{script}\nfailed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A Prometheus of its own on a free loopback port, scraping what the
/// sandbox's scrapes, serving only HTTPS to user `siskin`. Stopped on drop.
struct SecuredPrometheus {
    process: tokio::process::Child,
    dir: PathBuf,
    address: String,
    ca_pem: String,
}

impl Drop for SecuredPrometheus {
    fn drop(&mut self) {
        let _ = self.process.start_kill();
        let _ = self.process.try_wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

/// A CA and a serving certificate for 127.0.0.1 signed by it, in `dir`.
fn make_certificates(dir: &Path) {
    let d = dir.display();
    sh(&format!(
        r#"cd {d}
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj /CN=providers-test-ca \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign,digitalSignature 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=prometheus 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n' > server.ext
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -out server.crt -extfile server.ext 2>/dev/null"#
    ));
}

/// The sandbox's own directory, which holds its Prometheus config.
fn sandbox_dir() -> String {
    std::env::var("SISKIN_SANDBOX").unwrap_or_else(|_| "/tmp/siskin-sandbox".into())
}

/// A fresh directory `{name}-NNNNNN` in the sandbox's, with the
/// certificates of [`make_certificates`].
fn certificates_dir(name: &str) -> PathBuf {
    let unique = rand::random::<u32>() % 1_000_000;
    let dir = PathBuf::from(format!("{}/{name}-{unique:06}", sandbox_dir()));
    std::fs::create_dir_all(&dir).expect("a directory");
    make_certificates(&dir);
    dir
}

/// A CA that did not sign the second Prometheus' certificate.
fn other_ca() -> String {
    let dir = certificates_dir("providers-other-ca");
    let ca = std::fs::read_to_string(dir.join("ca.crt")).expect("CA");
    let _ = std::fs::remove_dir_all(&dir);
    ca
}

impl SecuredPrometheus {
    async fn start() -> Self {
        let sandbox = sandbox_dir();
        let dir = certificates_dir("providers-prometheus");
        let web = format!(
            "tls_server_config:\n  cert_file: {d}/server.crt\n  key_file: {d}/server.key\nbasic_auth_users:\n  {USER}: '{PASSWORD_BCRYPT}'\n",
            d = dir.display()
        );
        std::fs::write(dir.join("web.yml"), web).expect("web config");
        let scrape =
            std::fs::read_to_string(format!("{sandbox}/prometheus.yml")).expect("the sandbox Prometheus config");
        std::fs::write(dir.join("prometheus.yml"), scrape).expect("config");
        let port = free_port();
        let log = std::fs::File::create(dir.join("prometheus.log")).expect("log");
        let process = tokio::process::Command::new("prometheus")
            .arg(format!("--config.file={}/prometheus.yml", dir.display()))
            .arg(format!("--web.config.file={}/web.yml", dir.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg(format!("--storage.tsdb.path={}/data", dir.display()))
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("start prometheus");
        let ca_pem = std::fs::read_to_string(dir.join("ca.crt")).expect("CA");
        let address = format!("https://127.0.0.1:{port}");
        let prometheus = SecuredPrometheus {
            process,
            dir,
            address,
            ca_pem,
        };
        prometheus.wait_ready().await;
        prometheus
    }

    /// Ready, refusing requests without the password, and scraping Traefik.
    async fn wait_ready(&self) {
        let ca = reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).expect("CA");
        let client = reqwest::Client::builder()
            .no_proxy()
            .tls_certs_only([ca])
            .timeout(Duration::from_secs(5))
            .build()
            .expect("client");
        let query = format!("{}/api/v1/query?query=up{{job=\"traefik\"}}", self.address);
        eventually(
            "the second Prometheus to scrape Traefik",
            Duration::from_secs(60),
            || async {
                let answer = client.get(&query).basic_auth(USER, Some(PASSWORD)).send().await.ok()?;
                let body: serde_json::Value = answer.json().await.ok()?;
                (body["data"]["result"][0]["value"][1] == "1").then_some(())
            },
        )
        .await;
        let anonymous = client.get(&query).send().await.expect("an answer");
        assert_eq!(
            anonymous.status().as_u16(),
            401,
            "the second Prometheus requires the password"
        );
    }
}

/// A Secret analysis may use (labelled for it), from string values.
fn credentials(name: &str, data: &[(&str, &str)]) -> Secret {
    let data: serde_json::Map<String, serde_json::Value> =
        data.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"siskin.io/analysis-credentials": "true"}},
        "stringData": data,
    }))
    .expect("secret")
}

/// The Traefik error-rate template, reading the secured Prometheus with the
/// Secrets `prom-auth` and `prom-ca`.
fn secured_template(address: &str) -> AnalysisTemplate {
    let template = traefik_error_template(address, "traefik_service_requests_total");
    let mut value = serde_json::to_value(&template).expect("template");
    value["spec"]["metrics"][0]["provider"]["prometheus"] = json!({
        "address": address,
        "timeout": "4s",
        "auth": {"basic": {"secret": "prom-auth"}},
        "tls": {"ca": {"secret": "prom-ca"}},
    });
    serde_json::from_value(value).expect("template")
}

/// Creates `template`, with this tree's AnalysisTemplate CRDs applied
/// first: the shared sandbox may run CRDs from a tree without the provider
/// fields, whose API server would drop them. Applied as `kubectl apply
/// --server-side` does, so a later apply from any tree does not conflict.
async fn create_template(ns: &TestNamespace, template: &AnalysisTemplate) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::CustomResourceExt;
    use kube::api::{Patch, PatchParams, PostParams};
    let crds: kube::Api<CustomResourceDefinition> = kube::Api::all(ns.client.clone());
    let templates = ns.api::<AnalysisTemplate>();
    let wanted = &template.spec.metrics[0].provider;
    for _ in 0..10 {
        for crd in [AnalysisTemplate::crd(), siskin::api::ClusterAnalysisTemplate::crd()] {
            let name = crd.metadata.name.clone().unwrap_or_default();
            let apply = PatchParams::apply("kubectl").force();
            crds.patch(&name, &apply, &Patch::Apply(&crd))
                .await
                .expect("apply the CRD");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let _ = templates.delete("errors", &Default::default()).await;
        let stored = templates.create(&PostParams::default(), template).await;
        if stored.is_ok_and(|t| &t.spec.metrics[0].provider == wanted) {
            return;
        }
    }
    panic!("the API server keeps dropping the provider fields of AnalysisTemplates");
}

struct Scenario {
    /// First field, dropped first: a failed scenario still lets its
    /// namespace go.
    ns: TestNamespace,
    host: String,
    _controller: ControllerProcess,
    _load: Option<tokio::process::Child>,
}

/// A namespace with the demo route, `secrets`, `template` as AnalysisTemplate
/// `errors`, a controller, and Rollout `demo` healthy at v1.
async fn scenario(
    prefix: &str,
    template: AnalysisTemplate,
    secrets: Vec<Secret>,
    stable_rate: &str,
    hold: serde_json::Value,
) -> Scenario {
    let ns = TestNamespace::new(prefix).await;
    let host = demo_route(&ns).await;
    for secret in &secrets {
        create(&ns.api(), secret).await;
    }
    create_template(&ns, &template).await;
    let controller = ControllerProcess::start(&ns, "a");
    let rollout: Rollout = analysed_canary(stable_rate, hold);
    create_stable_within(&ns, &rollout, Duration::from_secs(150)).await;
    Scenario {
        ns,
        host,
        _controller: controller,
        _load: None,
    }
}

impl Scenario {
    /// Starts steady load through the Gateway, then releases v2 at `rate`.
    async fn release(&mut self, canary_rate: &str) -> String {
        let v1 = rollout_status(&self.ns, "demo")
            .await
            .and_then(|s| s.stable_revision)
            .expect("v1");
        let load = tokio::process::Command::new(env!("CARGO_BIN_EXE_loadgen"))
            .args(["--url", &format!("{GATEWAY_URL}/"), "--rate", LOAD_RATE])
            .args(["--duration", "300s", "--header", &format!("host:{}", self.host)])
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start loadgen");
        self._load = Some(load);
        tokio::time::sleep(Duration::from_secs(3)).await;
        let template = demo_template_with_errors("v2", canary_rate);
        patch_spec(&self.ns, "demo", json!({"template": template})).await;
        v1
    }

    async fn wait(&self, what: &str, pred: impl Fn(&RolloutStatus) -> bool) -> RolloutStatus {
        wait_rollout_within(&self.ns, "demo", what, Duration::from_secs(240), pred).await
    }

    async fn promoted(mut self) {
        let v1 = self.release(BASE_RATE).await;
        let status = self
            .wait("the healthy canary to be promoted", |s| {
                s.phase == Some(RolloutPhase::Healthy) && s.stable_revision.as_deref() != Some(v1.as_str())
            })
            .await;
        println!("{}: promoted: {:?}", self.ns.name, status.message);
        delete_rollouts(&self.ns).await;
    }

    async fn aborted(mut self) {
        self.release(FAULTY_CANARY_RATE).await;
        let status = self.wait("the faulty canary to be aborted", is_aborted).await;
        println!("{}: aborted: {:?}", self.ns.name, status.message);
        let (_, reason, message) = condition_of(&status, "Aborted").expect("Aborted condition");
        assert_eq!(reason, "Regression", "aborted by the analysis: {message}");
        assert_eq!(
            demo_route_weights(&self.ns).await,
            vec![("demo-stable".into(), 100), ("demo-canary".into(), 0)],
            "all traffic back on stable"
        );
        delete_rollouts(&self.ns).await;
    }

    /// Paused inconclusive, with a condition naming the metric and `cause`,
    /// and still not promoted a while later.
    async fn inconclusive(mut self, cause: &str) {
        self.release(BASE_RATE).await;
        let status = self
            .wait("an inconclusive pause", |s| s.phase == Some(RolloutPhase::Paused))
            .await;
        let (_, reason, message) = condition_of(&status, "Paused").expect("Paused condition");
        println!("{}: paused: {message}", self.ns.name);
        assert_eq!(reason, "Inconclusive");
        assert!(
            message.contains("metric error-rate"),
            "the condition names the metric: {message}"
        );
        assert!(
            message.contains(cause),
            "the condition names the cause ({cause}): {message}"
        );
        let later = next_evaluation(&self.ns, "demo", &status, Duration::from_secs(120)).await;
        assert_eq!(later.phase, Some(RolloutPhase::Paused), "still paused");
        assert_ne!(later.stable_revision, later.canary_revision, "never promoted");
        delete_rollouts(&self.ns).await;
    }
}

/// What a scenario's release must come to.
enum Expected {
    Promoted,
    Aborted,
    /// Paused, with a condition naming this cause.
    Inconclusive(&'static str),
}

impl Expected {
    /// Stable's error rate and the step's hold for the scenario: a faulty
    /// canary's hold outlasts the test, so only the analysis ends it.
    fn stable_rate_and_hold(&self) -> (&'static str, serde_json::Value) {
        match self {
            Expected::Promoted => (BASE_RATE, json!({"min": "10s", "max": "200s"})),
            Expected::Aborted => (FAULTY_STABLE_RATE, json!({"min": "200s", "max": "220s"})),
            Expected::Inconclusive(_) => (BASE_RATE, json!({"min": "5s", "max": "60s"})),
        }
    }
}

/// A scenario: its namespace prefix, its Secrets, and what it must come to.
struct Case(&'static str, Vec<Secret>, Expected);

/// Runs the cases side by side, each in its namespace with `template`.
async fn run_side_by_side(template: impl Fn() -> AnalysisTemplate, cases: Vec<Case>) {
    let runs = cases.into_iter().map(|Case(prefix, secrets, expected)| {
        let (stable_rate, hold) = expected.stable_rate_and_hold();
        let template = template();
        async move {
            let s = scenario(prefix, template, secrets, stable_rate, hold).await;
            match expected {
                Expected::Promoted => s.promoted().await,
                Expected::Aborted => s.aborted().await,
                Expected::Inconclusive(cause) => s.inconclusive(cause).await,
            }
        }
    });
    futures::future::join_all(runs).await;
}

#[tokio::test]
#[ignore = "needs the sandbox: make test"]
async fn prometheus_behind_basic_auth_and_tls_decides_canaries_and_a_wrong_password_is_inconclusive() {
    let prometheus = SecuredPrometheus::start().await;
    let ca = credentials("prom-ca", &[("ca.crt", &prometheus.ca_pem)]);
    let auth = |password: &str| credentials("prom-auth", &[("username", USER), ("password", password)]);
    let other_ca = credentials("prom-ca", &[("ca.crt", &other_ca())]);
    let cases = vec![
        Case("auth-healthy", vec![auth(PASSWORD), ca.clone()], Expected::Promoted),
        Case("auth-faulty", vec![auth(PASSWORD), ca.clone()], Expected::Aborted),
        Case(
            "auth-wrong",
            vec![auth("not-the-password"), ca.clone()],
            Expected::Inconclusive("HTTP 401: the credentials were refused"),
        ),
        Case(
            "auth-untrusted",
            vec![auth(PASSWORD), other_ca],
            Expected::Inconclusive("TLS handshake failed"),
        ),
    ];
    run_side_by_side(|| secured_template(&prometheus.address), cases).await;
}

/// The key the counts endpoint requires in `X-Api-Key`.
const COUNTS_KEY: &str = "counts-key-0b1c";

/// One arm's counters from the sandbox Prometheus (Traefik's per-Service
/// counters), or `None` before its first request.
async fn arm_counts(namespace: &str, service: &str) -> Option<(f64, f64)> {
    let selector = format!(r#"service=~".*-svc-{namespace}-{service}-.*""#);
    let read = |query: String| async move {
        let url = format!("{PROMETHEUS_URL}/api/v1/query");
        let answer = http().get(&url).query(&[("query", query)]).send().await.ok()?;
        let body: serde_json::Value = answer.json().await.ok()?;
        let value = body["data"]["result"][0]["value"][1].as_str()?.parse::<f64>().ok();
        Some(value)
    };
    let total = read(format!("sum(traefik_service_requests_total{{{selector}}})")).await??;
    let errors = read(format!(
        r#"sum(traefik_service_requests_total{{{selector},code=~"5.."}})"#
    ))
    .await?
    .unwrap_or(0.0);
    Some((total, errors))
}

/// `GET /counts?namespace=&service=` → `{"arm": {"requests": N, "errors": M}}`,
/// for callers sending the key; `{"arm": {}}` before any request.
async fn counts(
    headers: axum::http::HeaderMap,
    axum::extract::Query(query): axum::extract::Query<HashMap<String, String>>,
) -> (axum::http::StatusCode, String) {
    if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some(COUNTS_KEY) {
        return (axum::http::StatusCode::UNAUTHORIZED, "{}".into());
    }
    let (Some(ns), Some(service)) = (query.get("namespace"), query.get("service")) else {
        return (axum::http::StatusCode::BAD_REQUEST, "{}".into());
    };
    let arm = match arm_counts(ns, service).await {
        Some((requests, errors)) => json!({"service": service, "requests": requests, "errors": errors}),
        None => json!({"service": service}),
    };
    (axum::http::StatusCode::OK, json!({"arm": arm}).to_string())
}

/// The counts endpoint on a free loopback port; stopped when the test ends.
async fn start_counts_server() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    let app = axum::Router::new().route("/counts", axum::routing::get(counts));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    port
}

/// AnalysisTemplate `errors` with the web provider reading the counts
/// endpoint, its key from the Secret `counts-key`.
fn web_template(port: u16) -> AnalysisTemplate {
    serde_json::from_value(json!({
        "apiVersion": "siskin.io/v1alpha1", "kind": "AnalysisTemplate",
        "metadata": {"name": "errors"},
        "spec": {
            "requireNamespace": true,
            "metrics": [{
                "name": "error-rate",
                "provider": {"web": {
                    "url": format!("http://127.0.0.1:{port}/counts?namespace={{{{namespace}}}}&service={{{{service}}}}"),
                    "headers": [{"name": "X-Api-Key", "valueFrom": {"secret": "counts-key", "key": "key"}}],
                }},
                "counts": {"total": "$.arm.requests", "errors": "$.arm.errors"},
                "judge": {"sequential": {"alpha": 0.05, "tolerance": 0.25, "margin": 1.0}},
            }],
        }
    }))
    .expect("template")
}

#[tokio::test]
#[ignore = "needs the sandbox: make test"]
async fn web_provider_counts_from_a_json_endpoint_promote_a_healthy_canary_and_abort_a_faulty_one() {
    let port = start_counts_server().await;
    let key = || credentials("counts-key", &[("key", COUNTS_KEY)]);
    let cases = vec![
        Case("web-healthy", vec![key()], Expected::Promoted),
        Case("web-faulty", vec![key()], Expected::Aborted),
    ];
    run_side_by_side(|| web_template(port), cases).await;
}
