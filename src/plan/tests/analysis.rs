//! The analysis gate: only evidence of non-inferiority advances a step.

use super::*;

fn analysed(policy: InconclusivePolicy) -> RolloutSpec {
    with_analysis(spec(standard_steps()), policy)
}

/// The plan at `seconds` for a canary at step `index` whose analysis says
/// `said`.
fn judged(spec: &RolloutSpec, index: usize, said: Verdict, seconds: i64) -> Plan {
    at_step(spec, index, seconds, |world| verdict(world, said))
}

#[test]
fn advances_at_min_hold_when_non_inferior() {
    let spec = analysed(InconclusivePolicy::Pause);
    let plan = judged(&spec, 0, Verdict::NonInferior, 60);
    assert_eq!(plan.status.current_step_index, Some(1));
    assert_eq!(plan.status.verdict, Some(Verdict::NonInferior));
}

#[test]
fn non_inferior_before_min_hold_still_holds() {
    let spec = analysed(InconclusivePolicy::Pause);
    let plan = judged(&spec, 0, Verdict::NonInferior, 59);
    assert_eq!(plan.status.current_step_index, Some(0));
}

#[test]
fn keeps_holding_while_analysis_continues_before_max() {
    let spec = analysed(InconclusivePolicy::Pause);
    let plan = judged(&spec, 0, Verdict::Continue, 300);
    assert!(plan.is_idle());
    assert_eq!(plan.status.current_step_index, Some(0));
    assert_eq!(condition(&plan, "Progressing").reason, "AwaitingAnalysis");
    assert_eq!(plan.requeue_after, Some(ANALYSIS_POLL));
}

#[test]
fn continue_at_max_hold_pauses_by_default() {
    let spec = analysed(InconclusivePolicy::Pause);
    let plan = judged(&spec, 0, Verdict::Continue, 600);
    assert!(plan.is_idle(), "traffic stays where it is while paused");
    assert_eq!(plan.status.phase, Some(RolloutPhase::Paused));
    assert_eq!(condition(&plan, "Paused").reason, "Inconclusive");
    assert_eq!(reasons(&plan), ["AnalysisInconclusive"]);
}

#[test]
fn continue_at_max_hold_aborts_when_the_policy_says_abort() {
    let spec = analysed(InconclusivePolicy::Abort);
    let plan = judged(&spec, 0, Verdict::Continue, 600);
    assert_eq!(plan.actions, [set_weights(0)]);
    assert_eq!(plan.status.phase, Some(RolloutPhase::Aborted));
    assert_eq!(condition(&plan, "Aborted").reason, "Inconclusive");
}

#[test]
fn inconclusive_after_min_hold_pauses() {
    let spec = analysed(InconclusivePolicy::Pause);
    let plan = judged(&spec, 0, Verdict::Inconclusive, 60);
    assert_eq!(plan.status.phase, Some(RolloutPhase::Paused));
    assert!(is_true(&plan, "Paused"));
}

#[test]
fn inconclusive_after_min_hold_aborts_when_the_policy_says_abort() {
    let spec = analysed(InconclusivePolicy::Abort);
    let plan = judged(&spec, 0, Verdict::Inconclusive, 60);
    assert_eq!(plan.status.phase, Some(RolloutPhase::Aborted));
    assert_eq!(plan.actions, [set_weights(0)]);
}

#[test]
fn inconclusive_before_min_hold_keeps_holding() {
    let spec = analysed(InconclusivePolicy::Abort);
    let plan = judged(&spec, 0, Verdict::Inconclusive, 30);
    assert!(plan.is_idle());
    assert_eq!(plan.status.phase, Some(RolloutPhase::Progressing));
}

#[test]
fn regression_aborts_at_once() {
    let spec = analysed(InconclusivePolicy::Pause);
    // Two seconds into a one-minute hold.
    let plan = judged(&spec, 0, Verdict::Regression, 2);
    assert_eq!(plan.status.phase, Some(RolloutPhase::Aborted));
    assert_eq!(condition(&plan, "Aborted").reason, "Regression");
}

#[test]
fn abort_returns_all_traffic_to_stable_in_one_write() {
    let spec = analysed(InconclusivePolicy::Pause);
    let plan = judged(&spec, 1, Verdict::Regression, 30);
    // One route write and nothing before it: stable already runs full size.
    assert_eq!(plan.actions, [set_weights(0)]);
    assert_eq!(plan.status.canary_weight, Some(0));
    let abort = plan.status.abort.as_ref().map(|a| (a.reason, a.at.clone()));
    assert_eq!(abort, Some((AbortReason::Regression, time(30))));
    assert_eq!(reasons(&plan), ["Aborted"]);
    assert!(!is_true(&plan, "Progressing"));
}

#[test]
fn regression_during_a_pause_step_aborts() {
    let spec = analysed(InconclusivePolicy::Pause);
    let plan = judged(&spec, 2, Verdict::Regression, 30);
    assert_eq!(plan.status.phase, Some(RolloutPhase::Aborted));
}

#[test]
fn never_promotes_without_data() {
    let spec = with_analysis(
        spec(vec![CanaryStep::weight(50, hold("60s", None))]),
        InconclusivePolicy::Pause,
    );
    // No verdict at all, for as long as anyone waits: the step holds.
    for now in [60, 600, 86_400] {
        let plan = run(&spec, &in_flight(&spec, 0, Some(0)), &world(&spec, 50), now);
        assert_eq!(plan.status.current_step_index, Some(0));
        assert_ne!(plan.status.phase, Some(RolloutPhase::Promoting));
        assert_eq!(plan.status.stable_revision.as_deref(), Some(STABLE));
    }
    // "No data" is inconclusive, never a pass.
    let observed = verdict(world(&spec, 50), Verdict::Inconclusive);
    let plan = run(&spec, &in_flight(&spec, 0, Some(0)), &observed, 600);
    assert_eq!(plan.status.phase, Some(RolloutPhase::Paused));
    assert_eq!(plan.status.stable_revision.as_deref(), Some(STABLE));
}

