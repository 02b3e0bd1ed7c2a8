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
//! A test only so that it shares the sandbox harness; `make test` leaves it
//! out. Run it inside the sandbox, in release, with its flags in
//! `SISKIN_BENCH_ARGS` (docs/benchmarks.md):
//!
//! ```sh
//! SISKIN_BENCH_ARGS="--rollouts 300 --timeout 900" tests/sandbox/sandbox exec -- \
//!     cargo test --offline --release --test it bench_scale:: -- --ignored --nocapture
//! ```
//!
//! It starts its own controller in a fresh namespace and deletes everything
//! it made.

mod report;

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
use kube::{Api, ResourceExt};
use serde_json::json;
use siskin::api::{Rollout, RolloutPhase};

use crate::support::{ControllerProcess, TestNamespace, http};
use report::{Phase, Report};

#[derive(Parser, Debug)]
#[command(
    name = "SISKIN_BENCH_ARGS",
    about = "Scale benchmark of the Siskin controller on the sandbox"
)]
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
    /// The controller binary (default: the one cargo built with the tests).
    #[arg(long)]
    controller: Option<PathBuf>,
    /// The controller's `--concurrency`.
    #[arg(long, default_value_t = 32)]
    concurrency: u16,
    /// Where the controller serves /metrics (inside the netns).
    #[arg(long, default_value_t = 18090)]
    metrics_port: u16,
    /// Rollout counts at which creation pauses until all are Healthy, to
    /// report memory and API figures there (e.g. `1000,5000`).
    #[arg(long, value_delimiter = ',')]
    checkpoints: Vec<usize>,
    /// Create and patch requests the benchmark itself keeps in flight.
    #[arg(long, default_value_t = 16)]
    parallel: usize,
    /// Give up on a phase after this many seconds.
    #[arg(long, default_value_t = 900)]
    timeout: u64,
}

impl Args {
    /// The flags in `SISKIN_BENCH_ARGS`, as a command line would give them.
    fn from_env() -> Args {
        let flags = std::env::var("SISKIN_BENCH_ARGS").unwrap_or_default();
        Args::parse_from(std::iter::once("SISKIN_BENCH_ARGS").chain(flags.split_whitespace()))
    }
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

struct Bench {
    args: Args,
    ns: TestNamespace,
    controller: Option<ControllerProcess>,
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
        let ns = TestNamespace::new("bench-scale").await;
        let mut bench = Bench {
            args,
            log: PathBuf::new(),
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
                "name": self.ns.name,
                "annotations": {"node.alpha.kubernetes.io/ttl": "0", "kwok.x-k8s.io/node": "fake"},
                "labels": {"kubernetes.io/hostname": self.ns.name, "type": "kwok", "siskin.io/bench": "true"},
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
        let nodes: Api<Node> = Api::all(self.ns.client.clone());
        nodes
            .create(&PostParams::default(), &self.node()?)
            .await
            .context("creating the benchmark node")?;
        let mut launch = ControllerProcess::launch(&self.ns, "bench")
            .args(&["--concurrency", &self.args.concurrency.to_string()])
            .metrics_addr(&format!("127.0.0.1:{}", self.args.metrics_port))
            .rust_log("info,kube=warn")
            .own_process_group();
        if let Some(binary) = &self.args.controller {
            launch = launch.binary(binary.clone());
        }
        self.log = launch.log().to_path_buf();
        let controller = launch.start();
        self.pid = controller.pid();
        self.controller = Some(controller);
        eprintln!(
            "namespace and node {}; controller pid {}, log {}",
            self.ns.name,
            self.pid,
            self.log.display()
        );
        Ok(())
    }

