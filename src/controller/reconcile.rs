//! One reconcile, top to bottom: observe → plan (pure) → act → status → Events.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action as Requeue;
use kube::runtime::events::{Event, EventType};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use super::act::Target;
use super::observe::observe;
use super::{Context, Error, FIELD_MANAGER, FINALIZER};
use crate::api::Rollout;
use crate::plan::{EventKind, RouteState, TrafficSplit, plan};
use crate::routing::router_for;

pub async fn reconcile(rollout: Arc<Rollout>, ctx: Arc<Context>) -> Result<Requeue, Error> {
    let started = Instant::now();
    let ns = rollout.namespace().ok_or(Error::MissingNamespace)?;
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

pub fn error_policy(_rollout: Arc<Rollout>, error: &Error, _ctx: Arc<Context>) -> Requeue {
    match error {
        // Someone edited the route between our read and our write: re-read
        // and re-plan at once.
        Error::Routing(crate::routing::RoutingError::Conflict { .. }) => Requeue::requeue(Duration::from_millis(500)),
        _ => Requeue::requeue(Duration::from_secs(5)),
    }
}

async fn apply(rollout: &Rollout, ctx: &Context, ns: &str) -> Result<Requeue, Error> {
    let router = router_for(ctx.client.clone(), ns, &rollout.spec);
    let world = match observe(&ctx.client, ns, rollout, router.as_deref()).await {
        Ok(world) => world,
        Err(e) => return Err(warn(ctx, rollout, e).await),
    };
    let plan = plan(
        &rollout.spec,
        rollout.status.as_ref(),
        &world.observed,
        Timestamp::now(),
    );
    let target = Target {
        client: &ctx.client,
        ns,
        rollout,
        template: world.template.as_ref(),
        deployments: &world.deployments,
        router: router.as_deref(),
    };
    for action in &plan.actions {
        // The plan's status assumes its actions happened: on a failure write
        // nothing, and plan again from fresh observations.
        if let Err(e) = target.apply(action).await {
            return Err(warn(ctx, rollout, e).await);
        }
    }
    if rollout.status.as_ref() != Some(&plan.status) {
        let api: Api<Rollout> = Api::namespaced(ctx.client.clone(), ns);
        let status = json!({"apiVersion": "siskin.io/v1alpha1", "kind": "Rollout", "status": plan.status});
        api.patch_status(
            &rollout.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(status),
        )
        .await?;
    }
    for event in &plan.events {
        let type_ = match event.kind {
            EventKind::Normal => EventType::Normal,
            EventKind::Warning => EventType::Warning,
        };
        publish(ctx, rollout, type_, event.reason, event.message.clone()).await;
    }
    ctx.metrics.observe_rollout(rollout, &plan.status);
    Ok(match plan.requeue_after {
        Some(after) => Requeue::requeue(after),
        None => Requeue::await_change(),
    })
}

/// A deleted Rollout first hands all traffic back to stable, so the route
/// never points at a canary that is about to disappear.
async fn cleanup(rollout: &Rollout, ctx: &Context, ns: &str) -> Result<Requeue, Error> {
    if let Some(router) = router_for(ctx.client.clone(), ns, &rollout.spec)
        && let Ok(RouteState::Present { split, .. }) = router.observe().await
        && split != Some(TrafficSplit::ALL_STABLE)
    {
        router.set_weights(TrafficSplit::ALL_STABLE).await?;
    }
    ctx.metrics.forget_rollout(rollout);
    Ok(Requeue::await_change())
}

async fn warn(ctx: &Context, rollout: &Rollout, error: Error) -> Error {
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

async fn publish(ctx: &Context, rollout: &Rollout, type_: EventType, reason: &str, note: String) {
    let event = Event {
        type_,
        reason: reason.to_string(),
        note: Some(note),
        action: "Reconcile".to_string(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &rollout.object_ref(&())).await {
        tracing::warn!(error = %e, "cannot publish event");
    }
}
