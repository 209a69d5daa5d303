//! Requests this server makes to addresses its users choose (clinic webhooks), and the policy
//! that keeps them off the installation's own network: no loopback, private (RFC 1918, RFC 6598
//! shared), link-local, unique-local, multicast, unspecified, reserved or cloud metadata
//! address, unless the operator's allow-list (`COMPANION_WEBHOOK_ALLOW`) names the host or its
//! network. The host is resolved when the request is made, every address it resolves to is
//! checked, and the connection goes to the address that was checked (no second lookup, so a name
//! that changes its answer between the check and the connection cannot slip through). No
//! redirect is followed and no proxy is used; production requires https.
//!
//! The address rules ([`classify`], [`OutboundPolicy::admits`]) are pure; resolution is behind
//! the [`Resolver`] trait so tests can stand in for DNS.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// Why an address may not be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    /// 127.0.0.0/8, ::1.
    Loopback,
    /// 10/8, 172.16/12, 192.168/16.
    Private,
    /// 100.64/10 (RFC 6598, carrier-grade NAT; also where some clouds put metadata).
    Shared,
    /// 169.254/16, fe80::/10 (where cloud metadata services answer).
    LinkLocal,
    /// fc00::/7.
    UniqueLocal,
    /// 224/4, ff00::/8.
    Multicast,
    /// 0.0.0.0/8, ::.
    Unspecified,
    /// Cloud instance metadata (169.254.169.254, fd00:ec2::254, 192.0.0.192, 100.100.100.200).
    Metadata,
    /// Other ranges that are not the public internet: documentation, benchmarking, protocol
    /// assignments, the reserved 240/4, broadcast, discard, deprecated site-local.
    Reserved,
}

impl AddressClass {
    fn name(self) -> &'static str {
        match self {
            Self::Loopback => "loopback",
            Self::Private => "private",
            Self::Shared => "shared (RFC 6598)",
            Self::LinkLocal => "link-local",
            Self::UniqueLocal => "unique-local",
            Self::Multicast => "multicast",
            Self::Unspecified => "unspecified",
            Self::Metadata => "a cloud metadata address",
            Self::Reserved => "reserved",
        }
    }

    /// Classes no allow-list entry admits: nothing useful listens there.
    fn never_admitted(self) -> bool {
        matches!(self, Self::Multicast | Self::Unspecified)
    }
}

/// The class of a non-public address; `None` for an address on the public internet. An IPv6
/// address that embeds an IPv4 one (mapped, compatible, NAT64, 6to4) is judged by the IPv4 one.
pub fn classify(ip: IpAddr) -> Option<AddressClass> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    (u32::from(ip) & mask) == (u32::from(Ipv4Addr::from(net)) & mask)
}

fn classify_v4(ip: Ipv4Addr) -> Option<AddressClass> {
    use AddressClass::*;
    const METADATA: [[u8; 4]; 3] = [[169, 254, 169, 254], [192, 0, 0, 192], [100, 100, 100, 200]];
    if METADATA.iter().any(|m| ip.octets() == *m) {
        return Some(Metadata);
    }
    let table: [([u8; 4], u32, AddressClass); 16] = [
        ([0, 0, 0, 0], 8, Unspecified),
        ([127, 0, 0, 0], 8, Loopback),
        ([10, 0, 0, 0], 8, Private),
        ([172, 16, 0, 0], 12, Private),
        ([192, 168, 0, 0], 16, Private),
        ([100, 64, 0, 0], 10, Shared),
        ([169, 254, 0, 0], 16, LinkLocal),
        ([224, 0, 0, 0], 4, Multicast),
        ([192, 0, 0, 0], 24, Reserved),
        ([192, 0, 2, 0], 24, Reserved),
        ([198, 51, 100, 0], 24, Reserved),
        ([203, 0, 113, 0], 24, Reserved),
        ([198, 18, 0, 0], 15, Reserved),
        ([192, 88, 99, 0], 24, Reserved),
        ([240, 0, 0, 0], 4, Reserved),
        ([255, 255, 255, 255], 32, Reserved),
    ];
    table
        .iter()
        .find(|(net, prefix, _)| in_v4(ip, *net, *prefix))
        .map(|(_, _, class)| *class)
}

