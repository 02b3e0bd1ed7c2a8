//! `Rollout.status.analysis`: the judges' state for one canary, the verdict
//! the step engine acts on, and the pure rules that turn one evaluation's
//! per-metric verdicts into it. The controller reads the metrics; the CLI
//! and the status message describe what is here.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::Verdict;
use super::judge::{JudgeSpec, JudgeState, Observation, PowerProgress, SequentialState};

/// How long the analysis must stay inconclusive before the step's policy
/// applies: a canary whose series has not been scraped yet, or one failed
/// scrape, is not a broken query. Longer outages still pause or abort.
pub const INCONCLUSIVE_GRACE: Duration = Duration::from_secs(20);

/// Evaluations closer together than this reuse the last one: a window with
/// no new requests says nothing, and status writes trigger reconciles.
pub const EVALUATION_INTERVAL: Duration = Duration::from_secs(5);

/// What `status.analysis` holds: the judges' state for one canary.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisStatus {
    /// The canary revision this evidence is about.
    pub canary: String,
    pub evaluated_at: Option<Timestamp>,
    /// When the analysis of this canary began: `{{since}}`, the start of
    /// the window of providers that count over a time range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Timestamp>,
    /// The combined verdict the step engine acts on (dry-run metrics left out).
    pub verdict: Option<Verdict>,
    /// What the analysis would decide if its dry-run metrics acted too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run_verdict: Option<Verdict>,
    /// Since when every evaluation has been inconclusive, if it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inconclusive_since: Option<Timestamp>,
    /// Canary requests per second over the last evaluation window, for
    /// saying how long a decision will take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_rate: Option<f64>,
    pub metrics: BTreeMap<String, MetricStatus>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricStatus {
    pub verdict: Verdict,
    /// Why a metric is inconclusive: the query and what went wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Measured and shown, never acted on.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    pub judge: JudgeState,
}

impl MetricStatus {
    fn sequential(&self) -> Option<&SequentialState> {
        match &self.judge {
            JudgeState::Sequential(state) => Some(state),
            _ => None,
        }
    }

    /// Canary requests compared so far, when the judge counts them.
    pub fn canary_requests(&self) -> Option<f64> {
        self.sequential().map(|s| s.requests.canary)
    }

    /// One line for people: the verdict, the evidence, and what a decision
    /// still needs. `rate` is the canary's requests per second.
    pub fn describe(&self, name: &str, rate: Option<f64>) -> String {
        let dry = if self.dry_run { " (dry run)" } else { "" };
        let mut line = format!("{name}: {:?}{dry}", self.verdict);
        if let Some(s) = self.sequential() {
            line.push_str(&format!(
                "; {} canary / {} stable requests; e-value regression {}, non-inferior {}",
                amount(s.requests.canary),
                amount(s.requests.stable),
                e_value(s.regression_e_value()),
                e_value(s.non_inferiority_e_value())
            ));
            if let Some(power) = s.power.as_ref().filter(|_| self.verdict != Verdict::Regression) {
                line.push_str(&format!("; {}", describe_power(power, rate)));
            }
        }
        if let Some(detail) = &self.detail {
            line.push_str(&format!(" — {detail}"));
        }
        line
    }
}

/// "power 62 % of 95 %; needs ≈ 41k more canary requests, ≈ 11 min at the
/// current rate".
pub fn describe_power(power: &PowerProgress, rate: Option<f64>) -> String {
    let mut text = format!(
        "power {:.0} % of {:.0} % to catch the regression named in detect",
        100.0 * power.power,
        100.0 * power.target
    );
    if let Some(edge) = power.edge {
        text.push_str(&format!(" (by the {} edge)", seconds(edge)));
    }
    if power.reached() {
        return text;
    }
    match power.canary_requests_needed {
        Some(needed) => {
            text.push_str(&format!("; needs ≈ {} more canary requests", amount(needed)));
            if let Some(rate) = rate.filter(|r| *r > 0.0 && r.is_finite()) {
                text.push_str(&format!(", ≈ {} at the current rate", minutes(needed / rate)));
            }
        }
        None => text.push_str("; out of reach at any traffic (is the regression named within the tolerance?)"),
    }
    text
}

fn amount(n: f64) -> String {
    match n {
        n if n >= 1e6 => format!("{:.1}M", n / 1e6),
        n if n >= 1e4 => format!("{:.0}k", n / 1e3),
        n => format!("{n:.0}"),
    }
}

fn e_value(e: f64) -> String {
    if e >= 1000.0 {
        format!("{e:.0}")
    } else {
        format!("{e:.2}")
    }
}

fn seconds(s: f64) -> String {
    if s < 1.0 {
        format!("{:.0} ms", s * 1000.0)
    } else {
        format!("{s} s")
    }
}

