//! One reconcile, top to bottom: observe → plan (pure) → act → status → Events
//! (status and Events first when the plan moves the canary to a later step).

use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::{Action as Requeue, Error as ControllerError};
use kube::runtime::events::{Event, EventType};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use tracing::Instrument;

use super::act::Target;
use super::analysis;
use super::hooks;
use super::observe::observe;
use super::{Context, Error, FIELD_MANAGER, FINALIZER};
use crate::api::conditions::{find_condition, reasons, types};
use crate::api::{Rollout, RolloutStatus};
use crate::plan::{
    EventKind, Plan, ROUTE_MISSING_POLL, RouteState, StatusWrite, clear_canary_traffic, due_hooks, plan, status_write,
};
use crate::routing::router_for;

/// The longest one reconcile may take. Every call inside has its own
/// timeout; this bounds their sum, so a Rollout whose webhooks, metrics or
/// API calls all hang gives its slot back to the others.
pub const RECONCILE_DEADLINE: Duration = Duration::from_secs(60);

/// How long a reconcile waits for the first list of Siskin's own objects.
const CACHE_LIST_LIMIT: Duration = Duration::from_secs(20);

/// How soon a Rollout whose reconcile panicked is tried again.
const PANIC_RETRY: Duration = Duration::from_secs(60);

/// Reconciles one Rollout, within [`RECONCILE_DEADLINE`], inside its
/// [`span`]. A panic is contained to this Rollout (a Warning Event and a
/// metric), never the process: one controller serves every Rollout in the
/// cluster. A failure is not logged here: [`error_policy`] logs each once.
pub async fn reconcile(rollout: Arc<Rollout>, ctx: Arc<Context>) -> Result<Requeue, Error> {
    let span = span(&rollout);
    reconcile_contained(rollout, ctx).instrument(span).await
}

async fn reconcile_contained(rollout: Arc<Rollout>, ctx: Arc<Context>) -> Result<Requeue, Error> {
    let started = Instant::now();
    let error = match contained(RECONCILE_DEADLINE, reconcile_unguarded(rollout.clone(), ctx.clone())).await {
        Err(error @ (Error::Panicked(_) | Error::Deadline(_))) => error,
        result => return result,
    };
    ctx.metrics.reconciled(started.elapsed(), Some(&error));
    Err(warn(&ctx, &rollout, error).await)
}

/// The span of one Rollout's reconcile and of its failure's log line: which
/// Rollout, and which spec (generation) and copy (resourceVersion) it
/// planned from.
fn span(rollout: &Rollout) -> tracing::Span {
    let namespace = rollout.namespace().unwrap_or_default();
    let resource_version = rollout.resource_version().unwrap_or_default();
    tracing::info_span!(
        "reconcile",
        namespace = %namespace,
        name = %rollout.name_any(),
        generation = rollout.metadata.generation,
        resource_version = %resource_version,
    )
}

/// Runs one reconcile so that neither a panic nor a hang inside it can
/// escape: either becomes this Rollout's error.
async fn contained(
    deadline: Duration,
    reconcile: impl Future<Output = Result<Requeue, Error>>,
) -> Result<Requeue, Error> {
    use futures::FutureExt;
    let guarded = std::panic::AssertUnwindSafe(reconcile).catch_unwind();
    match tokio::time::timeout(deadline, guarded).await {
        Ok(Ok(result)) => result,
        Ok(Err(panic)) => Err(Error::Panicked(panic_message(panic.as_ref()))),
        Err(_) => Err(Error::Deadline(deadline)),
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    let text = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_string());
    text.chars().take(200).collect()
}

async fn reconcile_unguarded(rollout: Arc<Rollout>, ctx: Arc<Context>) -> Result<Requeue, Error> {
    let started = Instant::now();
    let _in_flight = ctx.health.reconciling(cache_key(&rollout));
    let ns = rollout.namespace().ok_or(Error::MissingNamespace)?;
    if is_superseded(&ctx, &rollout) {
        // Our own last write has not reached the cache yet (e.g. a route
        // event woke us first): planning now would only be refused with a
        // conflict. The watch delivers the write; look again soon anyway.
        return Ok(Requeue::requeue(STALE_CACHE_RETRY));
    }
    let api: Api<Rollout> = Api::namespaced(ctx.client.clone(), &ns);
    let result = finalizer(&api, FINALIZER, rollout, |event| async {
        match event {
            Finalizer::Apply(rollout) => apply(&rollout, &ctx, &ns).await,
            Finalizer::Cleanup(rollout) => cleanup(&rollout, &ctx, &ns).await,
        }
    })
    .await
    .map_err(|e| match e {
        kube::runtime::finalizer::Error::ApplyFailed(e) | kube::runtime::finalizer::Error::CleanupFailed(e) => e,
        other => Error::Finalizer(Box::new(other)),
    });
    ctx.metrics.reconciled(started.elapsed(), result.as_ref().err());
    result
}

