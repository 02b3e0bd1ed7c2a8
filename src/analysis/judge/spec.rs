//! Which judge a metric uses, and the state it keeps: the one place that
//! dispatches on the judge's kind.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{
    InvalidJudge, Judge, MannWhitneyJudge, MannWhitneyState, Observation, SequentialJudge, SequentialState,
    ThresholdJudge, ThresholdState,
};
use crate::analysis::Verdict;

/// Which judge a metric uses, as written in an `AnalysisTemplate`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum JudgeSpec {
    Sequential(SequentialJudge),
    MannWhitney(MannWhitneyJudge),
    Threshold(ThresholdJudge),
}

impl Default for JudgeSpec {
    fn default() -> Self {
        JudgeSpec::Sequential(SequentialJudge::default())
    }
}

/// The state of whichever judge a metric uses; stored per metric in status.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum JudgeState {
    Sequential(SequentialState),
    MannWhitney(MannWhitneyState),
    Threshold(ThresholdState),
}

impl JudgeSpec {
    /// The state a fresh analysis starts from.
    pub fn initial_state(&self) -> JudgeState {
        match self {
            JudgeSpec::Sequential(_) => JudgeState::Sequential(SequentialState::default()),
            JudgeSpec::MannWhitney(_) => JudgeState::MannWhitney(MannWhitneyState::default()),
            JudgeSpec::Threshold(_) => JudgeState::Threshold(ThresholdState::default()),
        }
    }

    /// Rejects configurations that cannot give a meaningful verdict.
    pub fn validate(&self) -> Result<(), InvalidJudge> {
        match self {
            JudgeSpec::Sequential(judge) => judge.validate(),
            JudgeSpec::MannWhitney(judge) => judge.validate(),
            JudgeSpec::Threshold(judge) => judge.validate(),
        }
    }

    /// The judge to use when it is one of `metrics` judged together: the
    /// sequential judge's false-abort budget is split evenly (Bonferroni).
    /// The other judges give no error guarantee to split.
    pub fn split_alpha(&self, metrics: usize) -> JudgeSpec {
        match self {
            JudgeSpec::Sequential(judge) => JudgeSpec::Sequential(judge.split_alpha(metrics)),
            other => other.clone(),
        }
    }

    /// Evaluates with whichever judge this is. A state left by a different
    /// judge (the template changed) is discarded and the test starts afresh.
    pub fn evaluate(&self, state: &mut JudgeState, observation: &Observation) -> Verdict {
        let matches = matches!(
            (self, &*state),
            (JudgeSpec::Sequential(_), JudgeState::Sequential(_))
                | (JudgeSpec::MannWhitney(_), JudgeState::MannWhitney(_))
                | (JudgeSpec::Threshold(_), JudgeState::Threshold(_))
        );
        if !matches {
            *state = self.initial_state();
        }
        match (self, state) {
            (JudgeSpec::Sequential(judge), JudgeState::Sequential(s)) => judge.evaluate(s, observation),
            (JudgeSpec::MannWhitney(judge), JudgeState::MannWhitney(s)) => judge.evaluate(s, observation),
            (JudgeSpec::Threshold(judge), JudgeState::Threshold(s)) => judge.evaluate(s, observation),
            _ => Verdict::Inconclusive,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::judge::{Arms, Counts};

    #[test]
    fn a_state_left_by_another_judge_is_discarded() {
        let spec = JudgeSpec::Threshold(ThresholdJudge::default());
        let mut state = JudgeSpec::default().initial_state();
        spec.evaluate(&mut state, &Observation::Missing);
        assert!(matches!(state, JudgeState::Threshold(_)));
    }

    #[test]
    fn judge_state_round_trips_through_json() {
        // serde_json may move a float by one ulp; the test must go on the same.
        let spec = JudgeSpec::default();
        let observe = |k: u32| {
            let k = f64::from(k);
            let counts = |r, e| Counts { requests: r, errors: e };
            Observation::Counts(Arms {
                stable: counts(1000.0 * k, k),
                canary: counts(100.0 * k, 0.4 * k),
            })
        };
        let mut state = spec.initial_state();
        (1..5).for_each(|k| _ = spec.evaluate(&mut state, &observe(k)));
        let json = serde_json::to_string(&state).unwrap_or_default();
        let restored: Option<JudgeState> = serde_json::from_str(&json).ok();
        let Some(mut restored) = restored else {
            panic!("state did not parse back: {json}")
        };
        for k in 5..40 {
            assert_eq!(
                spec.evaluate(&mut restored, &observe(k)),
                spec.evaluate(&mut state, &observe(k))
            );
        }
    }
}
