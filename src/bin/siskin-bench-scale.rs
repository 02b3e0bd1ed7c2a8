//! Scale benchmark of the controller on the sandbox. Creates N Rollouts, each
//! with its own HTTPRoute on the sandbox Gateway, waits until all are Healthy,
//! then releases a new template on M of them at once and follows them through
//! two weight steps to promotion. Prints, per phase, the controller's RSS,
//! reconcile latency, reconciles and API writes per Rollout, and how long the
//! Rollouts took against the floor their holds set. It measures; it asserts
//! nothing.
//!
//! Stable revisions run no pods by default (`--replicas 0`); the engine still
//! gives each canary one pod, which lands on a kwok node of the benchmark's
//! own. The image is not a demo-app image, so the pod runner starts nothing.
//!
//! Run inside the sandbox (`tests/sandbox/sandbox exec -- ...`); it starts
//! its own controller in a fresh namespace and deletes everything it made.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use clap::Parser;
use futures::{StreamExt, TryStreamExt, stream};
use gateway_api::httproutes::HttpRoute;
use k8s_openapi::api::core::v1::{Namespace, Node};
use k8s_openapi::api::events::v1::Event;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use siskin::api::{Rollout, RolloutPhase};

#[derive(Parser, Debug)]
#[command(about = "Scale benchmark of the Siskin controller on the sandbox")]
struct Args {
    /// Rollouts to create.
    #[arg(long, default_value_t = 100)]
    rollouts: usize,
    /// How many of them get a new template at once (default: all).
    #[arg(long)]
    progressing: Option<usize>,
    /// Pods per Rollout.
    #[arg(long, default_value_t = 0)]
    replicas: i32,
    /// Minimum hold of each of the two weight steps (10 %, then 50 %).
    #[arg(long, default_value = "5s")]
    hold: String,
    /// Rollouts without trafficRouting (replica-ratio canaries, no HTTPRoute).
    #[arg(long)]
    no_route: bool,
    /// The controller binary (default: `siskin` next to this one).
    #[arg(long)]
    controller: Option<PathBuf>,
    /// The controller's `--concurrency`.
    #[arg(long, default_value_t = 32)]
    concurrency: u16,
    /// Where the controller serves /metrics (inside the netns).
    #[arg(long, default_value_t = 18090)]
    metrics_port: u16,
    /// Create and patch requests the benchmark itself keeps in flight.
    #[arg(long, default_value_t = 16)]
    parallel: usize,
    /// Give up on a phase after this many seconds.
    #[arg(long, default_value_t = 900)]
    timeout: u64,
}

const IMAGE: &str = "registry.invalid/noop";
const WRITE_KINDS: [&str; 6] = [
    "route_patch",
    "status_patch",
    "deployment_apply",
    "deployment_scale",
    "service_apply",
    "event",
];
/// Kernel clock ticks per second for /proc/<pid>/stat (USER_HZ, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// What the watch saw of one Rollout, and when it reached each milestone of
/// the release: canary at 10 % on the route, at 50 %, promoted.
#[derive(Default)]
struct Seen {
    phase: Option<RolloutPhase>,
    stable: Option<String>,
    released: Option<(Instant, Option<String>)>,
    reached: [Option<Duration>; 3],
}

type Tracker = Arc<Mutex<HashMap<String, Seen>>>;

fn record(tracker: &Tracker, rollout: &Rollout) {
    let Some(status) = &rollout.status else { return };
    let Ok(mut seen) = tracker.lock() else { return };
    let entry = seen.entry(rollout.name_any()).or_default();
    entry.phase = status.phase;
    entry.stable = status.stable_revision.clone();
    let Some((at, old_stable)) = &entry.released else {
        return;
    };
    let promoted = status.phase == Some(RolloutPhase::Healthy)
        && status.stable_revision.is_some()
        && status.stable_revision != *old_stable;
    // A watch may skip an intermediate state: a later milestone implies the
    // earlier ones.
    let observed = status.observed_canary_weight;
    let at_50 = observed == Some(50) || promoted;
    let hits = [observed == Some(10) || at_50, at_50, promoted];
    let elapsed = at.elapsed();
    for (slot, hit) in entry.reached.iter_mut().zip(hits) {
        if hit && slot.is_none() {
            *slot = Some(elapsed);
        }
    }
}

