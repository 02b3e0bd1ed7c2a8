//! The engine is total: no spec, status, request or observed world makes
//! `plan()` panic or produce unbounded output. One controller serves every
//! Rollout in the cluster, so a panic here would be an outage for all of
//! them. Generated inputs mix well-formed values with hostile ones: edited
//! or foreign statuses, step indexes past the end, huge replica counts,
//! requests for other revisions, routes in any state.
//!
//! `SISKIN_PROPTEST_CASES` raises the case count for a longer run (see the
//! README's "Security model").

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::api::{AbortStatus, HookPhase, HookStatus, PauseReason, PauseStatus, RequestMatch};
use crate::plan::{HookOutcome, HookResult, RevisionState, RouteState, ServiceSelectors, TrafficSplit};

/// Revisions a generated status or world may name: the spec's own, a
/// stable one, and one that exists nowhere.
const REVISIONS: [&str; 3] = [STABLE, CANARY, "f0f0f0f0f0"];

fn cases() -> u32 {
    std::env::var("SISKIN_PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(10_000)
}

fn any_duration() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!("0s")),
        Just(json!("1s")),
        Just(json!("90s")),
        Just(json!("10m")),
        Just(json!("1h")),
        Just(json!("87600h")),
        Just(json!("-5s")),
        Just(json!("soon")),
        Just(json!("")),
    ]
}

/// `object` with each optional field that was generated; the others are
/// left out, as a user leaves them out.
fn with_present<const N: usize>(mut object: Value, fields: [(&str, Option<Value>); N]) -> Value {
    for (name, value) in fields {
        if let Some(value) = value {
            object[name] = value;
        }
    }
    object
}

fn any_hold() -> impl Strategy<Value = Option<Value>> {
    proptest::option::of(
        (
            proptest::option::of(any_duration()),
            proptest::option::of(any_duration()),
        )
            .prop_map(|(min, max)| with_present(json!({}), [("min", min), ("max", max)])),
    )
}

fn any_canary_step() -> impl Strategy<Value = Value> {
    prop_oneof![
        (-10i32..=120, any_hold()).prop_map(|(weight, hold)| match hold {
            Some(hold) => json!({"weight": weight, "hold": hold}),
            None => json!({"weight": weight}),
        }),
        Just(json!({"pause": {}})),
        any_duration().prop_map(|d| json!({"pause": {"duration": d}})),
        Just(json!({"weight": 10, "pause": {}})),
        Just(json!({})),
    ]
}

fn any_routing() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        Just(None),
        Just(Some(json!({"gatewayAPI": {"httpRoute": {"name": "demo"}}}))),
        Just(Some(json!({"istio": {"virtualService": {"name": "demo"}}}))),
        Just(Some(
            json!({"gatewayAPI": {"httpRoute": {"name": "demo"}}, "istio": {"virtualService": {"name": "demo"}}})
        )),
        Just(Some(json!({}))),
    ]
}

fn any_request_match() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!({"headers": [{"name": "x-beta", "value": "true"}]})),
        Just(json!({"cookie": {"name": "canary", "value": "always"}})),
        Just(json!({"headers": [{"name": "cookie", "value": "a"}], "cookie": {"name": "c", "value": "d"}})),
        Just(json!({})),
    ]
}

fn any_int_or_percent() -> impl Strategy<Value = Value> {
    prop_oneof![
        (-2i32..=30).prop_map(|n| json!(n)),
        (-10i32..=250).prop_map(|p| json!(format!("{p}%"))),
        Just(json!("lots")),
        Just(json!(i32::MAX)),
    ]
}

