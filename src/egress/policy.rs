//! Which addresses tenant-driven calls may reach. Rollouts and analysis
//! templates name the URLs, so without a policy any Rollout author could
//! make the controller call the cloud metadata service, a sidecar on
//! loopback, or the API server with the controller's network position.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

/// The address ranges no tenant call reaches unless the operator allows
/// them, and why.
const DEFAULT_DENIED: [(&str, &str, &str); 8] = [
    ("127.0.0.0/8", "loopback", "loopback"),
    ("::1/128", "loopback", "loopback"),
    ("169.254.0.0/16", "link-local", "link_local"),
    ("fe80::/10", "link-local", "link_local"),
    ("0.0.0.0/8", "unspecified", "unspecified"),
    ("::/128", "unspecified", "unspecified"),
    ("224.0.0.0/4", "multicast", "multicast"),
    ("ff00::/8", "multicast", "multicast"),
];

/// The operator's rules for outbound calls. Precedence, first match wins:
/// the API server's own addresses (never reachable); the most specific of
/// the operator's `--allow-destination` / `--deny-destination` CIDRs (a tie
/// denies); the default deny list; in allow-only mode, everything else.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DestinationPolicy {
    pub allow: Vec<IpNet>,
    pub deny: Vec<IpNet>,
    /// Only `allow` CIDRs are reachable.
    pub allow_only: bool,
    /// The API server, by address and port.
    pub api_server: Vec<SocketAddr>,
}

/// A destination the policy refuses, with the rule that refused it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("denied by destination policy: {destination} {rule}")]
pub struct Refusal {
    /// The address (with the port when the rule depends on it).
    pub destination: String,
    /// The rule in words, e.g. `is link-local (169.254.0.0/16); allow it
    /// with --allow-destination`.
    pub rule: String,
    /// A short name for metrics, e.g. `link_local`.
    pub label: &'static str,
}

impl DestinationPolicy {
    pub fn new(allow: Vec<IpNet>, deny: Vec<IpNet>, allow_only: bool) -> Self {
        DestinationPolicy {
            allow,
            deny,
            allow_only,
            api_server: Vec::new(),
        }
    }

    /// Adds the API server's addresses: those of `cluster_url` (resolved
    /// now) and, in a pod, `KUBERNETES_SERVICE_HOST:KUBERNETES_SERVICE_PORT`.
    pub async fn with_api_server(mut self, cluster_url: &str) -> Self {
        if let Ok(url) = reqwest::Url::parse(cluster_url)
            && let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default())
        {
            self.add_api_server(host, port).await;
        }
        if let (Ok(host), Ok(port)) = (
            std::env::var("KUBERNETES_SERVICE_HOST"),
            std::env::var("KUBERNETES_SERVICE_PORT"),
        ) && let Ok(port) = port.parse()
        {
            self.add_api_server(&host, port).await;
        }
        self
    }

    async fn add_api_server(&mut self, host: &str, port: u16) {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        match tokio::net::lookup_host((host, port)).await {
            Ok(addrs) => {
                for addr in addrs {
                    let addr = SocketAddr::new(addr.ip().to_canonical(), addr.port());
                    if !self.api_server.contains(&addr) {
                        self.api_server.push(addr);
                    }
                }
            }
            Err(e) => {
                tracing::warn!(%host, error = %e, "cannot resolve the API server's address for the destination policy")
            }
        }
    }

    /// Whether a call may go to `ip` on `port`.
    pub fn check(&self, ip: IpAddr, port: u16) -> Result<(), Refusal> {
        let ip = ip.to_canonical();
        if self.api_server.contains(&SocketAddr::new(ip, port)) {
            return Err(api_server_refusal(SocketAddr::new(ip, port).to_string()));
        }
        self.check_range(ip)
    }

    /// Whether a call may go to `ip` on a port not known yet: a name being
    /// resolved (the resolver does not see the port). The API server's
    /// addresses are refused whatever the port, so a name can never lead
    /// to it.
    pub fn check_resolved(&self, ip: IpAddr) -> Result<(), Refusal> {
        let ip = ip.to_canonical();
        if self.api_server.iter().any(|a| a.ip() == ip) {
            return Err(api_server_refusal(ip.to_string()));
        }
        self.check_range(ip)
    }

    fn check_range(&self, ip: IpAddr) -> Result<(), Refusal> {
        let most_specific = |nets: &[IpNet]| nets.iter().filter(|n| n.contains(&ip)).map(IpNet::prefix_len).max();
        let allowed = most_specific(&self.allow);
        let denied = most_specific(&self.deny);
        if let Some(deny_len) = denied
            && allowed.is_none_or(|allow_len| deny_len >= allow_len)
        {
            let net = self
                .deny
                .iter()
                .find(|n| n.contains(&ip) && n.prefix_len() == deny_len)
                .map_or_else(String::new, ToString::to_string);
            return Err(Refusal {
                destination: ip.to_string(),
                rule: format!("is in --deny-destination {net}"),
                label: "operator_deny",
            });
        }
        if allowed.is_some() {
            return Ok(());
        }
        for (net, what, label) in DEFAULT_DENIED {
            let Ok(net) = net.parse::<IpNet>() else { continue };
            if net.contains(&ip) {
                return Err(Refusal {
                    destination: ip.to_string(),
                    rule: format!("is {what} ({net}); allow it with --allow-destination"),
                    label,
                });
            }
        }
        if self.allow_only {
            return Err(Refusal {
                destination: ip.to_string(),
                rule: "is not in any --allow-destination (--destinations-allow-only)".into(),
                label: "allow_only",
            });
        }
        Ok(())
    }
}

