//! A controller killed at any moment, or replaced by another replica, still
//! finishes every rollout exactly as an uninterrupted one would: the Rollout's
//! status is its only memory, and only the holder of the Lease writes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::*;
use futures::StreamExt;
use gateway_api::httproutes::HttpRoute;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::ListParams;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use siskin::api::conditions::{find_condition, types};
use siskin::api::{REVISION_LABEL, Rollout, RolloutPhase, RolloutStatus, revision_hash};
use tokio::sync::mpsc;

const NAME: &str = "demo";
/// One pod per revision: the canary is at full size from its first step,
/// and each release waits for a single pod start (slow on a busy sandbox).
const REPLICAS: i32 = 1;
/// How long a release may take on a busy sandbox.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(180);
/// The Lease every controller of a test namespace competes for.
const LEASE: &str = "siskin-controller";
/// Kills that must land mid-rollout (between a release and its promotion)
/// in the first test; releases follow one another until there are as many.
const MIN_KILLS: usize = 10;
/// Each step holds this long; short, so kills land in every phase.
const HOLD_SECONDS: i64 = 2;

/// Three weight steps with timed holds and no pause: the rollout finishes on
/// its own, so every decision is the controller's.
fn steps() -> serde_json::Value {
    json!([
        {"weight": 20, "hold": {"min": "2s"}},
        {"weight": 50, "hold": {"min": "2s"}},
        {"weight": 80, "hold": {"min": "2s"}},
    ])
}

const STEP_WEIGHTS: [i32; 3] = [20, 50, 80];

/// Creates the Rollout at v1 and waits until v1 is stable; returns v1.
async fn first_release(ns: &TestNamespace) -> String {
    let routing = json!({"gatewayAPI": {"httpRoute": {"name": NAME}}});
    let mut rollout = canary_rollout(NAME, NAME, "v1", routing, steps());
    rollout.spec.replicas = REPLICAS;
    if let Some(canary) = rollout.spec.strategy.canary.as_mut() {
        canary.scale_down_delay = Some("2s".into());
    }
    create(&ns.api(), &rollout).await;
    let status = wait_rollout_within(ns, NAME, "v1 to become stable", RELEASE_TIMEOUT, |s| {
        s.phase == Some(RolloutPhase::Healthy) && s.stable_revision.is_some()
    })
    .await;
    status.stable_revision.expect("stable revision")
}

/// The revision of the template the Rollout's spec holds now, computed here
/// rather than taken from the controller's status.
async fn spec_revision(ns: &TestNamespace) -> String {
    let rollout = ns.api::<Rollout>().get(NAME).await.expect("rollout");
    revision_hash(rollout.spec.template.as_ref().expect("template"))
}

/// Whether `revision` is stable and serves everything.
fn is_promoted(status: Option<&RolloutStatus>, revision: &str) -> bool {
    status.is_some_and(|s| s.phase == Some(RolloutPhase::Healthy) && s.stable_revision.as_deref() == Some(revision))
}

async fn is_retired(ns: &TestNamespace, revision: &str) -> bool {
    revision_replicas(ns, revision).await == 0 && revision_pod_uids(ns, revision).await.is_empty()
}

/// Waits for `new` to be stable with all traffic and `old` scaled to zero.
async fn wait_finished(ns: &TestNamespace, old: &str, new: &str) {
    wait_rollout_within(ns, NAME, "the new revision to be promoted", RELEASE_TIMEOUT, |s| {
        is_promoted(Some(s), new)
    })
    .await;
    eventually("the old revision to scale down", Duration::from_secs(60), || async {
        is_retired(ns, old).await.then_some(())
    })
    .await;
}

/// What the status history says about the steps of the rollout to `revision`:
/// the step indices in the order they were entered, and for each index the
/// distinct times its hold started.
fn step_history(history: &[RolloutStatus], revision: &str) -> (Vec<i32>, BTreeMap<i32, BTreeSet<Timestamp>>) {
    let mut entered = Vec::new();
    let mut starts: BTreeMap<i32, BTreeSet<Timestamp>> = BTreeMap::new();
    for status in history
        .iter()
        .filter(|s| s.canary_revision.as_deref() == Some(revision))
    {
        let Some(index) = status.current_step_index else {
            continue;
        };
        if entered.last() != Some(&index) {
            entered.push(index);
        }
        if let Some(at) = &status.step_started_at {
            starts.entry(index).or_default().insert(at.0);
        }
    }
    (entered, starts)
}

