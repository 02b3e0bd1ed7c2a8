//! The sandbox's stand-in for a container runtime.
//!
//! kwok plays kubelet (pods become Running with an IP) but runs nothing. For
//! every Running pod on the sandbox node this starts a real process bound to
//! the pod IP, with the container's args and env, and stops it when the pod
//! goes away. EndpointSlices then point at real processes. Two images run:
//! - the demo app (`--demo-app`), for containers whose image starts with
//!   `--image`; a Prometheus file_sd target list names those processes;
//! - the controller image from an OCI layout (`--controller-images`, what
//!   `make image` writes), for containers pinned to a digest the layout
//!   holds. It runs the image's own binary chrooted into the unpacked image,
//!   as the pod's user, with the pod's ServiceAccount token, CA and
//!   namespace mounted where a kubelet mounts them, and no other credential.

mod image;
mod service_account;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Container, EnvVar, Pod};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client, ResourceExt};
use tokio::process::{Child, Command};

use image::{DEVICES, ImageStore, SERVICE_ACCOUNT_DIR};
use service_account::Projected;

#[derive(Parser, Debug)]
struct Args {
    /// The demo-app binary to start for each demo-app pod (none: demo-app
    /// pods are left to another runner).
    #[arg(long)]
    demo_app: Option<PathBuf>,
    /// Containers whose image starts with this run as demo-app processes.
    #[arg(long, default_value = "siskin/demo-app")]
    image: String,
    /// An OCI image layout of the controller image; pods pinned to one of
    /// its manifest digests run that image (none: such pods are left alone).
    #[arg(long)]
    controller_images: Option<PathBuf>,
    /// Where images are unpacked and pods' ServiceAccount files written.
    #[arg(long, default_value = "/tmp/siskin-sandbox/pod-runner")]
    state: PathBuf,
    /// The node whose pods this runner serves.
    #[arg(long, default_value = "kwok-node")]
    node: String,
    /// Directory for one log file per pod process.
    #[arg(long)]
    logs: PathBuf,
    /// Prometheus file_sd JSON file listing the running demo-app processes.
    #[arg(long)]
    scrape_targets: PathBuf,
}

/// Which program a pod's container runs.
#[derive(Clone, Debug, PartialEq)]
enum Program {
    DemoApp,
    /// The controller image, by manifest digest (hex), with its argv.
    Image {
        digest: String,
        argv: Vec<String>,
        user: String,
    },
}

/// What one pod asks to run: where to listen, with which env and args.
#[derive(Clone, Debug, PartialEq)]
struct Launch {
    namespace: String,
    pod: String,
    uid: String,
    service_account: String,
    listen: String,
    env: BTreeMap<String, String>,
    args: Vec<String>,
    program: Program,
}

/// The env a container sees: its literal values and the downward-API fields
/// a kubelet fills in (secret and ConfigMap references are not served).
fn container_env(pod: &Pod, container: &Container) -> BTreeMap<String, String> {
    let field = |path: &str| -> Option<String> {
        match path {
            "metadata.name" => pod.metadata.name.clone(),
            "metadata.namespace" => pod.metadata.namespace.clone(),
            "metadata.uid" => pod.metadata.uid.clone(),
            "spec.nodeName" => pod.spec.as_ref()?.node_name.clone(),
            "spec.serviceAccountName" => pod.spec.as_ref()?.service_account_name.clone(),
            "status.podIP" => pod.status.as_ref()?.pod_ip.clone(),
            "status.hostIP" => pod.status.as_ref()?.host_ip.clone(),
            _ => None,
        }
    };
    let value = |e: &EnvVar| -> Option<String> {
        if let Some(v) = &e.value {
            return Some(v.clone());
        }
        field(&e.value_from.as_ref()?.field_ref.as_ref()?.field_path)
    };
    container
        .env
        .iter()
        .flatten()
        .filter_map(|e| Some((e.name.clone(), value(e)?)))
        .collect()
}

/// The pod's user as `uid:gid` (the container's securityContext over the
/// pod's), or the image's 65532.
fn run_as(pod: &Pod, container: &Container) -> String {
    let spec = pod.spec.as_ref();
    let pod_ctx = spec.and_then(|s| s.security_context.as_ref());
    let ctx = container.security_context.as_ref();
    let user = ctx
        .and_then(|c| c.run_as_user)
        .or_else(|| pod_ctx.and_then(|c| c.run_as_user))
        .unwrap_or(65532);
    let group = ctx
        .and_then(|c| c.run_as_group)
        .or_else(|| pod_ctx.and_then(|c| c.run_as_group))
        .unwrap_or(user);
    format!("{user}:{group}")
}

