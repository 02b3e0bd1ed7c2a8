//! Traffic routers: one trait, one file per implementation.
//!
//! A router never owns the user's route object. It reads it, and writes only
//! the weights of the two backends Siskin manages, with one JSON Patch whose
//! `test` operations make a concurrent edit (by a human, Argo CD or Flux)
//! fail loudly instead of being clobbered.
//!
//! This module is the registry. Adding a router is its spec field and a
//! `RouteKind` variant in `crate::api` (the CRD must name it), one new
//! file here implementing [`TrafficRouter`], and one arm in each of
//! [`router_for`] and [`watched_kind`] in `registry.rs`; everything else
//! (messages, spec checks, route watches) goes through
//! `TrafficRouting::route`.

pub mod gateway_api;
pub mod istio;
#[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
pub mod istio_types;
mod registry;

use futures::future::BoxFuture;
use json_patch::{PatchOperation, jsonptr::PointerBuf};
use kube::Client;

use crate::api::{COOKIE_HEADER, CookieMatch, HeaderMatch, RequestMatch, ServiceRef};
pub use crate::plan::{RouteState, TrafficSplit};
pub use registry::{router_for, watched_kind};

/// The field manager recorded on Siskin's route patches.
pub const FIELD_MANAGER: &str = "siskin";

/// A data plane whose weights Siskin can shift.
pub trait TrafficRouter: Send + Sync {
    /// The route as users name it, e.g. `HTTPRoute shop/product-service`.
    fn describe(&self) -> String;

    /// Reads the route: the stable/canary split, and whether the data plane
    /// accepted its current generation. A missing route or missing backends
    /// are states (the engine waits with a condition), not errors.
    fn observe(&self) -> BoxFuture<'_, Result<RouteState, RoutingError>>;

    /// Writes `split` in one request. [`RoutingError::Conflict`] means the
    /// route changed underneath; observe again and re-plan.
    fn set_weights(&self, split: TrafficSplit) -> BoxFuture<'_, Result<(), RoutingError>>;

    /// Mirrors `percent` of the traffic of the weighted rules to the canary
    /// (or stops, `None`) in one request. Routers without support refuse.
    fn set_mirror(&self, percent: Option<i32>) -> BoxFuture<'_, Result<(), RoutingError>> {
        unsupported(self.describe(), percent.is_some(), "traffic mirroring")
    }

    /// Adds (or replaces) the one rule Siskin owns on the route, sending
    /// requests with `matches` to the canary, or removes it (`None`), in
    /// one request. Routers without support refuse to add it.
    fn set_matches<'a>(&'a self, matches: Option<&'a [RequestMatch]>) -> BoxFuture<'a, Result<(), RoutingError>> {
        unsupported(self.describe(), matches.is_some(), "request matches (A/B tests)")
    }
}

/// The defaults for a part of the route a router cannot write: there is
/// nothing of Siskin's to take off, so removing it succeeds; adding it is
/// refused.
fn unsupported(route: String, adding: bool, what: &str) -> BoxFuture<'static, Result<(), RoutingError>> {
    let result = if adding {
        Err(RoutingError::Unsupported {
            route,
            what: what.to_string(),
        })
    } else {
        Ok(())
    };
    Box::pin(std::future::ready(result))
}

/// The name of the rule Siskin adds to a route for an A/B test's matches.
/// Named after the user's Service, like the stable and canary Services.
pub fn match_rule_name(service: &ServiceRef) -> String {
    format!("siskin-ab-{}", service.name)
}

/// The two Services whose weights Siskin manages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backends {
    pub stable: String,
    pub canary: String,
}

impl Backends {
    /// `<service>-stable` and `<service>-canary`.
    pub fn of(service: &ServiceRef) -> Self {
        Backends {
            stable: service.stable_name(),
            canary: service.canary_name(),
        }
    }

    /// The weight to write for the backend named `name`, if it is one of ours.
    fn weight_for(&self, name: &str, split: TrafficSplit) -> Option<i32> {
        if name == self.stable {
            Some(split.stable)
        } else if name == self.canary {
            Some(split.canary)
        } else {
            None
        }
    }

    /// The split that the weights of our backends, each with the name of
    /// the Service it sends to, add up to.
    fn split_of<'a>(&self, weights: impl IntoIterator<Item = (&'a str, i32)>) -> TrafficSplit {
        let mut split = TrafficSplit { stable: 0, canary: 0 };
        for (service, weight) in weights {
            if service == self.stable {
                split.stable += weight;
            } else {
                split.canary += weight;
            }
        }
        split
    }
}