/// How often the stable revision became `revision` in the history.
fn promotions(history: &[RolloutStatus], revision: &str) -> usize {
    history
        .windows(2)
        .filter(|w| {
            w[0].stable_revision.as_deref() != Some(revision) && w[1].stable_revision.as_deref() == Some(revision)
        })
        .count()
}

/// Asserts, from the status history, that each step was entered once and in
/// order, that its hold started once (a repeated step would restart it) and
/// lasted, and that the revision was promoted exactly once and stayed stable.
fn assert_each_step_once(history: &[RolloutStatus], revision: &str) {
    let (entered, starts) = step_history(history, revision);
    let all_steps: Vec<i32> = (0..STEP_WEIGHTS.len() as i32).collect();
    assert_eq!(
        entered, all_steps,
        "each step entered once, in order; history: {history:#?}"
    );
    for index in &all_steps {
        let at = starts.get(index).map(|s| s.len()).unwrap_or(0);
        assert_eq!(at, 1, "step {index}: its hold started exactly once; starts: {starts:?}");
    }
    let firsts: Vec<Timestamp> = starts.values().filter_map(|s| s.first().copied()).collect();
    for pair in firsts.windows(2) {
        let held = pair[1].duration_since(pair[0]).as_secs();
        assert!(
            held >= HOLD_SECONDS,
            "a step advanced after {held}s, before its hold: {firsts:?}"
        );
    }
    // The promoting write flips Progressing to False, stamped with its time.
    let promoted = history.iter().find(|s| s.stable_revision.as_deref() == Some(revision));
    let progressing = promoted.and_then(|s| find_condition(&s.conditions, types::PROGRESSING));
    let promoted_at = progressing
        .filter(|c| c.reason == "Promoted")
        .map(|c| c.last_transition_time.0)
        .expect("the promoting status says Progressing=False/Promoted");
    let last_held = firsts.last().map(|last| promoted_at.duration_since(*last).as_secs());
    assert!(
        last_held.is_some_and(|held| held >= HOLD_SECONDS),
        "promoted {last_held:?}s after the last step started, before its hold"
    );
    assert_eq!(promotions(history, revision), 1, "{revision} promoted exactly once");
    let after = history
        .iter()
        .skip_while(|s| s.stable_revision.as_deref() != Some(revision))
        .collect::<Vec<_>>();
    assert!(
        after.iter().all(|s| s.stable_revision.as_deref() == Some(revision)),
        "once promoted, {revision} stays stable"
    );
}

/// The Events about the Rollout published in `[since, until]`: (reason,
/// note) → times published, counting an Event's series (the Recorder patches
/// a repeat into the same Event).
async fn event_counts(ns: &TestNamespace, since: Timestamp, until: Timestamp) -> BTreeMap<(String, String), i32> {
    let mut counts = BTreeMap::new();
    for event in rollout_event_objects(ns, NAME).await {
        let at = event.event_time.as_ref().map(|t| t.0);
        if !at.is_some_and(|at| since <= at && at <= until) {
            continue;
        }
        let times = event.series.as_ref().map_or(1, |s| s.count);
        let key = (event.reason.unwrap_or_default(), event.note.unwrap_or_default());
        *counts.entry(key).or_insert(0) += times;
    }
    counts
}