fn api_server_refusal(destination: String) -> Refusal {
    Refusal {
        destination,
        rule: "is the Kubernetes API server, which no Rollout may call".into(),
        label: "api_server",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("an IP")
    }

    fn net(s: &str) -> IpNet {
        s.parse().expect("a CIDR")
    }

    #[test]
    fn refuses_the_metadata_service_naming_the_link_local_rule() {
        let refusal = DestinationPolicy::default()
            .check(ip("169.254.169.254"), 80)
            .expect_err("refused");
        assert_eq!(
            refusal.to_string(),
            "denied by destination policy: 169.254.169.254 is link-local (169.254.0.0/16); allow it with --allow-destination"
        );
        assert_eq!(refusal.label, "link_local");
    }

    #[test]
    fn refuses_loopback_unspecified_and_multicast_by_default() {
        let policy = DestinationPolicy::default();
        for (addr, label) in [
            ("127.0.0.1", "loopback"),
            ("::1", "loopback"),
            ("::ffff:127.0.0.1", "loopback"),
            ("0.0.0.0", "unspecified"),
            ("239.1.1.1", "multicast"),
            ("fe80::1", "link_local"),
        ] {
            assert_eq!(policy.check(ip(addr), 80).expect_err(addr).label, label, "{addr}");
        }
        assert!(policy.check(ip("10.1.2.3"), 80).is_ok());
        assert!(policy.check(ip("2001:db8::1"), 443).is_ok());
    }

    #[test]
    fn an_allowed_cidr_beats_the_default_deny_list() {
        let policy = DestinationPolicy::new(vec![net("127.0.0.1/32")], vec![], false);
        assert!(policy.check(ip("127.0.0.1"), 9090).is_ok());
        assert!(policy.check(ip("127.0.0.2"), 9090).is_err());
    }

    #[test]
    fn the_api_server_stays_denied_under_an_allow_cidr_on_its_own_port_only() {
        let mut policy = DestinationPolicy::new(vec![net("127.0.0.0/8")], vec![], false);
        policy.api_server.push("127.0.0.1:6443".parse().expect("an address"));
        let refusal = policy.check(ip("127.0.0.1"), 6443).expect_err("the API server");
        assert_eq!(refusal.label, "api_server");
        assert!(refusal.to_string().contains("127.0.0.1:6443"), "{refusal}");
        assert!(policy.check(ip("127.0.0.1"), 9090).is_ok());
        // A name cannot lead to the API server's address on any port.
        assert!(policy.check_resolved(ip("127.0.0.1")).is_err());
    }

    #[test]
    fn the_more_specific_operator_rule_wins() {
        let policy = DestinationPolicy::new(vec![net("10.1.2.3/32")], vec![net("10.0.0.0/8")], false);
        assert!(policy.check(ip("10.1.2.3"), 80).is_ok());
        let refusal = policy.check(ip("10.9.9.9"), 80).expect_err("denied");
        assert_eq!(refusal.rule, "is in --deny-destination 10.0.0.0/8");
    }

    #[test]
    fn allow_only_reaches_nothing_outside_the_allow_list() {
        let policy = DestinationPolicy::new(vec![net("10.0.0.0/8")], vec![], true);
        assert!(policy.check(ip("10.1.2.3"), 80).is_ok());
        assert_eq!(policy.check(ip("8.8.8.8"), 80).expect_err("denied").label, "allow_only");
        assert_eq!(policy.check(ip("127.0.0.1"), 80).expect_err("denied").label, "loopback");
    }
}
