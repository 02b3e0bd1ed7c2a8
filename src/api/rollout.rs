//! The `Rollout` custom resource (`siskin.io/v1alpha1`): what users write.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Duration;
use super::status::RolloutStatus;

/// How many steps a canary may have. A bound keeps the CEL rules on the list
/// within the API server's cost budget.
pub const MAX_STEPS: usize = 64;

/// The most replicas a Rollout may ask for. Every bound below keeps what
/// one tenant can make the controller hold, compute or call small, since
/// one controller serves every Rollout in the cluster.
pub const MAX_REPLICAS: i32 = 10_000;
/// The longest Rollout name: `<name>-<revision>` names its Deployments and
/// the name is a label value, both limited to 63 characters.
pub const MAX_ROLLOUT_NAME: usize = 52;
/// The longest Service name: `<name>-stable` and `<name>-canary` are
/// Service names, limited to 63 characters.
pub const MAX_SERVICE_NAME: usize = 56;
/// Analysis templates one Rollout may reference, and arguments it may pass.
pub const MAX_ANALYSIS_TEMPLATES: usize = 8;
pub const MAX_ANALYSIS_ARGS: usize = 32;
/// Webhooks one Rollout may have.
pub const MAX_WEBHOOKS: usize = 16;

/// The rollout of one workload: which pod template, how many replicas, which
/// Service fronts it, and the strategy that moves traffic to a new revision.
// Printer columns repeat `type_ = "string"`, which clippy mistakes for a
// duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "siskin.io",
    version = "v1alpha1",
    kind = "Rollout",
    namespaced,
    // Argo Rollouts' kinds take `ro`, `at` and `cat`: clusters may run both.
    shortname = "sro",
    category = "siskin",
    status = "RolloutStatus",
    // A HorizontalPodAutoscaler scales a Rollout as it scales a Deployment.
    // The selector selects every revision's pods, so the autoscaler averages
    // its metrics over stable and canary alike.
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    derive = "PartialEq",
    printcolumn(name = "Strategy", type_ = "string", json_path = ".status.strategy"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Step", type_ = "integer", json_path = ".status.currentStepIndex"),
    printcolumn(name = "Weight", type_ = "integer", json_path = ".status.canaryWeight"),
    printcolumn(name = "Verdict", type_ = "string", json_path = ".status.verdict"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[kube(validation = Rule::new("size(self.metadata.name) <= 52")
    .message("a Rollout name has at most 52 characters: its Deployments are named <rollout>-<revision>"))]
#[x_kube(validation = Rule::new("has(self.template) != has(self.workloadRef)")
    .message("set exactly one of template or workloadRef"))]
#[serde(rename_all = "camelCase")]
pub struct RolloutSpec {
    /// An existing Deployment whose pod template Siskin rolls out. Users keep
    /// editing it in Git; Siskin keeps it scaled to zero and runs the pods in
    /// Deployments of its own, one per revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_ref: Option<WorkloadRef>,

    /// The pod template to roll out, when there is no `workloadRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::schema::pod_template")]
    pub template: Option<PodTemplateSpec>,

    /// Pods of the stable revision once a rollout completes.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0, max = 10_000))]
    pub replicas: i32,

    /// The Service users call. Siskin manages `<name>-stable` and
    /// `<name>-canary` beside it.
    pub service: ServiceRef,

    /// How a new revision reaches all users.
    pub strategy: RolloutStrategy,

    /// Continuous canary-versus-stable analysis that gates the steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<RolloutAnalysis>,

    /// HTTP calls at the moments of a rollout: gates that must pass and
    /// notifications.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub webhooks: Vec<super::Webhook>,
}

fn default_replicas() -> i32 {
    1
}

/// A Deployment whose template Siskin takes over.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[x_kube(validation = Rule::new("self.kind == 'Deployment' && self.apiVersion == 'apps/v1'")
    .message("workloadRef must name an apps/v1 Deployment"))]
#[serde(rename_all = "camelCase")]
pub struct WorkloadRef {
    pub api_version: String,
    pub kind: String,
    pub name: String,
}

/// The Service in front of the workload.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRef {
    /// A DNS-1035 label of at most 56 characters, so that `<name>-stable`
    /// and `<name>-canary` are valid Service names.
    #[schemars(length(min = 1, max = 56), regex(pattern = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"))]
    pub name: String,
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// The container port; defaults to `port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<IntOrString>,
}

impl ServiceRef {
    /// The Service whose selector follows the stable revision.
    pub fn stable_name(&self) -> String {
        format!("{}-stable", self.name)
    }