fn classify_v6(ip: Ipv6Addr) -> Option<AddressClass> {
    use AddressClass::*;
    let segments = ip.segments();
    if ip.is_unspecified() {
        return Some(Unspecified);
    }
    if ip.is_loopback() {
        return Some(Loopback);
    }
    let embedded =
        |hi: usize| Ipv4Addr::from(((segments[hi] as u32) << 16) | segments[hi + 1] as u32);
    // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible, deprecated).
    if segments[..5] == [0; 5] && (segments[5] == 0xffff || segments[5] == 0) {
        return classify_v4(embedded(6)).or(Some(Reserved).filter(|_| segments[5] == 0));
    }
    // 64:ff9b::/96 (NAT64) carries the IPv4 address in its last 32 bits.
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return classify_v4(embedded(6));
    }
    // 2002::/16 (6to4) carries it in bits 16 to 48.
    if segments[0] == 0x2002 {
        return classify_v4(embedded(1));
    }
    if ip == Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254) {
        return Some(Metadata);
    }
    match segments[0] {
        s if s & 0xfe00 == 0xfc00 => Some(UniqueLocal),
        s if s & 0xffc0 == 0xfe80 => Some(LinkLocal),
        s if s & 0xffc0 == 0xfec0 => Some(Reserved),
        s if s & 0xff00 == 0xff00 => Some(Multicast),
        0x2001 if segments[1] == 0x0db8 => Some(Reserved),
        0x0100 if segments[1..4] == [0, 0, 0] => Some(Reserved),
        _ => None,
    }
}

/// Host names that stand for the machine itself or its cloud's metadata service, or that only
/// a local network can answer; refused without a lookup.
fn local_name(host: &str) -> bool {
    const NAMES: [&str; 5] = [
        "localhost",
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
    ];
    const SUFFIXES: [&str; 5] = [
        ".localhost",
        ".internal",
        ".local",
        ".localdomain",
        ".home.arpa",
    ];
    NAMES.contains(&host) || SUFFIXES.iter().any(|s| host.ends_with(s)) || !host.contains('.')
}

/// A network in CIDR notation (`10.1.0.0/16`, `fd12::/48`), or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    /// Parses `addr` or `addr/prefix`.
    pub fn parse(text: &str) -> Option<Self> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max)?,
            None => max,
        };
        Some(Self { addr, prefix })
    }

    /// Whether `ip` is in this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => in_v4(ip, net.octets(), self.prefix.into()),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let prefix = u32::from(self.prefix);
                let mask = if prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - prefix)
                };
                (u128::from(ip) & mask) == (u128::from(net) & mask)
            }
            _ => false,
        }
    }
}

/// One entry of `COMPANION_WEBHOOK_ALLOW`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowEntry {
    /// A host name (lower case, no trailing dot): whatever it resolves to is admitted.
    Host(String),
    /// An address or network: admitted whatever name leads there.
    Network(Network),
}

impl AllowEntry {
    /// Parses an entry: an IP address, a CIDR network, or a host name.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        if let Some(net) = Network::parse(text) {
            return Some(Self::Network(net));
        }
        let host = normalise_host(text);
        let label = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        (!host.is_empty() && host.len() <= 253 && host.split('.').all(label))
            .then_some(Self::Host(host))
    }
}

fn normalise_host(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// Why an outbound request was not made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Production requires https.
    NotHttps,
    /// The URL has no host, or one that cannot be used.
    BadUrl,
    /// A name that stands for a local or metadata host.
    LocalName(String),
    /// The host is, or resolves to, an address of a refused class.
    Address(IpAddr, AddressClass),
    /// The host could not be resolved (may change: worth retrying).
    Unresolved(String),
}

impl Refused {
    /// Whether trying again later may succeed (only a failed lookup).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unresolved(_))
    }
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotHttps => f.write_str("only https URLs are allowed in production"),
            Self::BadUrl => f.write_str("the URL has no usable host"),
            Self::LocalName(host) => write!(
                f,
                "the host {host} names a local or internal service, which webhooks may not reach"
            ),
            Self::Address(ip, class) => write!(
                f,
                "the address {ip} is {}, which webhooks may not reach",
                class.name()
            ),
            Self::Unresolved(host) => write!(f, "the host {host} could not be resolved"),
        }
    }
}

