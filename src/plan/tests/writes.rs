//! What one release costs the API server: the engine driven through whole
//! releases against a simulated cluster that reacts as the real one does
//! (pods become available, the data plane accepts a route write a moment
//! later, every write wakes the Rollout again), counting the writes its
//! plans ask for. Every write is API-server capacity the rest of the
//! cluster does not get, multiplied by every Rollout released at once.

use std::collections::BTreeMap;

use super::*;

/// A cluster that does what the engine asks, one reconcile late.
struct Cluster {
    spec: RolloutSpec,
    status: Option<RolloutStatus>,
    observed: Observed,
    now: i64,
    /// Writes by kind, as the controller's `siskin_api_writes_total` counts them.
    writes: BTreeMap<&'static str, u32>,
    /// Each status write's changes, for a failing test to show.
    log: Vec<String>,
    /// When the status was last written.
    written_at: Option<i64>,
}

impl Cluster {
    /// A Rollout serving `STABLE` everywhere, Healthy.
    fn healthy(spec: RolloutSpec) -> Self {
        let mut cluster = Cluster {
            spec,
            status: None,
            observed: steady_world(STABLE),
            now: 0,
            writes: BTreeMap::new(),
            log: Vec::new(),
            written_at: None,
        };
        cluster.settle(600);
        cluster.writes.clear();
        cluster.log.clear();
        cluster
    }

    /// A new pod template, as `kubectl apply` of a new image makes it.
    fn release(&mut self, revision: &str) {
        self.observed.generation = Some(self.observed.generation.unwrap_or(1) + 1);
        self.observed.desired_revision = Some(revision.into());
    }

    /// Reconciles until nothing more happens or `horizon` seconds pass.
    fn settle(&mut self, horizon: i64) {
        let until = self.now + horizon;
        while self.now < until {
            let plan = plan(&self.spec, self.status.as_ref(), &self.observed, at(self.now));
            assert_one_write_of_each_route_part(&plan);
            let mut woken = self.catch_up();
            for action in &plan.actions {
                self.act(action);
                woken = true;
            }
            let since_written = self.written_at.map(|t| secs(u64::try_from(self.now - t).unwrap_or(0)));
            let mut requeue_after = plan.requeue_after;
            match status_write(self.status.as_ref(), &plan.status, since_written) {
                StatusWrite::Unchanged => {}
                StatusWrite::After(after) => requeue_after = Some(requeue_after.map_or(after, |r| r.min(after))),
                StatusWrite::Now => {
                    self.log.push(format!(
                        "t={}: {}",
                        self.now,
                        changes(self.status.as_ref(), &plan.status)
                    ));
                    *self.writes.entry("status_patch").or_default() += 1;
                    self.status = Some(plan.status);
                    self.written_at = Some(self.now);
                    woken = true;
                }
            }
            *self.writes.entry("event").or_default() += u32::try_from(plan.events.len()).unwrap_or(u32::MAX);
            // A write comes back as a watch event a moment later; otherwise
            // the engine's own requeue, if any, wakes it.
            self.now += match (woken, requeue_after) {
                (true, _) => 1,
                (false, Some(after)) => i64::try_from(after.as_secs().max(1)).unwrap_or(i64::MAX),
                (false, None) if self.pending() => 1,
                (false, None) => return,
            };
        }
    }

    /// Whether the cluster is still catching up with earlier writes.
    fn pending(&self) -> bool {
        let unavailable = self
            .observed
            .revisions
            .iter()
            .any(|r| r.available_replicas != r.replicas);
        let unaccepted = matches!(self.observed.route, Some(RouteState::Present { accepted: false, .. }));
        unavailable || unaccepted
    }

    /// Pods started by earlier writes become available, and the data plane
    /// accepts the route; true if anything changed.
    fn catch_up(&mut self) -> bool {
        let pending = self.pending();
        for revision in &mut self.observed.revisions {
            revision.available_replicas = revision.replicas;
        }
        if let Some(RouteState::Present { accepted, .. }) = &mut self.observed.route {
            *accepted = true;
        }
        pending
    }

