//! The one vocabulary every judge answers in and the step engine acts on.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What the evidence says about the canary, compared with stable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Verdict {
    /// Conclusive evidence that the canary is worse than stable beyond the
    /// tolerance: abort now.
    Regression,
    /// Conclusive evidence that the canary is no worse than the tolerance:
    /// the step may advance once its minimum hold has passed.
    NonInferior,
    /// Data is flowing but neither hypothesis is settled yet.
    Continue,
    /// No data, too few samples or a provider error. Never a pass: the step's
    /// policy (pause or abort) applies.
    Inconclusive,
}

impl Verdict {
    /// Combines the verdicts of several metrics: any regression aborts, any
    /// missing data is inconclusive, and only unanimous non-inferiority passes.
    pub fn combine(verdicts: impl IntoIterator<Item = Verdict>) -> Verdict {
        let mut combined = Verdict::NonInferior;
        let mut any = false;
        for v in verdicts {
            any = true;
            combined = match (combined, v) {
                (Verdict::Regression, _) | (_, Verdict::Regression) => Verdict::Regression,
                (Verdict::Inconclusive, _) | (_, Verdict::Inconclusive) => Verdict::Inconclusive,
                (Verdict::Continue, _) | (_, Verdict::Continue) => Verdict::Continue,
                _ => Verdict::NonInferior,
            };
        }
        if any { combined } else { Verdict::Inconclusive }
    }
}

#[cfg(test)]
mod tests {
    use super::Verdict::*;
    use super::*;

    #[test]
    fn no_metrics_is_never_a_pass() {
        assert_eq!(Verdict::combine([]), Inconclusive);
    }

    #[test]
    fn one_regression_outweighs_everything() {
        assert_eq!(Verdict::combine([NonInferior, Inconclusive, Regression]), Regression);
    }

    #[test]
    fn passes_only_when_every_metric_is_non_inferior() {
        assert_eq!(Verdict::combine([NonInferior, NonInferior]), NonInferior);
        assert_eq!(Verdict::combine([NonInferior, Continue]), Continue);
        assert_eq!(Verdict::combine([Continue, Inconclusive]), Inconclusive);
    }
}