fn any_strategy() -> impl Strategy<Value = Value> {
    prop_oneof![
        (
            prop::collection::vec(any_canary_step(), 0..8),
            any_routing(),
            proptest::option::of((-5i32..=120, any_hold())),
            proptest::option::of(any_duration()),
        )
            .prop_map(|(steps, routing, mirror, delay)| {
                let mirror = mirror.map(|(percent, hold)| with_present(json!({"percent": percent}), [("hold", hold)]));
                let fields = [
                    ("trafficRouting", routing),
                    ("mirror", mirror),
                    ("scaleDownDelay", delay),
                ];
                json!({"canary": with_present(json!({"steps": steps}), fields)})
            }),
        (
            prop::collection::vec(any_request_match(), 0..3),
            any_routing(),
            proptest::option::of(any_duration())
        )
            .prop_map(|(matches, routing, duration)| {
                let ab = json!({"match": matches, "trafficRouting": routing.unwrap_or(json!({}))});
                json!({"abTest": with_present(ab, [("duration", duration)])})
            }),
        (
            any_routing(),
            proptest::option::of(any_duration()),
            any::<bool>(),
            proptest::option::of(any_duration())
        )
            .prop_map(|(routing, preview, auto, delay)| {
                let fields = [
                    ("trafficRouting", routing),
                    ("previewDuration", preview),
                    ("scaleDownDelay", delay),
                ];
                json!({"blueGreen": with_present(json!({"autoPromote": auto}), fields)})
            }),
        (
            proptest::option::of(any_int_or_percent()),
            proptest::option::of(any_int_or_percent()),
            any_hold()
        )
            .prop_map(|(surge, unavailable, hold)| {
                let fields = [
                    ("maxSurge", surge),
                    ("maxUnavailable", unavailable),
                    ("batchHold", hold),
                ];
                json!({"rolling": with_present(json!({}), fields)})
            }),
        Just(json!({})),
        Just(json!({"canary": {"steps": [{"weight": 50}]}, "rolling": {}})),
    ]
}

fn any_webhook() -> impl Strategy<Value = Value> {
    let types = prop_oneof![
        Just("preRollout"),
        Just("rollout"),
        Just("confirmPromotion"),
        Just("postRollout"),
        Just("rollback"),
        Just("event"),
    ];
    let urls = prop_oneof![
        Just("http://hooks.shop/x"),
        Just("http://169.254.169.254/latest"),
        Just("/relative"),
        Just("http://"),
    ];
    (
        prop_oneof![Just("a"), Just("b"), Just("c")],
        types,
        urls,
        proptest::option::of(any_duration()),
        proptest::option::of(-3i32..200),
        any::<bool>(),
    )
        .prop_map(|(name, type_, url, timeout, retries, pause)| {
            let fields = [("timeout", timeout), ("retries", retries.map(|r| json!(r)))];
            let mut hook = with_present(json!({"name": name, "type": type_, "url": url}), fields);
            if pause {
                hook["onFailure"] = json!("pause");
            }
            hook
        })
}

fn any_replicas() -> impl Strategy<Value = i32> {
    prop_oneof![
        8 => -2i32..=25,
        1 => Just(50_000_000),
        1 => Just(i32::MAX),
        1 => Just(i32::MIN),
        1 => Just(10_000),
    ]
}

fn any_spec() -> impl Strategy<Value = Option<RolloutSpec>> {
    (
        any_replicas(),
        any_strategy(),
        proptest::option::of(any::<bool>()),
        prop::collection::vec(any_webhook(), 0..4),
        any::<bool>(),
        prop_oneof![
            Just("demo"),
            Just("Demo"),
            Just(""),
            Just("a-service-name-far-too-long-to-take-a-stable-or-canary-suffix")
        ],
    )
        .prop_map(|(replicas, strategy, analysis, webhooks, workload_ref, service)| {
            let mut spec = json!({
                "replicas": replicas,
                "service": {"name": service, "port": 80},
                "strategy": strategy,
                "webhooks": webhooks,
            });
            if workload_ref {
                spec["workloadRef"] = json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "demo"});
            } else {
                spec["template"] =
                    json!({"metadata": {"labels": {"app": "demo"}}, "spec": {"containers": [{"name": "app"}]}});
            }
            if let Some(abort) = analysis {
                spec["analysis"] = json!({
                    "templates": [{"name": "errors"}],
                    "onInconclusive": if abort { "abort" } else { "pause" },
                });
            }
            serde_json::from_value(spec).ok()
        })
}

