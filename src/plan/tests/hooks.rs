//! Webhooks: gates that hold the rollout until they answer yes, retries of
//! calls that fail, the failure policy, and notifications.

use crate::api::{HookPhase, Webhook, WebhookFailurePolicy, WebhookType};

use super::*;

fn hook(name: &str, type_: WebhookType, policy: Option<WebhookFailurePolicy>) -> Webhook {
    Webhook {
        name: name.into(),
        type_,
        url: format!("http://hooks.test/{name}"),
        timeout: Some(SpecDuration::new("2s")),
        retries: Some(2),
        on_failure: policy,
        metadata: Default::default(),
    }
}

/// One 10% step, then the promotion, with `hooks`.
fn hooked(hooks: Vec<Webhook>) -> RolloutSpec {
    let mut spec = spec(vec![CanaryStep::weight(10, None)]);
    spec.webhooks = hooks;
    spec
}

fn answered(observed: &Observed, name: &str, outcome: HookOutcome) -> Observed {
    Observed {
        hooks: vec![HookResult {
            name: name.into(),
            outcome,
        }],
        ..observed.clone()
    }
}

/// `status` after the gate `name` answered `outcome` to `calls` calls,
/// five seconds apart.
fn after_calls(
    spec: &RolloutSpec,
    mut status: RolloutStatus,
    observed: &Observed,
    name: &str,
    outcome: &HookOutcome,
    calls: i64,
) -> RolloutStatus {
    for call in 1..=calls {
        status = run(spec, &status, &answered(observed, name, outcome.clone()), call * 5).status;
    }
    status
}

fn no(code: u16) -> HookOutcome {
    HookOutcome::No {
        code,
        body: "not before the change window".into(),
    }
}

fn timed_out() -> HookOutcome {
    HookOutcome::Failed {
        message: "no answer within 2s".into(),
    }
}

#[test]
fn confirm_promotion_is_asked_once_the_steps_are_done_and_a_no_holds_the_rollout() {
    let spec = hooked(vec![hook("confirm", WebhookType::ConfirmPromotion, None)]);
    let observed = world(&spec, 10);
    let asked = run(&spec, &in_flight(&spec, 1, None), &observed, 0);
    assert_eq!(
        asked.status.stable_revision.as_deref(),
        Some(STABLE),
        "not promoted yet"
    );
    assert!(asked.is_idle());
    assert_eq!(asked.status.hooks[0].phase, HookPhase::Waiting);
    let due = due_hooks(&spec, Some(&asked.status), at(1));
    assert_eq!(due.len(), 1);
    assert_eq!((due[0].name.as_str(), due[0].revision.as_str()), ("confirm", CANARY));

    let refused = run(&spec, &asked.status, &answered(&observed, "confirm", no(403)), 1);
    assert_eq!(refused.status.stable_revision.as_deref(), Some(STABLE));
    let progressing = condition(&refused, "Progressing");
    assert_eq!(progressing.reason, "AwaitingConfirmation");
    assert!(
        progressing
            .message
            .contains("said no (HTTP 403: not before the change window)"),
        "{progressing:?}"
    );
    assert!(
        due_hooks(&spec, Some(&refused.status), at(3)).is_empty(),
        "asked again only after a pause"
    );
    assert_eq!(due_hooks(&spec, Some(&refused.status), at(1 + 5)).len(), 1);
    assert!(reasons(&refused).contains(&"WebhookRefused"));
    let again = run(&spec, &refused.status, &answered(&observed, "confirm", no(403)), 6);
    assert!(!reasons(&again).contains(&"WebhookRefused"), "the same no is told once");

    let yes = HookOutcome::Yes { code: 200 };
    let confirmed = run(&spec, &again.status, &answered(&observed, "confirm", yes), 11);
    assert_eq!(confirmed.status.phase, Some(RolloutPhase::Promoting));
}

#[test]
fn a_gate_that_keeps_timing_out_is_retried_then_aborts() {
    let spec = hooked(vec![hook("confirm", WebhookType::ConfirmPromotion, None)]);
    let observed = world(&spec, 10);
    let mut status = run(&spec, &in_flight(&spec, 1, None), &observed, 0).status;
    for attempt in 1..=2 {
        let plan = run(
            &spec,
            &status,
            &answered(&observed, "confirm", timed_out()),
            attempt * 5,
        );
        assert_eq!(plan.status.hooks[0].attempts, i32::try_from(attempt).unwrap_or(0));
        assert_eq!(plan.status.hooks[0].phase, HookPhase::Waiting, "retried");
        assert!(plan.status.abort.is_none());
        status = plan.status;
    }
    let plan = run(&spec, &status, &answered(&observed, "confirm", timed_out()), 15);
    assert_eq!(plan.status.hooks[0].phase, HookPhase::Failed);
    assert_eq!(plan.status.phase, Some(RolloutPhase::Aborted));
    assert_eq!(plan.status.abort.as_ref().map(|a| a.reason), Some(AbortReason::Webhook));
    assert_eq!(plan.actions, [set_weights(0)]);
}