    /// The Service whose selector follows the canary revision.
    pub fn canary_name(&self) -> String {
        format!("{}-canary", self.name)
    }
}

/// Exactly one strategy. A struct of optional fields rather than an enum:
/// schemars enums with data make non-structural CRD schemas.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[x_kube(validation = Rule::new(
    "[has(self.canary), has(self.abTest), has(self.blueGreen), has(self.rolling)].filter(x, x).size() == 1"
).message("set exactly one strategy"))]
#[serde(rename_all = "camelCase")]
pub struct RolloutStrategy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryStrategy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ab_test: Option<AbTestStrategy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blue_green: Option<BlueGreenStrategy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling: Option<RollingStrategy>,
}

/// Blue/green: the new revision ("green") runs at full size behind the
/// canary Service, the preview, with no live traffic, while the stable
/// Service, the active one, keeps serving the old ("blue"). Then all
/// traffic switches at once: weights 0 → 100 on the route, or, without a
/// router, the stable Service's selector. Blue stays at full size for
/// `scaleDownDelay`, and an abort inside that window is one write back.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct BlueGreenStrategy {
    /// The route whose weights switch. Without it, users call the stable
    /// Service and the switch is its selector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_routing: Option<TrafficRouting>,

    /// Switch once the preview has passed (its duration, the analysis and
    /// any confirmPromotion webhook). `false` waits for `siskin promote`.
    /// Defaults to true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_promote: Option<bool>,

    /// How long green is previewed before the switch. With analysis this is
    /// the longest the preview waits for a conclusion, and the preview lasts
    /// at least a minute (or this, if shorter) so that the first preview
    /// requests reach the metrics. Defaults to none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_duration: Option<Duration>,

    /// How long blue stays at full size after the switch: the window in
    /// which an abort is one write. Defaults to 30s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down_delay: Option<Duration>,
}

/// A rolling update without a router: the new revision's pods replace the
/// old ones in batches, as a Deployment would, but each batch is gated by
/// readiness and, with analysis, by the analysis. An abort brings the old
/// revision back to full size under the same bounds.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RollingStrategy {
    /// Pods above `replicas` allowed during the update: a number or a
    /// percentage of `replicas`, rounded up. Defaults to 25%.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_surge: Option<IntOrString>,

    /// Available pods below `replicas` allowed during the update: a number
    /// or a percentage of `replicas`, rounded down. Defaults to 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,

    /// How long each batch is held once its pods are available. With
    /// analysis, the analysis runs throughout and a regression aborts at
    /// any batch; only the last batch before the promotion waits for a
    /// non-inferior verdict, up to `max`, where `onInconclusive` applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_hold: Option<Hold>,
}

/// An A/B test: only requests matching `match` reach the canary, through one
/// rule Siskin adds to the route and removes again; everything else stays on
/// stable. It lasts `duration`, or until the analysis concludes: non-inferior
/// promotes (after at least a minute, or `duration` if shorter, for the
/// first matched requests to reach the metrics), a regression aborts.
/// Without `duration` or analysis it waits for `siskin promote`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AbTestStrategy {
    /// The route that gets the matching rule: an HTTPRoute or a VirtualService.
    pub traffic_routing: TrafficRouting,

    /// Requests matching any entry go to the canary.
    #[serde(rename = "match")]
    #[schemars(length(min = 1, max = 8))]
    pub matches: Vec<RequestMatch>,

    /// How long the test runs when the analysis does not conclude first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<Duration>,

    /// As for `canary.scaleDownDelay`. Defaults to 30s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down_delay: Option<Duration>,
}

/// Requests carrying every one of these headers (exact values) and, if set,
/// the cookie. At least one of the two.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RequestMatch {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub headers: Vec<HeaderMatch>,

    /// A cookie the request must carry with exactly this value. One per
    /// match: list more matches to accept any of several cookies. Routers
    /// match it as a regular expression on the `Cookie` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookie: Option<CookieMatch>,
}

impl RequestMatch {
    /// Whether two lists of matches select the same requests. A match's
    /// headers are a set: a route may store them in another order (Istio
    /// keeps them in a map).
    pub fn same(a: Option<&[RequestMatch]>, b: Option<&[RequestMatch]>) -> bool {
        type Canonical = (Vec<(String, String)>, Option<CookieMatch>);
        let canonical = |matches: &[RequestMatch]| -> Vec<Canonical> {
            matches
                .iter()
                .map(|m| {
                    let mut headers: Vec<(String, String)> =
                        m.headers.iter().map(|h| (h.name.clone(), h.value.clone())).collect();
                    headers.sort();
                    (headers, m.cookie.clone())
                })
                .collect()
        };
        match (a, b) {
            (Some(a), Some(b)) => canonical(a) == canonical(b),
            (a, b) => a.is_none() && b.is_none(),
        }
    }
}

