//! Decisions that hold on real services. The shipped Traefik templates
//! (`traefik-error-rate` and `traefik-latency`), installed as a user installs
//! them, judge canaries of the demo app under realistic traffic: 100
//! requests/s per service through Traefik, latency p50 20 ms / p99 80 ms,
//! 0.1 % 5xx. Steps 20 % and 50 %, each held 1 to 5 minutes,
//! `onInconclusive: pause`.
//!
//! A healthy canary is promoted within its holds and never paused; a canary
//! 1.2 or 1.5 times as slow, or at 1 % 5xx, is aborted as a regression; a dry
//! run on a faulty canary shows the regression and acts on nothing.
//!
//! The cases run side by side, each in its own namespace with its own
//! controller and load, inside one test: the file takes the time of its
//! longest case whatever the test threads. `SISKIN_REAL_CASES=latency,dry`
//! runs only the cases whose names contain one of the words.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::support::realistic::{Behaviour, demo_template_behaving, install_shipped_traefik_templates, steady_load};
use crate::support::*;
use serde_json::json;
use siskin::analysis::Verdict;
use siskin::analysis::status::AnalysisStatus;
use siskin::api::{Rollout, RolloutPhase, RolloutStatus};

/// Requests per second to each service, through Traefik.
const RATE: u32 = 100;
const MIN_HOLD: Duration = Duration::from_secs(60);
const MAX_HOLD: Duration = Duration::from_secs(300);
const STABLE_HISTORY: Duration = Duration::from_secs(90);
/// Step weights of every case.
const STEPS: [i32; 2] = [20, 50];
/// Past both maximum holds, an outcome is overdue.
const OUTCOME_WITHIN: Duration = Duration::from_secs(2 * 300 + STABLE_HISTORY.as_secs() + 60);