fn any_revision() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(prop::sample::select(REVISIONS.to_vec()).prop_map(str::to_string))
}

fn any_phase() -> impl Strategy<Value = Option<RolloutPhase>> {
    proptest::option::of(prop::sample::select(vec![
        RolloutPhase::Progressing,
        RolloutPhase::Paused,
        RolloutPhase::Healthy,
        RolloutPhase::Aborted,
        RolloutPhase::InvalidSpec,
    ]))
}

fn any_seconds() -> impl Strategy<Value = i64> {
    prop_oneof![-100_000i64..100_000, Just(-1_700_000_000), Just(2_000_000_000)]
}

fn any_status() -> impl Strategy<Value = Option<RolloutStatus>> {
    let index = proptest::option::of(prop_oneof![
        8 => -2i32..12,
        1 => Just(i32::MAX),
        1 => Just(i32::MIN),
    ]);
    let pause = proptest::option::of((
        prop::sample::select(vec![
            PauseReason::Manual,
            PauseReason::PauseStep,
            PauseReason::Inconclusive,
            PauseReason::Webhook,
        ]),
        any_seconds(),
    ));
    let abort = proptest::option::of((
        prop::sample::select(vec![
            AbortReason::Manual,
            AbortReason::Regression,
            AbortReason::Inconclusive,
            AbortReason::Webhook,
        ]),
        any_seconds(),
    ));
    let hooks = prop::collection::vec(
        (
            prop_oneof![Just("a"), Just("b"), Just("zz")],
            prop::sample::select(vec![HookPhase::Waiting, HookPhase::Passed, HookPhase::Failed]),
            -3i32..1000,
        ),
        0..4,
    );
    (
        any::<bool>(),
        (any_phase(), any_revision(), any_revision(), index),
        (
            proptest::option::of(prop_oneof![Just("old-hash".to_string()), Just(String::new())]),
            proptest::option::of(any_seconds()),
            pause,
            abort,
        ),
        (
            proptest::option::of(prop_oneof![Just("promote@1".to_string()), Just("x".to_string())]),
            hooks,
            proptest::option::of(-5i32..200),
        ),
    )
        .prop_map(
            |(present, (phase, stable, canary, index), (hash, started, pause, abort), (handled, hooks, weight))| {
                present.then(|| RolloutStatus {
                    phase,
                    stable_revision: stable,
                    canary_revision: canary,
                    current_step_index: index,
                    steps_hash: hash,
                    step_started_at: started.map(time),
                    pause: pause.map(|(reason, since)| PauseStatus {
                        reason,
                        since: time(since),
                    }),
                    abort: abort.map(|(reason, at)| AbortStatus {
                        reason,
                        message: "x".into(),
                        at: time(at),
                    }),
                    last_handled_request: handled,
                    hooks: hooks
                        .into_iter()
                        .map(|(name, phase, attempts)| HookStatus {
                            name: name.to_string(),
                            revision: CANARY.to_string(),
                            step: Some(attempts % 7),
                            phase,
                            attempts,
                            message: String::new(),
                            last_called_at: None,
                        })
                        .collect(),
                    canary_weight: weight,
                    ..RolloutStatus::default()
                })
            },
        )
}

fn any_route() -> impl Strategy<Value = Option<RouteState>> {
    let split =
        proptest::option::of((-5i32..=120, -5i32..=120).prop_map(|(stable, canary)| TrafficSplit { stable, canary }));
    let matches = proptest::option::of(Just(vec![RequestMatch {
        headers: vec![],
        cookie: None,
    }]));
    prop_oneof![
        Just(None),
        Just(Some(RouteState::NotFound)),
        Just(Some(RouteState::MissingBackends {
            message: "no backends".into()
        })),
        (split, any::<bool>(), matches, proptest::option::of(-5i32..=150)).prop_map(
            |(split, accepted, matches, mirror)| Some(RouteState::Present {
                split,
                accepted,
                matches,
                mirror,
            })
        ),
    ]
}

