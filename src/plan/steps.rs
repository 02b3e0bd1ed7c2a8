//! Strategies expand into one list of steps the engine runs. Validation
//! happens here, once, so the engine only ever sees a well-formed plan; the
//! CEL rules in the CRD catch the same mistakes earlier, at admission.

use std::time::Duration;

use serde_json::json;

use crate::api::{
    AbTestStrategy, CanaryStep, CanaryStrategy, Duration as SpecDuration, DurationError, InconclusivePolicy, MAX_STEPS,
    RequestMatch, RolloutSpec, TrafficRouting, revision_of_value,
};

/// How long the previous revision stays up after it stops receiving traffic
/// when the spec does not say: long enough for endpoints and proxies to
/// converge and in-flight requests to finish.
pub const DEFAULT_SCALE_DOWN_DELAY: Duration = Duration::from_secs(30);

/// One step of the engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Send `weight` percent to the canary and hold it between `min` and
    /// `max` (no `max`: until the analysis concludes).
    Weight {
        weight: i32,
        min: Duration,
        max: Option<Duration>,
    },
    /// Keep the previous weight: for `duration`, or until promoted.
    Pause { duration: Option<Duration> },
    /// Send only requests matching `matches` to the canary (the weights
    /// stay 100/0) and hold between `min` and `max`, as a weight step does.
    Match {
        matches: Vec<RequestMatch>,
        min: Duration,
        max: Option<Duration>,
    },
}

/// A validated strategy: what the engine runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepPlan {
    /// The strategy the steps came from, as `status.strategy` shows it.
    pub strategy: &'static str,
    pub steps: Vec<Step>,
    /// Whether a traffic router sets weights; otherwise the canary's share
    /// is its share of the replicas.
    pub routed: bool,
    /// The policy for inconclusive analysis, when analysis gates the steps.
    pub analysis: Option<InconclusivePolicy>,
    pub scale_down_delay: Duration,
    pub replicas: i32,
    /// Identifies the step list, to notice edits mid-rollout.
    pub hash: String,
}

impl StepPlan {
    /// The canary weight in force at step `index`: a pause keeps the weight
    /// of the weight step before it; past the end the canary takes all.
    pub fn weight_at(&self, index: usize) -> i32 {
        if index >= self.steps.len() {
            return 100;
        }
        match self.traffic_step_at(index) {
            Some(Step::Weight { weight, .. }) => *weight,
            _ => 0,
        }
    }

    /// The request matches routed to the canary at step `index`: a pause
    /// keeps those of the step before it; past the end there are none.
    pub fn matches_at(&self, index: usize) -> Option<&[RequestMatch]> {
        if index >= self.steps.len() {
            return None;
        }
        match self.traffic_step_at(index) {
            Some(Step::Match { matches, .. }) => Some(matches),
            _ => None,
        }
    }

    /// The last step at or before `index` that sets traffic.
    fn traffic_step_at(&self, index: usize) -> Option<&Step> {
        self.steps[..=index]
            .iter()
            .rev()
            .find(|s| !matches!(s, Step::Pause { .. }))
    }

    /// Canary pods for a weight. With a router the stable keeps all its
    /// replicas (so an abort is one route write) and the canary gets its
    /// share rounded up; at least one pod, so analysis has something to see.
    pub fn canary_replicas(&self, weight: i32) -> i32 {
        let share = i64::from(self.replicas.max(0)) * i64::from(weight.clamp(0, 100));
        let pods = i32::try_from((share + 99) / 100).unwrap_or(self.replicas);
        pods.max(1)
    }

    /// Stable pods while the canary runs at `weight`.
    pub fn stable_replicas(&self, weight: i32) -> i32 {
        if self.routed {
            self.replicas
        } else {
            (self.replicas - self.canary_replicas(weight)).max(0)
        }
    }
}