/// One match of Siskin's match rule, read back from its header conditions
/// (name, exact value, regular expression): a regular expression on the
/// Cookie header is the cookie Siskin wrote, anything else an exact header.
fn read_match<'a>(conditions: impl IntoIterator<Item = (&'a str, &'a str, Option<&'a str>)>) -> RequestMatch {
    let mut read = RequestMatch {
        headers: vec![],
        cookie: None,
    };
    for (name, exact, regex) in conditions {
        let cookie = regex
            .filter(|_| name.eq_ignore_ascii_case(COOKIE_HEADER))
            .and_then(CookieMatch::from_header_pattern);
        match cookie {
            Some(cookie) => read.cookie = Some(cookie),
            None => read.headers.push(HeaderMatch {
                name: name.to_string(),
                value: exact.to_string(),
            }),
        }
    }
    read
}

/// Why a router could not read or write a route.
#[derive(Debug, thiserror::Error)]
pub enum RoutingError {
    #[error("{route} not found")]
    NotFound { route: String },
    #[error("{route}: {message}")]
    MissingBackend { route: String, message: String },
    #[error("{route} has no HTTP route named {name:?}")]
    UnknownRouteName { route: String, name: String },
    #[error("{route} changed since it was read; retrying on fresh data")]
    Conflict { route: String },
    #[error("{route}: {what} not supported yet")]
    Unsupported { route: String, what: String },
    #[error("reading or patching {route}: {source}")]
    Kube {
        route: String,
        #[source]
        source: Box<kube::Error>,
    },
}

impl RoutingError {
    /// A short snake_case label for metrics and Event reasons.
    pub fn metric_label(&self) -> &'static str {
        match self {
            RoutingError::NotFound { .. } => "route_not_found",
            RoutingError::MissingBackend { .. } => "missing_backend",
            RoutingError::UnknownRouteName { .. } => "unknown_route_name",
            RoutingError::Conflict { .. } => "route_conflict",
            RoutingError::Unsupported { .. } => "unsupported",
            RoutingError::Kube { .. } => "kube_api",
        }
    }

    /// What is wrong, without the route's name: for messages that name the
    /// route themselves (the engine's conditions do).
    pub fn detail(&self) -> String {
        match self {
            RoutingError::MissingBackend { message, .. } => message.clone(),
            RoutingError::UnknownRouteName { name, .. } => format!("no HTTP route named {name:?}"),
            other => other.to_string(),
        }
    }

    /// Sorts an API error: a patch that no longer applies to the route as
    /// it now is (a failed `test` operation, a path gone) and a
    /// resourceVersion clash mean "re-read, re-plan"; anything else, such as
    /// the route's validation refusing our weights, is reported as it is.
    fn from_kube(route: &str, source: kube::Error) -> Self {
        match &source {
            kube::Error::Api(status) if status.code == 409 || patch_did_not_apply(status) => RoutingError::Conflict {
                route: route.to_string(),
            },
            kube::Error::Api(status) if status.code == 404 => RoutingError::NotFound {
                route: route.to_string(),
            },
            _ => RoutingError::Kube {
                route: route.to_string(),
                source: Box::new(source),
            },
        }
    }
}

/// The API server answers a JSON Patch that cannot be applied with a bare
/// 422 (no causes; the patch library's "testing value … failed" is not
/// passed on), while a validation failure is a 422 listing its causes.
fn patch_did_not_apply(status: &kube::core::Status) -> bool {
    status.code == 422 && status.details.as_ref().is_none_or(|d| d.causes.is_empty())
}

/// One route object in the Rollout's namespace, as a router reads and
/// patches it: every read maps API errors the same way, and every write is
/// a guarded JSON Patch under Siskin's field manager.
struct RouteObject<K> {
    api: kube::Api<K>,
    /// `HTTPRoute shop/web`, for messages.
    described: String,
    name: String,
}