    fn act(&mut self, action: &Action) {
        let kind = match action {
            Action::Deploy { revision, replicas } | Action::Scale { revision, replicas } => {
                let revisions = &mut self.observed.revisions;
                match revisions.iter_mut().find(|r| &r.revision == revision) {
                    Some(found) => found.replicas = *replicas,
                    None => revisions.push(RevisionState {
                        revision: revision.clone(),
                        replicas: *replicas,
                        available_replicas: 0,
                        current: true,
                    }),
                }
                if matches!(action, Action::Deploy { .. }) {
                    "deployment_apply"
                } else {
                    "deployment_scale"
                }
            }
            Action::SelectRevisions { stable, canary } => {
                self.observed.services = ServiceSelectors {
                    stable: Some(stable.clone()),
                    canary: Some(canary.clone()),
                };
                "service_apply"
            }
            Action::SelectStable { revision } => {
                self.observed.services.stable = Some(revision.clone());
                "service_apply"
            }
            Action::SetWeights(split) => {
                self.route_write(|route_split, _| *route_split = Some(*split));
                "route_patch"
            }
            Action::SetMirror(percent) => {
                self.route_write(|_, mirror| *mirror = *percent);
                "route_patch"
            }
            Action::SetMatches(_) | Action::ScaleDownWorkloadRef => "other",
        };
        *self.writes.entry(kind).or_default() += 1;
    }

    fn route_write(&mut self, change: impl FnOnce(&mut Option<TrafficSplit>, &mut Option<i32>)) {
        if let Some(RouteState::Present {
            split,
            accepted,
            mirror,
            ..
        }) = &mut self.observed.route
        {
            change(split, mirror);
            *accepted = false;
        }
    }

    fn total(&self) -> u32 {
        self.writes.values().sum()
    }

    fn phase(&self) -> Option<RolloutPhase> {
        self.status.as_ref().and_then(|s| s.phase)
    }
}

/// The fields a status write changes, for a failing test's message.
fn changes(before: Option<&RolloutStatus>, after: &RolloutStatus) -> String {
    let as_map = |s: Option<&RolloutStatus>| match s.map(serde_json::to_value) {
        Some(Ok(serde_json::Value::Object(map))) => map,
        _ => serde_json::Map::new(),
    };
    let (before, after) = (as_map(before), as_map(Some(after)));
    let mut keys: Vec<&String> = before.keys().chain(after.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| before.get(*k) != after.get(*k))
        .map(|k| format!("{k}={}", after.get(k).map_or("-".to_string(), ToString::to_string)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The scale benchmark's release: 10 %, then 50 %, each held 5 s, the old
/// revision scaled down 3 s after the promotion.
fn two_short_steps(replicas: i32) -> RolloutSpec {
    let mut spec = spec(vec![
        CanaryStep::weight(10, hold("5s", None)),
        CanaryStep::weight(50, hold("5s", None)),
    ]);
    spec.replicas = replicas;
    if let Some(canary) = spec.strategy.canary.as_mut() {
        canary.scale_down_delay = Some(crate::api::Duration::new("3s"));
    }
    spec
}

/// Releases `CANARY` on a healthy Rollout of `spec` and returns the cluster
/// once it is promoted.
fn released(spec: RolloutSpec) -> Cluster {
    let mut cluster = Cluster::healthy(spec);
    cluster.release(CANARY);
    cluster.settle(600);
    assert_eq!(cluster.phase(), Some(RolloutPhase::Healthy), "{:#?}", cluster.log);
    assert_eq!(
        cluster.status.as_ref().and_then(|s| s.stable_revision.as_deref()),
        Some(CANARY)
    );
    cluster
}

fn assert_writes_at_most(cluster: &Cluster, objects: u32, events: u32) {
    let told = cluster.writes.get("event").copied().unwrap_or(0);
    assert!(
        cluster.total() - told <= objects && told <= events,
        "{} writes: {:?}\nstatus writes:\n{}",
        cluster.total(),
        cluster.writes,
        cluster.log.join("\n")
    );
}

#[test]
fn a_two_step_canary_release_of_one_pod_writes_each_object_only_when_it_must_change() {
    // The route 3 times (10 %, 50 %, back to 0), the canary's Deployment
    // and the old one's scale-down, each Service once, and the status 6
    // times: the release, each step with its hold, the promotion, the data
    // plane's acceptance of it (Healthy) and the old revision's scale-down.
    // Events: the new revision, the first weight, each step completed and
    // the promotion.
    assert_writes_at_most(&released(two_short_steps(1)), 13, 5);
}

#[test]
fn pods_resized_at_each_step_cost_their_own_writes_and_no_more() {
    // Ten replicas: the canary grows from 1 to 5 to 10 pods, and each step
    // and the promotion wait for them before traffic moves: two Deployment
    // applies and two status writes more, and the second weight gets its
    // own Event (it moves a reconcile after its step began).
    assert_writes_at_most(&released(two_short_steps(10)), 17, 6);
}
