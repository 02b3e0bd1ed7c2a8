//! Strategies expand into one list of steps the engine runs. Validation
//! happens here, once, so the engine only ever sees a well-formed plan; the
//! CEL rules in the CRD catch the same mistakes earlier, at admission.

use std::time::Duration;

use serde_json::json;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::api::{
    AbTestStrategy, BlueGreenStrategy, COOKIE_HEADER, CanaryStep, CanaryStrategy, Duration as SpecDuration,
    DurationError, Hold, InconclusivePolicy, MAX_ANALYSIS_ARGS, MAX_ANALYSIS_TEMPLATES, MAX_REPLICAS, MAX_SERVICE_NAME,
    MAX_STEPS, MAX_WEBHOOK_TIMEOUT, MAX_WEBHOOKS, MirrorStage, RequestMatch, RollingStrategy, RolloutPhase,
    RolloutSpec, RolloutStatus, TrafficRouting, revision_of_value,
};

/// How long the previous revision stays up after it stops receiving traffic
/// when the spec does not say: long enough for endpoints and proxies to
/// converge and in-flight requests to finish.
pub const DEFAULT_SCALE_DOWN_DELAY: Duration = Duration::from_secs(30);

/// How long blue stays after a blue/green promotion. Its rollback window
/// (`scaleDownDelay`) has already passed with no traffic on it; this only
/// lets endpoints and proxies converge on the promoted selector.
pub const BLUE_GREEN_SETTLE: Duration = Duration::from_secs(5);

/// The least hold of an analysed A/B test or blue/green preview, whose
/// canary gets its first requests only once the step starts (the rule's
/// matches, the preview's testers). Until then a query for the canary may
/// find no series at all, which is inconclusive; this gives the first
/// requests time to be scraped before that counts. Bounded by the step's
/// own maximum.
pub const FIRST_DATA_GRACE: Duration = Duration::from_secs(60);

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
    /// Copy `percent` of live traffic to the canary (weights stay 100/0)
    /// and hold between `min` and `max`, as a weight step does.
    Mirror {
        percent: i32,
        min: Duration,
        max: Option<Duration>,
    },
    /// Blue/green after the switch: all traffic on the new revision, the
    /// old one still at full size for `window`, so an abort is one write.
    /// No analysis gate: there is no stable traffic left to compare with.
    Switch { window: Duration },
    /// A rolling update's batch: `canary` new pods and the rest old, held
    /// between `min` and `max` as a weight step is.
    Batch {
        canary: i32,
        min: Duration,
        max: Option<Duration>,
    },
}

/// How the two revisions share pods and traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// The canary's pods follow its weight (canary and A/B tests).
    Canary,
    /// Both revisions at full size until the old one retires.
    BlueGreen,
    /// Pods move from the old revision to the new one in batches, with at
    /// most `replicas + surge` pods and at least `replicas - unavailable`
    /// available at any time.
    Rolling { surge: i32, unavailable: i32 },
}