fn launch_for(pod: &Pod, args: &Args, images: Option<&ImageStore>) -> Option<(String, Launch)> {
    let status = pod.status.as_ref()?;
    if pod.metadata.deletion_timestamp.is_some() || status.phase.as_deref() != Some("Running") {
        return None;
    }
    let ip = status.pod_ip.as_ref()?;
    let spec = pod.spec.as_ref()?;
    let (container, program) = spec.containers.iter().find_map(|c| {
        let image = c.image.as_deref()?;
        if args.demo_app.is_some() && image.starts_with(&args.image) {
            return Some((c, Program::DemoApp));
        }
        let digest = images?.resolve(image)?;
        // The image's Entrypoint is /siskin and its Cmd `controller`.
        let mut argv = c.command.clone().unwrap_or_else(|| vec!["/siskin".into()]);
        argv.extend(c.args.clone().unwrap_or_else(|| vec!["controller".into()]));
        let user = run_as(pod, c);
        Some((c, Program::Image { digest, argv, user }))
    })?;
    let port = container
        .ports
        .as_ref()
        .and_then(|p| p.first())
        .map(|p| p.container_port)
        .unwrap_or(8080);
    let mut env = container_env(pod, container);
    if program == Program::DemoApp {
        env.insert("DEMO_POD".into(), pod.name_any());
    }
    let launch = Launch {
        namespace: pod.namespace().unwrap_or_default(),
        pod: pod.name_any(),
        uid: pod.uid()?,
        service_account: spec.service_account_name.clone().unwrap_or_else(|| "default".into()),
        listen: format!("{ip}:{port}"),
        env,
        args: container.args.clone().unwrap_or_default(),
        program,
    };
    Some((launch.uid.clone(), launch))
}

/// A started pod process, and the credentials it was given.
struct Running {
    launch: Launch,
    child: Child,
    projected: Option<Projected>,
}

struct Runner {
    args: Args,
    client: Client,
    /// KUBERNETES_SERVICE_HOST and _PORT for the pods.
    api_server: (String, String),
    images: Option<ImageStore>,
    running: HashMap<String, Running>,
}

impl Runner {
    async fn converge(&mut self, desired: HashMap<String, Launch>) {
        let mut stale: Vec<String> = Vec::new();
        for (uid, run) in self.running.iter_mut() {
            let exited = matches!(run.child.try_wait(), Ok(Some(_)));
            if exited || desired.get(uid) != Some(&run.launch) {
                stale.push(uid.clone());
            }
        }
        for uid in stale {
            if let Some(run) = self.running.remove(&uid) {
                let Launch {
                    namespace, pod, listen, ..
                } = &run.launch;
                eprintln!("stopped {namespace}/{pod} on {listen}");
                stop(run).await;
            }
        }
        for (uid, launch) in desired {
            if self.running.contains_key(&uid) {
                continue;
            }
            match self.start(&launch).await {
                Ok((child, projected)) => {
                    eprintln!("started {}/{} on {}", launch.namespace, launch.pod, launch.listen);
                    self.running.insert(
                        uid,
                        Running {
                            launch,
                            child,
                            projected,
                        },
                    );
                }
                Err(e) => eprintln!("cannot start {}/{}: {e:#}", launch.namespace, launch.pod),
            }
        }
        for run in self.running.values_mut() {
            if let Some(projected) = run.projected.as_mut()
                && let Err(e) = projected.refresh(&self.client).await
            {
                eprintln!(
                    "cannot refresh the token of {}/{}: {e:#}",
                    run.launch.namespace, run.launch.pod
                );
            }
        }
        if let Err(e) = self.write_targets() {
            eprintln!("cannot write scrape targets: {e:#}");
        }
    }

