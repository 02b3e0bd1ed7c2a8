//! Manual requests (`siskin promote|abort|pause|resume|retry`).
//!
//! The CLI records a request on the Rollout itself, as the annotation
//! `siskin.io/request: <action>@<RFC 3339 time>`; the controller acts on a
//! value once and remembers it in `status.lastHandledRequest` (and a short
//! history in `status.requests`). So:
//! - nothing lives in memory: a restart neither loses nor repeats a request;
//! - the CLI needs only `patch` on rollouts, and never writes status (which
//!   the controller owns with server-side apply);
//! - GitOps tools leave the annotation alone (it is not in Git) and the spec
//!   never drifts from Git;
//! - the latest request wins: two requests before the controller looks at
//!   either act as the second one.
//!
//! The controller's watch must let annotation changes through (a
//! generation-only predicate would hide them).

use std::fmt;

use jiff::Timestamp;

/// The annotation the CLI writes.
pub const REQUEST_ANNOTATION: &str = "siskin.io/request";

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
    /// The annotation value: the request's identity.
    pub id: String,
    pub action: Option<RequestedAction>,
}

impl ManualRequest {
    /// A fresh request, as the CLI creates it.
    pub fn new(action: RequestedAction, at: Timestamp) -> Self {
        ManualRequest {
            id: format!("{}@{}", action.as_str(), at),
            action: Some(action),
        }
    }

    /// Reads an annotation value. Never fails: a malformed value is still a
    /// request (to be reported as ignored), so it is handled exactly once.
    pub fn parse(value: &str) -> Self {
        let word = value.split_once('@').map_or(value, |(word, _)| word);
        ManualRequest {
            id: value.to_string(),
            action: RequestedAction::from_word(word.trim()),
        }
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
        let request = ManualRequest::new(RequestedAction::PromoteFull, at);
        assert_eq!(request.id, "promote-full@1970-01-01T00:00:00Z");
        assert_eq!(ManualRequest::parse(&request.id), request);
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