/// One reading of the controller process and its /metrics.
#[derive(Clone)]
struct Sample {
    at: Instant,
    rss_kib: u64,
    hwm_kib: u64,
    cpu_ticks: u64,
    /// The machine's 1-minute load average: the controller shares its CPUs.
    load: f64,
    series: BTreeMap<String, f64>,
}

impl Sample {
    fn get(&self, key: &str) -> f64 {
        self.series.get(key).copied().unwrap_or(0.0)
    }

    fn writes(&self, kind: &str) -> f64 {
        self.get(&format!("siskin_api_writes_total{{kind=\"{kind}\"}}"))
    }
}

/// VmRSS and VmHWM (KiB) and user + system CPU ticks of a process.
fn read_proc(pid: u32) -> anyhow::Result<(u64, u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = |field: &str| {
        let line = status.lines().find(|l| l.starts_with(field));
        line.and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .ok_or_else(|| anyhow!("no {field} in /proc/{pid}/status"))
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // After the parenthesised command name, utime and stime are fields 11
    // and 12 (14 and 15 of the whole line).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<u64> = rest.split_whitespace().map(|f| f.parse().unwrap_or(0)).collect();
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    Ok((kib("VmRSS:")?, kib("VmHWM:")?, ticks))
}

/// The API server's non-2xx answers on Rollouts so far, by verb,
/// subresource and code (whole cluster: other users of the sandbox count too).
async fn rollout_refusals() -> BTreeMap<String, f64> {
    let out = tokio::process::Command::new("kubectl")
        .args(["get", "--raw", "/metrics"])
        .output()
        .await;
    let text = out
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let label = |line: &str, name: &str| {
        let start = line.find(&format!("{name}=\""))? + name.len() + 2;
        line[start..].split('"').next().map(str::to_string)
    };
    let mut out = BTreeMap::new();
    for (key, value) in parse_exposition(&text) {
        let on_rollouts = key.starts_with("apiserver_request_total{") && key.contains("resource=\"rollouts\"");
        let code = label(&key, "code").unwrap_or_default();
        if on_rollouts && !code.starts_with('2') {
            let sub = label(&key, "subresource").filter(|s| !s.is_empty());
            let what = format!(
                "{} {}{code}",
                label(&key, "verb").unwrap_or_default(),
                sub.map_or(String::new(), |s| s + " ")
            );
            *out.entry(what).or_default() += value;
        }
    }
    out
}

fn load_average() -> f64 {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace()
        .next()
        .and_then(|l| l.parse().ok())
        .unwrap_or(f64::NAN)
}

fn parse_exposition(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            Some((key.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// Reconcile-latency quantile of the histogram's increase between two
/// samples, interpolated linearly inside its bucket; `None` without data,
/// `Err(top)` when it lies beyond the top bucket edge `top`.
fn quantile(from: &Sample, to: &Sample, q: f64) -> Option<Result<f64, f64>> {
    let prefix = "siskin_reconcile_duration_seconds_bucket{le=\"";
    let mut buckets: Vec<(f64, f64)> = to
        .series
        .iter()
        .filter_map(|(k, v)| {
            let le = k.strip_prefix(prefix)?.strip_suffix("\"}")?;
            let le = if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? };
            Some((le, v - from.get(k)))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let target = q * total;
    let (mut lower, mut below) = (0.0, 0.0);
    for (le, count) in buckets {
        if count >= target {
            if le.is_infinite() {
                return Some(Err(lower));
            }
            let within = if count > below {
                (target - below) / (count - below)
            } else {
                1.0
            };
            return Some(Ok(lower + (le - lower) * within));
        }
        (lower, below) = (le, count);
    }
    None
}

/// The share of reconciles between two samples that took at most `le` seconds
/// (an exact bucket edge).
fn share_within(from: &Sample, to: &Sample, le: &str) -> Option<f64> {
    let key = format!("siskin_reconcile_duration_seconds_bucket{{le=\"{le}\"}}");
    let count = "siskin_reconcile_duration_seconds_count";
    let total = to.get(count) - from.get(count);
    (total > 0.0 && to.series.contains_key(&key)).then(|| (to.get(&key) - from.get(&key)) / total)
}

struct Phase {
    name: &'static str,
    rollouts: usize,
    /// Until the phase's goal was reached; `to` is taken once the controller
    /// went quiet afterwards.
    took: Duration,
    from: Sample,
    to: Sample,
}

struct Bench {
    args: Args,
    client: Client,
    ns: String,
    controller: Option<tokio::process::Child>,
    pid: u32,
    tracker: Tracker,
    /// Round trips of a GET the benchmark sends every 500 ms: what one API
    /// call costs while the phase runs.
    probes: Arc<Mutex<Vec<(Instant, Duration)>>>,
    log: PathBuf,
}

impl Bench {
    /// Creates the namespace and the node, then starts the controller.
    async fn start(args: Args) -> anyhow::Result<Bench> {
        let client = Client::try_default().await.context("a kube client (KUBECONFIG)")?;
        let ns = format!("bench-scale-{:06}", rand::random::<u32>() % 1_000_000);
        let namespace: Namespace =
            serde_json::from_value(json!({"metadata": {"name": ns, "labels": {"siskin.io/bench": "true"}}}))?;
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .context("creating the benchmark namespace")?;
        let logs =
            std::env::var("SISKIN_SANDBOX").map_or_else(|_| PathBuf::from("/tmp"), |d| PathBuf::from(d).join("logs"));
        let mut bench = Bench {
            args,
            client,
            log: logs.join(format!("controller-{ns}.log")),
            ns,
            controller: None,
            pid: 0,
            tracker: Tracker::default(),
            probes: Arc::default(),
        };
        if let Err(e) = bench.launch().await {
            bench.cleanup().await;
            return Err(e);
        }
        bench.watch_rollouts();
        bench.probe_api();
        Ok(bench)
    }

    /// A kwok node of the benchmark's own, named after its namespace: canary
    /// pods (the engine gives a canary at least one) land there, outside the
    /// sandbox node's /24 pod network and its 1,000-pod capacity.
    fn node(&self) -> anyhow::Result<Node> {
        Ok(serde_json::from_value(json!({
            "metadata": {
                "name": self.ns,
                "annotations": {"node.alpha.kubernetes.io/ttl": "0", "kwok.x-k8s.io/node": "fake"},
                "labels": {"kubernetes.io/hostname": self.ns, "type": "kwok", "siskin.io/bench": "true"},
            },
            "spec": {
                "podCIDR": "10.245.0.0/16",
                "taints": [{"key": "siskin.io/bench", "value": "true", "effect": "NoSchedule"}],
            },
            "status": {
                "allocatable": {"cpu": "1000", "memory": "1Ti", "pods": "20000"},
                "capacity": {"cpu": "1000", "memory": "1Ti", "pods": "20000"},
            },
        }))?)
    }

    async fn launch(&mut self) -> anyhow::Result<()> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        nodes
            .create(&PostParams::default(), &self.node()?)
            .await
            .context("creating the benchmark node")?;
        let binary = match &self.args.controller {
            Some(path) => path.clone(),
            None => std::env::current_exe()?.with_file_name("siskin"),
        };
        let ns = &self.ns;
        let file = std::fs::File::create(&self.log).with_context(|| format!("creating {}", self.log.display()))?;
        let child = tokio::process::Command::new(&binary)
            .args([
                "controller",
                "--namespace",
                ns,
                "--lease-namespace",
                ns,
                "--identity",
                "bench",
            ])
            .args(["--concurrency", &self.args.concurrency.to_string()])
            // Webhook servers and Prometheus, if any, are on loopback.
            .args(["--allow-destination", "127.0.0.0/8"])
            .args(["--metrics-addr", &format!("127.0.0.1:{}", self.args.metrics_port)])
            .env("RUST_LOG", "info,kube=warn")
            .stdout(file.try_clone()?)
            .stderr(file)
            .kill_on_drop(true)
            // Its own process group: a Ctrl-C reaches only the benchmark,
            // which still needs the controller to release finalizers.
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        self.pid = child.id().ok_or_else(|| anyhow!("the controller exited at once"))?;
        self.controller = Some(child);
        eprintln!(
            "namespace and node {ns}; controller {} (pid {}), log {}",
            binary.display(),
            self.pid,
            self.log.display()
        );
        Ok(())
    }

    fn probe_api(&self) {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let (ns, probes) = (self.ns.clone(), self.probes.clone());
        tokio::spawn(async move {
            loop {
                let at = Instant::now();
                if api.get(&ns).await.is_ok()
                    && let Ok(mut p) = probes.lock()
                {
                    p.push((at, at.elapsed()));
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
    }

    fn probes_between(&self, from: Instant, to: Instant) -> Vec<Duration> {
        let probes = self.probes.lock().map(|p| p.clone()).unwrap_or_default();
        let mut out: Vec<Duration> = probes
            .into_iter()
            .filter(|(at, _)| (from..to).contains(at))
            .map(|(_, d)| d)
            .collect();
        out.sort();
        out
    }

    fn watch_rollouts(&self) {
        let api: Api<Rollout> = Api::namespaced(self.client.clone(), &self.ns);
        let tracker = self.tracker.clone();
        tokio::spawn(async move {
            let events = watcher(api, watcher::Config::default())
                .default_backoff()
                .applied_objects();
            events
                .for_each(|r| {
                    if let Ok(rollout) = r {
                        record(&tracker, &rollout);
                    }
                    futures::future::ready(())
                })
                .await;
        });
    }

    async fn sample(&self) -> anyhow::Result<Sample> {
        let url = format!("http://127.0.0.1:{}/metrics", self.args.metrics_port);
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()?;
        let text = http.get(&url).send().await?.error_for_status()?.text().await?;
        let (rss_kib, hwm_kib, cpu_ticks) = read_proc(self.pid)?;
        Ok(Sample {
            at: Instant::now(),
            rss_kib,
            hwm_kib,
            cpu_ticks,
            load: load_average(),
            series: parse_exposition(&text),
        })
    }

    /// Polls `check` (done, total) until done == total; prints progress.
    async fn until(
        &self,
        what: &str,
        check: impl Fn(&HashMap<String, Seen>) -> (usize, usize),
    ) -> anyhow::Result<Duration> {
        let start = Instant::now();
        let mut told = Instant::now();
        loop {
            let (done, total) = check(&*self.tracker.lock().map_err(|_| anyhow!("tracker poisoned"))?);
            if done >= total {
                eprintln!("{what}: {done}/{total} after {:.1}s", start.elapsed().as_secs_f64());
                return Ok(start.elapsed());
            }
            if start.elapsed() > Duration::from_secs(self.args.timeout) {
                bail!("timed out waiting for {what}: {done}/{total}");
            }
            if told.elapsed() > Duration::from_secs(10) {
                eprintln!("  {what}: {done}/{total} after {:.0}s", start.elapsed().as_secs_f64());
                told = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Waits until the controller has had nothing to do for longer than its
    /// 5 s poll, so a phase's counters include its trailing reconciles.
    async fn settle(&self) -> anyhow::Result<Sample> {
        let mut last = self.sample().await?;
        let start = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_secs(6)).await;
            let now = self.sample().await?;
            let key = "siskin_reconciles_total";
            if now.get(key) == last.get(key) || start.elapsed() > Duration::from_secs(120) {
                return Ok(now);
            }
            last = now;
        }
    }

    fn name(i: usize) -> String {
        format!("r{i:05}")
    }

    fn template(&self, name: &str, version: u32) -> serde_json::Value {
        json!({
            "metadata": {"labels": {"app": name}},
            "spec": {
                "containers": [{"name": "app", "image": format!("{IMAGE}:{version}")}],
                "nodeSelector": {"kubernetes.io/hostname": self.ns},
                // Also the not-ready taint admission puts on every new node,
                // which nothing lifts here: the sandbox runs no node
                // lifecycle controller.
                "tolerations": [{"operator": "Exists"}],
            }
        })
    }

    async fn create_one(&self, i: usize) -> anyhow::Result<()> {
        let name = Self::name(i);
        let hold = &self.args.hold;
        let steps = json!([{"weight": 10, "hold": {"min": hold}}, {"weight": 50, "hold": {"min": hold}}]);
        let mut canary = json!({"steps": steps, "scaleDownDelay": "3s"});
        if !self.args.no_route {
            canary["trafficRouting"] = json!({"gatewayAPI": {"httpRoute": {"name": name}}});
            let route: HttpRoute = serde_json::from_value(json!({
                "metadata": {"name": name},
                "spec": {
                    "parentRefs": [{"name": "sandbox", "namespace": "siskin-sandbox"}],
                    "hostnames": [format!("{name}.{}.bench.test", self.ns)],
                    "rules": [{"backendRefs": [
                        {"name": format!("{name}-stable"), "port": 80, "weight": 100},
                        {"name": format!("{name}-canary"), "port": 80, "weight": 0},
                    ]}]
                }
            }))?;
            let routes: Api<HttpRoute> = Api::namespaced(self.client.clone(), &self.ns);
            routes.create(&PostParams::default(), &route).await?;
        }
        let rollout: Rollout = serde_json::from_value(json!({
            "apiVersion": "siskin.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": name},
            "spec": {
                "replicas": self.args.replicas,
                "service": {"name": name, "port": 80, "targetPort": 8080},
                "template": self.template(&name, 1),
                "strategy": {"canary": canary},
            }
        }))?;
        let rollouts: Api<Rollout> = Api::namespaced(self.client.clone(), &self.ns);
        rollouts.create(&PostParams::default(), &rollout).await?;
        Ok(())
    }

    async fn release_one(&self, i: usize) -> anyhow::Result<()> {
        let name = Self::name(i);
        let old_stable = self
            .tracker
            .lock()
            .map_err(|_| anyhow!("tracker poisoned"))?
            .get(&name)
            .and_then(|s| s.stable.clone());
        let at = Instant::now();
        let patch = json!({"spec": {"template": self.template(&name, 2)}});
        let rollouts: Api<Rollout> = Api::namespaced(self.client.clone(), &self.ns);
        rollouts
            .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
            .await?;
        if let Ok(mut seen) = self.tracker.lock() {
            seen.entry(name).or_default().released = Some((at, old_stable));
        }
        Ok(())
    }

    async fn run(&self) -> anyhow::Result<(Vec<Phase>, Vec<Seen>)> {
        let n = self.args.rollouts;
        let m = self.args.progressing.unwrap_or(n).min(n);
        let parallel = self.args.parallel.max(1);
        self.wait_for_metrics().await?;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let idle = self.sample().await?;
        let mut phases = vec![Phase {
            name: "idle, 0 Rollouts",
            rollouts: 0,
            took: Duration::ZERO,
            from: idle.clone(),
            to: idle.clone(),
        }];

        let routes = if self.args.no_route { "" } else { " and HTTPRoutes" };
        eprintln!("creating {n} Rollouts{routes}");
        stream::iter(0..n)
            .map(|i| self.create_one(i))
            .buffer_unordered(parallel)
            .try_collect::<Vec<()>>()
            .await
            .context("creating Rollouts")?;
        let healthy = |s: &Seen| s.phase == Some(RolloutPhase::Healthy) && s.stable.is_some();
        self.until("Rollouts Healthy", |seen| {
            (seen.values().filter(|s| healthy(s)).count(), n)
        })
        .await?;
        let took = idle.at.elapsed();
        phases.push(Phase {
            name: "create → all Healthy",
            rollouts: n,
            took,
            from: idle,
            to: self.settle().await?,
        });

        eprintln!("releasing a new template on {m} Rollouts at once");
        let from = self.sample().await?;
        stream::iter(0..m)
            .map(|i| self.release_one(i))
            .buffer_unordered(parallel)
            .try_collect::<Vec<()>>()
            .await
            .context("releasing")?;
        self.until("releases promoted", |seen| {
            (seen.values().filter(|s| s.reached[2].is_some()).count(), m)
        })
        .await?;
        phases.push(Phase {
            name: "release → all promoted",
            rollouts: m,
            took: from.at.elapsed(),
            from,
            to: self.settle().await?,
        });
        let seen = std::mem::take(&mut *self.tracker.lock().map_err(|_| anyhow!("tracker poisoned"))?);
        Ok((phases, seen.into_values().filter(|s| s.released.is_some()).collect()))
    }

    async fn wait_for_metrics(&self) -> anyhow::Result<()> {
        let start = Instant::now();
        loop {
            if self.sample().await.is_ok() {
                return Ok(());
            }
            if start.elapsed() > Duration::from_secs(30) {
                bail!("the controller's /metrics never answered; see {}", self.log.display());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Events in the namespace by `Type/Reason`, series counts included.
    async fn events(&self) -> BTreeMap<String, i32> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), &self.ns);
        let mut out = BTreeMap::new();
        if let Ok(list) = api.list(&ListParams::default()).await {
            for e in list.items {
                let key = format!("{}/{}", e.type_.unwrap_or_default(), e.reason.unwrap_or_default());
                *out.entry(key).or_default() += e.series.map_or(1, |s| s.count);
            }
        }
        out
    }

    /// Deletes the Rollouts while the controller still runs (it releases
    /// their finalizers), strips finalizers left behind, stops the
    /// controller and deletes the namespace.
    async fn cleanup(&mut self) {
        eprintln!("cleaning up namespace {}", self.ns);
        let api: Api<Rollout> = Api::namespaced(self.client.clone(), &self.ns);
        let _ = api
            .delete_collection(&DeleteParams::default(), &ListParams::default())
            .await;
        let start = Instant::now();
        let running =
            |c: &mut Option<tokio::process::Child>| c.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)));
        while start.elapsed() < Duration::from_secs(120) && running(&mut self.controller) {
            match api.list(&ListParams::default().limit(1)).await {
                Ok(list) if list.items.is_empty() => break,
                _ => tokio::time::sleep(Duration::from_secs(1)).await,
            }
        }
        if let Ok(left) = api.list(&ListParams::default()).await {
            let patch = json!({"metadata": {"finalizers": null}});
            for r in left.items {
                let _ = api
                    .patch(&r.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
                    .await;
            }
        }
        if let Some(mut child) = self.controller.take() {
            let _ = child.kill().await;
        }
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        if let Err(e) = namespaces.delete(&self.ns, &DeleteParams::default()).await {
            eprintln!(
                "could not delete namespace {}: {e}; run: kubectl delete namespace {}",
                self.ns, self.ns
            );
        }
        // The node goes once its pods are gone, or they would wait for the
        // pod garbage collector.
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(300)
            && namespaces.get_opt(&self.ns).await.is_ok_and(|n| n.is_some())
        {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        let nodes: Api<Node> = Api::all(self.client.clone());
        if let Err(e) = nodes.delete(&self.ns, &DeleteParams::default()).await
            && !matches!(&e, kube::Error::Api(s) if s.code == 404)
        {
            eprintln!(
                "could not delete node {}: {e}; run: kubectl delete node {}",
                self.ns, self.ns
            );
        }
    }
}

/// Prints one Markdown table row.
fn row(cells: &[String]) {
    println!("| {} |", cells.join(" | "));
}

/// Prints a Markdown table header.
fn header(columns: &[&str]) {
    println!("\n| {} |\n|{}", columns.join(" | "), "---|".repeat(columns.len()));
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn latency(quantile: Option<Result<f64, f64>>) -> String {
    match quantile {
        Some(Ok(s)) => ms(Some(s)),
        Some(Err(top)) => format!("> {}", ms(Some(top))),
        None => "–".into(),
    }
}

fn ms(seconds: Option<f64>) -> String {
    seconds.map_or_else(|| "–".into(), |s| format!("{:.1} ms", s * 1000.0))
}

/// The `q` quantile of sorted durations (nearest rank).
fn nearest_rank(sorted: &[Duration], q: f64) -> Option<f64> {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted
        .get(rank.clamp(1, sorted.len().max(1)) - 1)
        .map(Duration::as_secs_f64)
}

/// What the run measured, ready to print.
struct Report<'a> {
    args: &'a Args,
    phases: Vec<Phase>,
    /// API round trips of the benchmark's probe, per phase.
    probes: Vec<Vec<Duration>>,
    releases: Vec<Seen>,
    events: BTreeMap<String, i32>,
    /// Increase of the API server's non-2xx answers on Rollouts over the run.
    refusals: BTreeMap<String, f64>,
}

impl Report<'_> {
    fn print(&self) {
        let (args, releases) = (self.args, &self.releases);
        println!("## {} Rollouts, {} released at once\n", args.rollouts, releases.len());
        let routing = if args.no_route {
            "none (replica-ratio canary)"
        } else {
            "one HTTPRoute each, Traefik"
        };
        println!(
            "Replicas per Rollout: {}; routing: {routing}; steps: 10 % then 50 %, each held {}; controller --concurrency {}.",
            args.replicas, args.hold, args.concurrency
        );
        self.resources();
        self.reconciles();
        self.writes();
        self.milestones();
        let last = self.phases.last().map(|p| &p.to.series);
        let errors: Vec<String> = last
            .into_iter()
            .flatten()
            .filter(|(k, _)| k.starts_with("siskin_reconcile_errors_total"))
            .map(|(k, v)| format!("`{k}` {v}"))
            .collect();
        let errors = if errors.is_empty() {
            "none".into()
        } else {
            errors.join(", ")
        };
        println!("\nReconcile errors (whole run): {errors}.\n");
        let events: Vec<String> = self.events.iter().map(|(k, v)| format!("{k} {v}")).collect();
        println!("Events (whole run): {}.\n", events.join(", "));
        let refusals: Vec<String> = self.refusals.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        println!(
            "API server non-2xx answers on Rollouts during the run (whole cluster): {}.\n",
            refusals.join(", ")
        );
        let flags: Vec<String> = std::env::args().skip(1).collect();
        println!(
            "Reproduce (sandbox up): `cargo build --release --bin siskin --bin siskin-bench-scale && \
             tests/sandbox/sandbox exec -- ~/.cache/siskin/target/release/siskin-bench-scale {}`",
            flags.join(" ")
        );
    }

    fn resources(&self) {
        header(&[
            "phase",
            "Rollouts",
            "took",
            "RSS at end",
            "peak RSS",
            "controller CPU",
            "load average",
        ]);
        for p in &self.phases {
            let cpu = p.to.cpu_ticks.saturating_sub(p.from.cpu_ticks) as f64 / TICKS_PER_SECOND;
            let took = format!("{:.1} s", p.took.as_secs_f64());
            let (rss, peak) = (mib(p.to.rss_kib), mib(p.to.hwm_kib));
            row(&[
                p.name.into(),
                p.rollouts.to_string(),
                took,
                rss,
                peak,
                format!("{cpu:.1} s"),
                format!("{:.1}", p.to.load),
            ]);
        }
    }

    fn reconciles(&self) {
        let columns = [
            "phase",
            "reconciles / Rollout",
            "reconcile p50",
            "p99",
            "≤ 20 ms",
            "CPU / reconcile",
        ];
        header(&[&columns[..], &["one API GET p50 / p99"]].concat());
        for (p, probes) in self.phases.iter().zip(&self.probes).filter(|(p, _)| p.rollouts > 0) {
            let reconciles = p.to.get("siskin_reconciles_total") - p.from.get("siskin_reconciles_total");
            let within =
                share_within(&p.from, &p.to, "0.02").map_or_else(|| "–".into(), |s| format!("{:.1} %", s * 100.0));
            let cpu = p.to.cpu_ticks.saturating_sub(p.from.cpu_ticks) as f64 / TICKS_PER_SECOND;
            row(&[
                p.name.into(),
                format!("{:.1}", reconciles / p.rollouts as f64),
                latency(quantile(&p.from, &p.to, 0.5)),
                latency(quantile(&p.from, &p.to, 0.99)),
                within,
                ms((reconciles > 0.0).then(|| cpu / reconciles)),
                format!("{} / {}", ms(nearest_rank(probes, 0.5)), ms(nearest_rank(probes, 0.99))),
            ]);
        }
    }

    fn writes(&self) {
        println!("\nAPI writes per Rollout (attempts, `siskin_api_writes_total`):");
        header(&[&["phase"], &WRITE_KINDS[..], &["total"]].concat());
        for p in self.phases.iter().filter(|p| p.rollouts > 0) {
            let per: Vec<f64> = WRITE_KINDS
                .iter()
                .map(|k| (p.to.writes(k) - p.from.writes(k)) / p.rollouts as f64)
                .collect();
            let line = |name: &str, div: f64| {
                let total = per.iter().sum::<f64>();
                let cells = per.iter().chain([&total]).map(|v| format!("{:.2}", v / div));
                row(&[name.to_string()].into_iter().chain(cells).collect::<Vec<_>>());
            };
            line(p.name, 1.0);
            // A route write is one weight change: 10 %, 50 %, back to 0 % on promotion.
            if per[0] > 0.0 && p.name.starts_with("release") {
                line("… per route weight change", per[0]);
            }
        }
    }

    fn milestones(&self) {
        let releases = &self.releases;
        println!(
            "\nFrom each Rollout's release patch to (floor: two holds of {}):",
            self.args.hold
        );
        header(&["milestone", "p50", "p99", "max", "reached"]);
        let labels = ["canary at 10 % on the route", "canary at 50 % on the route", "promoted"];
        for (i, label) in labels.iter().enumerate() {
            let mut times: Vec<Duration> = releases.iter().filter_map(|s| s.reached[i]).collect();
            times.sort();
            let secs = |q| nearest_rank(&times, q).map_or_else(|| "–".into(), |s| format!("{s:.1} s"));
            let reached = format!("{}/{}", times.len(), releases.len());
            row(&[label.to_string(), secs(0.5), secs(0.99), secs(1.0), reached]);
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let refused_before = rollout_refusals().await;
    let mut bench = Bench::start(args).await?;
    let outcome = tokio::select! {
        r = bench.run() => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
        _ = terminate.recv() => Err(anyhow!("terminated")),
    };
    let events = bench.events().await;
    let mut refusals = rollout_refusals().await;
    for (k, v) in &refused_before {
        *refusals.entry(k.clone()).or_default() -= v;
    }
    refusals.retain(|_, v| *v > 0.0);
    let probes = match &outcome {
        Ok((phases, _)) => phases
            .iter()
            .map(|p| bench.probes_between(p.from.at, p.to.at))
            .collect(),
        Err(_) => vec![],
    };
    bench.cleanup().await;
    let (phases, releases) = outcome?;
    let report = Report {
        args: &bench.args,
        phases,
        probes,
        releases,
        events,
        refusals,
    };
    report.print();
    Ok(())
}
