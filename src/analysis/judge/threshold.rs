//! Flagger's threshold check, for users migrating from Flagger (or Argo
//! Rollouts' `failureLimit`).
//!
//! Every evaluation checks one canary-only value against `min`/`max`. A check
//! fails when the value is outside the range or missing, and failed checks
//! accumulate for the whole analysis (a later pass does not reset them); the
//! canary is rolled back once `failed >= failure_limit`. A passing check lets
//! the step advance, as it lets Flagger raise the weight. Argo's
//! `failureLimit: n` (fail when failed > n) is `failure_limit: n + 1`.
//!
//! Guarantee: none — no baseline comparison, and no bound on false aborts
//! under repeated checks; it exists for compatibility. Checked to follow
//! Flagger's loop by `rolls_back_after_the_failure_limit_even_with_passes_between`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{InvalidJudge, Judge, Observation};
use crate::analysis::Verdict;

/// Configuration: Flagger's `thresholdRange` and `analysis.threshold`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct ThresholdJudge {
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// Failed checks that roll the canary back (Flagger's default is 1).
    pub failure_limit: u32,
}

impl Default for ThresholdJudge {
    fn default() -> Self {
        ThresholdJudge {
            min: None,
            max: None,
            failure_limit: 1,
        }
    }
}

/// Checks made and failed so far, kept in `Rollout.status`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ThresholdState {
    pub checks: u32,
    pub failed: u32,
}

impl ThresholdJudge {
    pub fn validate(&self) -> Result<(), InvalidJudge> {
        for (field, bound) in [("min", self.min), ("max", self.max)] {
            if let Some(bound) = bound {
                InvalidJudge::check(field, bound, "finite", |_| true)?;
            }
        }
        if let (Some(min), Some(max)) = (self.min, self.max) {
            InvalidJudge::check("max", max, ">= min", |max| max >= min)?;
        }
        InvalidJudge::check("failureLimit", f64::from(self.failure_limit), ">= 1", |l| l >= 1.0)
    }

    /// Whether `value` lies within the configured range.
    pub fn within(&self, value: f64) -> bool {
        value.is_finite() && self.min.is_none_or(|min| value >= min) && self.max.is_none_or(|max| value <= max)
    }
}

impl Judge for ThresholdJudge {
    type State = ThresholdState;

    fn evaluate(&self, state: &mut ThresholdState, observation: &Observation) -> Verdict {
        if self.validate().is_err() {
            return Verdict::Inconclusive;
        }
        if state.failed >= self.failure_limit {
            return Verdict::Regression;
        }
        state.checks += 1;
        let value = match observation {
            Observation::Value(value) => Some(*value),
            _ => None,
        };
        let passed = value.is_some_and(|v| self.within(v));
        if !passed {
            state.failed += 1;
        }
        if state.failed >= self.failure_limit {
            Verdict::Regression
        } else if passed {
            Verdict::NonInferior
        } else if value.is_some_and(f64::is_finite) {
            Verdict::Continue
        } else {
            // Flagger counts no data as a failed check; it is never a pass.
            Verdict::Inconclusive
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn success_rate() -> ThresholdJudge {
        ThresholdJudge {
            min: Some(99.0),
            max: None,
            failure_limit: 3,
        }
    }

    fn run(judge: &ThresholdJudge, values: &[Option<f64>]) -> Vec<Verdict> {
        let mut state = ThresholdState::default();
        values
            .iter()
            .map(|v| judge.evaluate(&mut state, &v.map_or(Observation::Missing, Observation::Value)))
            .collect()
    }

    #[test]
    fn passes_values_within_range() {
        assert_eq!(
            run(&success_rate(), &[Some(99.5), Some(100.0)]),
            [Verdict::NonInferior; 2]
        );
    }

    #[test]
    fn rolls_back_after_the_failure_limit_even_with_passes_between() {
        let verdicts = run(
            &success_rate(),
            &[Some(98.0), Some(99.9), Some(97.0), Some(99.9), Some(90.0), Some(100.0)],
        );
        use Verdict::*;
        assert_eq!(
            verdicts,
            [Continue, NonInferior, Continue, NonInferior, Regression, Regression]
        );
    }

    #[test]
    fn never_passes_without_data() {
        let verdicts = run(&success_rate(), &[None, Some(f64::NAN), None]);
        use Verdict::*;
        assert_eq!(verdicts, [Inconclusive, Inconclusive, Regression]);
    }

    #[test]
    fn checks_a_maximum() {
        let latency = ThresholdJudge {
            min: None,
            max: Some(500.0),
            failure_limit: 1,
        };
        assert_eq!(
            run(&latency, &[Some(450.0), Some(501.0)]),
            [Verdict::NonInferior, Verdict::Regression]
        );
        assert!(
            ThresholdJudge {
                min: Some(2.0),
                max: Some(1.0),
                failure_limit: 1
            }
            .validate()
            .is_err()
        );
    }
}