/// Decides when a failed reconcile is retried, and logs the failure: the
/// one place it is logged, inside the Rollout's span, with its metric label.
pub fn error_policy(rollout: Arc<Rollout>, error: &Error, _ctx: Arc<Context>) -> Requeue {
    failed(&rollout, error)
}

fn failed(rollout: &Rollout, error: &Error) -> Requeue {
    let _span = span(rollout).entered();
    log_failure(error);
    retry_after(error)
}

fn log_failure(error: &Error) {
    let label = error.metric_label();
    if error.is_fenced() {
        // The fence warned once when it closed; each Rollout it stops
        // would repeat that warning.
        tracing::debug!(label, %error, "reconcile failed; retrying");
    } else if matches!(error, Error::Panicked(_) | Error::Deadline(_)) {
        tracing::error!(label, %error, "reconcile failed; retrying");
    } else {
        tracing::warn!(label, %error, "reconcile failed; retrying");
    }
}

fn retry_after(error: &Error) -> Requeue {
    match error {
        // Someone edited the route between our read and our write: re-read
        // and re-plan at once.
        Error::Routing(crate::routing::RoutingError::Conflict { .. }) => Requeue::requeue(Duration::from_millis(500)),
        Error::Panicked(_) => Requeue::requeue(PANIC_RETRY),
        _ => Requeue::requeue(Duration::from_secs(5)),
    }
}

/// Logs what the controller loop yields for each reconcile. A failed
/// reconcile was logged by [`error_policy`] already; what remains are the
/// loop's own errors (a watch that failed, a Rollout gone from the cache).
pub fn log_outcome(outcome: Result<(ObjectRef<Rollout>, Requeue), ControllerError<Error, watcher::Error>>) {
    match outcome {
        Ok((rollout, requeue)) => tracing::debug!(%rollout, ?requeue, "reconciled"),
        Err(ControllerError::ReconcilerFailed(..)) => {}
        // A trigger for a Rollout deleted meanwhile: expected, nothing to do.
        Err(error @ ControllerError::ObjectNotFound(_)) => tracing::debug!(%error, "not reconciled"),
        Err(error @ ControllerError::QueueError(_)) => tracing::warn!(%error, "watch failed; it restarts with backoff"),
        Err(error @ ControllerError::RunnerError(_)) => tracing::error!(%error, "controller runner failed"),
    }
}

async fn apply(rollout: &Rollout, ctx: &Arc<Context>, ns: &str) -> Result<Requeue, Error> {
    let router = router_for(ctx.client.clone(), ns, &rollout.spec);
    ctx.owned.wait_until_listed(CACHE_LIST_LIMIT).await?;
    let mut world = match observe((&ctx.client, &ctx.owned), ns, rollout, router.as_deref()).await {
        Ok(world) => world,
        Err(e) => return Err(warn(ctx, rollout, e).await),
    };
    let now = Timestamp::now();
    let due = due_hooks(&rollout.spec, rollout.status.as_ref(), now);
    let answers = hooks::call_all(&ctx.egress, rollout, due).await;
    world.observed.hooks = answers.results;
    let analysis = analysis::evaluate(&ctx.client, &ctx.egress, (ns, &ctx.home_namespace), rollout, now).await;
    world.observed.verdict = analysis.as_ref().and_then(|a| a.verdict);
    world.observed.analysis = analysis;
    world.observed.queue = ctx.queue.place(rollout, &world.observed);
    let plan = plan(&rollout.spec, rollout.status.as_ref(), &world.observed, now);
    ctx.queue.settle(rollout, &plan.status);
    let target = Target {
        client: &ctx.client,
        ns,
        rollout,
        template: world.template.as_ref(),
        deployments: &world.deployments,
        services: &world.services,
        router: router.as_deref(),
        metrics: &ctx.metrics,
    };
    // Most plans are acted on first and recorded after: their status never
    // claims what has not happened, and after a crash in between the next
    // plan decides the same again. A plan that moves the canary to a later
    // step is recorded first: acted on first, a crash before the record would
    // leave the next step's weight on the route, and the next controller,
    // planning from the older status, would set the previous step's weight
    // again (traffic would step back, then forward).
    let forward = moves_forward(rollout.status.as_ref(), &plan.status);
    let mut deferred = None;
    if forward {
        deferred = record(ctx, rollout, ns, &plan).await?;
    }
    for action in &plan.actions {
        if let Err(e) = target.apply(action).await {
            return Err(warn(ctx, rollout, e).await);
        }
    }
    if !forward {
        deferred = record(ctx, rollout, ns, &plan).await?;
    }
    ctx.metrics.observe_rollout(rollout, &plan.status);
    // Route changes wake the Rollout (controller/routes.rs), but only for
    // kinds served when the controller started: while a route is missing or
    // lacks our backends, also look again now and then, so a route whose
    // CRD was installed later is still found.
    let route_unusable = matches!(
        world.observed.route,
        Some(RouteState::NotFound | RouteState::MissingBackends { .. })
    );
    let requeue_after = plan
        .requeue_after
        .or_else(|| route_unusable.then_some(ROUTE_MISSING_POLL));
    // A passing note not yet written is written once it has stood long enough.
    let requeue_after = match (requeue_after, deferred) {
        (Some(after), Some(note)) => Some(after.min(note)),
        (after, note) => after.or(note),
    };
    // Calls that found no free outbound slot are made on a later reconcile.
    let retry = hooks::DEFERRED_RETRY;
    let requeue_after = if answers.deferred {
        Some(requeue_after.map_or(retry, |after| after.min(retry)))
    } else {
        requeue_after
    };
    Ok(match requeue_after {
        Some(after) => Requeue::requeue(after),
        None => Requeue::await_change(),
    })
}