    fn probe_api(&self) {
        let api: Api<Namespace> = Api::all(self.ns.client.clone());
        let (ns, probes) = (self.ns.name.clone(), self.probes.clone());
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
        let api: Api<Rollout> = self.ns.api();
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
        let text = http().get(&url).send().await?.error_for_status()?.text().await?;
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
                "nodeSelector": {"kubernetes.io/hostname": self.ns.name},
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
                    "hostnames": [format!("{name}.{}.bench.test", self.ns.name)],
                    "rules": [{"backendRefs": [
                        {"name": format!("{name}-stable"), "port": 80, "weight": 100},
                        {"name": format!("{name}-canary"), "port": 80, "weight": 0},
                    ]}]
                }
            }))?;
            let routes: Api<HttpRoute> = self.ns.api();
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
        let rollouts: Api<Rollout> = self.ns.api();
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
        let rollouts: Api<Rollout> = self.ns.api();
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
            name: "idle, 0 Rollouts".to_string(),
            rollouts: 0,
            took: Duration::ZERO,
            from: idle.clone(),
            to: idle.clone(),
        }];

        let routes = if self.args.no_route { "" } else { " and HTTPRoutes" };
        let mut checkpoints: Vec<usize> = self.args.checkpoints.iter().copied().filter(|&c| c < n).collect();
        checkpoints.sort_unstable();
        checkpoints.dedup();
        checkpoints.push(n);
        let healthy = |s: &Seen| s.phase == Some(RolloutPhase::Healthy) && s.stable.is_some();
        let (mut created, mut from) = (0, idle);
        for upto in checkpoints {
            eprintln!("creating Rollouts{routes} {created}..{upto}");
            stream::iter(created..upto)
                .map(|i| self.create_one(i))
                .buffer_unordered(parallel)
                .try_collect::<Vec<()>>()
                .await
                .context("creating Rollouts")?;
            self.until("Rollouts Healthy", |seen| {
                (seen.values().filter(|s| healthy(s)).count(), upto)
            })
            .await?;
            let took = from.at.elapsed();
            let to = self.settle().await?;
            phases.push(Phase {
                name: format!("create → {upto} Healthy"),
                rollouts: upto - created,
                took,
                from,
                to: to.clone(),
            });
            (created, from) = (upto, to);
        }

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
            name: format!("release → {m} promoted"),
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
        let api: Api<Event> = self.ns.api();
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
        eprintln!("cleaning up namespace {}", self.ns.name);
        let api: Api<Rollout> = self.ns.api();
        let _ = api
            .delete_collection(&DeleteParams::default(), &ListParams::default())
            .await;
        let start = Instant::now();
        let running = |c: &mut Option<ControllerProcess>| c.as_mut().is_some_and(ControllerProcess::is_running);
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
        if let Some(mut controller) = self.controller.take() {
            controller.kill().await;
        }
        let ns = &self.ns.name;
        let namespaces: Api<Namespace> = Api::all(self.ns.client.clone());
        if let Err(e) = namespaces.delete(ns, &DeleteParams::default()).await {
            eprintln!("could not delete namespace {ns}: {e}; run: kubectl delete namespace {ns}");
        }
        // The node goes once its pods are gone, or they would wait for the
        // pod garbage collector.
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(300) && namespaces.get_opt(ns).await.is_ok_and(|n| n.is_some()) {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        let nodes: Api<Node> = Api::all(self.ns.client.clone());
        if let Err(e) = nodes.delete(ns, &DeleteParams::default()).await
            && !matches!(&e, kube::Error::Api(s) if s.code == 404)
        {
            eprintln!("could not delete node {ns}: {e}; run: kubectl delete node {ns}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "a benchmark, run by hand: docs/benchmarks.md"]
async fn controller_at_scale() {
    let args = Args::from_env();
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("a SIGTERM handler");
    let refused_before = rollout_refusals().await;
    let mut bench = Bench::start(args).await.expect("the benchmark's node and controller");
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
    let (phases, releases) = outcome.expect("the benchmark ran to the end");
    let report = Report {
        args: &bench.args,
        phases,
        probes,
        releases,
        events,
        refusals,
    };
    report.print();
}