/// Events are published after the status write, so a kill in between can
/// lose one but never duplicate it: each step's StepCompleted and the
/// revision's Promoted appear at most once. Returns how many were lost.
async fn assert_events_at_most_once(ns: &TestNamespace, revision: &str, since: Timestamp) -> usize {
    let counts = event_counts(ns, since, Timestamp::now()).await;
    let mut lost = 0;
    for (index, weight) in STEP_WEIGHTS.iter().enumerate() {
        let note = format!("step {}/{} (weight {weight}) completed", index + 1, STEP_WEIGHTS.len());
        let times = counts
            .get(&("StepCompleted".to_string(), note.clone()))
            .copied()
            .unwrap_or(0);
        assert!(times <= 1, "`{note}` published {times} times; events: {counts:#?}");
        lost += usize::from(times == 0);
    }
    let promoted: i32 = counts
        .iter()
        .filter(|((reason, note), _)| reason == "Promoted" && note.starts_with(revision))
        .map(|(_, n)| n)
        .sum();
    assert!(
        promoted <= 1,
        "Promoted published {promoted} times; events: {counts:#?}"
    );
    lost + usize::from(promoted == 0)
}

/// The pods of a revision seen so far, and the ones it had on first
/// reaching full size.
#[derive(Default)]
struct PodsSeen {
    ever: BTreeSet<String>,
    at_full: BTreeSet<String>,
}

impl PodsSeen {
    async fn look(&mut self, ns: &TestNamespace, revision: &str) {
        let pods = revision_pod_uids(ns, revision).await;
        if self.at_full.is_empty() && pods.len() == REPLICAS as usize {
            self.at_full = pods.clone();
        }
        self.ever.extend(pods);
    }

    /// Asserts the revision's pods were never replaced: one ReplicaSet (the
    /// template never changed), and every pod ever seen is still there.
    async fn assert_kept(&self, ns: &TestNamespace, revision: &str) {
        let selector = format!("{REVISION_LABEL}={revision}");
        let sets = ns
            .api::<ReplicaSet>()
            .list(&ListParams::default().labels(&selector))
            .await;
        assert_eq!(
            sets.expect("replica sets").items.len(),
            1,
            "{revision} has one ReplicaSet"
        );
        let now = revision_pod_uids(ns, revision).await;
        assert_eq!(now.len(), REPLICAS as usize, "{revision} runs at full size");
        assert_eq!(now, self.at_full, "{revision}'s pods are the ones it had at full size");
        assert_eq!(now, self.ever, "no pod of {revision} was ever replaced");
    }
}

/// Where the rollout stood when the controller was killed.
#[derive(Clone, Debug, PartialEq)]
struct Moment {
    phase: String,
    step: Option<i32>,
    weight: Option<i32>,
    message: Option<String>,
}

impl Moment {
    fn of(status: Option<&RolloutStatus>) -> Moment {
        Moment {
            phase: status.and_then(|s| s.phase).map_or("-", |p| p.as_str()).to_string(),
            step: status.and_then(|s| s.current_step_index),
            weight: status.and_then(|s| s.canary_weight),
            message: status.and_then(|s| s.message.clone()),
        }
    }

    fn place(&self) -> String {
        match self.step {
            Some(i) => format!("step {}", i + 1),
            None => self.phase.clone(),
        }
    }
}

impl std::fmt::Display for Moment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let weight = self.weight.map_or("-".to_string(), |w| w.to_string());
        let message = self.message.as_deref().unwrap_or("");
        write!(f, "{}, weight {weight}: {message}", self.place())
    }
}

