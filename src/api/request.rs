//! Manual requests (`siskin promote|abort|pause|resume|retry`).
//!
//! The CLI records a request on the Rollout itself, as the annotation
//! `siskin.io/request: <action>@<RFC 3339 time>[@<revision>]`; the
//! controller acts on a value once and remembers it in
//! `status.lastHandledRequest` (and a short history in `status.requests`).
//! The revision, which the CLI always adds, ties the request to the canary
//! it was meant for: a `promote-full` typed while canary A was in flight is
//! ignored, with an Event, if canary B has replaced A since. So:
//! - nothing lives in memory: a restart neither loses nor repeats a request;
//! - the CLI needs only `patch` on rollouts, and never writes status (which
//!   the controller owns with server-side apply);
//! - GitOps tools leave the annotation alone (it is not in Git) and the spec
//!   never drifts from Git;
//! - the latest request wins: two requests before the controller looks at
//!   either act as the second one, except that the CLI never replaces an
//!   abort the controller has not handled yet (abort wins).
//!
//! The controller's watch must let annotation changes through (a
//! generation-only predicate would hide them).

use std::fmt;

use jiff::Timestamp;

/// The annotation the CLI writes.
pub const REQUEST_ANNOTATION: &str = "siskin.io/request";

/// The longest annotation value read as a request. A longer one is still
/// handled once (as ignored), under a short digest of itself, so that it
/// never reaches status or Events whole.
pub const MAX_REQUEST_LEN: usize = 128;

/// What a human asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestedAction {
    /// Finish the current step (or pause) now and go on to the next.
    Promote,
    /// Skip every remaining step and promote the canary.
    PromoteFull,
    /// Return all traffic to stable now.
    Abort,
    /// Hold the current step until resumed.
    Pause,
    /// Leave a manual or inconclusive pause; the step's hold starts again.
    Resume,
    /// Start an aborted canary again from its first step.
    Retry,
}

impl RequestedAction {
    pub const ALL: [RequestedAction; 6] = [
        RequestedAction::Promote,
        RequestedAction::PromoteFull,
        RequestedAction::Abort,
        RequestedAction::Pause,
        RequestedAction::Resume,
        RequestedAction::Retry,
    ];

    /// The word used on the command line and in the annotation.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestedAction::Promote => "promote",
            RequestedAction::PromoteFull => "promote-full",
            RequestedAction::Abort => "abort",
            RequestedAction::Pause => "pause",
            RequestedAction::Resume => "resume",
            RequestedAction::Retry => "retry",
        }
    }

    pub fn from_word(word: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == word)
    }
}

impl fmt::Display for RequestedAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request as found on the Rollout. `action` is `None` when the annotation
/// does not name a known action; the controller records it as ignored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManualRequest {
    /// The annotation value: the request's identity (a digest of it when it
    /// is longer than [`MAX_REQUEST_LEN`]).
    pub id: String,
    pub action: Option<RequestedAction>,
    /// The canary revision the request was meant for, when it names one.
    pub revision: Option<String>,
}

impl ManualRequest {
    /// A fresh request, as the CLI creates it.
    pub fn new(action: RequestedAction, at: Timestamp, revision: Option<&str>) -> Self {
        let id = match revision {
            Some(revision) => format!("{}@{at}@{revision}", action.as_str()),
            None => format!("{}@{at}", action.as_str()),
        };
        ManualRequest {
            id,
            action: Some(action),
            revision: revision.map(str::to_string),
        }
    }

    /// Reads an annotation value. Never fails: a malformed value is still a
    /// request (to be reported as ignored), so it is handled exactly once.
    pub fn parse(value: &str) -> Self {
        if value.len() > MAX_REQUEST_LEN {
            let digest = super::revision_of_value(&serde_json::Value::String(value.to_string()));
            return ManualRequest {
                id: format!("oversized-{digest}"),
                action: None,
                revision: None,
            };
        }
        let mut parts = value.splitn(3, '@');
        let word = parts.next().unwrap_or_default();
        let revision = parts.nth(1).map(|r| r.trim().to_string()).filter(|r| !r.is_empty());
        ManualRequest {
            id: value.to_string(),
            action: RequestedAction::from_word(word.trim()),
            revision,
        }
    }

