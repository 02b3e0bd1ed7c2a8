//! `siskin status NAME [--watch]`: a live view of a Rollout.

use std::fmt::Write as _;

use futures::StreamExt;
use kube::Api;
use kube::runtime::{WatchStreamExt, watcher};

use crate::analysis::status::AnalysisStatus;
use crate::api::Rollout;
use crate::plan::{Step, expand};

/// One screenful describing the Rollout.
pub fn render(rollout: &Rollout) -> String {
    let mut out = String::new();
    let status = rollout.status.clone().unwrap_or_default();
    let name = rollout.metadata.name.as_deref().unwrap_or("?");
    let ns = rollout.metadata.namespace.as_deref().unwrap_or("?");
    let phase = status
        .phase
        .map(|p| format!("{p:?}"))
        .unwrap_or_else(|| "Unknown".into());
    let _ = writeln!(
        out,
        "Rollout {ns}/{name}  [{}]  {phase}",
        status.strategy.as_deref().unwrap_or("-")
    );
    let _ = writeln!(
        out,
        "  stable {}   canary {}",
        status.stable_revision.as_deref().unwrap_or("-"),
        status.canary_revision.as_deref().unwrap_or("-")
    );
    if let Ok(steps) = expand(&rollout.spec) {
        let current = status.current_step_index.unwrap_or(0).max(0) as usize;
        let line: Vec<String> = (0..steps.steps.len())
            .map(|i| {
                let label = match &steps.steps[i] {
                    Step::Weight { weight: 0, .. } if steps.strategy == "blueGreen" => "preview".to_string(),
                    Step::Weight { weight, .. } => format!("{weight}%"),
                    Step::Pause { duration: Some(d) } => format!("pause {}s", d.as_secs()),
                    Step::Pause { duration: None } => "pause".to_string(),
                    Step::Match { .. } => "A/B match".to_string(),
                    Step::Mirror { percent, .. } => format!("mirror {percent}%"),
                    Step::Switch { window } => format!("switch (rollback {}s)", window.as_secs()),
                    Step::Batch { canary, .. } => format!("{canary}/{} pods", steps.replicas),
                };
                if i < current {
                    format!("✓{label}")
                } else if i == current && status.canary_revision.is_some() {
                    format!("[{label}]")
                } else {
                    label
                }
            })
            .collect();
        let _ = writeln!(out, "  steps  {}", line.join(" → "));
    }
    let _ = writeln!(
        out,
        "  weight canary {}% (route {}%)   verdict {}",
        status.canary_weight.unwrap_or(0),
        status.observed_canary_weight.map_or("-".into(), |w| w.to_string()),
        status.verdict.map_or("-".into(), |v| format!("{v:?}"))
    );
    if let Some(analysis) = &status.analysis {
        for line in evidence(analysis) {
            let _ = writeln!(out, "  {line}");
        }
    }
    for hook in &status.hooks {
        let attempts = if hook.attempts > 0 {
            format!(", {} failed", hook.attempts)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "  webhook {} ({:?}{attempts}) {}",
            hook.name, hook.phase, hook.message
        );
    }
    if let Some(msg) = &status.message {
        let _ = writeln!(out, "  {msg}");
    }
    for c in status
        .conditions
        .iter()
        .filter(|c| c.status == crate::api::conditions::TRUE)
    {
        let _ = writeln!(out, "  {}={} {}: {}", c.type_, c.status, c.reason, c.message);
    }
    out
}

pub async fn show(api: &Api<Rollout>, name: &str, watch: bool) -> anyhow::Result<()> {
    if !watch {
        print!("{}", render(&api.get(name).await?));
        return Ok(());
    }
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut changes = watcher(api.clone(), config).default_backoff().applied_objects().boxed();
    let mut last = String::new();
    while let Some(change) = changes.next().await {
        match change {
            Ok(rollout) => {
                let view = render(&rollout);
                if view != last {
                    println!("--- {}", jiff::Timestamp::now().strftime("%H:%M:%S"));
                    print!("{view}");
                    last = view;
                }
            }
            Err(e) => eprintln!("watch error (retrying): {e}"),
        }
    }
    Ok(())
}

/// One line per metric: its verdict, how many requests were compared, the
/// e-values of the sequential tests (evidence against "no regression" and
/// against "worse than the margin"), and what a decision still needs.
fn evidence(analysis: &serde_json::Value) -> Vec<String> {
    let Some(analysis) = AnalysisStatus::from_value(analysis) else {
        return vec!["analysis: status not readable by this version of siskin".into()];
    };
    let mut lines: Vec<String> = analysis
        .metrics
        .iter()
        .map(|(name, m)| format!("analysis {}", m.describe(name, analysis.canary_rate)))
        .collect();
    if let Some(verdict) = analysis.dry_run_verdict {
        lines.push(format!("analysis (dry run, acting on nothing): would be {verdict:?}"));
    }
    lines
}