impl<K> RouteObject<K>
where
    K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    fn new(client: Client, namespace: &str, name: &str) -> Self {
        RouteObject {
            api: kube::Api::namespaced(client, namespace),
            described: format!("{} {namespace}/{name}", K::kind(&())),
            name: name.to_string(),
        }
    }

    /// The route, or `None` when it does not exist.
    async fn find(&self) -> Result<Option<K>, RoutingError> {
        self.api
            .get_opt(&self.name)
            .await
            .map_err(|e| RoutingError::from_kube(&self.described, e))
    }

    /// The route's state as `read` makes it out; a missing route is a
    /// state too, not an error.
    async fn observe(&self, read: impl FnOnce(&K) -> RouteState) -> Result<RouteState, RoutingError> {
        Ok(self.find().await?.as_ref().map_or(RouteState::NotFound, read))
    }

    /// The route to build a write on, read afresh: a reconcile held up
    /// between its look and its write (a paused process, a slow call) builds
    /// on the route as it is now. Its absence is an error.
    async fn get(&self) -> Result<K, RoutingError> {
        self.find().await?.ok_or_else(|| RoutingError::NotFound {
            route: self.described.clone(),
        })
    }

    /// Builds a write on the route (see [`Self::get`]) and sends it; `build`
    /// answers `None` when the route already is as wanted.
    async fn update(
        &self,
        build: impl FnOnce(&K) -> Result<Option<json_patch::Patch>, RoutingError>,
    ) -> Result<(), RoutingError> {
        match build(&self.get().await?)? {
            Some(patch) => self.patch(patch).await,
            None => Ok(()),
        }
    }

    /// Sends a guarded JSON Patch under Siskin's field manager.
    async fn patch(&self, patch: json_patch::Patch) -> Result<(), RoutingError> {
        let params = kube::api::PatchParams {
            field_manager: Some(FIELD_MANAGER.to_string()),
            ..kube::api::PatchParams::default()
        };
        self.api
            .patch(&self.name, &params, &kube::api::Patch::Json::<()>(patch))
            .await
            .map_err(|e| RoutingError::from_kube(&self.described, e))?;
        Ok(())
    }
}

/// A JSON Pointer from its tokens.
fn pointer(tokens: &[&str]) -> PointerBuf {
    PointerBuf::from_tokens(tokens.iter().copied())
}

/// Builds the patch operations for one backend: check it is still the
/// backend we read (and still has the weight we read), then set the weight.
/// `field` is the member holding the backend's identity (`name`, `host`).
fn guarded_weight_ops(
    prefix: &[String],
    field: (&str, &str),
    current: Option<i32>,
    weight: i32,
) -> Vec<PatchOperation> {
    let pointer =
        |last: &[&str]| PointerBuf::from_tokens(prefix.iter().map(String::as_str).chain(last.iter().copied()));
    let (identity_path, identity) = field;
    let identity_tokens: Vec<&str> = identity_path.split('/').collect();
    let mut ops = vec![PatchOperation::Test(json_patch::TestOperation {
        path: pointer(&identity_tokens),
        value: identity.into(),
    })];
    let weight_path = pointer(&["weight"]);
    match current {
        Some(current) => {
            ops.push(PatchOperation::Test(json_patch::TestOperation {
                path: weight_path.clone(),
                value: current.into(),
            }));
            ops.push(PatchOperation::Replace(json_patch::ReplaceOperation {
                path: weight_path,
                value: weight.into(),
            }));
        }
        None => ops.push(PatchOperation::Add(json_patch::AddOperation {
            path: weight_path,
            value: weight.into(),
        })),
    }
    ops
}

/// Sums per-rule weights into one split; `None` when rules disagree.
fn agreed_split(splits: impl IntoIterator<Item = TrafficSplit>) -> Option<TrafficSplit> {
    let mut splits = splits.into_iter();
    let first = splits.next()?;
    let share = first.canary_share();
    splits.all(|s| s.canary_share() == share).then_some(first)
}

/// What the tests of every router share: our two Services, an A/B test's
/// request matches, and the splits a canary's steps write.
#[cfg(test)]
pub(crate) mod fixtures {
    use serde_json::{Value, json};

    use super::{Backends, RouteState, TrafficSplit};
    use crate::api::{CookieMatch, HeaderMatch, RequestMatch};

    pub fn backends() -> Backends {
        Backends {
            stable: "shop-stable".into(),
            canary: "shop-canary".into(),
        }
    }

    /// Requests from beta testers: those with the header `x-beta: true`.
    pub fn beta_testers() -> Vec<RequestMatch> {
        vec![RequestMatch {
            cookie: None,
            headers: vec![HeaderMatch {
                name: "x-beta".into(),
                value: "true".into(),
            }],
        }]
    }