/// Why a spec cannot be acted on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("set exactly one of template or workloadRef")]
    PodTemplateSource,
    #[error("replicas must not be negative")]
    NegativeReplicas,
    #[error("set exactly one strategy (canary or abTest)")]
    NoStrategy,
    #[error("abTest.match[{index}] must name at least one header")]
    EmptyMatch { index: usize },
    #[error("canary.steps must have between 1 and {MAX_STEPS} steps")]
    StepCount,
    #[error("step {index}: set exactly one of weight or pause")]
    StepKind { index: usize },
    #[error("step {index}: hold belongs to a weight step")]
    HoldWithoutWeight { index: usize },
    #[error("step {index}: weight {weight} is not between 0 and 100")]
    WeightRange { index: usize, weight: i32 },
    #[error("step {index}: weight {weight} is below the previous weight {previous}")]
    WeightDecreases { index: usize, weight: i32, previous: i32 },
    #[error("step {index}: hold.min exceeds hold.max")]
    HoldOrder { index: usize },
    #[error("{field}: {source}")]
    Duration { field: String, source: DurationError },
    #[error("trafficRouting: set exactly one of gatewayAPI or istio")]
    RouterCount,
    #[error("analysis.templates must name at least one template")]
    NoAnalysisTemplates,
}

impl SpecError {
    /// A short snake_case label for metrics and Event reasons.
    pub fn metric_label(&self) -> &'static str {
        match self {
            SpecError::PodTemplateSource => "pod_template_source",
            SpecError::NegativeReplicas => "negative_replicas",
            SpecError::NoStrategy => "no_strategy",
            SpecError::EmptyMatch { .. } => "empty_match",
            SpecError::StepCount => "step_count",
            SpecError::StepKind { .. } => "step_kind",
            SpecError::HoldWithoutWeight { .. } => "hold_without_weight",
            SpecError::WeightRange { .. } => "weight_range",
            SpecError::WeightDecreases { .. } => "weight_decreases",
            SpecError::HoldOrder { .. } => "hold_order",
            SpecError::Duration { .. } => "duration",
            SpecError::RouterCount => "router_count",
            SpecError::NoAnalysisTemplates => "no_analysis_templates",
        }
    }
}

/// Validates the spec and expands its strategy into steps. Returns every
/// problem at once, so users fix them in one go.
pub fn expand(spec: &RolloutSpec) -> Result<StepPlan, Vec<SpecError>> {
    let mut errors = Vec::new();
    if spec.template.is_some() == spec.workload_ref.is_some() {
        errors.push(SpecError::PodTemplateSource);
    }
    if spec.replicas < 0 {
        errors.push(SpecError::NegativeReplicas);
    }
    if spec.analysis.as_ref().is_some_and(|a| a.templates.is_empty()) {
        errors.push(SpecError::NoAnalysisTemplates);
    }
    let analysis = spec.analysis.as_ref().map(|a| a.on_inconclusive);
    let (strategy, steps, routing, delay, hash) = match (spec.canary(), spec.ab_test()) {
        (Some(canary), None) => (
            "canary",
            canary_steps(canary, &mut errors),
            canary.traffic_routing.as_ref(),
            (canary.scale_down_delay.as_ref(), "canary.scaleDownDelay"),
            revision_of_value(&serde_json::to_value(&canary.steps).unwrap_or_default()),
        ),
        (None, Some(ab)) => (
            "abTest",
            ab_test_steps(ab, analysis.is_some(), &mut errors),
            Some(&ab.traffic_routing),
            (ab.scale_down_delay.as_ref(), "abTest.scaleDownDelay"),
            revision_of_value(&json!({"match": ab.matches, "duration": ab.duration})),
        ),
        _ => {
            errors.push(SpecError::NoStrategy);
            return Err(errors);
        }
    };
    let routed = routing.is_some_and(|r| one_router(r, &mut errors));
    let scale_down_delay = optional_duration(delay.0, delay.1, &mut errors).unwrap_or(DEFAULT_SCALE_DOWN_DELAY);
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(StepPlan {
        strategy,
        steps,
        routed,
        analysis,
        scale_down_delay,
        replicas: spec.replicas,
        hash,
    })
}