/// A validated strategy: what the engine runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepPlan {
    /// The strategy the steps came from, as `status.strategy` shows it.
    pub strategy: &'static str,
    pub shape: Shape,
    pub steps: Vec<Step>,
    /// Whether a traffic router sets weights; otherwise the canary's share
    /// is its share of the replicas.
    pub routed: bool,
    /// The policy for inconclusive analysis, when analysis gates the steps.
    pub analysis: Option<InconclusivePolicy>,
    /// Whether the canary is measured against stable at all: analysis that
    /// gates the steps, or a dry run that only watches.
    pub measured: bool,
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
            Some(Step::Switch { .. }) => 100,
            Some(Step::Batch { canary, .. }) => {
                let share = i64::from(*canary) * 100 / i64::from(self.replicas.max(1));
                i32::try_from(share).unwrap_or(100)
            }
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

    /// The share of traffic mirrored to the canary at step `index`: a pause
    /// keeps the mirror of the step before it.
    pub fn mirror_at(&self, index: usize) -> Option<i32> {
        if index >= self.steps.len() {
            return None;
        }
        match self.traffic_step_at(index) {
            Some(Step::Mirror { percent, .. }) => Some(*percent),
            _ => None,
        }
    }

    /// The last step at or before `index` that sets traffic.
    fn traffic_step_at(&self, index: usize) -> Option<&Step> {
        self.steps
            .get(..=index)?
            .iter()
            .rev()
            .find(|s| !matches!(s, Step::Pause { .. }))
    }

    /// Canary pods for a weight. With a router the stable keeps all its
    /// replicas (so an abort is one route write) and the canary gets its
    /// share rounded up; at least one pod, so analysis has something to see.
    /// Blue/green runs the canary at full size from the start.
    pub fn canary_replicas(&self, weight: i32) -> i32 {
        if self.shape == Shape::BlueGreen {
            return self.replicas;
        }
        let share = i64::from(self.replicas.max(0)) * i64::from(weight.clamp(0, 100));
        let pods = i32::try_from((share + 99) / 100).unwrap_or(self.replicas);
        pods.max(1)
    }

    /// Stable pods while the canary runs at `weight`.
    pub fn stable_replicas(&self, weight: i32) -> i32 {
        if self.routed || self.shape == Shape::BlueGreen {
            self.replicas
        } else {
            (self.replicas - self.canary_replicas(weight)).max(0)
        }
    }

    /// The new revision's pods at a rolling update's step `index`; all of
    /// them past the end.
    pub fn batch_at(&self, index: usize) -> i32 {
        if index >= self.steps.len() {
            return self.replicas;
        }
        match self.traffic_step_at(index) {
            Some(Step::Batch { canary, .. }) => *canary,
            _ => 0,
        }
    }

    /// Whether step `index` has the stable Service select the canary: a
    /// blue/green switch without a router.
    pub fn active_on_canary_at(&self, index: usize) -> bool {
        self.shape == Shape::BlueGreen && !self.routed && matches!(self.steps.get(index), Some(Step::Switch { .. }))
    }

    /// Whether the canary gets requests at step `index`, so that the
    /// analysis has something to measure: a share of the traffic, the
    /// requests matching an A/B rule, a mirrored copy, a rolling batch, or
    /// blue/green's preview (whatever the preview Service is sent, e.g. by
    /// a `rollout` webhook's load test).
    /// The canary revision the analysis measures now: one in flight (neither
    /// aborted nor finished) whose current step sends it requests. `None`
    /// when there is nothing to compare.
    pub fn measuring(&self, status: &RolloutStatus) -> Option<String> {
        if !self.measured {
            return None;
        }
        let canary = status.canary_revision.clone()?;
        let live = matches!(status.phase, Some(RolloutPhase::Progressing | RolloutPhase::Paused));
        let index = status
            .current_step_index
            .and_then(|i| usize::try_from(i).ok())
            .unwrap_or(0);
        let serves = self.canary_serves_at(index);
        (live && serves && status.abort.is_none() && status.stable_revision.is_some()).then_some(canary)
    }

    pub fn canary_serves_at(&self, index: usize) -> bool {
        if index >= self.steps.len() {
            return false;
        }
        match self.traffic_step_at(index) {
            Some(Step::Weight { weight, .. }) => *weight > 0 || self.shape == Shape::BlueGreen,
            Some(Step::Match { .. } | Step::Mirror { .. } | Step::Batch { .. } | Step::Switch { .. }) => true,
            Some(Step::Pause { .. }) | None => false,
        }
    }

    /// How long a revision that stopped receiving traffic keeps its pods.
    pub fn retire_delay(&self) -> Duration {
        match self.shape {
            Shape::BlueGreen => BLUE_GREEN_SETTLE.min(self.scale_down_delay),
            _ => self.scale_down_delay,
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
    #[error("set exactly one strategy (canary, abTest, blueGreen or rolling)")]
    NoStrategy,
    #[error("abTest.match[{index}] must name at least one header or a cookie")]
    EmptyMatch { index: usize },
    #[error("abTest.match[{index}] sets a cookie and a Cookie header; put the cookie in `cookie` only")]
    CookieHeaderTwice { index: usize },
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
    #[error("rolling.{field}: {message}")]
    RollingBound { field: &'static str, message: String },
    #[error("rolling: maxSurge and maxUnavailable must not both be zero")]
    RollingStuck,
    #[error("canary.mirror needs an Istio VirtualService in canary.trafficRouting")]
    MirrorNeedsIstio,
    #[error("canary.mirror.percent {percent} is not between 1 and 100")]
    MirrorPercent { percent: i32 },
    #[error("webhooks: the name {name:?} is used twice")]
    WebhookNameTaken { name: String },
    #[error("webhooks[{index}].url must be an absolute http:// or https:// URL")]
    WebhookUrl { index: usize },
    #[error("webhooks[{index}].timeout must be at most {}s", MAX_WEBHOOK_TIMEOUT.as_secs())]
    WebhookTimeout { index: usize },
    #[error("replicas must be at most {MAX_REPLICAS}")]
    TooManyReplicas,
    #[error("service.name {name:?} must be a DNS-1035 label of at most {MAX_SERVICE_NAME} characters")]
    ServiceName { name: String },
    #[error("{field} has more than {max} entries")]
    TooMany { field: &'static str, max: usize },
}

impl SpecError {
    /// A short snake_case label for metrics and Event reasons.
    pub fn metric_label(&self) -> &'static str {
        match self {
            SpecError::PodTemplateSource => "pod_template_source",
            SpecError::NegativeReplicas => "negative_replicas",
            SpecError::NoStrategy => "no_strategy",
            SpecError::EmptyMatch { .. } => "empty_match",
            SpecError::CookieHeaderTwice { .. } => "cookie_header_twice",
            SpecError::StepCount => "step_count",
            SpecError::StepKind { .. } => "step_kind",
            SpecError::HoldWithoutWeight { .. } => "hold_without_weight",
            SpecError::WeightRange { .. } => "weight_range",
            SpecError::WeightDecreases { .. } => "weight_decreases",
            SpecError::HoldOrder { .. } => "hold_order",
            SpecError::Duration { .. } => "duration",
            SpecError::RouterCount => "router_count",
            SpecError::NoAnalysisTemplates => "no_analysis_templates",
            SpecError::RollingBound { .. } => "rolling_bound",
            SpecError::RollingStuck => "rolling_stuck",
            SpecError::MirrorNeedsIstio => "mirror_needs_istio",
            SpecError::MirrorPercent { .. } => "mirror_percent",
            SpecError::WebhookNameTaken { .. } => "webhook_name_taken",
            SpecError::WebhookUrl { .. } => "webhook_url",
            SpecError::WebhookTimeout { .. } => "webhook_timeout",
            SpecError::TooManyReplicas => "too_many_replicas",
            SpecError::ServiceName { .. } => "service_name",
            SpecError::TooMany { .. } => "too_many",
        }
    }
}

/// The canary revision a Rollout's analysis measures now (see
/// [`StepPlan::measuring`]); `None` for a spec that does not expand.
pub fn measured_canary(spec: &RolloutSpec, status: &RolloutStatus) -> Option<String> {
    expand(spec).ok()?.measuring(status)
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
    // The schema says the same; the engine does not rely on it (an older
    // CRD, or a status written by hand, must not make it allocate a batch
    // per pod of fifty million).
    if spec.replicas > MAX_REPLICAS {
        errors.push(SpecError::TooManyReplicas);
        return Err(errors);
    }
    if !is_service_name(&spec.service.name) {
        errors.push(SpecError::ServiceName {
            name: spec.service.name.chars().take(80).collect(),
        });
    }
    let counts = [
        ("webhooks", spec.webhooks.len(), MAX_WEBHOOKS),
        (
            "analysis.templates",
            spec.analysis.as_ref().map_or(0, |a| a.templates.len()),
            MAX_ANALYSIS_TEMPLATES,
        ),
        (
            "analysis.args",
            spec.analysis.as_ref().map_or(0, |a| a.args.len()),
            MAX_ANALYSIS_ARGS,
        ),
    ];
    for (field, count, max) in counts {
        if count > max {
            errors.push(SpecError::TooMany { field, max });
        }
    }
    if spec.analysis.as_ref().is_some_and(|a| a.templates.is_empty()) {
        errors.push(SpecError::NoAnalysisTemplates);
    }
    check_webhooks(spec, &mut errors);
    // A dry run measures and shows, and the steps go on as without analysis.
    let analysis = spec.analysis.as_ref().filter(|a| !a.dry_run).map(|a| a.on_inconclusive);
    let measured = spec.analysis.is_some();
    let strategy = &spec.strategy;
    let chosen = [
        strategy.canary.is_some(),
        strategy.ab_test.is_some(),
        strategy.blue_green.is_some(),
        strategy.rolling.is_some(),
    ];
    if chosen.iter().filter(|c| **c).count() != 1 {
        errors.push(SpecError::NoStrategy);
        return Err(errors);
    }
    let (strategy, shape, steps, routing, delay, hash) = if let Some(canary) = spec.canary() {
        (
            "canary",
            Shape::Canary,
            canary_steps(canary, &mut errors),
            canary.traffic_routing.as_ref(),
            (canary.scale_down_delay.as_ref(), "canary.scaleDownDelay"),
            canary_hash(canary),
        )
    } else if let Some(ab) = spec.ab_test() {
        (
            "abTest",
            Shape::Canary,
            ab_test_steps(ab, analysis.is_some(), &mut errors),
            Some(&ab.traffic_routing),
            (ab.scale_down_delay.as_ref(), "abTest.scaleDownDelay"),
            revision_of_value(&json!({"match": ab.matches, "duration": ab.duration})),
        )
    } else if let Some(bg) = spec.blue_green() {
        (
            "blueGreen",
            Shape::BlueGreen,
            blue_green_steps(bg, analysis.is_some(), &mut errors),
            bg.traffic_routing.as_ref(),
            (bg.scale_down_delay.as_ref(), "blueGreen.scaleDownDelay"),
            revision_of_value(&serde_json::to_value(bg).unwrap_or_default()),
        )
    } else {
        let rolling = spec.rolling().cloned().unwrap_or_default();
        let (surge, unavailable) = rolling_bounds(&rolling, spec.replicas, &mut errors);
        (
            "rolling",
            Shape::Rolling { surge, unavailable },
            rolling_steps(&rolling, spec.replicas, surge.max(unavailable), &mut errors),
            None,
            (None, "rolling"),
            revision_of_value(&serde_json::to_value(&rolling).unwrap_or_default()),
        )
    };
    let routed = routing.is_some_and(|r| one_router(r, &mut errors));
    let scale_down_delay = optional_duration(delay.0, delay.1, &mut errors).unwrap_or(DEFAULT_SCALE_DOWN_DELAY);
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(StepPlan {
        strategy,
        shape,
        steps,
        routed,
        analysis,
        measured,
        scale_down_delay,
        replicas: spec.replicas,
        hash,
    })
}

fn check_webhooks(spec: &RolloutSpec, errors: &mut Vec<SpecError>) {
    let mut names = std::collections::BTreeSet::new();
    for (index, hook) in spec.webhooks.iter().enumerate() {
        if !names.insert(hook.name.as_str()) {
            errors.push(SpecError::WebhookNameTaken {
                name: hook.name.clone(),
            });
        }
        let url = hook.url.as_str();
        let absolute = ["http://", "https://"]
            .iter()
            .any(|scheme| url.strip_prefix(scheme).is_some_and(|rest| !rest.is_empty()));
        if !absolute {
            errors.push(SpecError::WebhookUrl { index });
        }
        let timeout = optional_duration(hook.timeout.as_ref(), &format!("webhooks[{index}].timeout"), errors);
        if timeout.is_some_and(|t| t > MAX_WEBHOOK_TIMEOUT) {
            errors.push(SpecError::WebhookTimeout { index });
        }
    }
}

/// A DNS-1035 label short enough for `-stable` and `-canary` to follow it.
fn is_service_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    name.len() <= MAX_SERVICE_NAME
        && first.is_ascii_lowercase()
        && (last.is_ascii_lowercase() || last.is_ascii_digit())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

/// Identifies a canary's stages. Without a mirror it is the hash of the
/// steps alone, as it always was, so rollouts in flight keep their place.
fn canary_hash(canary: &CanaryStrategy) -> String {
    match &canary.mirror {
        None => revision_of_value(&serde_json::to_value(&canary.steps).unwrap_or_default()),
        Some(mirror) => revision_of_value(&json!({"steps": canary.steps, "mirror": mirror})),
    }
}

/// Whether `routing` names exactly one router; records the error if not.
fn one_router(routing: &TrafficRouting, errors: &mut Vec<SpecError>) -> bool {
    if routing.routes().count() != 1 {
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
        if m.headers.is_empty() && m.cookie.is_none() {
            errors.push(SpecError::EmptyMatch { index });
        }
        if m.cookie.is_some() && m.headers.iter().any(|h| h.name.eq_ignore_ascii_case(COOKIE_HEADER)) {
            errors.push(SpecError::CookieHeaderTwice { index });
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
            min: first_data_grace(max),
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

/// Blue/green is a preview at weight 0 (green at full size, no live
/// traffic), an optional pause for `siskin promote`, and the switch, held
/// for the rollback window. The preview holds like an A/B test does: with
/// analysis until a conclusion or `previewDuration`, without it for
/// `previewDuration`.
fn blue_green_steps(bg: &BlueGreenStrategy, analysed: bool, errors: &mut Vec<SpecError>) -> Vec<Step> {
    let preview = optional_duration(bg.preview_duration.as_ref(), "blueGreen.previewDuration", errors);
    let (min, max) = match (analysed, preview) {
        (true, max) => (first_data_grace(max), max),
        (false, Some(d)) => (d, Some(d)),
        (false, None) => (Duration::ZERO, Some(Duration::ZERO)),
    };
    let window = optional_duration(bg.scale_down_delay.as_ref(), "blueGreen.scaleDownDelay", errors)
        .unwrap_or(DEFAULT_SCALE_DOWN_DELAY);
    let mut steps = vec![Step::Weight { weight: 0, min, max }];
    if bg.auto_promote == Some(false) {
        steps.push(Step::Pause { duration: None });
    }
    steps.push(Step::Switch { window });
    steps
}

fn first_data_grace(max: Option<Duration>) -> Duration {
    max.map_or(FIRST_DATA_GRACE, |max| max.min(FIRST_DATA_GRACE))
}

/// `maxSurge` and `maxUnavailable` in pods, rounded as a Deployment rounds
/// them: surge up, unavailable down.
fn rolling_bounds(rolling: &RollingStrategy, replicas: i32, errors: &mut Vec<SpecError>) -> (i32, i32) {
    let mut pods =
        |value: Option<&IntOrString>, default: IntOrString, field: &'static str, round_up: bool| match resolve_pods(
            value.unwrap_or(&default),
            replicas,
            round_up,
        ) {
            Ok(pods) => pods,
            Err(message) => {
                errors.push(SpecError::RollingBound { field, message });
                0
            }
        };
    let surge = pods(
        rolling.max_surge.as_ref(),
        IntOrString::String("25%".into()),
        "maxSurge",
        true,
    );
    let unavailable = pods(
        rolling.max_unavailable.as_ref(),
        IntOrString::Int(0),
        "maxUnavailable",
        false,
    );
    if surge == 0 && unavailable == 0 && replicas > 0 {
        errors.push(SpecError::RollingStuck);
    }
    (surge, unavailable)
}

fn resolve_pods(value: &IntOrString, replicas: i32, round_up: bool) -> Result<i32, String> {
    match value {
        IntOrString::Int(n) if *n >= 0 => Ok(*n),
        IntOrString::Int(n) => Err(format!("{n} is negative")),
        IntOrString::String(text) => {
            let percent = text
                .strip_suffix('%')
                .and_then(|p| p.parse::<i64>().ok())
                .filter(|p| (0..=100).contains(p))
                .ok_or_else(|| format!("{text:?} is neither a number nor a percentage from 0% to 100%"))?;
            let share = i64::from(replicas.max(0)) * percent;
            let pods = if round_up { (share + 99) / 100 } else { share / 100 };
            Ok(i32::try_from(pods).unwrap_or(replicas))
        }
    }
}

/// One step per batch of `batch` pods, each held by `batchHold`; the last
/// batch, where the old revision has no pods left, is the promotion.
fn rolling_steps(rolling: &RollingStrategy, replicas: i32, batch: i32, errors: &mut Vec<SpecError>) -> Vec<Step> {
    let hold = rolling.batch_hold.clone().unwrap_or_default();
    let (min, max) = hold_bounds(&hold, "rolling.batchHold", errors);
    if batch <= 0 {
        return Vec::new();
    }
    (1..)
        .map(|k| k * batch)
        .take_while(|canary| *canary < replicas)
        .map(|canary| Step::Batch { canary, min, max })
        .collect()
}

fn hold_bounds(hold: &Hold, field: &str, errors: &mut Vec<SpecError>) -> (Duration, Option<Duration>) {
    let min = optional_duration(hold.min.as_ref(), &format!("{field}.min"), errors);
    let max = optional_duration(hold.max.as_ref(), &format!("{field}.max"), errors);
    (min.unwrap_or(Duration::ZERO), max)
}

fn canary_steps(canary: &CanaryStrategy, errors: &mut Vec<SpecError>) -> Vec<Step> {
    if canary.steps.is_empty() || canary.steps.len() > MAX_STEPS {
        errors.push(SpecError::StepCount);
    }
    let mut previous = 0;
    let mut steps = Vec::with_capacity(canary.steps.len() + 1);
    if let Some(mirror) = &canary.mirror {
        steps.push(mirror_step(canary, mirror, errors));
    }
    for (index, step) in canary.steps.iter().enumerate() {
        if let Some(step) = one_step(index, step, &mut previous, errors) {
            steps.push(step);
        }
    }
    steps
}

fn mirror_step(canary: &CanaryStrategy, mirror: &MirrorStage, errors: &mut Vec<SpecError>) -> Step {
    let mirrors = canary
        .traffic_routing
        .as_ref()
        .and_then(TrafficRouting::route)
        .is_some_and(|r| r.kind().mirrors());
    if !mirrors {
        errors.push(SpecError::MirrorNeedsIstio);
    }
    let percent = mirror.percent.unwrap_or(100);
    if !(1..=100).contains(&percent) {
        errors.push(SpecError::MirrorPercent { percent });
    }
    let (min, max) = hold_bounds(&mirror.hold.clone().unwrap_or_default(), "canary.mirror.hold", errors);
    Step::Mirror { percent, min, max }
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
