//! The one way tests and benchmarks start a Siskin controller: a
//! [`Launch`] says what it watches, where its Lease and log are and what
//! else it gets; [`ControllerProcess`] is the running process, killed on drop.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::TestNamespace;

/// The sandbox's Prometheus and the tests' webhook servers listen on
/// loopback, which the controller's destination policy denies by default
/// (the API server on it stays denied whatever is allowed).
pub const LOOPBACK_DESTINATIONS: [&str; 2] = ["--allow-destination", "127.0.0.0/8"];

/// The log file of the controller `identity` started for `ns`.
pub fn controller_log(ns: &TestNamespace, identity: &str) -> PathBuf {
    let log_dir = std::env::var("SISKIN_SANDBOX")
        .map(|d| format!("{d}/logs"))
        .unwrap_or_else(|_| "/tmp".into());
    PathBuf::from(format!("{log_dir}/controller-{}-{identity}.log", ns.name))
}

/// How to start one `siskin controller`. By default it watches the test
/// namespace only and keeps its Lease there, so tests run side by side;
/// tenant calls may reach loopback, where the sandbox's Prometheus and the
/// tests' servers listen.
pub struct Launch {
    identity: String,
    scope: Vec<String>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    log: PathBuf,
    append: bool,
    binary: PathBuf,
    rust_log: String,
    own_process_group: bool,
    metrics_addr: Option<String>,
}

impl Launch {
    /// The Lease in `namespace` instead of the test namespace.
    pub fn lease_namespace(mut self, namespace: &str) -> Self {
        self.scope[3] = namespace.to_string();
        self
    }

    /// Watching every namespace, as one installed cluster-wide runs, and
    /// managing only the Rollouts labelled `siskin.io/instance:
    /// <instance_id>`, so the controllers of other tests and it never act on
    /// each other's Rollouts. The Lease stays in the test namespace.
    pub fn cluster_wide(mut self, instance_id: &str) -> Self {
        let lease = self.scope[3].clone();
        self.scope = ["--lease-namespace", &lease, "--instance-id", instance_id]
            .map(String::from)
            .to_vec();
        self
    }

    /// Talking to the API server through the kubeconfig at `path` (e.g. a
    /// test's interposer).
    pub fn kubeconfig(self, path: &Path) -> Self {
        self.env("KUBECONFIG", &path.to_string_lossy())
    }

    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_string(), value.to_string()));
        self
    }

    /// More `siskin controller` flags.
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// Appending to the log, so a controller restarted under the same
    /// identity keeps its history.
    pub fn append_log(mut self) -> Self {
        self.append = true;
        self
    }

    /// Another controller binary than the one cargo built with the tests.
    pub fn binary(mut self, binary: PathBuf) -> Self {
        self.binary = binary;
        self
    }

    /// Where it serves /metrics, for [`ControllerProcess::reconciles`]
    /// (without it, on a port nobody knows).
    pub fn metrics_addr(mut self, addr: &str) -> Self {
        self.metrics_addr = Some(addr.to_string());
        self
    }

    /// /metrics on a loopback port free when asked.
    pub fn serving_metrics(self) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
        let addr = listener.local_addr().expect("its address").to_string();
        self.metrics_addr(&addr)
    }

    /// `RUST_LOG` for the controller.
    pub fn rust_log(mut self, filter: &str) -> Self {
        self.rust_log = filter.to_string();
        self
    }

    /// In a process group of its own: a Ctrl-C in the terminal reaches only
    /// the test, which still needs the controller to release finalizers.
    pub fn own_process_group(mut self) -> Self {
        self.own_process_group = true;
        self
    }

    pub fn log(&self) -> &Path {
        &self.log
    }

    pub fn start(self) -> ControllerProcess {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(self.append)
            .truncate(!self.append)
            .open(&self.log)
            .unwrap_or_else(|e| panic!("open {}: {e}", self.log.display()));
        let mut command = tokio::process::Command::new(&self.binary);
        command
            .arg("controller")
            .args(&self.scope)
            .args(["--identity", &self.identity])
            .args(["--metrics-addr", self.metrics_addr.as_deref().unwrap_or("127.0.0.1:0")])
            .args(LOOPBACK_DESTINATIONS)
            .args(&self.args)
            .env("RUST_LOG", &self.rust_log)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .kill_on_drop(true);
        if self.own_process_group {
            command.process_group(0);
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", self.binary.display()));
        ControllerProcess {
            child,
            metrics_addr: self.metrics_addr,
        }
    }
}

/// A running Siskin controller, killed on drop.
pub struct ControllerProcess {
    child: tokio::process::Child,
    metrics_addr: Option<String>,
}

impl ControllerProcess {
    /// The controller `identity` for `ns`, as [`Launch`] describes it.
    pub fn launch(ns: &TestNamespace, identity: &str) -> Launch {
        Launch {
            identity: identity.to_string(),
            scope: ["--namespace", &ns.name, "--lease-namespace", &ns.name]
                .map(String::from)
                .to_vec(),
            args: Vec::new(),
            env: Vec::new(),
            log: controller_log(ns, identity),
            append: false,
            binary: PathBuf::from(env!("CARGO_BIN_EXE_siskin")),
            rust_log: "info,siskin=debug,kube=warn".to_string(),
            own_process_group: false,
            metrics_addr: None,
        }
    }

    /// The controller `identity` for `ns`, with every default.
    pub fn start(ns: &TestNamespace, identity: &str) -> Self {
        Self::launch(ns, identity).start()
    }

    /// Reconciles it has finished (`siskin_reconciles_total`), if it was
    /// launched [`Launch::serving_metrics`] and answers.
    pub async fn reconciles(&self) -> Option<f64> {
        let addr = self.metrics_addr.as_ref().expect("launched serving_metrics");
        let answer = super::http().get(format!("http://{addr}/metrics")).send().await.ok()?;
        let text = answer.text().await.ok()?;
        let line = text.lines().find(|l| l.starts_with("siskin_reconciles_total "))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }

    /// Sends SIGTERM, as Kubernetes does to a pod it stops, and waits up to
    /// 30 s for the process to exit.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal("TERM");
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("the controller exits within 30s of SIGTERM")
            .expect("wait for the controller")
    }

    /// Whether the process is still running (it exits on its own only on an
    /// error, e.g. its Lease task ended).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The process's peak resident memory (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let pid = self.child.id()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// The controller's process id.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("the controller is running")
    }

    /// Sends `signal` (e.g. "STOP", "CONT") to the controller.
    pub fn signal(&self, signal: &str) {
        let pid = self.pid();
        let sent = std::process::Command::new("kill")
            .args([format!("-{signal}"), pid.to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -{signal} {pid}");
    }
}