/// Whether `routing` names exactly one router; records the error if not.
fn one_router(routing: &TrafficRouting, errors: &mut Vec<SpecError>) -> bool {
    if routing.gateway_api.is_some() == routing.istio.is_some() {
        errors.push(SpecError::RouterCount);
    }
    true
}

/// An A/B test is one match step. With analysis it ends on a conclusion
/// (non-inferior promotes) or at `duration`, where the inconclusive policy
/// applies; without analysis it runs for `duration`, or, with no duration,
/// until `siskin promote` (a pause after the match keeps the match).
fn ab_test_steps(ab: &AbTestStrategy, analysed: bool, errors: &mut Vec<SpecError>) -> Vec<Step> {
    for (index, m) in ab.matches.iter().enumerate() {
        if m.headers.is_empty() {
            errors.push(SpecError::EmptyMatch { index });
        }
    }
    if ab.matches.is_empty() {
        errors.push(SpecError::EmptyMatch { index: 0 });
    }
    let duration = optional_duration(ab.duration.as_ref(), "abTest.duration", errors);
    let matches = ab.matches.clone();
    match (analysed, duration) {
        (true, max) => vec![Step::Match {
            matches,
            min: Duration::ZERO,
            max,
        }],
        (false, Some(d)) => vec![Step::Match {
            matches,
            min: d,
            max: Some(d),
        }],
        (false, None) => vec![
            Step::Match {
                matches,
                min: Duration::ZERO,
                max: None,
            },
            Step::Pause { duration: None },
        ],
    }
}

fn canary_steps(canary: &CanaryStrategy, errors: &mut Vec<SpecError>) -> Vec<Step> {
    if canary.steps.is_empty() || canary.steps.len() > MAX_STEPS {
        errors.push(SpecError::StepCount);
    }
    let mut previous = 0;
    let mut steps = Vec::with_capacity(canary.steps.len());
    for (index, step) in canary.steps.iter().enumerate() {
        if let Some(step) = one_step(index, step, &mut previous, errors) {
            steps.push(step);
        }
    }
    steps
}

fn one_step(index: usize, step: &CanaryStep, previous: &mut i32, errors: &mut Vec<SpecError>) -> Option<Step> {
    match (step.weight, &step.pause) {
        (Some(weight), None) => {
            if !(0..=100).contains(&weight) {
                errors.push(SpecError::WeightRange { index, weight });
            } else if weight < *previous {
                errors.push(SpecError::WeightDecreases {
                    index,
                    weight,
                    previous: *previous,
                });
            }
            *previous = weight.max(*previous);
            let hold = step.hold.clone().unwrap_or_default();
            let field = |bound: &str| format!("steps[{index}].hold.{bound}");
            let min = optional_duration(hold.min.as_ref(), &field("min"), errors);
            let max = optional_duration(hold.max.as_ref(), &field("max"), errors);
            if let (Some(min), Some(max)) = (min, max)
                && min > max
            {
                errors.push(SpecError::HoldOrder { index });
            }
            Some(Step::Weight {
                weight,
                min: min.unwrap_or(Duration::ZERO),
                max,
            })
        }
        (None, Some(pause)) => {
            if step.hold.is_some() {
                errors.push(SpecError::HoldWithoutWeight { index });
            }
            let field = format!("steps[{index}].pause.duration");
            let duration = optional_duration(pause.duration.as_ref(), &field, errors);
            Some(Step::Pause { duration })
        }
        _ => {
            errors.push(SpecError::StepKind { index });
            None
        }
    }
}

fn optional_duration(value: Option<&SpecDuration>, field: &str, errors: &mut Vec<SpecError>) -> Option<Duration> {
    let value = value?;
    match value.parse() {
        Ok(d) => Some(d),
        Err(source) => {
            errors.push(SpecError::Duration {
                field: field.to_string(),
                source,
            });
            None
        }
    }
}