    /// The cookie `canary=always`.
    pub fn canary_cookie() -> CookieMatch {
        CookieMatch {
            name: "canary".into(),
            value: "always".into(),
        }
    }

    /// Each kind of step, with the stable/canary weights on the route
    /// before it and the split it writes.
    pub const STEP_SPLITS: [(&str, (i32, i32), TrafficSplit); 3] = [
        (
            "the first step sends ten percent",
            (100, 0),
            TrafficSplit { stable: 90, canary: 10 },
        ),
        (
            "the half step sends fifty-fifty",
            (90, 10),
            TrafficSplit { stable: 50, canary: 50 },
        ),
        (
            "promotion and abort write one hundred to zero",
            (50, 50),
            TrafficSplit::ALL_STABLE,
        ),
    ];

    /// An accepted route sending `stable`/`canary`, with no match rule or
    /// mirror of Siskin's on it.
    pub fn weighted_and_accepted(stable: i32, canary: i32) -> RouteState {
        RouteState::Present {
            split: Some(TrafficSplit { stable, canary }),
            accepted: true,
            matches: None,
            mirror: None,
        }
    }

    /// One JSON Patch from groups of its operations, in order.
    pub fn ops(parts: Vec<Vec<Value>>) -> Value {
        Value::Array(parts.into_iter().flatten().collect())
    }

    /// The operations that move one backend's weight `from` → `to`: a
    /// `test` of its identity (`field` of the backend at `at`) and of its
    /// weight, then the new weight.
    pub fn guarded(at: &str, field: &str, identity: &str, from: i32, to: i32) -> Vec<Value> {
        vec![
            json!({"op": "test", "path": format!("{at}/{field}"), "value": identity}),
            json!({"op": "test", "path": format!("{at}/weight"), "value": from}),
            json!({"op": "replace", "path": format!("{at}/weight"), "value": to}),
        ]
    }

    /// `before` with only the weights of the stable and canary backends
    /// (the first two of the list at the JSON Pointer `backends`) set to
    /// `split`.
    pub fn reweighted(mut before: Value, backends: &str, split: TrafficSplit) -> Value {
        let list = before.pointer_mut(backends).expect("the fixture has the backends");
        list[0]["weight"] = json!(split.stable);
        list[1]["weight"] = json!(split.canary);
        before
    }

    /// `value` after `patch`, as the API server would apply it.
    pub fn applied(value: &Value, patch: &json_patch::Patch) -> Value {
        let mut doc = value.clone();
        json_patch::patch(&mut doc, patch).expect("the patch applies to the object it was built from");
        doc
    }
}

#[cfg(test)]
mod tests {
    use kube::core::Status;
    use kube::core::response::{StatusCause, StatusDetails};

    use super::RoutingError;

    fn api_error(status: Status) -> kube::Error {
        kube::Error::Api(status.boxed())
    }

    #[test]
    fn a_patch_that_no_longer_applies_is_a_conflict_to_retry_on_fresh_data() {
        let failed_test = Status::failure(
            "the server rejected our request due to an error in our request",
            "Invalid",
        )
        .with_code(422);
        let error = RoutingError::from_kube("HTTPRoute shop", api_error(failed_test));
        assert_eq!(error.metric_label(), "route_conflict");
        let clash = Status::failure("the object has been modified", "Conflict").with_code(409);
        let error = RoutingError::from_kube("HTTPRoute shop", api_error(clash));
        assert_eq!(error.metric_label(), "route_conflict");
    }

    #[test]
    fn a_route_refusing_our_values_is_reported_not_retried_as_a_conflict() {
        let invalid = Status::failure(
            "HTTPRoute \"shop\" is invalid: spec.rules[0].backendRefs[0].weight",
            "Invalid",
        )
        .with_code(422)
        .with_details(StatusDetails {
            causes: vec![StatusCause {
                reason: "FieldValueInvalid".into(),
                message: "Invalid value: 2000000: must be less than or equal to 1000000".into(),
                field: "spec.rules[0].backendRefs[0].weight".into(),
            }],
            name: "shop".into(),
            group: "gateway.networking.k8s.io".into(),
            kind: "HTTPRoute".into(),
            uid: String::new(),
            retry_after_seconds: 0,
        });
        let error = RoutingError::from_kube("HTTPRoute shop", api_error(invalid));
        assert_eq!(error.metric_label(), "kube_api");
        assert!(error.to_string().contains("is invalid"), "{error}");
    }
}