/// One HTTP header and its exact value.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct HeaderMatch {
    #[schemars(length(min = 1, max = 256))]
    pub name: String,
    #[schemars(length(max = 4096))]
    pub value: String,
}

/// One cookie and its exact value.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct CookieMatch {
    #[schemars(length(min = 1, max = 256))]
    pub name: String,
    #[schemars(length(max = 4096))]
    pub value: String,
}

/// The header a cookie travels in.
pub const COOKIE_HEADER: &str = "cookie";
/// Before the cookie: the start of the header or an earlier cookie and its
/// `; ` separator.
const COOKIE_BEFORE: &str = r"^(.*;\s*)?";
/// After it: the end of the header or the next cookie.
const COOKIE_AFTER: &str = r"(;.*)?$";

impl CookieMatch {
    /// The regular expression on the `Cookie` header that holds exactly
    /// when the request carries this cookie with this value. Anchored at
    /// both ends, so it means the same to routers that match the whole
    /// value (Envoy, so Istio) and to those that search in it (Traefik).
    pub fn header_pattern(&self) -> String {
        format!(
            "{COOKIE_BEFORE}{}={}{COOKIE_AFTER}",
            regex_escape(&self.name),
            regex_escape(&self.value)
        )
    }

    /// Reads back a pattern written by `header_pattern`; `None` for any
    /// other expression.
    pub fn from_header_pattern(pattern: &str) -> Option<CookieMatch> {
        let body = pattern.strip_prefix(COOKIE_BEFORE)?.strip_suffix(COOKIE_AFTER)?;
        let text = regex_unescape(body)?;
        // Cookie names never contain '='; values may.
        let (name, value) = text.split_once('=')?;
        let cookie = CookieMatch {
            name: name.to_string(),
            value: value.to_string(),
        };
        (cookie.header_pattern() == pattern).then_some(cookie)
    }
}

const REGEX_SPECIAL: &str = r"\.+*?()|[]{}^$";

fn regex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if REGEX_SPECIAL.contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn regex_unescape(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            c if REGEX_SPECIAL.contains(c) => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

/// Weight steps on a traffic router, or a replica-ratio canary without one.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStrategy {
    /// Where weights are written. Without it the canary's share is its share
    /// of the replicas behind the one Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_routing: Option<TrafficRouting>,

    /// The steps, in order. After the last one the canary is promoted.
    #[schemars(length(min = 1, max = 64))]
    #[x_kube(validation = Rule::new("self.filter(s, has(s.weight)).map(s, s.weight).isSorted()")
        .message("step weights must not decrease"))]
    pub steps: Vec<CanaryStep>,

    /// How long the previous revision stays scaled after it stops receiving
    /// traffic, so a rollback is one write and in-flight requests finish.
    /// Defaults to 30s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down_delay: Option<Duration>,

    /// A first stage before the steps: a copy of live traffic goes to the
    /// canary (its answers are dropped) while all users stay on stable.
    /// Istio VirtualServices only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<MirrorStage>,
}

/// Traffic mirroring as the first stage of a canary.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct MirrorStage {
    /// The share of requests copied to the canary, in percent. Defaults to
    /// 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub percent: Option<i32>,
    /// How long the stage lasts, gated by the analysis as a weight step is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<Hold>,
}

/// Exactly one traffic router.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[x_kube(validation = Rule::new("[has(self.gatewayAPI), has(self.istio)].filter(x, x).size() == 1")
    .message("set exactly one of gatewayAPI or istio"))]
pub struct TrafficRouting {
    #[serde(default, rename = "gatewayAPI", skip_serializing_if = "Option::is_none")]
    pub gateway_api: Option<GatewayApiRouting>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub istio: Option<IstioRouting>,
}

impl TrafficRouting {
    /// The routes the spec names, one per router configured: a valid spec
    /// names exactly one.
    pub fn routes(&self) -> impl Iterator<Item = RouteRef<'_>> {
        let gateway_api = self.gateway_api.as_ref().map(RouteRef::HttpRoute);
        let istio = self.istio.as_ref().map(RouteRef::VirtualService);
        [gateway_api, istio].into_iter().flatten()
    }

    /// The route traffic shifts on: `None` unless exactly one router is
    /// set (the CRD's rule and the engine's spec check refuse the rest).
    pub fn route(&self) -> Option<RouteRef<'_>> {
        let mut routes = self.routes();
        let route = routes.next();
        routes.next().is_none().then_some(route).flatten()
    }
}