    /// Whether `action` may be recorded over this request: an abort the
    /// controller has not handled yet (`last_handled` is another request)
    /// wins over anything but another abort.
    pub fn may_be_replaced_by(&self, action: RequestedAction, last_handled: Option<&str>) -> bool {
        let pending_abort = self.action == Some(RequestedAction::Abort) && last_handled != Some(self.id.as_str());
        !pending_abort || action == RequestedAction::Abort
    }

    /// The request on a Rollout, if any.
    pub fn from_rollout(rollout: &super::Rollout) -> Option<Self> {
        rollout
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(REQUEST_ANNOTATION))
            .map(|v| ManualRequest::parse(v))
    }

    /// The JSON merge patch the CLI sends to record this request.
    pub fn merge_patch(&self) -> serde_json::Value {
        serde_json::json!({ "metadata": { "annotations": { REQUEST_ANNOTATION: self.id } } })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_the_annotation() {
        let at = Timestamp::UNIX_EPOCH;
        let request = ManualRequest::new(RequestedAction::PromoteFull, at, None);
        assert_eq!(request.id, "promote-full@1970-01-01T00:00:00Z");
        assert_eq!(ManualRequest::parse(&request.id), request);
    }

    #[test]
    fn a_request_names_the_canary_it_was_meant_for() {
        let request = ManualRequest::new(RequestedAction::Promote, Timestamp::UNIX_EPOCH, Some("abc123"));
        assert_eq!(request.id, "promote@1970-01-01T00:00:00Z@abc123");
        let parsed = ManualRequest::parse(&request.id);
        assert_eq!(parsed.revision.as_deref(), Some("abc123"));
        assert_eq!(parsed, request);
    }

    #[test]
    fn an_oversized_value_is_a_request_without_an_action_under_a_short_id() {
        let value = format!("abort@{}", "x".repeat(100_000));
        let request = ManualRequest::parse(&value);
        assert_eq!(request.action, None);
        assert!(request.id.len() <= MAX_REQUEST_LEN, "{}", request.id.len());
        assert_eq!(
            ManualRequest::parse(&value).id,
            request.id,
            "the same value, the same id"
        );
    }

    #[test]
    fn a_pending_abort_wins_over_any_later_request_but_an_abort() {
        let abort = ManualRequest::new(RequestedAction::Abort, Timestamp::UNIX_EPOCH, Some("abc"));
        for action in RequestedAction::ALL {
            let allowed = abort.may_be_replaced_by(action, Some("promote@earlier"));
            assert_eq!(
                allowed,
                action == RequestedAction::Abort,
                "{action} over a pending abort"
            );
            assert!(
                abort.may_be_replaced_by(action, Some(&abort.id)),
                "{action} after the abort was handled"
            );
        }
        let promote = ManualRequest::new(RequestedAction::Promote, Timestamp::UNIX_EPOCH, None);
        assert!(
            promote.may_be_replaced_by(RequestedAction::Pause, None),
            "later requests replace others"
        );
    }

    #[test]
    fn unknown_words_are_requests_without_an_action() {
        let request = ManualRequest::parse("rollback@2026-01-01T00:00:00Z");
        assert_eq!(request.action, None);
        assert_eq!(request.id, "rollback@2026-01-01T00:00:00Z");
    }

    #[test]
    fn the_patch_sets_only_the_annotation() {
        let request = ManualRequest::parse("abort@x");
        assert_eq!(
            request.merge_patch(),
            serde_json::json!({"metadata": {"annotations": {"siskin.io/request": "abort@x"}}})
        );
    }
}
