//! A leader stopped in the middle of a reconcile and resumed after another
//! replica took the Lease writes nothing: its write fence closed while it
//! was stopped. The other replica finishes the rollout with every step
//! entered once and the route's weights only moving forward.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::api_proxy::{ApiProxy, Interception};
use crate::support::*;
use axum::http::Method;
use futures::future::BoxFuture;
use gateway_api::httproutes::HttpRoute;
use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};
use siskin::api::{Rollout, RolloutPhase, RolloutStatus, revision_hash};
use tokio::sync::{Notify, oneshot};

const NAME: &str = "demo";
const LEASE: &str = "siskin-controller";
const RELEASE_TIMEOUT: Duration = Duration::from_secs(180);
/// The replicas' identities: distinct from other tests' controllers, so
/// Events and the Lease name only these two.
const A: &str = "fence-a";
const B: &str = "fence-b";

/// Weight steps separated by pauses: only a promote moves the rollout, so
/// the test decides which replica moves it.
fn steps() -> Value {
    json!([{"weight": 20}, {"pause": {}}, {"weight": 50}, {"pause": {}}, {"weight": 80}])
}

/// A request the controller sent, as the tap saw it arrive.
#[derive(Clone, Debug)]
struct Sent {
    at: Instant,
    method: Method,
    path: String,
    status: Option<u16>,
}

impl Sent {
    fn is_write(&self) -> bool {
        !matches!(self.method, Method::GET | Method::HEAD | Method::OPTIONS)
    }

    fn is_lease(&self) -> bool {
        self.path.contains("/apis/coordination.k8s.io/")
    }
}

/// Between one controller and the API server, an [`ApiProxy`] that records
/// every request; once armed, it holds the controller's next read of the
/// route until released, so a reconcile is surely in flight when the
/// controller is stopped.
struct Tap {
    route_path: String,
    hold: Mutex<Option<oneshot::Receiver<()>>>,
    holding: Notify,
    sent: Mutex<Vec<Sent>>,
}

impl Interception for Tap {
    /// The request's index in `sent`.
    type Ticket = usize;

    fn arrived(&self, method: &Method, path: &str) -> BoxFuture<'_, usize> {
        let index = {
            let mut sent = self.sent.lock().expect("lock");
            sent.push(Sent {
                at: Instant::now(),
                method: method.clone(),
                path: path.to_string(),
                status: None,
            });
            sent.len() - 1
        };
        let route_read = method == Method::GET && path == self.route_path;
        let hold = route_read.then(|| self.hold.lock().expect("lock").take()).flatten();
        Box::pin(async move {
            if let Some(release) = hold {
                self.holding.notify_one();
                let _ = release.await;
            }
            index
        })
    }

    fn answered(&self, index: usize, status: u16) {
        self.sent.lock().expect("lock")[index].status = Some(status);
    }
}

impl Tap {
    fn new(ns: &TestNamespace) -> Arc<Self> {
        Arc::new(Tap {
            route_path: format!(
                "/apis/gateway.networking.k8s.io/v1/namespaces/{}/httproutes/{NAME}",
                ns.name
            ),
            hold: Mutex::new(None),
            holding: Notify::new(),
            sent: Mutex::new(Vec::new()),
        })
    }

    /// Holds the next read of the route; the returned sender releases it.
    fn arm(&self) -> oneshot::Sender<()> {
        let (release, hold) = oneshot::channel();
        *self.hold.lock().expect("lock") = Some(hold);
        release
    }

    /// The requests that arrived at or after `since`.
    fn sent_since(&self, since: Instant) -> Vec<Sent> {
        let sent = self.sent.lock().expect("lock");
        sent.iter().filter(|s| s.at >= since).cloned().collect()
    }
}

async fn lease_holder(ns: &TestNamespace) -> Option<String> {
    let lease = ns.api::<Lease>().get_opt(LEASE).await.ok()??;
    lease.spec?.holder_identity
}

async fn wait_holder(ns: &TestNamespace, identity: &str, within: Duration) {
    eventually(&format!("{identity} to hold the Lease"), within, || async {
        (lease_holder(ns).await.as_deref() == Some(identity)).then_some(())
    })
    .await;
}

/// Waits until the rollout to `revision` is paused with the canary at
/// `weight` on the route.
async fn paused_at(ns: &TestNamespace, revision: &str, weight: i32) -> RolloutStatus {
    wait_rollout_within(ns, NAME, &format!("paused at {weight}%"), RELEASE_TIMEOUT, |s| {
        s.canary_revision.as_deref() == Some(revision)
            && s.canary_weight == Some(weight)
            && s.observed_canary_weight == Some(weight)
            && s.phase == Some(RolloutPhase::Paused)
    })
    .await
}

/// The step indices the rollout to `revision` went through, in order.
fn steps_entered(statuses: &[RolloutStatus], revision: &str) -> Vec<i32> {
    let mut entered = Vec::new();
    for status in statuses
        .iter()
        .filter(|s| s.canary_revision.as_deref() == Some(revision))
    {
        if let Some(index) = status.current_step_index
            && entered.last() != Some(&index)
        {
            entered.push(index);
        }
    }
    entered
}

/// The Events about the Rollout: (instance, time, reason, note, times).
async fn rollout_events(ns: &TestNamespace) -> Vec<(String, Timestamp, String, String, i32)> {
    rollout_event_objects(ns, NAME)
        .await
        .into_iter()
        .map(|e| {
            let last = e.series.as_ref().map(|s| s.last_observed_time.0);
            (
                e.reporting_instance.unwrap_or_default(),
                last.or(e.event_time.map(|t| t.0)).unwrap_or_default(),
                e.reason.unwrap_or_default(),
                e.note.unwrap_or_default(),
                e.series.map_or(1, |s| s.count),
            )
        })
        .collect()
}