/// The route kinds a Rollout can name: one per traffic router.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteKind {
    HttpRoute,
    VirtualService,
}

impl RouteKind {
    /// Every kind, for watching each one the cluster serves.
    pub const ALL: [RouteKind; 2] = [RouteKind::HttpRoute, RouteKind::VirtualService];

    /// The kind as users write it.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteKind::HttpRoute => "HTTPRoute",
            RouteKind::VirtualService => "VirtualService",
        }
    }

    /// Whether the data plane can mirror a share of traffic to the canary.
    pub fn mirrors(self) -> bool {
        matches!(self, RouteKind::VirtualService)
    }
}

/// The route a Rollout names, with its router's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteRef<'a> {
    HttpRoute(&'a GatewayApiRouting),
    VirtualService(&'a IstioRouting),
}

impl<'a> RouteRef<'a> {
    pub fn kind(self) -> RouteKind {
        match self {
            RouteRef::HttpRoute(_) => RouteKind::HttpRoute,
            RouteRef::VirtualService(_) => RouteKind::VirtualService,
        }
    }

    pub fn name(self) -> &'a str {
        match self {
            RouteRef::HttpRoute(g) => &g.http_route.name,
            RouteRef::VirtualService(i) => &i.virtual_service.name,
        }
    }
}

/// `HTTPRoute shop`, as messages name it.
impl std::fmt::Display for RouteRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind().as_str(), self.name())
    }
}

/// Weights on the backendRefs of a Gateway API HTTPRoute.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct GatewayApiRouting {
    pub http_route: LocalObjectName,
}

/// Weights on named HTTP routes of an Istio VirtualService.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct IstioRouting {
    pub virtual_service: VirtualServiceRef,
}

/// A VirtualService and the names of its `http` routes that Siskin may weight.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct VirtualServiceRef {
    pub name: String,
    /// Names of `spec.http[].name`. Empty: every HTTP route that sends traffic
    /// to both the stable and the canary Service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<String>,
}

/// An object in the Rollout's namespace.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct LocalObjectName {
    pub name: String,
}

/// One step: either a traffic weight held for a while, or a pause.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[x_kube(validation = Rule::new("has(self.weight) != has(self.pause)")
    .message("a step sets exactly one of weight or pause"))]
#[x_kube(validation = Rule::new("!has(self.hold) || has(self.weight)")
    .message("hold belongs to a weight step"))]
pub struct CanaryStep {
    /// The canary's share of traffic, in percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub weight: Option<i32>,
    /// How long the weight is held before the step may advance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<Hold>,
    /// Wait at the previous weight: for `duration`, or until promoted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<PauseStep>,
}

impl CanaryStep {
    /// A weight step with an optional hold.
    pub fn weight(weight: i32, hold: Option<Hold>) -> Self {
        CanaryStep {
            weight: Some(weight),
            hold,
            pause: None,
        }
    }

    /// A pause step; `None` waits for `siskin promote`.
    pub fn pause(duration: Option<Duration>) -> Self {
        CanaryStep {
            weight: None,
            hold: None,
            pause: Some(PauseStep { duration }),
        }
    }
}

/// The hold of a weight step. The step advances after `min` once analysis
/// (if any) says the canary is non-inferior; at `max` without a conclusion
/// the analysis' `onInconclusive` policy applies. Without `max` the step
/// waits for a conclusion.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[x_kube(validation = Rule::new("!has(self.min) || !has(self.max) || duration(self.min) <= duration(self.max)")
    .message("hold.min must not exceed hold.max"))]
pub struct Hold {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<Duration>,
}

/// A pause: timed, or indefinite until promoted.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct PauseStep {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<Duration>,
}

/// Analysis templates evaluated continuously, canary against stable.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RolloutAnalysis {
    #[schemars(length(min = 1, max = 8))]
    pub templates: Vec<AnalysisTemplateRef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub args: Vec<AnalysisArg>,
    /// What to do when the analysis cannot conclude: no data, too few
    /// samples, or no conclusion by a step's maximum hold. Never promote.
    #[serde(default)]
    pub on_inconclusive: InconclusivePolicy,
    /// Measure and show everything, act on nothing: the steps advance on
    /// their holds as if there were no analysis, and status shows what the
    /// analysis would have done. For watching a judge before trusting it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    /// Metrics (by name) that are measured and shown but never act; the
    /// others still gate the steps.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub dry_run_metrics: Vec<String>,
}