fn minutes(s: f64) -> String {
    if s < 90.0 {
        format!("{:.0} s", s.max(1.0))
    } else {
        format!("{:.0} min", s / 60.0)
    }
}

impl AnalysisStatus {
    pub fn from_value(value: &serde_json::Value) -> Option<AnalysisStatus> {
        serde_json::from_value(value.clone()).ok()
    }

    /// Starts the evaluation of `canary` at `now`, continuing `previous`
    /// (its window start) when it measured the same canary. `None` when the
    /// previous evaluation is under [`EVALUATION_INTERVAL`] old: it stands,
    /// and no metric is read.
    pub fn begin(previous: Option<&AnalysisStatus>, canary: &str, now: Timestamp) -> Option<Self> {
        let previous = previous.filter(|p| p.canary == canary);
        if let Some(prev) = previous
            && prev
                .evaluated_at
                .is_some_and(|at| now.duration_since(at).unsigned_abs() < EVALUATION_INTERVAL)
        {
            return None;
        }
        Some(AnalysisStatus {
            canary: canary.to_string(),
            evaluated_at: Some(now),
            since: Some(previous.and_then(|p| p.since).unwrap_or(now)),
            ..Default::default()
        })
    }

    /// Folds one metric's reading into this evaluation: its judge's state
    /// carries on from `previous` (of the same canary), and the first
    /// reading of a metric only fixes the baseline, so an inconclusive
    /// first look is no evidence yet (`Continue`). A reading that failed
    /// (`detail`) is inconclusive from the first look.
    pub fn fold(
        &mut self,
        previous: Option<&AnalysisStatus>,
        (name, judge): (&str, &JudgeSpec),
        observation: &Observation,
        detail: Option<String>,
        dry_run: bool,
    ) {
        let stored = previous
            .filter(|p| p.canary == self.canary)
            .and_then(|p| p.metrics.get(name));
        let first = stored.is_none();
        let mut state = stored.map_or_else(|| judge.initial_state(), |m| m.judge.clone());
        let mut verdict = judge.evaluate(&mut state, observation);
        if first && verdict == Verdict::Inconclusive && detail.is_none() {
            verdict = Verdict::Continue;
        }
        let metric = MetricStatus {
            verdict,
            detail,
            dry_run,
            judge: state,
        };
        self.metrics.insert(name.to_string(), metric);
    }

    /// Why the analysis has not concluded, naming each metric: what went
    /// wrong for inconclusive ones, what a decision still needs for the rest.
    pub fn explain(&self) -> Option<String> {
        let details: Vec<String> = self
            .metrics
            .iter()
            .filter(|(_, m)| matches!(m.verdict, Verdict::Inconclusive | Verdict::Continue))
            .filter_map(|(name, m)| {
                let why = match (&m.detail, m.sequential().and_then(|s| s.power.as_ref())) {
                    (Some(detail), _) => detail.clone(),
                    (None, Some(power)) => describe_power(power, self.canary_rate),
                    (None, None) => return None,
                };
                Some(format!("metric {name}: {why}"))
            })
            .collect();
        (!details.is_empty()).then(|| details.join("; "))
    }

    /// Combines this evaluation's metrics into the verdicts, given the
    /// previous evaluation: dry-run metrics count only toward
    /// `dryRunVerdict`, and an inconclusive spell shorter than
    /// [`INCONCLUSIVE_GRACE`] is `Continue`.
    pub fn conclude(&mut self, previous: Option<&AnalysisStatus>, now: Timestamp) {
        let acting: Vec<Verdict> = self
            .metrics
            .values()
            .filter(|m| !m.dry_run)
            .map(|m| m.verdict)
            .collect();
        let any_dry = self.metrics.values().any(|m| m.dry_run);
        self.dry_run_verdict = any_dry.then(|| Verdict::combine(self.metrics.values().map(|m| m.verdict)));
        let combined = Verdict::combine(acting);
        self.inconclusive_since = match combined {
            Verdict::Inconclusive => previous.and_then(|p| p.inconclusive_since).or(Some(now)),
            _ => None,
        };
        let within_grace = self
            .inconclusive_since
            .is_some_and(|since| now.duration_since(since).unsigned_abs() < INCONCLUSIVE_GRACE);
        self.verdict = Some(if within_grace { Verdict::Continue } else { combined });
        self.canary_rate = previous.and_then(|p| self.rate_since(p));
    }