fn kill_seed() -> u64 {
    std::env::var("SISKIN_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random)
}

/// The canary's weight on the route at each of its generations.
type RouteHistory = Arc<Mutex<Vec<(i64, i32)>>>;

/// Watches the route: records each generation's canary weight, and sends
/// the generation each time the controller writes the route.
fn watch_route_writes(ns: &TestNamespace) -> (mpsc::UnboundedReceiver<i64>, RouteHistory, tokio::task::JoinHandle<()>) {
    let api: Api<HttpRoute> = ns.api();
    let (tx, rx) = mpsc::unbounded_channel();
    let history = RouteHistory::default();
    let sink = history.clone();
    let config = watcher::Config::default().fields(&format!("metadata.name={NAME}"));
    let task = tokio::spawn(async move {
        let mut stream = watcher(api, config).default_backoff().applied_objects().boxed();
        let mut last = None;
        while let Some(next) = stream.next().await {
            let Ok(route) = next else { continue };
            let Some(generation) = route.metadata.generation else {
                continue;
            };
            if last == Some(generation) {
                continue;
            }
            sink.lock()
                .expect("route history")
                .push((generation, canary_weight_on(&route)));
            if last.is_some() && tx.send(generation).is_err() {
                return;
            }
            last = Some(generation);
        }
    });
    (rx, history, task)
}

/// Asserts traffic only ever moved forward on the route through the steps
/// after generation `from`: each step's weight once, then 0 at promotion
/// (the stable Service then selects the promoted pods). A controller that
/// undid a step or a promotion after a restart would show a weight going
/// back.
fn assert_route_moved_forward(history: &RouteHistory, from: i64) {
    let mut weights: Vec<i32> = Vec::new();
    for (generation, weight) in history.lock().expect("route history").iter() {
        if *generation > from && weights.last() != Some(weight) {
            weights.push(*weight);
        }
    }
    let mut expected = STEP_WEIGHTS.to_vec();
    expected.push(0);
    assert_eq!(
        weights, expected,
        "the canary's weights on the route, write after write"
    );
}

/// What made a kill happen.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Trigger {
    /// A random delay after the controller started.
    Timer,
    /// The controller had just written the route: the kill races its
    /// status write, the moment a restart must not repeat or skip a step.
    RouteWrite,
}

/// Kills and restarts the controller of one test namespace.
struct Killer {
    rng: SmallRng,
    controller: ControllerProcess,
    since: Instant,
    kills: Vec<(Trigger, Moment)>,
    route_writes: mpsc::UnboundedReceiver<i64>,
    route_watch: tokio::task::JoinHandle<()>,
}

impl Drop for Killer {
    fn drop(&mut self) {
        self.route_watch.abort();
    }
}

impl Killer {
    /// Kills the controller as soon as it writes the route, and otherwise
    /// after random delays of 0.3–3 s, restarting it each time, until `new`
    /// is promoted and `old` retired. A timed kill at a moment the previous
    /// kill already hit (e.g. kwok still starting a pod) is let be, so the
    /// kills spread over the rollout's states. Returns `new`'s pods.
    async fn kill_until_finished(&mut self, ns: &TestNamespace, old: &str, new: &str) -> PodsSeen {
        let (started, first_kill) = (Instant::now(), self.kills.len());
        let mut pods = PodsSeen::default();
        loop {
            let delay = Duration::from_millis(self.rng.random_range(300..=3000));
            let trigger = tokio::select! {
                _ = tokio::time::sleep(delay) => Trigger::Timer,
                Some(_) = self.route_writes.recv() => Trigger::RouteWrite,
            };
            if trigger == Trigger::RouteWrite {
                self.controller.kill().await;
            }
            pods.look(ns, new).await;
            let status = rollout_status(ns, NAME).await;
            let finished = is_promoted(status.as_ref(), new) && is_retired(ns, old).await;
            if finished && trigger == Trigger::Timer {
                return pods;
            }
            let moment = Moment::of(status.as_ref());
            assert!(
                started.elapsed() < RELEASE_TIMEOUT,
                "the rollout did not finish within {RELEASE_TIMEOUT:?} of kills; at {moment}"
            );
            let repeated = self.kills.len() > first_kill && self.kills.last().map(|(_, m)| m) == Some(&moment);
            if trigger == Trigger::Timer && repeated {
                continue;
            }
            self.controller.kill().await;
            // Writes by the controller just killed are no trigger for the next.
            while self.route_writes.try_recv().is_ok() {}
            let ran = self.since.elapsed().as_secs_f64();
            println!(
                "kill {:>2} ({trigger:?}) after {ran:.2}s: {moment}",
                self.kills.len() + 1
            );
            self.kills.push((trigger, moment));
            self.controller = ControllerProcess::launch(ns, "a").append_log().start();
            self.since = Instant::now();
        }
    }
}

/// Kills that hit a rollout between its release and its promotion.
fn mid_rollout(kills: &[(Trigger, Moment)]) -> usize {
    kills.iter().filter(|(_, m)| m.step.is_some()).count()
}