/// How soon to look again at a Rollout whose cached copy predates our own
/// last status write.
const STALE_CACHE_RETRY: Duration = Duration::from_secs(1);

fn cache_key(rollout: &Rollout) -> String {
    format!("{}/{}", rollout.namespace().unwrap_or_default(), rollout.name_any())
}

fn is_superseded(ctx: &Context, rollout: &Rollout) -> bool {
    let superseded = ctx.superseded.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let key = cache_key(rollout);
    superseded
        .get(&key)
        .is_some_and(|rv| Some(rv) == rollout.metadata.resource_version.as_ref())
}

fn remember_superseded(ctx: &Context, rollout: &Rollout) {
    let mut superseded = ctx.superseded.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    match rollout.resource_version() {
        Some(rv) => superseded.insert(cache_key(rollout), rv),
        None => superseded.remove(&cache_key(rollout)),
    };
}

/// Whether `after` moves the same canary to a later step than `before`.
fn moves_forward(before: Option<&RolloutStatus>, after: &RolloutStatus) -> bool {
    let Some(before) = before else {
        return false;
    };
    match (before.current_step_index, after.current_step_index) {
        (Some(was), Some(now)) => now > was && before.canary_revision == after.canary_revision,
        _ => false,
    }
}

/// Writes the plan's status and publishes its Events, in that order: an
/// Event never tells of a decision the status does not hold. A status that
/// changes only passing notes waits (see [`crate::plan::status_write`]):
/// returns how long, if it does.
async fn record(ctx: &Arc<Context>, rollout: &Rollout, ns: &str, plan: &Plan) -> Result<Option<Duration>, Error> {
    let key = cache_key(rollout);
    let since_written = {
        let written = ctx
            .status_written
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        written.get(&key).map(Instant::elapsed)
    };
    let write = status_write(rollout.status.as_ref(), &plan.status, since_written);
    let deferred = match write {
        StatusWrite::After(after) => Some(after),
        StatusWrite::Unchanged | StatusWrite::Now => None,
    };
    if write == StatusWrite::Now {
        let api: Api<Rollout> = Api::namespaced(ctx.client.clone(), ns);
        // The resourceVersion makes the write conditional: a plan made from
        // a stale copy (the cache can lag behind our own last write, e.g.
        // right after a start) is refused with a conflict instead of
        // overwriting newer progress, and the next reconcile plans afresh.
        let status = json!({
            "apiVersion": "siskin.io/v1alpha1", "kind": "Rollout",
            "metadata": {"resourceVersion": rollout.resource_version()},
            "status": plan.status,
        });
        ctx.metrics.wrote("status_patch");
        let written = api
            .patch_status(
                &rollout.name_any(),
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(status),
            )
            .await?;
        // A write the server found identical keeps the resourceVersion and
        // brings no watch event: nothing to wait for then.
        if written.resource_version() != rollout.resource_version() {
            remember_superseded(ctx, rollout);
        }
        ctx.status_written
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key, Instant::now());
    }
    // Independent writes, off the reconcile's path: published together, in
    // the background, once the status they tell of is written.
    let mut told: Vec<(EventType, String, String)> = plan
        .events
        .iter()
        .map(|event| {
            let type_ = match event.kind {
                EventKind::Normal => EventType::Normal,
                EventKind::Warning => EventType::Warning,
            };
            (type_, event.reason.to_string(), event.message.clone())
        })
        .collect();
    if let Some((reason, message)) = started_waiting_for_route(rollout.status.as_ref(), &plan.status) {
        told.push((EventType::Warning, reason, message));
    }
    if !told.is_empty() {
        let (ctx, rollout) = (Arc::clone(ctx), rollout.clone());
        tokio::spawn(async move {
            let (ctx, rollout) = (&ctx, &rollout);
            futures::future::join_all(
                told.into_iter()
                    .map(|(type_, reason, message)| publish(ctx, rollout, type_, reason, message)),
            )
            .await;
        });
    }
    Ok(deferred)
}