#[test]
fn inconclusive_pause_holds_traffic_even_if_evidence_arrives() {
    let spec = analysed(InconclusivePolicy::Pause);
    let observed = verdict(world(&spec, 10), Verdict::Continue);
    let paused = run(&spec, &in_flight(&spec, 0, Some(0)), &observed, 600);
    let observed = verdict(world(&spec, 10), Verdict::NonInferior);
    let later = run(&spec, &paused.status, &observed, 700);
    assert!(later.is_idle());
    assert_eq!(later.status.current_step_index, Some(0));
    assert_eq!(later.status.phase, Some(RolloutPhase::Paused));
}

#[test]
fn verdict_is_ignored_without_analysis() {
    let spec = spec(standard_steps());
    let plan = judged(&spec, 0, Verdict::Regression, 60);
    assert_eq!(plan.status.current_step_index, Some(1));
    assert_eq!(plan.status.verdict, None);
}

#[test]
fn the_analysis_is_polled_through_a_minimum_hold() {
    // The judge only runs when the Rollout is reconciled: a regression
    // ten seconds into a minute's hold must not wait for its end.
    let spec = analysed(InconclusivePolicy::Pause);
    let plan = judged(&spec, 0, Verdict::Continue, 10);
    assert_eq!(plan.status.current_step_index, Some(0));
    assert_eq!(plan.requeue_after, Some(ANALYSIS_POLL));
}

#[test]
fn an_inconclusive_pause_keeps_polling_and_still_aborts_on_a_regression() {
    let spec = analysed(InconclusivePolicy::Pause);
    let inconclusive = verdict(world(&spec, 10), Verdict::Inconclusive);
    let paused = run(&spec, &in_flight(&spec, 0, Some(0)), &inconclusive, 60);
    assert_eq!(paused.status.phase, Some(RolloutPhase::Paused));
    assert_eq!(paused.requeue_after, Some(ANALYSIS_POLL));
    let regression = verdict(world(&spec, 10), Verdict::Regression);
    let later = run(&spec, &paused.status, &regression, 75);
    assert_eq!(later.status.phase, Some(RolloutPhase::Aborted));
}

fn dry_run(mut spec: RolloutSpec) -> RolloutSpec {
    if let Some(analysis) = spec.analysis.as_mut() {
        analysis.dry_run = true;
    }
    spec
}

#[test]
fn a_dry_run_analysis_never_aborts() {
    let spec = dry_run(analysed(InconclusivePolicy::Abort));
    let plan = judged(&spec, 0, Verdict::Regression, 2);
    assert_ne!(plan.status.phase, Some(RolloutPhase::Aborted));
    assert!(plan.status.abort.is_none());
    assert!(!plan.actions.contains(&set_weights(0)));
}

#[test]
fn a_dry_run_analysis_lets_the_steps_advance_on_their_holds() {
    let spec = dry_run(analysed(InconclusivePolicy::Pause));
    // Whatever the analysis says, the step advances once its minimum hold is over.
    for said in [Verdict::Regression, Verdict::Inconclusive, Verdict::Continue] {
        let observed = verdict(world(&spec, 10), said);
        let plan = run(&spec, &in_flight(&spec, 0, Some(0)), &observed, 61);
        assert_eq!(plan.status.current_step_index, Some(1), "{said:?}");
        assert_ne!(plan.status.phase, Some(RolloutPhase::Paused));
    }
}

#[test]
fn a_dry_run_analysis_is_still_measured() {
    let spec = dry_run(analysed(InconclusivePolicy::Pause));
    let status = in_flight(&spec, 0, Some(0));
    assert!(crate::plan::measured_canary(&spec, &status).is_some());
}

/// An evaluation of `canary` whose one metric could not be read.
fn unreadable(canary: &str) -> crate::analysis::status::AnalysisStatus {
    use crate::analysis::judge::{JudgeSpec, Observation};
    let mut analysis = crate::analysis::status::AnalysisStatus::begin(None, canary, at(0)).unwrap_or_default();
    let why = Some("query \"sum(rate(errors))\" returned no data".to_string());
    analysis.fold(
        None,
        ("errors", &JudgeSpec::default()),
        &Observation::Missing,
        why,
        false,
    );
    analysis.conclude(None, at(60));
    analysis
}

#[test]
fn an_inconclusive_pause_says_which_metric_and_why() {
    let spec = analysed(InconclusivePolicy::Pause);
    let mut observed = verdict(world(&spec, 10), Verdict::Inconclusive);
    observed.analysis = Some(unreadable(CANARY));
    let plan = run(&spec, &in_flight(&spec, 0, Some(0)), &observed, 60);
    let paused = condition(&plan, "Paused");
    assert_eq!(paused.reason, "Inconclusive");
    assert!(
        paused.message.contains("metric errors") && paused.message.contains("returned no data"),
        "{}",
        paused.message
    );
    assert!(plan.status.analysis.is_some(), "the judges' state is kept");
}

#[test]
fn an_analysis_of_another_canary_is_not_recorded() {
    let spec = analysed(InconclusivePolicy::Pause);
    let mut observed = world(&spec, 10);
    observed.analysis = Some(unreadable("0ld0ld0ld0"));
    let plan = run(&spec, &in_flight(&spec, 0, Some(0)), &observed, 20);
    assert_eq!(plan.status.analysis, None);
}