fn print_kills(kills: &[(Trigger, Moment)], took: Duration) {
    let mut by_place: BTreeMap<String, usize> = BTreeMap::new();
    for (_, moment) in kills {
        *by_place.entry(moment.place()).or_default() += 1;
    }
    let on_route_write = kills.iter().filter(|(t, _)| *t == Trigger::RouteWrite).count();
    println!(
        "{} kills in {:.1}s ({on_route_write} right after a route write), by where the rollout stood: {by_place:?}",
        kills.len(),
        took.as_secs_f64()
    );
}

#[tokio::test]
#[ignore = "needs the sandbox: make test"]
async fn controller_killed_at_any_moment_finishes_every_rollout_correctly() {
    let ns = TestNamespace::new("ctl-kill").await;
    demo_route(&ns).await;
    let controller = ControllerProcess::launch(&ns, "a").append_log().start();
    let mut stable = first_release(&ns).await;
    let history = Recorded::watch(ns.api::<Rollout>(), NAME, |r| r.status);
    let seed = kill_seed();
    println!("kill delays drawn from seed {seed} (SISKIN_KILL_SEED={seed} replays them)");
    let rng = SmallRng::seed_from_u64(seed);
    let (route_writes, route_history, route_watch) = watch_route_writes(&ns);
    let mut killer = Killer {
        rng,
        controller,
        since: Instant::now(),
        kills: Vec::new(),
        route_writes,
        route_watch,
    };
    let (started, mut lost) = (Instant::now(), 0);
    // Releases follow one another until enough kills landed mid-rollout.
    for version in ["v2", "v3", "v4", "v5"] {
        let since = Timestamp::now();
        let generation = ns
            .api::<HttpRoute>()
            .get(NAME)
            .await
            .expect("route")
            .metadata
            .generation;
        release_version(&ns, NAME, version).await;
        let revision = spec_revision(&ns).await;
        println!("release {version} ({revision})");
        let pods = killer.kill_until_finished(&ns, &stable, &revision).await;
        assert_eq!(
            demo_route_weights(&ns).await,
            vec![("demo-stable".to_string(), 100), ("demo-canary".to_string(), 0)],
            "all traffic on stable"
        );
        pods.assert_kept(&ns, &revision).await;
        // Give the watches a moment to deliver the last writes.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_route_moved_forward(&route_history, generation.unwrap_or(0));
        let statuses = history.snapshot();
        assert_each_step_once(&statuses, &revision);
        let (entered, starts) = step_history(&statuses, &revision);
        println!("{version}: steps entered {entered:?}, holds started {starts:?}");
        lost += assert_events_at_most_once(&ns, &revision, since).await;
        stable = revision;
        if mid_rollout(&killer.kills) >= MIN_KILLS {
            break;
        }
    }
    print_kills(&killer.kills, started.elapsed());
    println!("Events: no StepCompleted/Promoted duplicated; {lost} lost to a kill between status write and Event");
    println!("route: steps and promotions only moved forward");
    let mid = mid_rollout(&killer.kills);
    assert!(mid >= MIN_KILLS, "only {mid} kills landed mid-rollout");
    delete_rollouts(&ns).await;
}

async fn lease_holder(ns: &TestNamespace) -> Option<String> {
    let lease = ns.api::<Lease>().get_opt(LEASE).await.ok()??;
    lease.spec?.holder_identity
}

fn log_of(ns: &TestNamespace, identity: &str) -> String {
    std::fs::read_to_string(controller_log(ns, identity)).unwrap_or_default()
}

const ACQUIRED: &str = "acquired the lease";