/// A Rollout that starts waiting for a human to create or fix its route
/// gets one Warning Event besides its Progressing condition, so
/// `kubectl get events` shows why nothing moves.
fn started_waiting_for_route(before: Option<&RolloutStatus>, after: &RolloutStatus) -> Option<(String, String)> {
    let progressing = |s: &RolloutStatus| find_condition(&s.conditions, types::PROGRESSING).cloned();
    let now = progressing(after)?;
    let was = before.and_then(progressing).map(|c| c.reason);
    let waiting = [reasons::ROUTE_NOT_FOUND, reasons::ROUTE_MISSING_BACKENDS].contains(&now.reason.as_str());
    (waiting && was.as_deref() != Some(now.reason.as_str())).then_some((now.reason, now.message))
}

/// A deleted Rollout first hands all traffic back to stable and takes its
/// A/B rule off the route, so the route never points at a canary that is
/// about to disappear; then it leaves the stable revision and both Services
/// behind, serving, for the user to remove when the route no longer needs
/// them.
async fn cleanup(rollout: &Rollout, ctx: &Context, ns: &str) -> Result<Requeue, Error> {
    let router = router_for(ctx.client.clone(), ns, &rollout.spec);
    let target = Target {
        client: &ctx.client,
        ns,
        rollout,
        template: None,
        deployments: &[],
        services: &[],
        router: router.as_deref(),
        metrics: &ctx.metrics,
    };
    if let Some(router) = router.as_deref()
        && let Ok(route) = router.observe().await
    {
        // The same writes an abort makes: weights, match rule and mirror. A
        // mirror left behind would copy users' requests to a canary that is
        // about to disappear.
        for action in clear_canary_traffic(Some(&route)) {
            target.apply(&action).await?;
        }
    }
    if let Some(stable) = rollout.status.as_ref().and_then(|s| s.stable_revision.as_deref()) {
        target.hand_over(stable).await?;
        let service = &rollout.spec.service;
        let message = format!(
            "Rollout deleted: Services {} and {} and Deployment {} stay, serving revision {stable}; delete them once nothing routes to them",
            service.stable_name(),
            service.canary_name(),
            super::act::deployment_name(&rollout.name_any(), stable),
        );
        publish(ctx, rollout, EventType::Normal, "HandedOver", message).await;
    }
    ctx.metrics.forget_rollout(rollout);
    ctx.superseded
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .remove(&cache_key(rollout));
    ctx.status_written
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .remove(&cache_key(rollout));
    Ok(Requeue::await_change())
}

async fn warn(ctx: &Context, rollout: &Rollout, error: Error) -> Error {
    // A fenced replica may not write, Events included; the fence logged it.
    if error.is_fenced() {
        return error;
    }
    publish(
        ctx,
        rollout,
        EventType::Warning,
        error.event_reason(),
        error.to_string(),
    )
    .await;
    error
}

async fn publish(ctx: &Context, rollout: &Rollout, type_: EventType, reason: impl Into<String>, note: String) {
    let reason: String = reason.into();
    let event = Event {
        type_,
        reason: reason.clone(),
        note: Some(note),
        action: "Reconcile".to_string(),
        secondary: None,
    };
    ctx.metrics.wrote("event");
    let kind = if type_ == EventType::Warning {
        "Warning"
    } else {
        "Normal"
    };
    hooks::forward_event(
        &ctx.egress,
        rollout,
        kind,
        &reason,
        &event.note.clone().unwrap_or_default(),
    );
    if let Err(e) = ctx.recorder.publish(&event, &rollout.object_ref(&())).await {
        tracing::warn!(error = %e, "cannot publish event");
    }
}

#[cfg(test)]
mod tests;