    fn log_file(&self, launch: &Launch) -> anyhow::Result<std::fs::File> {
        let log_path = self.args.logs.join(format!("{}_{}.log", launch.namespace, launch.pod));
        std::fs::File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))
    }

    async fn start(&self, launch: &Launch) -> anyhow::Result<(Child, Option<Projected>)> {
        match &launch.program {
            Program::DemoApp => Ok((self.spawn_demo_app(launch)?, None)),
            Program::Image { digest, argv, user } => {
                let images = self.images.as_ref().context("no controller image layout")?;
                let rootfs = images.rootfs(digest)?;
                // A directory per start: a stopped process's files are
                // removed once it exits, which may be after its restart.
                let started = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_nanos();
                let dir = self.args.state.join("pods").join(format!("{}-{started}", launch.uid));
                let projected = Projected::write(
                    &self.client,
                    dir,
                    &launch.namespace,
                    &launch.pod,
                    &launch.uid,
                    &launch.service_account,
                )
                .await?;
                let child = self.spawn_image(launch, &rootfs, &projected, argv, user)?;
                Ok((child, Some(projected)))
            }
        }
    }

    fn spawn_demo_app(&self, launch: &Launch) -> anyhow::Result<Child> {
        let demo_app = self.args.demo_app.as_ref().context("no --demo-app")?;
        let log = self.log_file(launch)?;
        let child = Command::new(demo_app)
            .args(&launch.args)
            .envs(&launch.env)
            .env("DEMO_LISTEN", &launch.listen)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("spawning {}", demo_app.display()))?;
        Ok(child)
    }

    /// The image's binary in a private mount namespace: the pod's projected
    /// ServiceAccount directory bound onto the image's mount point, then
    /// chroot into the image as the pod's user. The env is the container's
    /// and what a kubelet adds, nothing of the runner's (its KUBECONFIG is
    /// an admin's): the process finds the API server as in cluster.
    fn spawn_image(
        &self,
        launch: &Launch,
        rootfs: &std::path::Path,
        projected: &Projected,
        argv: &[String],
        user: &str,
    ) -> anyhow::Result<Child> {
        let log = self.log_file(launch)?;
        let devices = DEVICES.join(" ");
        let script = format!(
            r#"sa=$1 root=$2 user=$3; shift 3; mount --bind "$sa" "$root/{SERVICE_ACCOUNT_DIR}" || exit 1
for d in {devices}; do mount --bind "/dev/$d" "$root/dev/$d" || exit 1; done
exec chroot --userspec="$user" "$root" "$@""#
        );
        let (host, port) = &self.api_server;
        // Every pod has its own network namespace in a cluster; here they
        // share one, so the controller's 0.0.0.0:8080 becomes the pod IP's.
        let mut env = launch.env.clone();
        env.entry("SISKIN_METRICS_ADDR".into()).or_insert(launch.listen.clone());
        let child = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--", "sh", "-c", &script, "sh"])
            .arg(&projected.dir)
            .arg(rootfs)
            .arg(user)
            .args(argv)
            .env_clear()
            .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            .env("HOSTNAME", &launch.pod)
            .env("KUBERNETES_SERVICE_HOST", host)
            .env("KUBERNETES_SERVICE_PORT", port)
            .env("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt")
            .envs(&env)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("spawning unshare")?;
        Ok(child)
    }

    fn write_targets(&self) -> anyhow::Result<()> {
        let targets: Vec<_> = self
            .running
            .values()
            .filter(|r| r.launch.program == Program::DemoApp)
            .map(|r| {
                let l = &r.launch;
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

/// The API server as KUBERNETES_SERVICE_HOST/PORT: the address this runner
/// reaches it at (the sandbox has no Service VIPs). The sandbox's serving
/// certificate names 127.0.0.1, as a client in cluster then expects.
fn api_server(config: &kube::Config) -> anyhow::Result<(String, String)> {
    let url = &config.cluster_url;
    let host = url.host().context("the API server URL has no host")?;
    let port = url.port_u16().unwrap_or(443);
    Ok((host.trim_matches(['[', ']']).to_owned(), port.to_string()))
}

/// Stops a pod's process. The demo app is killed at once, as before; the
/// controller gets SIGTERM and 10 s to hand its Lease over, as a kubelet
/// gives a pod its grace period.
async fn stop(mut run: Running) {
    if run.launch.program == Program::DemoApp {
        let _ = run.child.kill().await;
        return;
    }
    if let Some(pid) = run.child.id() {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
    }
    tokio::spawn(async move {
        if tokio::time::timeout(Duration::from_secs(10), run.child.wait())
            .await
            .is_err()
        {
            let _ = run.child.kill().await;
        }
        drop(run.projected);
    });
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    std::fs::create_dir_all(&args.logs)?;
    let config = kube::Config::infer().await.context("reading the sandbox kubeconfig")?;
    let api_server = api_server(&config)?;
    let client = Client::try_from(config).context("connecting to the sandbox apiserver")?;
    let images = args
        .controller_images
        .clone()
        .map(|layout| ImageStore::new(layout, args.state.join("images")));
    let pods: Api<Pod> = Api::all(client.clone());
    let (store, writer) = reflector::store();
    let selector = format!("spec.nodeName={}", args.node);
    let mut events = watcher(pods, watcher::Config::default().fields(&selector))
        .default_backoff()
        .reflect(writer)
        .boxed();
    let mut runner = Runner {
        args,
        client,
        api_server,
        images,
        running: HashMap::new(),
    };
    runner.converge(HashMap::new()).await;
    // A periodic pass also restarts a process that died on its own.
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
            .filter_map(|p| launch_for(p, &runner.args, runner.images.as_ref()))
            .collect();
        runner.converge(desired).await;
    }
    runner.converge(HashMap::new()).await;
    Ok(())
}