#[test]
fn a_gate_with_the_pause_policy_pauses_and_resume_calls_it_again() {
    let spec = hooked(vec![hook(
        "confirm",
        WebhookType::ConfirmPromotion,
        Some(WebhookFailurePolicy::Pause),
    )]);
    let observed = world(&spec, 10);
    let called = run(&spec, &in_flight(&spec, 1, None), &observed, 0).status;
    let status = after_calls(&spec, called, &observed, "confirm", &timed_out(), 3);
    assert_eq!(status.phase, Some(RolloutPhase::Paused));
    assert!(status.abort.is_none());
    let resume = Observed {
        request: request(RequestedAction::Resume, 20),
        ..observed.clone()
    };
    let resumed = run(&spec, &status, &resume, 21);
    assert_eq!(resumed.status.hooks[0].phase, HookPhase::Waiting);
    assert_eq!(resumed.status.hooks[0].attempts, 0);
    assert_eq!(due_hooks(&spec, Some(&resumed.status), at(21)).len(), 1);
}

#[test]
fn a_pre_rollout_gate_holds_traffic_but_not_the_canary_pods() {
    let spec = hooked(vec![hook("smoke", WebhookType::PreRollout, None)]);
    let mut observed = world(&spec, 0);
    observed.revisions.retain(|r| r.revision == STABLE);
    let started = run(&spec, &stable_status(), &observed, 0);
    assert_eq!(started.actions, [deploy(CANARY, 1)]);
    let up = world(&spec, 0);
    let gated = run(&spec, &started.status, &up, 5);
    assert_eq!(gated.weights(), None, "no traffic before the gate passes");
    assert_eq!(condition(&gated, "Progressing").reason, "AwaitingWebhook");
    let passed = run(
        &spec,
        &gated.status,
        &answered(&up, "smoke", HookOutcome::Yes { code: 204 }),
        6,
    );
    assert_eq!(passed.weights(), Some(TrafficSplit::canary_percent(10)));
}

#[test]
fn a_refusing_pre_rollout_gate_is_a_failure_not_a_wait() {
    let spec = hooked(vec![hook("smoke", WebhookType::PreRollout, None)]);
    let up = world(&spec, 0);
    let called = run(&spec, &in_flight(&spec, 0, None), &up, 0).status;
    let status = after_calls(&spec, called, &up, "smoke", &no(500), 3);
    assert_eq!(status.phase, Some(RolloutPhase::Aborted));
}

#[test]
fn rollback_and_post_rollout_webhooks_are_queued_and_delivered() {
    let spec = hooked(vec![
        hook("tell-rollback", WebhookType::Rollback, None),
        hook("tell-done", WebhookType::PostRollout, None),
    ]);
    let mut aborting = world(&spec, 10);
    aborting.request = request(RequestedAction::Abort, 0);
    let aborted = run(&spec, &in_flight(&spec, 0, Some(0)), &aborting, 1);
    let due = due_hooks(&spec, Some(&aborted.status), at(1));
    assert_eq!(
        due.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["tell-rollback"]
    );
    assert!(aborted.requeue_after.is_some_and(|r| r <= secs(1)));
    let delivered = run(
        &spec,
        &aborted.status,
        &answered(&aborting, "tell-rollback", HookOutcome::Yes { code: 200 }),
        2,
    );
    assert_eq!(delivered.status.hooks[0].phase, HookPhase::Passed);

    let promoted = run(&spec, &in_flight(&spec, 1, None), &world(&spec, 10), 0);
    let promoted = run(&spec, &promoted.status, &world(&spec, 100), 1);
    assert_eq!(promoted.status.stable_revision.as_deref(), Some(CANARY));
    let due = due_hooks(&spec, Some(&promoted.status), at(1));
    assert_eq!(due.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["tell-done"]);
}

#[test]
fn webhook_names_are_unique_and_urls_absolute() {
    let mut bad = hook("a", WebhookType::Event, None);
    bad.url = "hooks.test/a".into();
    let spec = hooked(vec![hook("a", WebhookType::Rollout, None), bad]);
    let errors = expand(&spec).err().unwrap_or_default();
    assert_eq!(
        errors,
        [
            SpecError::WebhookNameTaken { name: "a".into() },
            SpecError::WebhookUrl { index: 1 }
        ]
    );
}
