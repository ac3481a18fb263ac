//! Who is on the other end of a request. [`resolve`] is the one place that turns the TCP peer and
//! the forwarding headers into a [`Client`]; the rate limiter keys buckets by its address and
//! [`Client::is_local`] is the one rule that says whether it may use loopback trust.
//!
//! Forwarding headers (`X-Forwarded-For`, `Forwarded`) are believed only when the TCP peer is
//! inside a `--trusted-proxies` network; the client is then the right-most hop that is not itself
//! a trusted proxy (proxies append on the right, so hops further left are whatever the client
//! chose to send). A request relayed by a proxy is never local, whatever address the proxy names:
//! a proxy that copies the client's own headers through (nginx's default `proxy_pass` does) would
//! otherwise let anyone claim to be 127.0.0.1. And a trusted proxy that names nobody does not make
//! its clients local either.

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use std::convert::Infallible;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

const FORWARDED: &str = "forwarded";
const X_FORWARDED_FOR: &str = "x-forwarded-for";
const X_REAL_IP: &str = "x-real-ip";

/// True for 127.0.0.0/8 and ::1, IPv4-mapped forms included.
pub fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// Why a `--trusted-proxies` entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error(
        "{0:?} is not an IP address or network; expected e.g. 10.0.0.0/8, 192.0.2.7 or fd00::/8"
    )]
    Address(String),
    #[error(
        "{input:?} has a prefix length outside 0..={max}; expected e.g. 10.0.0.0/8 or fd00::/8"
    )]
    Prefix { input: String, max: u8 },
}

/// An IP network (`10.0.0.0/8`, `::1/128`; a bare address is a network of one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// True when `ip` is inside the network (IPv4-mapped IPv6 addresses match IPv4 networks).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => mask_v4(ip, self.prefix) == u32::from(net),
            (IpAddr::V6(net), IpAddr::V6(ip)) => mask_v6(ip, self.prefix) == u128::from(net),
            _ => false,
        }
    }
}

/// The address with every bit after the first `prefix` cleared (a shift by the full width, for
/// prefix 0, leaves nothing).
fn mask_v4(ip: Ipv4Addr, prefix: u8) -> u32 {
    u32::from(ip) & u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask_v6(ip: Ipv6Addr, prefix: u8) -> u128 {
    u128::from(ip) & u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(input: &str) -> Result<Cidr, CidrError> {
        let text = input.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| CidrError::Address(input.to_owned()))?;
        let addr = addr.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => {
                p.parse::<u8>()
                    .ok()
                    .filter(|p| *p <= max)
                    .ok_or_else(|| CidrError::Prefix {
                        input: input.to_owned(),
                        max,
                    })?
            }
        };
        // Host bits are cleared: 10.1.2.3/8 means 10.0.0.0/8.
        let network = match addr {
            IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(mask_v4(v4, prefix))),
            IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(mask_v6(v6, prefix))),
        };
        Ok(Cidr { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The networks whose forwarding headers are believed (`--trusted-proxies`); empty by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    pub fn new(networks: Vec<Cidr>) -> Self {
        TrustedProxies(networks)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(ip))
    }
}

impl FromStr for TrustedProxies {
    type Err = CidrError;

    /// A comma-separated list; empty entries are skipped, so an empty string is no proxy at all.
    fn from_str(list: &str) -> Result<TrustedProxies, CidrError> {
        list.split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map(TrustedProxies)
    }
}

impl fmt::Display for TrustedProxies {
    /// `10.0.0.0/8,127.0.0.1/32`, or `none`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        for (i, net) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{net}")?;
        }
        Ok(())
    }
}

/// How the request reached the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// Straight from the client: a peer that is not a trusted proxy, without forwarding headers.
    Direct,
    /// Through trusted proxies that named the client.
    Relayed,
    /// From a trusted proxy that did not say whom it relays (no forwarding header, an obfuscated
    /// or unreadable hop, or two headers that disagree); the address is the proxy's.
    RelayedUnnamed,
    /// With forwarding headers from a peer that is not a trusted proxy: the headers are ignored
    /// and the address is the peer's, but someone else may be behind it.
    Unbelieved,
    /// No peer address (the router driven without a socket).
    Unknown,
}

/// The client of a request, as far as the server can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    /// The client's address (for [`Via::RelayedUnnamed`] and [`Via::Unbelieved`], the peer's).
    pub addr: Option<IpAddr>,
    pub via: Via,
}

impl Client {
    /// A request whose origin is unknown.
    pub const UNKNOWN: Client = Client {
        addr: None,
        via: Via::Unknown,
    };