/// Where outbound requests may go: the allow-list and whether https is required.
#[derive(Debug, Clone, Default)]
pub struct OutboundPolicy {
    /// `COMPANION_WEBHOOK_ALLOW`.
    pub allow: Vec<AllowEntry>,
    /// True in production.
    pub require_https: bool,
}

impl OutboundPolicy {
    fn host_allowed(&self, host: &str) -> bool {
        self.allow
            .iter()
            .any(|entry| matches!(entry, AllowEntry::Host(h) if h == host))
    }

    /// Whether `ip`, reached through `host`, may be connected to.
    pub fn admits(&self, host: &str, ip: IpAddr) -> Result<(), Refused> {
        let Some(class) = classify(ip) else {
            return Ok(());
        };
        let listed = self.host_allowed(&normalise_host(host))
            || self
                .allow
                .iter()
                .any(|entry| matches!(entry, AllowEntry::Network(n) if n.contains(ip)));
        if listed && !class.never_admitted() {
            return Ok(());
        }
        Err(Refused::Address(ip, class))
    }

    /// What can be checked without a lookup: the scheme, a host that is an address, and names
    /// that stand for local services. Run when an endpoint is registered and again before each
    /// delivery.
    pub fn check_url(&self, url: &url::Url) -> Result<(), Refused> {
        match url.scheme() {
            "https" => {}
            "http" if !self.require_https => {}
            "http" => return Err(Refused::NotHttps),
            _ => return Err(Refused::BadUrl),
        }
        match url.host() {
            Some(url::Host::Ipv4(ip)) => self.admits("", IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => self.admits("", IpAddr::V6(ip)),
            Some(url::Host::Domain(name)) => {
                let name = normalise_host(name);
                if local_name(&name) && !self.host_allowed(&name) {
                    return Err(Refused::LocalName(name));
                }
                Ok(())
            }
            None => Err(Refused::BadUrl),
        }
    }
}

/// Looks host names up (DNS, or a stand-in in tests).
#[async_trait::async_trait]
pub trait Resolver: Send + Sync + fmt::Debug {
    /// Every address `host` resolves to.
    async fn lookup(&self, host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>>;
}

/// The system resolver.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

#[async_trait::async_trait]
impl Resolver for SystemResolver {
    async fn lookup(&self, host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
        Ok(tokio::net::lookup_host((host, port)).await?.collect())
    }
}

/// Makes outbound requests under an [`OutboundPolicy`].
#[derive(Debug, Clone)]
pub struct Outbound {
    /// The policy.
    pub policy: OutboundPolicy,
    /// How names are resolved.
    pub resolver: Arc<dyn Resolver>,
    /// Per-request time limit.
    pub timeout: Duration,
}

/// A client pinned to the checked address of one URL's host.
#[derive(Debug)]
pub struct Pinned {
    /// Sends only to the address that was checked; follows no redirect; uses no proxy.
    pub client: reqwest::Client,
    /// That address.
    pub addr: SocketAddr,
}

impl Outbound {
    /// Checks `url` (its host resolved now, every address checked) and returns a client that
    /// connects only to the checked address.
    pub async fn pin(&self, url: &url::Url) -> Result<Pinned, Refused> {
        self.policy.check_url(url)?;
        let port = url.port_or_known_default().ok_or(Refused::BadUrl)?;
        let builder = reqwest::Client::builder()
            .timeout(self.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy();
        let (builder, addr) = match url.host() {
            Some(url::Host::Ipv4(ip)) => (builder, SocketAddr::new(IpAddr::V4(ip), port)),
            Some(url::Host::Ipv6(ip)) => (builder, SocketAddr::new(IpAddr::V6(ip), port)),
            Some(url::Host::Domain(name)) => {
                let addrs = self
                    .resolver
                    .lookup(name, port)
                    .await
                    .map_err(|_| Refused::Unresolved(name.to_owned()))?;
                let Some(first) = addrs.first().copied() else {
                    return Err(Refused::Unresolved(name.to_owned()));
                };
                // One refused address refuses the host: a name that answers with a mix is
                // exactly what a rebinding attempt looks like.
                for addr in &addrs {
                    self.policy.admits(name, addr.ip())?;
                }
                (builder.resolve(name, first), first)
            }
            None => return Err(Refused::BadUrl),
        };
        let client = builder.build().map_err(|_| Refused::BadUrl)?;
        Ok(Pinned { client, addr })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn every_internal_range_is_refused_and_public_addresses_pass() {
        use AddressClass::*;
        for (text, class) in [
            ("127.0.0.1", Loopback),
            ("127.255.0.9", Loopback),
            ("10.1.2.3", Private),
            ("172.16.0.1", Private),
            ("172.31.255.255", Private),
            ("192.168.1.1", Private),
            ("100.64.0.1", Shared),
            ("100.127.255.255", Shared),
            ("169.254.169.254", Metadata),
            ("169.254.1.1", LinkLocal),
            ("100.100.100.200", Metadata),
            ("192.0.0.192", Metadata),
            ("224.0.0.1", Multicast),
            ("0.0.0.0", Unspecified),
            ("0.1.2.3", Unspecified),
            ("255.255.255.255", Reserved),
            ("::1", Loopback),
            ("::", Unspecified),
            ("::ffff:127.0.0.1", Loopback),
            ("::ffff:10.0.0.1", Private),
            ("64:ff9b::a9fe:a9fe", Metadata),
            ("2002:7f00:1::", Loopback),
            ("fd00:ec2::254", Metadata),
            ("fd12:3456::1", UniqueLocal),
            ("fe80::1", LinkLocal),
            ("ff02::1", Multicast),
            ("2001:db8::1", Reserved),
        ] {
            assert_eq!(classify(ip(text)), Some(class), "{text}");
        }
        for public in [
            "93.184.216.34",
            "172.32.0.1",
            "100.128.0.1",
            "8.8.8.8",
            "2606:4700::1111",
        ] {
            assert_eq!(classify(ip(public)), None, "{public}");
        }
    }

    #[test]
    fn numeric_and_named_local_hosts_are_refused_before_any_lookup() {
        let policy = OutboundPolicy::default();
        for url in [
            "http://127.0.0.1/",
            "http://2130706433/",
            "http://0x7f000001/",
            "http://0177.0.0.1/",
            "http://169.254.169.254/latest",
            "http://localhost:8080/",
            "http://LOCALHOST./",
            "http://a.localhost/",
            "http://metadata.google.internal/",
            "http://ehr/",
            "http://[::1]/",
        ] {
            let parsed = url::Url::parse(url).unwrap();
            assert!(policy.check_url(&parsed).is_err(), "{url}");
        }
        let public = url::Url::parse("https://hooks.example.org/x").unwrap();
        assert_eq!(policy.check_url(&public), Ok(()));
    }

    #[test]
    fn production_requires_https() {
        let policy = OutboundPolicy {
            require_https: true,
            ..OutboundPolicy::default()
        };
        let plain = url::Url::parse("http://hooks.example.org/x").unwrap();
        assert_eq!(policy.check_url(&plain), Err(Refused::NotHttps));
    }

    #[test]
    fn the_allow_list_admits_named_hosts_and_networks_but_never_multicast() {
        let policy = OutboundPolicy {
            allow: ["ehr.internal", "10.20.0.0/16", "127.0.0.1"]
                .iter()
                .map(|e| AllowEntry::parse(e).unwrap())
                .collect(),
            require_https: false,
        };
        assert_eq!(policy.admits("EHR.internal.", ip("10.9.9.9")), Ok(()));
        assert_eq!(policy.admits("other.example", ip("10.20.3.4")), Ok(()));
        assert!(policy.admits("other.example", ip("10.21.3.4")).is_err());
        assert_eq!(policy.admits("", ip("127.0.0.1")), Ok(()));
        assert!(policy.admits("", ip("127.0.0.2")).is_err());
        assert!(policy.admits("ehr.internal", ip("224.0.0.1")).is_err());
        let named = url::Url::parse("http://ehr.internal/in").unwrap();
        assert_eq!(policy.check_url(&named), Ok(()));
        assert_eq!(AllowEntry::parse("bad host!"), None);
        assert_eq!(AllowEntry::parse("10.0.0.0/33"), None);
    }
}