fn any_observed() -> impl Strategy<Value = Observed> {
    let revisions = prop::collection::vec(
        (
            prop::sample::select(REVISIONS.to_vec()),
            -3i32..30,
            -3i32..30,
            any::<bool>(),
        )
            .prop_map(|(revision, replicas, available, current)| RevisionState {
                revision: revision.to_string(),
                replicas,
                available_replicas: available,
                current,
            }),
        0..4,
    );
    let verdict = proptest::option::of(prop::sample::select(vec![
        Verdict::Regression,
        Verdict::NonInferior,
        Verdict::Continue,
        Verdict::Inconclusive,
    ]));
    let request = proptest::option::of((
        prop::sample::select(RequestedAction::ALL.to_vec()),
        any_seconds(),
        any_revision(),
    ));
    let hooks = prop::collection::vec(
        (
            prop_oneof![Just("a"), Just("b"), Just("zz")],
            prop_oneof![
                (100u16..600).prop_map(|code| HookOutcome::Yes { code }),
                (100u16..600).prop_map(|code| HookOutcome::No {
                    code,
                    body: "no".into()
                }),
                Just(HookOutcome::Failed {
                    message: "timeout".into()
                }),
            ],
        ),
        0..3,
    );
    (
        (
            proptest::option::of(-1i64..5),
            any_revision(),
            revisions,
            any_revision(),
            any_revision(),
        ),
        (any_route(), verdict, request, proptest::option::of(-3i32..20), hooks),
        any::<bool>(),
        proptest::option::of(1usize..4),
    )
        .prop_map(
            |(
                (generation, desired, revisions, stable, canary),
                (route, verdict, request, workload, hooks),
                foreign,
                queued,
            )| {
                Observed {
                    generation,
                    desired_revision: desired,
                    revisions,
                    services: ServiceSelectors { stable, canary },
                    route,
                    verdict,
                    analysis: None,
                    request: request.map(|(action, at_seconds, revision)| {
                        ManualRequest::new(action, at(at_seconds), revision.as_deref())
                    }),
                    workload_ref_replicas: workload,
                    pod_selector: None,
                    queue: queued.map(|position| crate::plan::QueuePlace {
                        position,
                        cap: 2,
                        in_progress: 2,
                    }),
                    hooks: hooks
                        .into_iter()
                        .map(|(name, outcome)| HookResult {
                            name: name.to_string(),
                            outcome,
                        })
                        .collect(),
                    not_adopted: if foreign {
                        vec!["Service shop/demo-stable".into()]
                    } else {
                        vec![]
                    },
                }
            },
        )
}