    /// The one rule for loopback trust: a direct connection from a loopback address. Relayed
    /// requests never qualify (see the module documentation).
    pub fn is_local(&self) -> bool {
        self.via == Via::Direct && self.addr.is_some_and(is_loopback)
    }

    /// The address the rate limiter counts this request against.
    pub fn rate_key(&self) -> IpAddr {
        self.addr.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }
}

/// One hop of a forwarding chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hop {
    Addr(IpAddr),
    /// `unknown`, an obfuscated identifier (`_hidden`), or something unreadable.
    Opaque,
}

/// Decides who the client of a request is (see the module documentation).
pub fn resolve(peer: Option<SocketAddr>, headers: &HeaderMap, proxies: &TrustedProxies) -> Client {
    let Some(peer) = peer.map(|p| p.ip().to_canonical()) else {
        return Client::UNKNOWN;
    };
    let from_peer = |via| Client {
        addr: Some(peer),
        via,
    };
    if !proxies.contains(peer) {
        let forwarded = [FORWARDED, X_FORWARDED_FOR, X_REAL_IP]
            .iter()
            .any(|h| headers.contains_key(*h));
        return from_peer(if forwarded {
            Via::Unbelieved
        } else {
            Via::Direct
        });
    }
    let by_forwarded = headers
        .contains_key(FORWARDED)
        .then(|| origin(&forwarded_hops(headers), proxies));
    let by_xff = headers
        .contains_key(X_FORWARDED_FOR)
        .then(|| origin(&x_forwarded_for_hops(headers), proxies));
    let named = match (by_forwarded, by_xff) {
        (Some(a), Some(b)) if a == b => a,
        (Some(_), Some(_)) => None,
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => None,
    };
    match named {
        Some(addr) => Client {
            addr: Some(addr),
            via: Via::Relayed,
        },
        None => from_peer(Via::RelayedUnnamed),
    }
}

/// The right-most hop that is not a trusted proxy; when every hop is one, the left-most. `None`
/// when the chain is empty or an opaque hop comes first.
fn origin(hops: &[Hop], proxies: &TrustedProxies) -> Option<IpAddr> {
    for hop in hops.iter().rev() {
        match *hop {
            Hop::Addr(ip) if proxies.contains(ip) => continue,
            Hop::Addr(ip) => return Some(ip),
            Hop::Opaque => return None,
        }
    }
    match hops.first() {
        Some(Hop::Addr(ip)) => Some(*ip),
        _ => None,
    }
}

/// Every value of `name` in order, split at commas outside quoted strings (several header lines
/// form one list).
fn list_items(headers: &HeaderMap, name: &str) -> Vec<String> {
    let mut items = Vec::new();
    for value in headers.get_all(name) {
        let Ok(text) = value.to_str() else {
            items.push(String::new());
            continue;
        };
        let mut current = String::new();
        let mut quoted = false;
        for c in text.chars() {
            match c {
                '"' => {
                    quoted = !quoted;
                    current.push(c);
                }
                ',' if !quoted => items.push(std::mem::take(&mut current)),
                _ => current.push(c),
            }
        }
        items.push(current);
    }
    items
}

fn x_forwarded_for_hops(headers: &HeaderMap) -> Vec<Hop> {
    list_items(headers, X_FORWARDED_FOR)
        .iter()
        .map(|item| parse_node(item))
        .collect()
}

/// RFC 7239 `Forwarded: for=192.0.2.60;proto=http;by=203.0.113.43, for="[2001:db8::1]:4711"`.
fn forwarded_hops(headers: &HeaderMap) -> Vec<Hop> {
    list_items(headers, FORWARDED)
        .iter()
        .map(|element| {
            element
                .split(';')
                .filter_map(|pair| pair.split_once('='))
                .find(|(key, _)| key.trim().eq_ignore_ascii_case("for"))
                .map_or(Hop::Opaque, |(_, value)| parse_node(value))
        })
        .collect()
}

/// An address as proxies write it: `192.0.2.7`, `192.0.2.7:443`, `2001:db8::1`,
/// `[2001:db8::1]:443`, possibly quoted.
fn parse_node(text: &str) -> Hop {
    let text = text.trim().trim_matches('"').trim();
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Hop::Addr(ip.to_canonical());
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Hop::Addr(addr.ip().to_canonical());
    }
    match text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .map(str::parse::<Ipv6Addr>)
    {
        Some(Ok(v6)) => Hop::Addr(IpAddr::V6(v6).to_canonical()),
        _ => Hop::Opaque,
    }
}