#[derive(Clone, Copy, Debug)]
enum Expect {
    /// Promoted on the analysis' evidence, within the holds, never paused.
    Promoted,
    /// Aborted as a regression, found by this metric.
    AbortedBy(&'static str),
    /// A dry run: promoted on the holds alone, while `status.analysis`
    /// showed a regression of this metric.
    PromotedOnHoldsShowing(&'static str),
}

struct Case {
    name: &'static str,
    /// The namespace prefix.
    short: &'static str,
    stable: Behaviour,
    canary: Behaviour,
    dry_run: bool,
    expect: Expect,
}

fn cases() -> Vec<Case> {
    let healthy = Behaviour::HEALTHY;
    vec![
        Case {
            name: "healthy canary at 0.1% errors is promoted within the holds, never paused",
            short: "real-healthy",
            stable: healthy,
            canary: healthy,
            dry_run: false,
            expect: Expect::Promoted,
        },
        Case {
            name: "healthy canary at 0% errors is promoted within the holds, never paused",
            short: "real-zero",
            stable: healthy.with_errors(0.0),
            canary: healthy.with_errors(0.0),
            dry_run: false,
            expect: Expect::Promoted,
        },
        Case {
            name: "canary with latency x1.2 (p50 24 ms, p99 96 ms) is aborted",
            short: "real-slow12",
            stable: healthy,
            canary: healthy.slower(1.2),
            dry_run: false,
            expect: Expect::AbortedBy("latency"),
        },
        Case {
            name: "canary with latency x1.5 (p50 30 ms, p99 120 ms) is aborted",
            short: "real-slow15",
            stable: healthy,
            canary: healthy.slower(1.5),
            dry_run: false,
            expect: Expect::AbortedBy("latency"),
        },
        Case {
            name: "canary at 1% errors against 0.1% is aborted",
            short: "real-errors",
            stable: healthy,
            canary: healthy.with_errors(0.01),
            dry_run: false,
            expect: Expect::AbortedBy("error-rate"),
        },
        Case {
            name: "dry run on a canary at 1% errors moves on its holds and shows the regression",
            short: "real-dryrun",
            stable: healthy,
            canary: healthy.with_errors(0.01),
            dry_run: true,
            expect: Expect::PromotedOnHoldsShowing("error-rate"),
        },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs the sandbox: make test"]
async fn shipped_traefik_templates_decide_right_under_realistic_traffic() {
    let templates = install_shipped_traefik_templates();
    assert_eq!(
        templates,
        ["traefik-error-rate", "traefik-latency"],
        "the shipped templates"
    );
    let wanted: Vec<String> = std::env::var("SISKIN_REAL_CASES")
        .map(|s| s.split(',').map(str::to_owned).collect())
        .unwrap_or_default();
    let mut runs = tokio::task::JoinSet::new();
    for case in cases() {
        if wanted.is_empty() || wanted.iter().any(|w| case.name.contains(w.as_str())) {
            runs.spawn(async move { (case.name, run_case(case).await) });
        }
    }
    let mut failures = Vec::new();
    while let Some(joined) = runs.join_next().await {
        match joined {
            Ok((name, Ok(summary))) => println!("ok   {name}: {summary}"),
            Ok((name, Err(why))) => {
                println!("FAIL {name}: {why}");
                failures.push(format!("{name}: {why}"));
            }
            Err(panicked) => failures.push(format!("a case panicked: {panicked}")),
        }
    }
    assert!(failures.is_empty(), "failed cases:\n{}", failures.join("\n"));
}

/// What one canary did between its release and its outcome.
struct Run {
    outcome: Option<RolloutPhase>,
    /// From the release to the outcome.
    took: Duration,
    last: Option<RolloutStatus>,
    /// The first pause seen (phase or condition), with its message.
    paused: Option<String>,
    /// The canary's weight on the route each time it changed, with when.
    weights: Vec<(Duration, i32)>,
    /// Every verdict each metric had in `status.analysis`.
    verdicts: BTreeMap<String, Vec<Verdict>>,
    /// The last `status.analysis` seen (it leaves status on promotion).
    evidence: Option<AnalysisStatus>,
}

async fn run_case(case: Case) -> Result<String, String> {
    let (ns, host, _controller) = namespace_with_demo_route(case.short).await;
    let v1 = create_stable_within(&ns, &rollout(&case), Duration::from_secs(180)).await;
    let _load = steady_load(&host, RATE);
    // A service has served a while before its next release: stable's
    // counters then say what its error rate is, which is what the power
    // to catch "+0.5 points" is reckoned against.
    tokio::time::sleep(STABLE_HISTORY).await;
    patch_spec(
        &ns,
        "demo",
        json!({"template": demo_template_behaving("v2", case.canary)}),
    )
    .await;
    let run = watch(&ns, &v1).await;
    // Traefik applies a route a moment after it is written: ask again for
    // a while before holding a straggler against the rollout.
    let expected = match case.expect {
        Expect::AbortedBy(_) => "v1",
        _ => "v2",
    };
    let mut answered = through_gateway(&host, 50, 50).await;
    for _ in 0..10 {
        if answered["by_version"][expected].as_u64() == Some(50) {
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        answered = through_gateway(&host, 50, 50).await;
    }
    let verdict = check(&case, &run, &ns, &answered).await;
    delete_rollouts(&ns).await;
    verdict
}

fn rollout(case: &Case) -> Rollout {
    let hold = json!({"min": format!("{}s", MIN_HOLD.as_secs()), "max": format!("{}s", MAX_HOLD.as_secs())});
    let steps: Vec<_> = STEPS.iter().map(|w| json!({"weight": w, "hold": hold})).collect();
    let mut analysis = json!({
        "templates": [
            {"name": "traefik-error-rate", "clusterScope": true},
            {"name": "traefik-latency", "clusterScope": true},
        ],
        "onInconclusive": "pause",
    });
    if case.dry_run {
        analysis["dryRun"] = json!(true);
    }
    demo_rollout(
        "demo",
        json!({
            "replicas": 1,
            "template": demo_template_behaving("v1", case.stable),
            "strategy": {"canary": {
                "trafficRouting": {"gatewayAPI": {"httpRoute": {"name": "demo"}}},
                "steps": steps,
                "scaleDownDelay": "3s",
            }},
            "analysis": analysis,
        }),
    )
}

/// Follows the Rollout once a second from the release until it is promoted
/// (stable is no longer `v1`), aborted or paused, or `OUTCOME_WITHIN` passes.
async fn watch(ns: &TestNamespace, v1: &str) -> Run {
    let released = Instant::now();
    let mut run = Run {
        outcome: None,
        took: Duration::ZERO,
        last: None,
        paused: None,
        weights: vec![],
        verdicts: BTreeMap::new(),
        evidence: None,
    };
    while released.elapsed() < OUTCOME_WITHIN {
        let weight = demo_route_weights(ns).await.get(1).map(|(_, w)| *w);
        if let Some(w) = weight
            && run.weights.last().map(|(_, last)| *last) != Some(w)
        {
            run.weights.push((released.elapsed(), w));
        }
        if let Some(status) = rollout_status(ns, "demo").await {
            note(&mut run, &status);
            let promoted = status.phase == Some(RolloutPhase::Healthy) && status.stable_revision.as_deref() != Some(v1);
            let ended = promoted || matches!(status.phase, Some(RolloutPhase::Aborted | RolloutPhase::Paused));
            run.last = Some(status);
            if ended {
                run.outcome = run.last.as_ref().and_then(|s| s.phase);
                break;
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    run.took = released.elapsed();
    run
}

fn note(run: &mut Run, status: &RolloutStatus) {
    if run.paused.is_none() {
        let condition = condition_of(status, "Paused").filter(|(s, _, _)| s == "True");
        if status.phase == Some(RolloutPhase::Paused) || condition.is_some() {
            let (reason, message) = condition.map(|(_, r, m)| (r, m)).unwrap_or_default();
            run.paused = Some(format!("{reason}: {message} ({:?})", status.message));
        }
    }
    if let Some(analysis) = status.analysis.as_ref().and_then(AnalysisStatus::from_value) {
        for (metric, m) in &analysis.metrics {
            let seen = run.verdicts.entry(metric.clone()).or_default();
            if !seen.contains(&m.verdict) {
                seen.push(m.verdict);
            }
        }
        run.evidence = Some(analysis);
    }
}

/// Each metric as `siskin status` describes it: verdict, requests compared,
/// e-values and power.
fn evidence_line(analysis: Option<&AnalysisStatus>) -> String {
    let Some(analysis) = analysis else {
        return "no evidence seen".into();
    };
    let metrics = analysis.metrics.iter();
    let lines: Vec<String> = metrics
        .map(|(name, m)| m.describe(name, analysis.canary_rate))
        .collect();
    lines.join("; ")
}

fn found_regression(run: &Run, metric: &str) -> bool {
    run.verdicts
        .get(metric)
        .is_some_and(|v| v.contains(&Verdict::Regression))
}

/// The case's expectations against what the run did; a summary when all
/// hold, else every one that did not.
async fn check(case: &Case, run: &Run, ns: &TestNamespace, answered: &serde_json::Value) -> Result<String, String> {
    let mut wrong = Vec::new();
    let last = run.last.clone().unwrap_or_default();
    let weights_seen: Vec<i32> = run.weights.iter().map(|(_, w)| *w).collect();
    let timeline: Vec<String> = run
        .weights
        .iter()
        .map(|(at, w)| format!("{w}% at {}s", at.as_secs()))
        .collect();
    if let Some(pause) = &run.paused {
        wrong.push(format!("paused: {pause}"));
    }
    if weights_seen.iter().any(|w| ![0, STEPS[0], STEPS[1]].contains(w)) {
        wrong.push(format!("the route carried a weight no step has: {weights_seen:?}"));
    }
    let route = demo_route_weights(ns).await;
    let final_weights: Vec<i32> = route.iter().map(|(_, w)| *w).collect();
    if final_weights != [100, 0] {
        wrong.push(format!("the route ends at {route:?}, not 100/0"));
    }
    let by_version = &answered["by_version"];
    let served = |v: &str| by_version[v].as_u64().unwrap_or(0);
    match case.expect {
        Expect::Promoted | Expect::PromotedOnHoldsShowing(_) => {
            if run.outcome != Some(RolloutPhase::Healthy) {
                wrong.push(format!("not promoted: {:?} after {}s", run.outcome, run.took.as_secs()));
            }
            if weights_seen != [0, STEPS[0], STEPS[1], 0] {
                wrong.push(format!("the steps were not 20% then 50%: {weights_seen:?}"));
            }
            if served("v2") != 50 {
                wrong.push(format!("after promotion not every request is v2: {by_version}"));
            }
        }
        Expect::AbortedBy(metric) => {
            if run.outcome != Some(RolloutPhase::Aborted) {
                wrong.push(format!("not aborted: {:?} after {}s", run.outcome, run.took.as_secs()));
            }
            match condition_of(&last, "Aborted") {
                Some((_, reason, _)) if reason == "Regression" => {}
                other => wrong.push(format!("not aborted as a Regression: {other:?}")),
            }
            if !found_regression(run, metric) {
                wrong.push(format!("metric {metric} never found a regression: {:?}", run.verdicts));
            }
            if served("v1") != 50 {
                wrong.push(format!("after the abort not every request is v1: {by_version}"));
            }
        }
    }
    if let Expect::PromotedOnHoldsShowing(metric) = case.expect {
        if !found_regression(run, metric) {
            wrong.push(format!(
                "status.analysis never showed {metric}'s regression: {:?}",
                run.verdicts
            ));
        }
        // Each step lasts its minimum hold, as without analysis: a step
        // starts when its weight is on the route and ends with the next.
        let steps = run.weights.windows(2).skip(1).map(|w| w[1].0.saturating_sub(w[0].0));
        for (i, lasted) in steps.enumerate() {
            if lasted + Duration::from_secs(2) < MIN_HOLD || lasted > MIN_HOLD + Duration::from_secs(30) {
                wrong.push(format!("step {i} lasted {}s, not its minimum hold", lasted.as_secs()));
            }
        }
    }
    let summary = format!(
        "{:?} after {}s; canary weight {}; {}",
        run.outcome,
        run.took.as_secs(),
        timeline.join(", "),
        evidence_line(run.evidence.as_ref()),
    );
    if wrong.is_empty() {
        Ok(summary)
    } else {
        Err(format!(
            "{}\n    ({summary}; message {:?})",
            wrong.join("; "),
            last.message
        ))
    }
}