    /// Canary requests per second between `previous` and this evaluation.
    fn rate_since(&self, previous: &AnalysisStatus) -> Option<f64> {
        let elapsed = self.evaluated_at?.duration_since(previous.evaluated_at?).as_secs_f64();
        let grown = self
            .metrics
            .iter()
            .filter_map(|(name, m)| Some(m.canary_requests()? - previous.metrics.get(name)?.canary_requests()?))
            .fold(None, |most: Option<f64>, g| Some(most.map_or(g, |m| m.max(g))))?;
        (elapsed > 0.0 && grown >= 0.0)
            .then(|| grown / elapsed)
            .or(previous.canary_rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + seconds).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    #[test]
    fn an_evaluation_under_the_interval_old_stands_and_a_new_canary_starts_afresh() {
        let first = AnalysisStatus::begin(None, "c1", at(0)).unwrap_or_default();
        assert_eq!(first.since, Some(at(0)));
        let recent = AnalysisStatus::begin(Some(&first), "c1", at(3));
        assert_eq!(recent, None, "3 s later the last evaluation stands");
        let later = AnalysisStatus::begin(Some(&first), "c1", at(6)).unwrap_or_default();
        assert_eq!(later.since, Some(at(0)), "the window still starts at the first look");
        assert_eq!(later.evaluated_at, Some(at(6)));
        let other = AnalysisStatus::begin(Some(&first), "c2", at(3)).unwrap_or_default();
        assert_eq!(other.canary, "c2");
        assert_eq!(
            other.since,
            Some(at(3)),
            "another canary's evidence is not carried over"
        );
    }

    #[test]
    fn the_first_reading_fixes_the_baseline_and_is_no_evidence_yet() {
        let judge = JudgeSpec::default();
        let missing = Observation::Missing;
        let mut first = AnalysisStatus::begin(None, "c1", at(0)).unwrap_or_default();
        first.fold(None, ("errors", &judge), &missing, None, false);
        assert_eq!(first.metrics["errors"].verdict, Verdict::Continue);
        let mut failed = AnalysisStatus::begin(None, "c1", at(0)).unwrap_or_default();
        let why = Some("query returned no data".to_string());
        failed.fold(None, ("errors", &judge), &missing, why, false);
        assert_eq!(
            failed.metrics["errors"].verdict,
            Verdict::Inconclusive,
            "a failed read is inconclusive from the first look"
        );
        let mut second = AnalysisStatus::begin(Some(&first), "c1", at(10)).unwrap_or_default();
        second.fold(Some(&first), ("errors", &judge), &missing, None, true);
        assert_eq!(second.metrics["errors"].verdict, Verdict::Inconclusive);
        assert!(second.metrics["errors"].dry_run);
    }

    fn metric(verdict: Verdict, dry_run: bool) -> MetricStatus {
        MetricStatus {
            verdict,
            detail: None,
            dry_run,
            judge: JudgeSpec::default().initial_state(),
        }
    }

    fn status(metrics: &[(&str, MetricStatus)], at: Timestamp) -> AnalysisStatus {
        AnalysisStatus {
            canary: "v2".into(),
            evaluated_at: Some(at),
            metrics: metrics.iter().map(|(n, m)| (n.to_string(), m.clone())).collect(),
            ..AnalysisStatus::default()
        }
    }

    #[test]
    fn a_dry_run_metric_is_shown_but_never_acts() {
        let now = Timestamp::UNIX_EPOCH;
        let mut next = status(
            &[
                ("errors", metric(Verdict::NonInferior, false)),
                ("latency", metric(Verdict::Regression, true)),
            ],
            now,
        );
        next.conclude(None, now);
        assert_eq!(next.verdict, Some(Verdict::NonInferior));
        assert_eq!(next.dry_run_verdict, Some(Verdict::Regression));
    }

    #[test]
    fn only_a_lasting_silence_is_inconclusive() {
        let start = Timestamp::UNIX_EPOCH;
        let mut first = status(&[("errors", metric(Verdict::Inconclusive, false))], start);
        first.conclude(None, start);
        assert_eq!(first.verdict, Some(Verdict::Continue));
        let later = start + INCONCLUSIVE_GRACE;
        let mut second = status(&[("errors", metric(Verdict::Inconclusive, false))], later);
        second.conclude(Some(&first), later);
        assert_eq!(second.verdict, Some(Verdict::Inconclusive));
    }

    #[test]
    fn says_what_a_decision_still_needs_in_numbers() {
        let power = PowerProgress {
            power: 0.62,
            target: 0.95,
            canary_requests_needed: Some(41_000.0),
            edge: None,
        };
        let text = describe_power(&power, Some(62.0));
        assert!(text.contains("power 62 % of 95 %"), "{text}");
        assert!(
            text.contains("needs ≈ 41k more canary requests, ≈ 11 min at the current rate"),
            "{text}"
        );
    }
}