/// Middleware: resolves the [`Client`] once and stores it in the request's extensions.
pub async fn identify(
    State(proxies): State<Arc<TrustedProxies>>,
    mut req: Request,
    next: Next,
) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let client = resolve(peer, req.headers(), &proxies);
    req.extensions_mut().insert(client);
    next.run(req).await
}

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = Infallible;

    /// The client [`identify`] resolved; [`Client::UNKNOWN`] (never local) without it.
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(parts
            .extensions
            .get::<Client>()
            .copied()
            .unwrap_or(Client::UNKNOWN))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use axum::http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies::new(list.iter().map(|s| s.parse().unwrap()).collect())
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    fn from(peer: &str, pairs: &[(&'static str, &'static str)], trusted: &[&str]) -> Client {
        let peer = SocketAddr::new(ip(peer), 40000);
        resolve(Some(peer), &headers(pairs), &proxies(trusted))
    }

    #[test]
    fn cidrs_parse_match_and_explain_mistakes() {
        let net: Cidr = "10.1.2.3/8".parse().unwrap();
        assert_eq!(net.to_string(), "10.0.0.0/8");
        assert!(net.contains(ip("10.255.0.1")));
        assert!(net.contains(ip("::ffff:10.0.0.9")));
        assert!(!net.contains(ip("11.0.0.1")));
        let one: Cidr = " 192.0.2.7 ".parse().unwrap();
        assert_eq!(one.to_string(), "192.0.2.7/32");
        assert!(one.contains(ip("192.0.2.7")) && !one.contains(ip("192.0.2.8")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.9")) && !all.contains(ip("2001:db8::1")));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")) && !v6.contains(ip("2001:db9::1")));
        let any6: Cidr = "::/0".parse().unwrap();
        assert!(any6.contains(ip("::1")));
        let mapped: Cidr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(mapped.to_string(), "127.0.0.1/32");
        assert_eq!(
            "10.0.0.0/33".parse::<Cidr>(),
            Err(CidrError::Prefix {
                input: "10.0.0.0/33".into(),
                max: 32
            })
        );
        assert!(matches!(
            "fd00::/129".parse::<Cidr>(),
            Err(CidrError::Prefix { max: 128, .. })
        ));
        let list: TrustedProxies = " 10.0.0.0/8, ,::1,".parse().unwrap();
        assert_eq!(list.to_string(), "10.0.0.0/8,::1/128");
        assert_eq!("".parse::<TrustedProxies>(), Ok(TrustedProxies::default()));
        assert_eq!(
            "10.0.0.0/8,proxy".parse::<TrustedProxies>(),
            Err(CidrError::Address("proxy".into()))
        );
        for bad in [
            "",
            "10.0.0",
            "localhost",
            "10.0.0.0/",
            "10.0.0.0/x",
            "10.0.0.0/-1",
        ] {
            let err = bad.parse::<Cidr>().unwrap_err().to_string();
            assert!(err.contains("expected e.g. 10.0.0.0/8"), "{bad}: {err}");
        }
    }

    #[test]
    fn without_trusted_proxies_the_peer_is_the_client() {
        let c = from("127.0.0.1", &[], &[]);
        assert_eq!(
            (c.addr, c.via, c.is_local()),
            (Some(ip("127.0.0.1")), Via::Direct, true)
        );
        assert!(from("127.8.9.10", &[], &[]).is_local());
        assert!(from("::1", &[], &[]).is_local());
        assert!(from("::ffff:127.0.0.1", &[], &[]).is_local());
        assert!(!from("192.0.2.7", &[], &[]).is_local());
        // Forwarding headers from an untrusted peer are not believed, and whoever sent them
        // through a loopback peer is not local.
        for h in ["x-forwarded-for", "forwarded", "x-real-ip"] {
            let c = from("127.0.0.1", &[(h, "127.0.0.1")], &[]);
            assert_eq!(
                (c.addr, c.via),
                (Some(ip("127.0.0.1")), Via::Unbelieved),
                "{h}"
            );
            assert!(!c.is_local(), "{h}");
            let c = from("192.0.2.7", &[(h, "203.0.113.9")], &["10.0.0.0/8"]);
            assert_eq!(c.rate_key(), ip("192.0.2.7"), "{h}");
        }
    }

    #[test]
    fn trusted_proxies_name_the_right_most_untrusted_hop() {
        let t = ["127.0.0.1", "10.0.0.0/8"];
        let c = from("127.0.0.1", &[("x-forwarded-for", "203.0.113.9")], &t);
        assert_eq!((c.addr, c.via), (Some(ip("203.0.113.9")), Via::Relayed));
        // A client's own header is to the left of what the proxies append.
        let c = from(
            "127.0.0.1",
            &[(
                "x-forwarded-for",
                "127.0.0.1, 198.51.100.1,203.0.113.9 , 10.0.0.2",
            )],
            &t,
        );
        assert_eq!(c.addr, Some(ip("203.0.113.9")));
        // Several header lines form one list.
        let c = from(
            "10.0.0.1",
            &[
                ("x-forwarded-for", "198.51.100.1"),
                ("x-forwarded-for", "203.0.113.9"),
            ],
            &t,
        );
        assert_eq!(c.addr, Some(ip("203.0.113.9")));
        // Every hop trusted: the left-most is the client.
        let c = from("10.0.0.1", &[("x-forwarded-for", "10.9.9.9, 10.0.0.2")], &t);
        assert_eq!(c.addr, Some(ip("10.9.9.9")));
        // Ports and brackets as proxies write them.
        let c = from("10.0.0.1", &[("x-forwarded-for", "[2001:db8::7]:443")], &t);
        assert_eq!(c.addr, Some(ip("2001:db8::7")));
        let c = from("10.0.0.1", &[("x-forwarded-for", "203.0.113.9:5000")], &t);
        assert_eq!(c.addr, Some(ip("203.0.113.9")));
        // RFC 7239.
        let c = from(
            "10.0.0.1",
            &[(
                "forwarded",
                r#"for=127.0.0.1, For="[2001:db8:cafe::17]:4711";proto=https, for=10.0.0.3;by=10.0.0.1"#,
            )],
            &t,
        );
        assert_eq!(
            (c.addr, c.via),
            (Some(ip("2001:db8:cafe::17")), Via::Relayed)
        );
    }

    #[test]
    fn a_relayed_request_is_never_local() {
        let t = ["127.0.0.0/8"];
        // A proxy that names a loopback client, or one that copies the client's own claim.
        let c = from("127.0.0.1", &[("x-forwarded-for", "127.0.0.1")], &t);
        assert_eq!((c.addr, c.via), (Some(ip("127.0.0.1")), Via::Relayed));
        assert!(!c.is_local());
        let c = from(
            "127.0.0.1",
            &[("x-forwarded-for", "127.0.0.1")],
            &["10.0.0.0/8"],
        );
        assert!(!c.is_local());
        // A trusted proxy that names nobody.
        let c = from("127.0.0.1", &[], &t);
        assert_eq!(
            (c.addr, c.via),
            (Some(ip("127.0.0.1")), Via::RelayedUnnamed)
        );
        assert!(!c.is_local());
    }

    #[test]
    fn unreadable_or_conflicting_chains_name_nobody() {
        let t = ["10.0.0.0/8"];
        for (h, v) in [
            ("x-forwarded-for", "unknown"),
            ("x-forwarded-for", "203.0.113.9, garbage"),
            ("x-forwarded-for", ""),
            ("forwarded", "for=_hidden"),
            ("forwarded", "proto=https"),
        ] {
            let c = from("10.0.0.1", &[(h, v)], &t);
            assert_eq!(
                (c.addr, c.via),
                (Some(ip("10.0.0.1")), Via::RelayedUnnamed),
                "{h}: {v}"
            );
        }
        // A hop the client invented left of an opaque one does not matter.
        let c = from(
            "10.0.0.1",
            &[("x-forwarded-for", "garbage, 203.0.113.9")],
            &t,
        );
        assert_eq!(c.addr, Some(ip("203.0.113.9")));
        // Two headers must agree: a client can add the one the proxy does not manage.
        let both = [
            ("x-forwarded-for", "203.0.113.9"),
            ("forwarded", "for=198.51.100.1"),
        ];
        let c = from("10.0.0.1", &both, &t);
        assert_eq!((c.addr, c.via), (Some(ip("10.0.0.1")), Via::RelayedUnnamed));
        let agree = [
            ("x-forwarded-for", "203.0.113.9"),
            ("forwarded", "for=203.0.113.9"),
        ];
        assert_eq!(from("10.0.0.1", &agree, &t).addr, Some(ip("203.0.113.9")));
    }

    #[test]
    fn no_peer_is_unknown_and_never_local() {
        let c = resolve(None, &HeaderMap::new(), &TrustedProxies::default());
        assert_eq!(c, Client::UNKNOWN);
        assert!(!c.is_local());
        assert_eq!(c.rate_key(), IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    }
}