/// An `AnalysisTemplate` (or, with `clusterScope`, a `ClusterAnalysisTemplate`).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisTemplateRef {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cluster_scope: bool,
}

/// A value for one of the templates' arguments.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct AnalysisArg {
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    #[schemars(length(max = 256))]
    pub value: String,
}

/// What an inconclusive analysis does to the rollout.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub enum InconclusivePolicy {
    /// Pause and wait for a human: `siskin resume`, `promote` or `abort`.
    #[default]
    Pause,
    /// Abort and return all traffic to stable.
    Abort,
}

impl RolloutSpec {
    /// The canary strategy, if that is the one chosen.
    pub fn canary(&self) -> Option<&CanaryStrategy> {
        self.strategy.canary.as_ref()
    }

    /// The A/B test strategy, if that is the one chosen.
    pub fn ab_test(&self) -> Option<&AbTestStrategy> {
        self.strategy.ab_test.as_ref()
    }

    /// The blue/green strategy, if that is the one chosen.
    pub fn blue_green(&self) -> Option<&BlueGreenStrategy> {
        self.strategy.blue_green.as_ref()
    }

    /// The rolling strategy, if that is the one chosen.
    pub fn rolling(&self) -> Option<&RollingStrategy> {
        self.strategy.rolling.as_ref()
    }

    /// The traffic router of whichever strategy is chosen, if it has one.
    pub fn traffic_routing(&self) -> Option<&TrafficRouting> {
        let strategy = &self.strategy;
        None.or_else(|| strategy.canary.as_ref()?.traffic_routing.as_ref())
            .or_else(|| strategy.ab_test.as_ref().map(|ab| &ab.traffic_routing))
            .or_else(|| strategy.blue_green.as_ref()?.traffic_routing.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cookie(name: &str, value: &str) -> CookieMatch {
        CookieMatch {
            name: name.into(),
            value: value.into(),
        }
    }

    #[test]
    fn a_cookie_pattern_holds_exactly_when_the_request_carries_that_cookie() {
        let pattern = regex::Regex::new(&cookie("canary", "always").header_pattern()).expect("a valid expression");
        for header in [
            "canary=always",
            "a=1; canary=always",
            "canary=always; b=2",
            "a=1;canary=always;b=2",
        ] {
            assert!(pattern.is_match(header), "{header:?} carries the cookie");
        }
        for header in [
            "canary=never",
            "xcanary=always",
            "canary=alwaysx",
            "a=canary=always",
            "",
        ] {
            assert!(!pattern.is_match(header), "{header:?} does not");
        }
    }

    #[test]
    fn cookie_values_are_matched_literally_and_read_back() {
        let odd = cookie("group", "a.b+(c)|d=e");
        let pattern = odd.header_pattern();
        assert!(
            regex::Regex::new(&pattern)
                .expect("valid")
                .is_match("x=1; group=a.b+(c)|d=e")
        );
        assert!(
            !regex::Regex::new(&pattern)
                .expect("valid")
                .is_match("group=aXb+(c)|d=e")
        );
        assert_eq!(CookieMatch::from_header_pattern(&pattern), Some(odd));
        assert_eq!(CookieMatch::from_header_pattern("^canary=.*$"), None, "not Siskin's");
    }

    #[test]
    fn traffic_routing_names_one_route_or_none() {
        let routing = |json: serde_json::Value| -> TrafficRouting { serde_json::from_value(json).expect("valid") };
        let gateway = routing(serde_json::json!({"gatewayAPI": {"httpRoute": {"name": "shop"}}}));
        let route = gateway.route();
        assert_eq!(route.map(RouteRef::kind), Some(RouteKind::HttpRoute));
        assert_eq!(route.map(|r| r.to_string()).as_deref(), Some("HTTPRoute shop"));
        let istio = routing(serde_json::json!({"istio": {"virtualService": {"name": "vs", "routes": ["primary"]}}}));
        let route = istio.route();
        assert_eq!(route.map(|r| r.to_string()).as_deref(), Some("VirtualService vs"));
        assert!(route.is_some_and(|r| r.kind().mirrors()));
        let both = TrafficRouting {
            gateway_api: gateway.gateway_api.clone(),
            istio: istio.istio.clone(),
        };
        assert_eq!(both.route(), None);
        assert_eq!(both.routes().count(), 2);
        assert_eq!(routing(serde_json::json!({})).route(), None);
    }
}
