//! The sandbox's stand-in for a container runtime.
//!
//! kwok plays kubelet (pods become Running with an IP) but runs nothing. For
//! every Running pod on the sandbox node whose container image is the demo
//! app, this starts a real demo-app process bound to the pod IP and the
//! container's port, with the container's args and env, and stops it when the
//! pod goes away. EndpointSlices then point at real processes. It also writes
//! a Prometheus file_sd target list of those processes.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Container, Pod};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client, ResourceExt};
use tokio::process::{Child, Command};

#[derive(Parser, Debug)]
struct Args {
    /// The demo-app binary to start for each pod.
    #[arg(long)]
    demo_app: PathBuf,
    /// Containers whose image starts with this run as demo-app processes.
    #[arg(long, default_value = "siskin/demo-app")]
    image: String,
    /// The node whose pods this runner serves.
    #[arg(long, default_value = "kwok-node")]
    node: String,
    /// Directory for one log file per pod process.
    #[arg(long)]
    logs: PathBuf,
    /// Prometheus file_sd JSON file listing the running processes.
    #[arg(long)]
    scrape_targets: PathBuf,
}

/// What one pod asks to run: where to listen, with which env and args.
#[derive(Clone, Debug, PartialEq)]
struct Launch {
    namespace: String,
    pod: String,
    listen: String,
    env: BTreeMap<String, String>,
    args: Vec<String>,
}

fn launch_for(pod: &Pod, image_prefix: &str) -> Option<(String, Launch)> {
    let status = pod.status.as_ref()?;
    if pod.metadata.deletion_timestamp.is_some() || status.phase.as_deref() != Some("Running") {
        return None;
    }
    let ip = status.pod_ip.as_ref()?;
    let spec = pod.spec.as_ref()?;
    let container: &Container = spec
        .containers
        .iter()
        .find(|c| c.image.as_deref().is_some_and(|i| i.starts_with(image_prefix)))?;
    let port = container
        .ports
        .as_ref()
        .and_then(|p| p.first())
        .map(|p| p.container_port)
        .unwrap_or(8080);
    let mut env: BTreeMap<String, String> = container
        .env
        .iter()
        .flatten()
        .filter_map(|e| Some((e.name.clone(), e.value.clone()?)))
        .collect();
    env.insert("DEMO_POD".into(), pod.name_any());
    let launch = Launch {
        namespace: pod.namespace().unwrap_or_default(),
        pod: pod.name_any(),
        listen: format!("{ip}:{port}"),
        env,
        args: container.args.clone().unwrap_or_default(),
    };
    Some((pod.uid()?, launch))
}

struct Runner {
    args: Args,
    running: HashMap<String, (Launch, Child)>,
}

impl Runner {
    async fn converge(&mut self, desired: HashMap<String, Launch>) {
        let mut stale: Vec<String> = Vec::new();
        for (uid, (launch, child)) in self.running.iter_mut() {
            let exited = matches!(child.try_wait(), Ok(Some(_)));
            if exited || desired.get(uid) != Some(launch) {
                stale.push(uid.clone());
            }
        }
        for uid in stale {
            if let Some((launch, mut child)) = self.running.remove(&uid) {
                let _ = child.kill().await;
                eprintln!("stopped {}/{} on {}", launch.namespace, launch.pod, launch.listen);
            }
        }
        for (uid, launch) in desired {
            if self.running.contains_key(&uid) {
                continue;
            }
            match self.spawn(&launch) {
                Ok(child) => {
                    eprintln!("started {}/{} on {}", launch.namespace, launch.pod, launch.listen);
                    self.running.insert(uid, (launch, child));
                }
                Err(e) => eprintln!("cannot start {}/{}: {e:#}", launch.namespace, launch.pod),
            }
        }
        if let Err(e) = self.write_targets() {
            eprintln!("cannot write scrape targets: {e:#}");
        }
    }

    fn spawn(&self, launch: &Launch) -> anyhow::Result<Child> {
        let log_path = self.args.logs.join(format!("{}_{}.log", launch.namespace, launch.pod));
        let log = std::fs::File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
        let child = Command::new(&self.args.demo_app)
            .args(&launch.args)
            .envs(&launch.env)
            .env("DEMO_LISTEN", &launch.listen)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("spawning {}", self.args.demo_app.display()))?;
        Ok(child)
    }

    fn write_targets(&self) -> anyhow::Result<()> {
        let targets: Vec<_> = self
            .running
            .values()
            .map(|(l, _)| {
                let version = l.env.get("DEMO_VERSION").cloned().unwrap_or_default();
                serde_json::json!({"targets": [l.listen], "labels": {"namespace": l.namespace, "pod": l.pod, "version": version}})
            })
            .collect();
        let tmp = self.args.scrape_targets.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&targets)?)?;
        std::fs::rename(&tmp, &self.args.scrape_targets)?;
        Ok(())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    std::fs::create_dir_all(&args.logs)?;
    let client = Client::try_default()
        .await
        .context("connecting to the sandbox apiserver")?;
    let pods: Api<Pod> = Api::all(client);
    let (store, writer) = reflector::store();
    let selector = format!("spec.nodeName={}", args.node);
    let mut events = watcher(pods, watcher::Config::default().fields(&selector))
        .default_backoff()
        .reflect(writer)
        .boxed();
    let mut runner = Runner {
        args,
        running: HashMap::new(),
    };
    runner.converge(HashMap::new()).await;
    // A periodic pass also restarts a demo-app process that died on its own.
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    let mut shutdown = Box::pin(tokio::signal::ctrl_c());
    // The store is complete only after the first list; acting earlier would
    // stop processes of pods not seen yet.
    let mut listed = false;
    loop {
        tokio::select! {
            ev = events.next() => match ev {
                Some(Err(e)) => { eprintln!("watch error (retrying): {e}"); continue; }
                None => anyhow::bail!("pod watch ended"),
                Some(Ok(watcher::Event::InitDone)) => listed = true,
                Some(Ok(_)) => {}
            },
            _ = tick.tick() => {}
            _ = &mut shutdown => break,
        }
        if !listed {
            continue;
        }
        let desired = store
            .state()
            .iter()
            .filter_map(|p| launch_for(p, &runner.args.image))
            .collect();
        runner.converge(desired).await;
    }
    runner.converge(HashMap::new()).await;
    Ok(())
}
