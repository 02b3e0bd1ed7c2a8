//! The HTTP client under the policy: a resolver that drops denied
//! addresses at connect time, no proxies, no redirects, bounded waits and
//! bounded reads, and failures sorted into categories.

use std::error::Error as StdError;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::redirect;

use super::policy::{DestinationPolicy, Refusal};

/// How long a connection may take to open, whatever the call's timeout.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A template's own TLS trust for one destination.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TlsOptions {
    /// A PEM CA bundle that replaces the system roots.
    pub ca_pem: Option<Vec<u8>>,
    pub insecure_skip_verify: bool,
}

/// Builds the one client every tenant call goes through.
pub fn build(policy: Arc<DestinationPolicy>) -> reqwest::Client {
    builder(policy)
        .build()
        // Nothing here comes from a user: the settings are fixed and the TLS
        // backend is compiled in. A default client instead would bypass
        // the policy's resolver.
        .expect("an HTTP client with fixed settings")
}

fn builder(policy: Arc<DestinationPolicy>) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .no_proxy()
        // A redirect would take the call to an address the policy has not
        // seen; a 3xx is just an answer that is not 2xx.
        .redirect(redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT)
        .dns_resolver(PolicyResolver { policy })
}

/// A client like [`build`]'s with a template's own TLS trust: a CA bundle
/// that replaces the system roots, or no verification at all. The bundle
/// comes from a Secret, so a bad one is the template's error, not a panic.
pub fn build_with_tls(policy: Arc<DestinationPolicy>, tls: &TlsOptions) -> Result<reqwest::Client, Failure> {
    let mut builder = builder(policy);
    if let Some(pem) = &tls.ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|_| Failure::TlsSettings {
            reason: "the CA bundle is not PEM".into(),
        })?;
        if certs.is_empty() {
            return Err(Failure::TlsSettings {
                reason: "the CA bundle holds no certificate".into(),
            });
        }
        builder = builder.tls_certs_only(certs);
    }
    if tls.insecure_skip_verify {
        builder = builder.tls_danger_accept_invalid_certs(true);
    }
    builder.build().map_err(|e| Failure::TlsSettings {
        reason: format!("the CA bundle is not usable ({})", root_cause(&e)),
    })
}

/// Resolves names and keeps only the addresses the policy allows. The
/// check is here, where the connection is made, so a name that resolved
/// to an allowed address when first looked at and to a denied one now
/// (DNS rebinding) is still refused.
struct PolicyResolver {
    policy: Arc<DestinationPolicy>,
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| Box::new(DnsFailure(format!("{host}: {e}"))))?;
            let mut allowed = Vec::new();
            let mut refusal = None;
            for addr in found {
                match policy.check_resolved(addr.ip()) {
                    Ok(()) => allowed.push(addr),
                    Err(r) => refusal = refusal.or(Some(r)),
                }
            }
            if allowed.is_empty() {
                return Err(match refusal {
                    Some(refusal) => Box::new(refusal) as Box<dyn StdError + Send + Sync>,
                    None => Box::new(DnsFailure(format!("{host}: no addresses"))),
                });
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct DnsFailure(String);

/// Why a call got no usable answer. Shown without its detail unless the
/// operator chose to reflect response bodies and low-level causes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    #[error("invalid URL")]
    InvalidUrl { detail: String },
    #[error("{0}")]
    Denied(Refusal),
    #[error("no answer within {}s", .0.as_secs_f64())]
    Timeout(Duration),
    #[error("DNS lookup failed")]
    Dns { detail: String },
    #[error("connection refused")]
    ConnectionRefused { detail: String },
    #[error("TLS handshake failed (certificate not trusted or not for this host?)")]
    Tls { detail: String },
    #[error("connection failed")]
    Connection { detail: String },
    #[error("reply larger than {} KiB", .0 / 1024)]
    TooLarge(usize),
    /// The template's TLS settings, not the server: shown in full.
    #[error("TLS settings unusable: {reason}")]
    TlsSettings { reason: String },
    /// A header the template sets is not a valid HTTP header.
    #[error("header {name:?} is not a valid HTTP header")]
    InvalidHeader { name: String },
}