/// Waits for `identity` to hold the Lease, asserting on the way that nobody
/// writes the Rollout while `previous` (dead) still holds it. Returns how
/// long it took.
async fn wait_takeover(ns: &TestNamespace, identity: &str, previous: &str) -> Duration {
    let start = Instant::now();
    // A write the dead leader sent just before the kill may still land.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let version = |r: Rollout| r.resource_version();
    let before = ns.api::<Rollout>().get(NAME).await.ok().and_then(version);
    loop {
        // Read the Rollout first: a write seen here with the Lease still on
        // the dead leader (read after) is a write by a non-leader.
        let now = ns.api::<Rollout>().get(NAME).await.ok().and_then(version);
        let holder = lease_holder(ns).await;
        if holder.as_deref() == Some(identity) {
            return start.elapsed();
        }
        if holder.as_deref() == Some(previous) {
            assert_eq!(now, before, "the Rollout changed while no live replica held the Lease");
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{identity} did not take the Lease within 30s; holder {holder:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
#[ignore = "needs the sandbox: make test"]
async fn two_replicas_only_the_leader_writes_and_a_follower_takes_over() {
    let ns = TestNamespace::new("ctl-leader").await;
    demo_route(&ns).await;
    let mut a = ControllerProcess::launch(&ns, "a").append_log().start();
    eventually("a to hold the Lease", Duration::from_secs(20), || async {
        (lease_holder(&ns).await.as_deref() == Some("a")).then_some(())
    })
    .await;
    let _b = ControllerProcess::launch(&ns, "b").append_log().start();
    let v1 = first_release(&ns).await;
    release_version(&ns, NAME, "v2").await;
    let v2 = spec_revision(&ns).await;
    let status = wait_rollout_within(&ns, NAME, "the canary past its first step", RELEASE_TIMEOUT, |s| {
        s.canary_revision.as_deref() == Some(v2.as_str()) && s.current_step_index.is_some_and(|i| i >= 1)
    })
    .await;
    let step = status.current_step_index.unwrap_or(0) + 1;
    assert_eq!(lease_holder(&ns).await.as_deref(), Some("a"), "a still leads");
    assert!(
        !log_of(&ns, "b").contains(ACQUIRED),
        "the follower never started its controller"
    );

    let killed_at = Timestamp::now();
    a.kill().await;
    let took = wait_takeover(&ns, "b", "a").await;
    println!(
        "leader a killed at step {step}; b took the Lease {:.1}s later",
        took.as_secs_f64()
    );
    assert!(
        took < Duration::from_secs(20),
        "b took over within the 15s Lease (+ margin)"
    );
    // The Lease is written just before b starts its controller and logs it.
    eventually("b to start its controller", Duration::from_secs(10), || async {
        log_of(&ns, "b").contains(ACQUIRED).then_some(())
    })
    .await;
    wait_finished(&ns, &v1, &v2).await;
    let status = rollout_status(&ns, NAME).await.expect("status");
    assert_eq!(status.stable_revision.as_deref(), Some(v2.as_str()));
    assert_eq!(demo_route_weights(&ns).await[0], ("demo-stable".to_string(), 100));

    // Events name the replica that published them: a's all before the kill,
    // b's all after, and b did finish the rollout.
    let mut by: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for event in rollout_event_objects(&ns, NAME).await {
        let at = event.event_time.as_ref().map(|t| t.0).expect("eventTime");
        let instance = event.reporting_instance.clone().unwrap_or_default();
        let reason = event.reason.clone().unwrap_or_default();
        match instance.as_str() {
            "a" => assert!(at <= killed_at, "a published {reason} after it was killed"),
            "b" => assert!(at > killed_at, "b published {reason} while a led"),
            other => panic!("an Event from unknown instance {other:?}"),
        }
        by.entry(instance).or_default().push(reason);
    }
    println!("Events by replica: {by:?}");
    assert!(
        by.get("b").is_some_and(|r| r.iter().any(|r| r == "Promoted")),
        "b promoted v2"
    );
    delete_rollouts(&ns).await;
}

#[tokio::test]
#[ignore = "needs the sandbox: make test"]
async fn sigterm_stops_the_controller_cleanly_and_releases_the_lease() {
    let ns = TestNamespace::new("ctl-term").await;
    let mut a = ControllerProcess::launch(&ns, "a").append_log().start();
    eventually("a to hold the Lease", Duration::from_secs(20), || async {
        (lease_holder(&ns).await.as_deref() == Some("a")).then_some(())
    })
    .await;
    let exit = a.terminate().await;
    assert!(exit.success(), "a exits cleanly on SIGTERM: {exit}");
    assert_eq!(
        lease_holder(&ns).await,
        None,
        "the Lease is free for the next replica at once, not after it expires"
    );
    assert!(log_of(&ns, "a").contains("released the lease"));
}