/// What any plan must satisfy, whatever it was given.
fn check_plan(spec: &RolloutSpec, before: Option<&RolloutStatus>, observed: &Observed, plan: &Plan) {
    assert_one_write_of_each_route_part(plan);
    assert!(
        plan.actions.len() <= 8,
        "a bounded number of actions: {:?}",
        plan.actions
    );
    assert!(plan.events.len() <= 8, "a bounded number of events: {:?}", plan.events);
    assert!(plan.status.requests.len() <= crate::api::REQUEST_HISTORY);
    for action in &plan.actions {
        match action {
            Action::Deploy { replicas, .. } | Action::Scale { replicas, .. } => {
                assert!((0..=crate::api::MAX_REPLICAS).contains(replicas), "{action:?}");
            }
            Action::SetWeights(split) => {
                assert_eq!(split.stable + split.canary, 100, "{action:?}");
                assert!(split.canary >= 0 && split.stable >= 0, "{action:?}");
            }
            _ => {}
        }
    }
    if let Ok(steps) = expand(spec) {
        // The index of a canary in flight: the one the engine runs steps on.
        let in_flight = plan.status.canary_revision.is_some()
            && plan.status.canary_revision == observed.desired_revision
            && plan.status.stable_revision.is_some()
            && plan.status.canary_revision != plan.status.stable_revision
            && observed.not_adopted.is_empty();
        if in_flight && let Some(index) = plan.status.current_step_index {
            let index = usize::try_from(index).unwrap_or(usize::MAX);
            assert!(
                index <= steps.steps.len(),
                "step index {index} of {} steps",
                steps.steps.len()
            );
        }
    }
    if !observed.not_adopted.is_empty() {
        assert!(plan.actions.is_empty(), "nothing is taken over: {:?}", plan.actions);
        assert_eq!(plan.status.phase, Some(RolloutPhase::InvalidSpec));
    }
    // A request for another revision never changes where the rollout is.
    if let (Some(request), Some(desired)) = (&observed.request, &observed.desired_revision)
        && request.revision.as_ref().is_some_and(|r| r != desired)
        && before.and_then(|s| s.last_handled_request.as_ref()) != Some(&request.id)
        && observed.not_adopted.is_empty()
        && expand(spec).is_ok()
    {
        assert_eq!(plan.status.last_handled_request.as_ref(), Some(&request.id));
        assert!(
            plan.events
                .iter()
                .any(|e| e.reason == "ManualRequest" && e.message.contains("ignored: meant for revision")),
            "{:?}",
            plan.events
        );
    }
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Runs a property on a thread with a large stack: the generators nest
/// deeply, which a debug build's default test stack does not hold.
fn check<S: Strategy + Send + 'static>(strategy: S, property: fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    let run = move || {
        let mut runner = proptest::test_runner::TestRunner::new(config());
        if let Err(failure) = runner.run(&strategy, property) {
            panic!("{failure}");
        }
    };
    let thread = std::thread::Builder::new().stack_size(64 << 20).spawn(run);
    let joined = thread.map(std::thread::JoinHandle::join);
    assert!(matches!(joined, Ok(Ok(()))), "the property failed (see above)");
}

#[test]
fn no_spec_status_request_or_world_makes_the_engine_panic_or_grow() {
    let inputs = (any_spec(), any_status(), any_observed(), -100_000i64..200_000);
    check(inputs, |(spec, status, observed, now)| {
        let Some(spec) = spec else {
            return Ok(());
        };
        let first = plan(&spec, status.as_ref(), &observed, at(now));
        check_plan(&spec, status.as_ref(), &observed, &first);
        // The next reconcile plans from what this one wrote: it must hold too.
        let again = plan(&spec, Some(&first.status), &observed, at(now + 1));
        check_plan(&spec, Some(&first.status), &observed, &again);
        Ok(())
    });
}

#[test]
fn every_annotation_value_is_a_request_handled_under_a_short_id() {
    check(".{0,300}", |value: String| {
        let request = ManualRequest::parse(&value);
        prop_assert!(request.id.len() <= crate::api::request::MAX_REQUEST_LEN);
        prop_assert_eq!(
            ManualRequest::parse(&value),
            request,
            "the same value, the same request"
        );
        Ok(())
    });
}

/// The panic found by hand: a Rollout paused on a `pause: {}` step got one
/// patch that shortened its steps to one and asked to resume.
#[test]
fn a_resume_that_arrives_with_fewer_steps_restarts_them_instead_of_panicking() {
    let rollout = spec(vec![CanaryStep::weight(50, hold("60s", None))]);
    let status = RolloutStatus {
        phase: Some(RolloutPhase::Paused),
        stable_revision: Some(STABLE.into()),
        canary_revision: Some(CANARY.into()),
        current_step_index: Some(2),
        steps_hash: Some("the three steps before".into()),
        pause: Some(PauseStatus {
            reason: PauseReason::PauseStep,
            since: time(0),
        }),
        ..RolloutStatus::default()
    };
    let world = Observed {
        request: request(RequestedAction::Resume, 10),
        ..world(&rollout, 50)
    };
    let plan = plan(&rollout, Some(&status), &world, at(20));
    assert_eq!(
        plan.status.current_step_index,
        Some(0),
        "the steps start again from the first"
    );
    assert!(
        plan.events.iter().any(|e| e.reason == "StepsChanged"),
        "{:?}",
        plan.events
    );
}