impl Failure {
    /// The low-level cause, if there is more to say than the category.
    pub fn detail(&self) -> Option<&str> {
        match self {
            Failure::InvalidUrl { detail }
            | Failure::Dns { detail }
            | Failure::ConnectionRefused { detail }
            | Failure::Tls { detail }
            | Failure::Connection { detail } => Some(detail),
            Failure::Denied(_)
            | Failure::Timeout(_)
            | Failure::TooLarge(_)
            | Failure::TlsSettings { .. }
            | Failure::InvalidHeader { .. } => None,
        }
    }

    pub fn metric_label(&self) -> &'static str {
        match self {
            Failure::InvalidUrl { .. } => "invalid_url",
            Failure::Denied(_) => "denied",
            Failure::Timeout(_) => "timeout",
            Failure::Dns { .. } => "dns",
            Failure::ConnectionRefused { .. } => "connection_refused",
            Failure::Tls { .. } => "tls",
            Failure::Connection { .. } => "connection",
            Failure::TooLarge(_) => "too_large",
            Failure::TlsSettings { .. } => "tls_settings",
            Failure::InvalidHeader { .. } => "invalid_header",
        }
    }
}

/// Checks a URL before it is sent: its scheme, and its host when that is an
/// IP literal (the resolver never sees those).
pub fn check_url(policy: &DestinationPolicy, url: &str) -> Result<Url, Failure> {
    let url = Url::parse(url).map_err(|e| Failure::InvalidUrl { detail: e.to_string() })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Failure::InvalidUrl {
            detail: format!("scheme {:?} is not http or https", url.scheme()),
        });
    }
    let port = url.port_or_known_default().unwrap_or(80);
    let Some(host) = url.host_str() else {
        return Err(Failure::InvalidUrl {
            detail: "no host".into(),
        });
    };
    let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() else {
        return Ok(url);
    };
    policy.check(ip, port).map_err(Failure::Denied)?;
    Ok(url)
}

/// Sorts a transport error into its category.
pub fn classify(error: &reqwest::Error, timeout: Duration) -> Failure {
    if let Some(refusal) = find::<Refusal>(error) {
        return Failure::Denied(refusal.clone());
    }
    if error.is_timeout() {
        return Failure::Timeout(timeout);
    }
    let detail = root_cause(error);
    if find::<DnsFailure>(error).is_some() {
        return Failure::Dns { detail };
    }
    if error.is_builder() {
        return Failure::InvalidUrl { detail };
    }
    // A certificate the trust does not accept, or a failed handshake; the
    // I/O error around it does not say so in every version.
    if find::<rustls::Error>(error).is_some() {
        return Failure::Tls { detail };
    }
    match find::<std::io::Error>(error).map(std::io::Error::kind) {
        Some(std::io::ErrorKind::ConnectionRefused) => Failure::ConnectionRefused { detail },
        Some(std::io::ErrorKind::TimedOut) => Failure::Timeout(timeout),
        // rustls reports handshake and certificate errors as invalid data.
        Some(std::io::ErrorKind::InvalidData) if error.is_connect() => Failure::Tls { detail },
        _ => Failure::Connection { detail },
    }
}

fn find<'a, T: StdError + 'static>(error: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        // An io::Error's source() skips the error it wraps (e.g. rustls').
        let wrapped = e.downcast_ref::<std::io::Error>().and_then(std::io::Error::get_ref);
        if let Some(found) = wrapped.and_then(|inner| find::<T>(inner)) {
            return Some(found);
        }
        cause = e.source();
    }
    None
}

fn root_cause(error: &(dyn StdError + 'static)) -> String {
    let mut cause = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// What was read of a body: at most the cap, and whether that was all.
pub struct BoundedBody {
    pub bytes: Vec<u8>,
    pub complete: bool,
}

/// Reads at most `cap` bytes of the body, chunk by chunk: a larger body is
/// cut there and the rest never read (dropping the response closes the
/// connection).
pub async fn read_bounded(response: &mut reqwest::Response, cap: usize) -> Result<BoundedBody, reqwest::Error> {
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = cap - bytes.len();
        if chunk.len() > room {
            bytes.extend_from_slice(&chunk[..room]);
            return Ok(BoundedBody { bytes, complete: false });
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(BoundedBody { bytes, complete: true })
}