fn log_of(ns: &TestNamespace, identity: &str) -> String {
    std::fs::read_to_string(controller_log(ns, identity)).unwrap_or_default()
}

#[tokio::test]
#[ignore = "needs the sandbox: make test"]
async fn a_leader_resumed_after_losing_the_lease_writes_nothing() {
    let ns = TestNamespace::new("fence").await;
    demo_route(&ns).await;
    let tap = Tap::new(&ns);
    let proxy = ApiProxy::start(&ns, tap.clone()).await;
    let a = ControllerProcess::launch(&ns, A).kubeconfig(proxy.kubeconfig()).start();
    wait_holder(&ns, A, Duration::from_secs(20)).await;
    let _b = ControllerProcess::launch(&ns, B).append_log().start();

    let routing = json!({"gatewayAPI": {"httpRoute": {"name": NAME}}});
    create_stable_within(
        &ns,
        &canary_rollout(NAME, NAME, "v1", routing, steps()),
        RELEASE_TIMEOUT,
    )
    .await;
    let statuses = Recorded::watch(ns.api::<Rollout>(), NAME, |r| r.status);
    let weights = Recorded::watch(ns.api::<HttpRoute>(), NAME, |route| Some(canary_weight_on(&route)));
    release_version(&ns, NAME, "v2").await;
    let rollout = ns.api::<Rollout>().get(NAME).await.expect("rollout");
    let v2 = revision_hash(rollout.spec.template.as_ref().expect("template"));
    paused_at(&ns, &v2, 20).await;

    // A reconcile of a's is held on its read of the route, and a is stopped
    // there: it holds a plan's worth of stale state.
    let release = tap.arm();
    let poke = json!({"metadata": {"annotations": {"test.siskin.io/poke": "1"}}});
    ns.api::<Rollout>()
        .patch(NAME, &PatchParams::default(), &Patch::Merge(poke))
        .await
        .expect("touch the Rollout");
    tokio::time::timeout(Duration::from_secs(20), tap.holding.notified())
        .await
        .expect("a reconciles the touched Rollout and reads the route");
    a.signal("STOP");
    let (stopped, stopped_at) = (Instant::now(), Timestamp::now());

    // b takes over and moves the rollout while a is stopped.
    wait_holder(&ns, B, Duration::from_secs(40)).await;
    let took = stopped.elapsed();
    siskin(&["promote", NAME, "-n", &ns.name]).await;
    paused_at(&ns, &v2, 50).await;
    println!(
        "a stopped mid-reconcile; b took the Lease {:.1}s later and moved the canary to 50%",
        took.as_secs_f64()
    );

    // a resumes with its stale reconcile, which now reads the route.
    a.signal("CONT");
    let _ = release.send(());
    eventually("a to see it lost the Lease", Duration::from_secs(30), || async {
        log_of(&ns, A).contains("lost the lease").then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = tap.sent_since(stopped);
    let writes: Vec<&Sent> = after.iter().filter(|s| s.is_write() && !s.is_lease()).collect();
    println!("a's requests after it was stopped: {after:#?}");
    assert!(
        writes.is_empty(),
        "a wrote after its Lease could have been taken: {writes:#?}"
    );
    assert!(
        after
            .iter()
            .any(|s| s.method == Method::GET && s.path == tap.route_path),
        "a's held reconcile did go on after it resumed"
    );
    assert!(
        log_of(&ns, A).contains("write fence closed"),
        "a's stale reconcile met the closed fence"
    );
    assert_eq!(lease_holder(&ns).await.as_deref(), Some(B), "b still leads");

    // b finishes the rollout: nothing a did shows.
    siskin(&["promote", NAME, "-n", &ns.name]).await;
    wait_rollout_within(&ns, NAME, "v2 to be promoted", RELEASE_TIMEOUT, |s| {
        s.phase == Some(RolloutPhase::Healthy) && s.stable_revision.as_deref() == Some(v2.as_str())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let weights = weights.snapshot();
    assert_eq!(
        weights,
        vec![0, 20, 50, 80, 0],
        "the canary's weight on the route only moved forward"
    );
    let statuses = statuses.snapshot();
    let entered = steps_entered(&statuses, &v2);
    assert!(
        entered.windows(2).all(|w| w[0] < w[1]) && entered.last() == Some(&4),
        "each step entered once, in order, through the last: {entered:?}"
    );

    // The Recorder folds repeats of a reason into one Event's series (the
    // note stays the first one's), so steps are counted, not named.
    let mut completed: BTreeMap<String, i32> = BTreeMap::new();
    let events = rollout_events(&ns).await;
    for (instance, at, reason, note, times) in &events {
        assert!(
            instance != A || *at <= stopped_at,
            "a published {reason} ({note}) after it was stopped; events: {events:#?}; a's requests: {:#?}",
            tap.sent_since(stopped)
                .iter()
                .filter(|s| s.is_write())
                .collect::<Vec<_>>()
        );
        if reason == "StepCompleted" {
            *completed.entry(instance.clone()).or_default() += times;
        }
    }
    println!("StepCompleted Events by replica: {completed:?}");
    let steps = steps().as_array().map_or(0, Vec::len) as i32;
    assert_eq!(
        completed.values().sum::<i32>(),
        steps,
        "each step completed once; events: {events:#?}"
    );
    delete_rollouts(&ns).await;
}
