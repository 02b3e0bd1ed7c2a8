//! Durations as users write them: `30s`, `1m`, `1h30m`, `500ms`.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A non-negative duration in Go's `time.ParseDuration` format (the format of
/// `metav1.Duration`, so `kubectl` users already know it).
///
/// The text is kept as written and parsed on use: a malformed value becomes an
/// `InvalidSpec` condition on the Rollout instead of an object the controller
/// cannot deserialize (which would silently drop it from the watch).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Duration(String);

/// Why a duration string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("{value:?} is not a duration like 30s, 5m or 1h30m: {reason}")]
    Malformed { value: String, reason: String },
    #[error("{value:?} is negative; durations must be zero or more")]
    Negative { value: String },
}

impl Duration {
    /// Wraps a duration string without checking it; see [`Duration::parse`].
    pub fn new(text: impl Into<String>) -> Self {
        Duration(text.into())
    }

    /// The string as the user wrote it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Parses the string with the same rules as Go's `time.ParseDuration`.
    pub fn parse(&self) -> Result<std::time::Duration, DurationError> {
        let parsed: kube::core::Duration =
            self.0
                .parse()
                .map_err(|e: kube::core::duration::ParseError| DurationError::Malformed {
                    value: self.0.clone(),
                    reason: e.to_string(),
                })?;
        if parsed.is_negative() {
            return Err(DurationError::Negative { value: self.0.clone() });
        }
        Ok(parsed.into())
    }
}

impl From<&str> for Duration {
    fn from(text: &str) -> Self {
        Duration::new(text)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The pattern lets the API server reject typos at admission time; the
/// controller still parses defensively because CRDs can lag behind the code.
const DURATION_PATTERN: &str = r"^(0|([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+)$";

impl schemars::JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": DURATION_PATTERN,
            "maxLength": 32,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration as Std;

    #[test]
    fn parses_the_units_users_write() {
        assert_eq!(Duration::new("30s").parse(), Ok(Std::from_secs(30)));
        assert_eq!(Duration::new("1m").parse(), Ok(Std::from_secs(60)));
        assert_eq!(Duration::new("1h").parse(), Ok(Std::from_secs(3600)));
        assert_eq!(Duration::new("1h30m").parse(), Ok(Std::from_secs(5400)));
        assert_eq!(Duration::new("500ms").parse(), Ok(Std::from_millis(500)));
        assert_eq!(Duration::new("0").parse(), Ok(Std::ZERO));
    }

    #[test]
    fn rejects_missing_units_and_negative_values() {
        assert!(matches!(
            Duration::new("30").parse(),
            Err(DurationError::Malformed { .. })
        ));
        assert!(matches!(
            Duration::new("1d").parse(),
            Err(DurationError::Malformed { .. })
        ));
        assert!(matches!(
            Duration::new("-5s").parse(),
            Err(DurationError::Negative { .. })
        ));
    }

    #[test]
    fn serializes_as_the_plain_string() {
        let json = serde_json::to_string(&Duration::new("2m")).ok();
        assert_eq!(json.as_deref(), Some("\"2m\""));
    }
}
