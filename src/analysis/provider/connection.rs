//! A provider's connection options made concrete: Secrets' values put in
//! place, the timeout parsed. Values of Secrets never reach a message.

use std::collections::BTreeMap;
use std::time::Duration;

use super::ProviderError;
use crate::api::analysis_template::ConnectionSpec;
use crate::egress::{OutboundRequest, TlsOptions};

/// A query that takes longer than this by default is a provider failure
/// (inconclusive), not a stalled reconcile. The egress caps any timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The values of the Secret keys a template uses: `(secret, key)` → bytes.
pub type SecretValues = BTreeMap<(String, String), Vec<u8>>;

/// Headers (credentials included), timeout and TLS trust of every request.
#[derive(Clone, Debug)]
pub struct Connection {
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
    pub tls: TlsOptions,
}

impl Default for Connection {
    fn default() -> Self {
        Connection {
            headers: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            tls: TlsOptions::default(),
        }
    }
}

impl Connection {
    /// Builds the connection from its spec and the Secret values the
    /// controller read for it. A missing or unusable value is an error
    /// naming the Secret and key, never showing a value.
    pub fn resolve(spec: Option<&ConnectionSpec>, secrets: &SecretValues) -> Result<Connection, ProviderError> {
        let Some(spec) = spec else {
            return Ok(Connection::default());
        };
        let text = |secret: &str, key: &str| -> Result<String, ProviderError> {
            let bytes = secrets
                .get(&(secret.to_string(), key.to_string()))
                .ok_or_else(|| ProviderError::Connection(format!("Secret {secret:?} has no key {key:?}")))?;
            let text = std::str::from_utf8(bytes)
                .map_err(|_| ProviderError::Connection(format!("Secret {secret:?}, key {key:?} is not UTF-8")))?;
            Ok(text.trim_end_matches(['\r', '\n']).to_string())
        };
        let mut headers = Vec::new();
        for header in &spec.headers {
            let value = match (&header.value, &header.value_from) {
                (Some(value), None) => value.clone(),
                (None, Some(from)) => text(&from.secret, from.key_or("value"))?,
                _ => {
                    return Err(ProviderError::Connection(format!(
                        "header {:?} needs exactly one of value and valueFrom",
                        header.name
                    )));
                }
            };
            headers.push((header.name.clone(), value));
        }
        if let Some(auth) = &spec.auth {
            let value = match (&auth.basic, &auth.bearer) {
                (Some(basic), None) => {
                    let user = text(&basic.secret, "username")?;
                    let password = text(&basic.secret, "password")?;
                    format!("Basic {}", base64(format!("{user}:{password}").as_bytes()))
                }
                (None, Some(bearer)) => format!("Bearer {}", text(&bearer.secret, bearer.key_or("token"))?),
                _ => {
                    return Err(ProviderError::Connection(
                        "auth needs exactly one of basic and bearer".into(),
                    ));
                }
            };
            headers.push(("Authorization".into(), value));
        }
        let mut tls = TlsOptions::default();
        if let Some(spec) = &spec.tls {
            tls.insecure_skip_verify = spec.insecure_skip_verify;
            if let Some(ca) = &spec.ca {
                let key = ca.key_or("ca.crt");
                let pem = secrets
                    .get(&(ca.secret.clone(), key.to_string()))
                    .ok_or_else(|| ProviderError::Connection(format!("Secret {:?} has no key {key:?}", ca.secret)))?;
                tls.ca_pem = Some(pem.clone());
            }
        }
        let timeout = match &spec.timeout {
            Some(t) => t
                .parse()
                .map_err(|e| ProviderError::Connection(format!("timeout: {e}")))?,
            None => DEFAULT_TIMEOUT,
        };
        Ok(Connection { headers, timeout, tls })
    }

    /// A request to `url` over this connection; `body` makes it a POST.
    pub fn request(&self, url: String, body: Option<Vec<u8>>) -> OutboundRequest {
        OutboundRequest {
            url,
            body,
            headers: self.headers.clone(),
            timeout: self.timeout,
            tls: self.tls.clone(),
        }
    }
}

/// Standard base64 with padding, for basic auth.
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::analysis_template::{AuthSpec, HeaderSpec, SecretKey, TlsSpec};

    fn secrets(entries: &[(&str, &str, &str)]) -> SecretValues {
        entries
            .iter()
            .map(|(s, k, v)| ((s.to_string(), k.to_string()), v.as_bytes().to_vec()))
            .collect()
    }

    fn secret(name: &str) -> SecretKey {
        SecretKey {
            secret: name.into(),
            key: None,
        }
    }

    #[test]
    fn basic_auth_comes_from_the_secrets_username_and_password() {
        let spec = ConnectionSpec {
            auth: Some(AuthSpec {
                basic: Some(secret("prom")),
                bearer: None,
            }),
            ..Default::default()
        };
        let values = secrets(&[("prom", "username", "siskin"), ("prom", "password", "s3cret\n")]);
        let connection = Connection::resolve(Some(&spec), &values).expect("resolved");
        let expected = format!("Basic {}", base64(b"siskin:s3cret"));
        assert_eq!(connection.headers, vec![("Authorization".into(), expected)]);
        assert_eq!(base64(b"siskin:s3cret"), "c2lza2luOnMzY3JldA==");
        assert_eq!(connection.timeout, DEFAULT_TIMEOUT);
    }

    #[test]
    fn headers_take_literal_values_or_secret_keys_and_a_bearer_token() {
        let spec = ConnectionSpec {
            headers: vec![
                HeaderSpec {
                    name: "X-Scope-OrgID".into(),
                    value: Some("tenant-a".into()),
                    value_from: None,
                },
                HeaderSpec {
                    name: "DD-API-KEY".into(),
                    value: None,
                    value_from: Some(SecretKey {
                        secret: "dd".into(),
                        key: Some("api-key".into()),
                    }),
                },
            ],
            auth: Some(AuthSpec {
                basic: None,
                bearer: Some(secret("token")),
            }),
            timeout: Some(crate::api::Duration::new("2s")),
            tls: None,
        };
        let values = secrets(&[("dd", "api-key", "k"), ("token", "token", "t")]);
        let connection = Connection::resolve(Some(&spec), &values).expect("resolved");
        let names: Vec<(&str, &str)> = connection
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("X-Scope-OrgID", "tenant-a"),
                ("DD-API-KEY", "k"),
                ("Authorization", "Bearer t")
            ]
        );
        assert_eq!(connection.timeout, Duration::from_secs(2));
    }

    #[test]
    fn a_missing_secret_key_is_named_without_any_value() {
        let spec = ConnectionSpec {
            tls: Some(TlsSpec {
                ca: Some(secret("prom-ca")),
                insecure_skip_verify: false,
            }),
            ..Default::default()
        };
        let error = Connection::resolve(Some(&spec), &secrets(&[("prom-ca", "tls.crt", "x")])).unwrap_err();
        assert_eq!(error.to_string(), r#"Secret "prom-ca" has no key "ca.crt""#);
    }
}
