//! The destination policy (`--webhook-allowed-hosts`, modelled on Gitea's webhook
//! `ALLOWED_HOST_LIST`): which URLs a subscription may name, and which addresses a delivery
//! may connect to. Pure: parsing, address classes and matching; depends on nothing of the
//! crate. The same policy is applied twice: to the URL when a subscription is registered
//! (`check_url`), and by the delivery client's resolver to every address a host name
//! resolves to, right before it connects (`allows_name`, `allows_addr`), so a name that
//! later resolves elsewhere (DNS rebinding) is still refused.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// The flag that sets the policy, named in every refusal.
pub const FLAG: &str = "--webhook-allowed-hosts (SCIMITAR_WEBHOOK_ALLOWED_HOSTS)";

/// The longest URL a subscription may name.
const MAX_URL: usize = 2048;

/// What an address is, for the policy. `External` is public unicast; everything else is
/// refused unless the policy names its class (`loopback`, `private`) or a CIDR holding it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    External,
    Loopback,
    /// RFC 1918, RFC 4193 (fc00::/7) and shared address space (100.64.0.0/10, RFC 6598).
    Private,
    /// 169.254.0.0/16 and fe80::/10 (cloud metadata services live here).
    LinkLocal,
    /// 0.0.0.0/8 and `::` ("this host": a connection to it reaches the local machine).
    Unspecified,
    Multicast,
    Broadcast,
    /// Documentation, benchmarking, protocol assignments, the unallocated rest: IANA's
    /// special-purpose registries.
    Reserved,
}

impl Class {
    fn name(self) -> &'static str {
        match self {
            Class::External => "public",
            Class::Loopback => "loopback",
            Class::Private => "private",
            Class::LinkLocal => "link-local",
            Class::Unspecified => "unspecified",
            Class::Multicast => "multicast",
            Class::Broadcast => "broadcast",
            Class::Reserved => "reserved",
        }
    }
}

const fn v4(a: u8, b: u8, c: u8, d: u8, len: u8) -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), len)
}

#[expect(
    clippy::too_many_arguments,
    reason = "the eight groups of an IPv6 address"
)]
const fn v6(a: u16, b: u16, c: u16, d: u16, e: u16, f: u16, g: u16, h: u16, len: u8) -> Ipv6Net {
    Ipv6Net::new_assert(Ipv6Addr::new(a, b, c, d, e, f, g, h), len)
}

/// IPv4 special-purpose blocks (RFC 6890 and IANA's registry), first match wins.
const V4_CLASSES: [(Ipv4Net, Class); 16] = [
    (v4(0, 0, 0, 0, 8), Class::Unspecified),
    (v4(127, 0, 0, 0, 8), Class::Loopback),
    (v4(10, 0, 0, 0, 8), Class::Private),
    (v4(172, 16, 0, 0, 12), Class::Private),
    (v4(192, 168, 0, 0, 16), Class::Private),
    (v4(100, 64, 0, 0, 10), Class::Private),
    (v4(169, 254, 0, 0, 16), Class::LinkLocal),
    (v4(224, 0, 0, 0, 4), Class::Multicast),
    (v4(255, 255, 255, 255, 32), Class::Broadcast),
    (v4(240, 0, 0, 0, 4), Class::Reserved),
    (v4(192, 0, 0, 0, 24), Class::Reserved),
    (v4(192, 0, 2, 0, 24), Class::Reserved),
    (v4(192, 88, 99, 0, 24), Class::Reserved),
    (v4(198, 18, 0, 0, 15), Class::Reserved),
    (v4(198, 51, 100, 0, 24), Class::Reserved),
    (v4(203, 0, 113, 0, 24), Class::Reserved),
];

/// IPv6 special-purpose blocks, after the forms that embed an IPv4 address are unwrapped
/// (`embedded_v4`); first match wins. Outside 2000::/3 nothing is public.
const V6_CLASSES: [(Ipv6Net, Class); 10] = [
    (v6(0, 0, 0, 0, 0, 0, 0, 0, 128), Class::Unspecified),
    (v6(0, 0, 0, 0, 0, 0, 0, 1, 128), Class::Loopback),
    (v6(0xfc00, 0, 0, 0, 0, 0, 0, 0, 7), Class::Private),
    (v6(0xfe80, 0, 0, 0, 0, 0, 0, 0, 10), Class::LinkLocal),
    (v6(0xff00, 0, 0, 0, 0, 0, 0, 0, 8), Class::Multicast),
    // IETF protocol assignments (Teredo, benchmarking, ORCHID...) and documentation.
    (v6(0x2001, 0, 0, 0, 0, 0, 0, 0, 23), Class::Reserved),
    (v6(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0, 32), Class::Reserved),
    (v6(0x3fff, 0, 0, 0, 0, 0, 0, 0, 20), Class::Reserved),
    // NAT64 for local use (RFC 8215): what it reaches is the operator's own network.
    (v6(0x64, 0xff9b, 1, 0, 0, 0, 0, 0, 48), Class::Reserved),
    (v6(0x2000, 0, 0, 0, 0, 0, 0, 0, 3), Class::External),
];

/// The IPv4 address an IPv6 address stands for, when it embeds one: IPv4-mapped
/// (::ffff:a.b.c.d, how a dual-stack socket reaches IPv4), IPv4-compatible (::a.b.c.d,
/// deprecated by RFC 4291 but still routed by some stacks), NAT64 (64:ff9b::/96, RFC 6052)
/// and 6to4 (2002::/16, RFC 3056). `::` and `::1` are themselves, not IPv4.
pub fn embedded_v4(a: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = a.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(low),
        [0, 0, 0, 0, 0, 0, 0, 0] | [0, 0, 0, 0, 0, 0, 0, 1] => None,
        [0, 0, 0, 0, 0, 0, _, _] => Some(low),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(low),
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::new(
            (hi >> 8) as u8,
            hi as u8,
            (lo >> 8) as u8,
            lo as u8,
        )),
        _ => None,
    }
}

/// The class of an address (an IPv6 form that embeds an IPv4 address is that address).
pub fn classify(ip: IpAddr) -> Class {
    match ip {
        IpAddr::V4(a) => V4_CLASSES
            .iter()
            .find(|(net, _)| net.contains(&a))
            .map_or(Class::External, |(_, c)| *c),
        IpAddr::V6(a) => match embedded_v4(a) {
            Some(v4) => classify(IpAddr::V4(v4)),
            None => V6_CLASSES
                .iter()
                .find(|(net, _)| net.contains(&a))
                .map_or(Class::Reserved, |(_, c)| *c),
        },
    }
}

/// Why a URL or an address is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not a URL at all, or too long.
    Malformed(String),
    Scheme(String),
    Credentials,
    Fragment,
    /// The host is an address (or a name, like `localhost`, that is one) of a class the
    /// policy does not allow.
    Address {
        host: String,
        class: Class,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Malformed(why) => write!(f, "is not a valid URL ({why})"),
            Refusal::Scheme(s) => {
                write!(f, "has the scheme `{s}`: only http and https are delivered")
            }
            Refusal::Credentials => f.write_str(
                "carries credentials (user:password@): they would be sent in clear to every \
                 hop that logs URLs; authenticate deliveries by their signature instead",
            ),
            Refusal::Fragment => f.write_str("has a fragment (#...), which is never sent; drop it"),
            Refusal::Address { host, class } => write!(
                f,
                "is refused by the destination policy: {host} is a {} address, which the \
                 server's {FLAG} does not allow",
                class.name()
            ),
        }
    }
}

/// A parsed `--webhook-allowed-hosts`: a comma list of `external` (public unicast
/// addresses, the default), `loopback`, `private`, `*` (anything), CIDRs (a bare address is
/// a /32 or /128) and host names with `*` globs (a matching name is allowed whatever it
/// resolves to).
#[derive(Clone, Debug)]
pub struct Policy {
    any: bool,
    external: bool,
    loopback: bool,
    private: bool,
    nets: Vec<IpNet>,
    names: GlobSet,
    text: String,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            any: false,
            external: true,
            loopback: false,
            private: false,
            nets: Vec::new(),
            names: GlobSet::empty(),
            text: "external".into(),
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for Policy {
    type Err = String;

    fn from_str(s: &str) -> Result<Policy, String> {
        let mut p = Policy {
            external: false,
            text: s.trim().to_string(),
            ..Policy::default()
        };
        let mut names = GlobSetBuilder::new();
        let entries: Vec<&str> = s
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .collect();
        if entries.is_empty() {
            return Err(format!(
                "{FLAG} is empty: name at least one of external, loopback, private, *, a CIDR or a host name"
            ));
        }
        for e in entries {
            match e.to_ascii_lowercase().as_str() {
                "*" => p.any = true,
                "external" => p.external = true,
                "loopback" => p.loopback = true,
                "private" => p.private = true,
                lower => {
                    if let Ok(net) = lower.parse::<IpNet>() {
                        p.nets.push(net.trunc());
                    } else if let Ok(ip) = lower.parse::<IpAddr>() {
                        p.nets.push(IpNet::from(ip));
                    } else if lower.contains(['/', ':'])
                        || lower
                            .chars()
                            .all(|c| c.is_ascii_digit() || c == '.' || c == '*')
                    {
                        return Err(format!(
                            "{FLAG}: `{e}` is not a CIDR (e.g. 10.20.0.0/16, fd00::/8); address \
                             ranges are written as CIDRs, not globs"
                        ));
                    } else if lower
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '*' | '?'))
                    {
                        let glob = GlobBuilder::new(lower.trim_end_matches('.'))
                            .case_insensitive(true)
                            .build()
                            .map_err(|err| format!("{FLAG}: `{e}`: {err}"))?;
                        names.add(glob);
                    } else {
                        return Err(format!(
                            "{FLAG}: `{e}` is none of external, loopback, private, *, a CIDR or a \
                             host name (letters, digits, `-`, `.`, with `*` globs)"
                        ));
                    }
                }
            }
        }
        p.names = names.build().map_err(|err| format!("{FLAG}: {err}"))?;
        Ok(p)
    }
}

impl Policy {
    /// Whether a host name (never an address) is allowed by one of the name globs: then it
    /// is delivered to whatever it resolves to.
    pub fn allows_name(&self, host: &str) -> bool {
        self.any
            || self
                .names
                .is_match(host.trim_end_matches('.').to_ascii_lowercase())
    }

    /// Whether a delivery may connect to `ip`; else its class.
    pub fn allows_addr(&self, ip: IpAddr) -> Result<(), Class> {
        let class = classify(ip);
        let allowed = self.any
            || match class {
                Class::External => self.external,
                Class::Loopback => self.loopback,
                Class::Private => self.private,
                _ => false,
            }
            || self.in_nets(ip);
        if allowed {
            Ok(())
        } else {
            Err(class)
        }
    }

    /// A CIDR of the policy holds the address, or the IPv4 address it embeds.
    fn in_nets(&self, ip: IpAddr) -> bool {
        let v4 = match ip {
            IpAddr::V6(a) => embedded_v4(a).map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        self.nets
            .iter()
            .any(|n| n.contains(&ip) || v4.is_some_and(|v| n.contains(&v)))
    }

    /// Checks a subscription's URL, and returns it normalised (WHATWG URL serialisation: the
    /// host in its canonical form, so `http://0x7f.1/` reads `http://127.0.0.1/`); that
    /// form is stored and delivered to, so what was checked is what is sent.
    ///
    /// Only http and https, no credentials, no fragment. A host that is an address, in any
    /// spelling a URL parser or `inet_aton` accepts (`2130706433`, `0x7f.1`, `127.1`,
    /// `0`, `[::ffff:127.0.0.1]`), is checked here; a name is checked against the name
    /// globs, and `localhost` names (RFC 6761 §6.3) are loopback. Other names are not
    /// resolved here (a request never waits on DNS, nor learns what an internal name
    /// resolves to): their addresses are checked at each delivery.
    pub fn check_url(&self, raw: &str) -> Result<String, Refusal> {
        if raw.len() > MAX_URL {
            return Err(Refusal::Malformed(format!(
                "longer than {MAX_URL} characters"
            )));
        }
        let url = url::Url::parse(raw).map_err(|e| Refusal::Malformed(e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Refusal::Scheme(url.scheme().to_string()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Refusal::Credentials);
        }
        if url.fragment().is_some() {
            return Err(Refusal::Fragment);
        }
        let refused = |host: &str, class| Refusal::Address {
            host: host.to_string(),
            class,
        };
        match url.host() {
            None => return Err(Refusal::Malformed("it has no host".into())),
            Some(url::Host::Ipv4(a)) => self
                .allows_addr(IpAddr::V4(a))
                .map_err(|c| refused(&a.to_string(), c))?,
            Some(url::Host::Ipv6(a)) => self
                .allows_addr(IpAddr::V6(a))
                .map_err(|c| refused(&format!("[{a}]"), c))?,
            Some(url::Host::Domain(name)) => {
                let name = name.trim_end_matches('.');
                let local = name == "localhost" || name.ends_with(".localhost");
                if local && !self.allows_name(name) && !self.loopback {
                    return Err(refused(name, Class::Loopback));
                }
            }
        }
        Ok(url.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn addresses_are_classified() {
        use Class::*;
        for (addr, class) in [
            ("8.8.8.8", External),
            ("1.1.1.1", External),
            ("127.0.0.1", Loopback),
            ("127.255.0.9", Loopback),
            ("10.0.0.1", Private),
            ("172.16.5.4", Private),
            ("172.32.0.1", External),
            ("192.168.1.1", Private),
            ("100.64.0.1", Private),
            ("100.128.0.1", External),
            ("169.254.169.254", LinkLocal),
            ("0.0.0.0", Unspecified),
            ("0.1.2.3", Unspecified),
            ("224.0.0.1", Multicast),
            ("239.255.255.250", Multicast),
            ("255.255.255.255", Broadcast),
            ("240.0.0.1", Reserved),
            ("192.0.2.10", Reserved),
            ("198.18.0.1", Reserved),
            ("2606:4700:4700::1111", External),
            ("::1", Loopback),
            ("::", Unspecified),
            ("fd00::1", Private),
            ("fc12::1", Private),
            ("fe80::1", LinkLocal),
            ("ff02::1", Multicast),
            ("2001:db8::1", Reserved),
            ("2001::1", Reserved),
            ("64:ff9b:1::1", Reserved),
            ("100::1", Reserved),
            // IPv6 forms of IPv4 addresses are those addresses.
            ("::ffff:127.0.0.1", Loopback),
            ("::ffff:169.254.169.254", LinkLocal),
            ("::ffff:10.1.2.3", Private),
            ("::ffff:8.8.8.8", External),
            ("::127.0.0.1", Loopback),
            ("::10.0.0.1", Private),
            ("::0.0.0.2", Unspecified),
            ("64:ff9b::7f00:1", Loopback),
            ("64:ff9b::808:808", External),
            ("2002:7f00:1::", Loopback),
            ("2002:a9fe:a9fe::1", LinkLocal),
            ("2002:808:808::1", External),
        ] {
            assert_eq!(classify(ip(addr)), class, "{addr}");
        }
    }

    #[test]
    fn the_default_allows_only_public_addresses() {
        let p = Policy::default();
        assert_eq!(p.to_string(), "external");
        assert!(p.allows_addr(ip("8.8.8.8")).is_ok());
        assert!(p.allows_addr(ip("2606:4700::1")).is_ok());
        for refused in [
            "127.0.0.1",
            "::1",
            "10.0.0.1",
            "169.254.169.254",
            "0.0.0.0",
            "::ffff:127.0.0.1",
            "255.255.255.255",
            "224.0.0.1",
        ] {
            assert!(p.allows_addr(ip(refused)).is_err(), "{refused}");
        }
        let parsed: Policy = "external".parse().unwrap();
        assert!(parsed.allows_addr(ip("8.8.8.8")).is_ok());
        assert!(parsed.allows_addr(ip("127.0.0.1")).is_err());
    }

    #[test]
    fn keywords_cidrs_and_globs_widen_it() {
        let p: Policy = "loopback, 10.20.0.0/16, fd00::/8, 192.0.2.7, *.hooks.internal"
            .parse()
            .unwrap();
        assert!(p.allows_addr(ip("127.0.0.1")).is_ok());
        assert!(p.allows_addr(ip("::1")).is_ok());
        assert!(p.allows_addr(ip("::ffff:127.0.0.1")).is_ok());
        assert!(p.allows_addr(ip("10.20.3.4")).is_ok());
        assert!(p.allows_addr(ip("::ffff:10.20.3.4")).is_ok());
        assert_eq!(p.allows_addr(ip("10.21.3.4")), Err(Class::Private));
        assert!(p.allows_addr(ip("fd00::5")).is_ok());
        assert!(p.allows_addr(ip("192.0.2.7")).is_ok());
        assert_eq!(p.allows_addr(ip("192.0.2.8")), Err(Class::Reserved));
        // `external` was not named, so public addresses are refused too.
        assert_eq!(p.allows_addr(ip("8.8.8.8")), Err(Class::External));
        assert!(p.allows_name("a.hooks.internal"));
        assert!(p.allows_name("A.B.Hooks.Internal."));
        assert!(!p.allows_name("hooks.internal"));
        assert!(!p.allows_name("evil.example"));

        let private: Policy = "external,private".parse().unwrap();
        assert!(private.allows_addr(ip("192.168.0.9")).is_ok());
        assert!(private.allows_addr(ip("100.64.1.1")).is_ok());
        assert!(private.allows_addr(ip("fd12::1")).is_ok());
        assert_eq!(private.allows_addr(ip("127.0.0.1")), Err(Class::Loopback));
        assert_eq!(
            private.allows_addr(ip("169.254.169.254")),
            Err(Class::LinkLocal)
        );

        let any: Policy = "*".parse().unwrap();
        assert!(any.allows_addr(ip("169.254.169.254")).is_ok());
        assert!(any.allows_name("anything.at.all"));
    }

    #[test]
    fn bad_policies_are_refused_naming_the_entry() {
        for (bad, names) in [
            ("", "empty"),
            (" , ", "empty"),
            ("10.0.0.0/33", "10.0.0.0/33"),
            ("192.168.100.*", "192.168.100.*"),
            ("fd00::/129", "fd00::/129"),
            ("hooks_example.com", "hooks_example.com"),
            ("https://x.example", "https://x.example"),
        ] {
            let e = bad.parse::<Policy>().unwrap_err();
            assert!(e.contains(names) && e.contains(FLAG), "{bad}: {e}");
        }
    }

    #[test]
    fn urls_are_checked_and_normalised() {
        let p = Policy::default();
        assert_eq!(
            p.check_url("https://Hooks.Example.com/scim?x=1").unwrap(),
            "https://hooks.example.com/scim?x=1"
        );
        assert_eq!(
            p.check_url("http://93.184.216.34:8080").unwrap(),
            "http://93.184.216.34:8080/"
        );
        for (url, want) in [
            ("ftp://example.com/", Refusal::Scheme("ftp".into())),
            ("file:///etc/passwd", Refusal::Scheme("file".into())),
            ("https://user:pw@example.com/", Refusal::Credentials),
            ("https://user@example.com/", Refusal::Credentials),
            ("https://example.com/#x", Refusal::Fragment),
        ] {
            assert_eq!(p.check_url(url), Err(want), "{url}");
        }
        for bad in [
            "example.com",
            "https://",
            "http://exa mple.com/",
            "http://[::1/",
        ] {
            assert!(
                matches!(p.check_url(bad), Err(Refusal::Malformed(_))),
                "{bad}"
            );
        }
        let long = format!("https://example.com/{}", "a".repeat(2100));
        assert!(matches!(p.check_url(&long), Err(Refusal::Malformed(_))));
    }

    /// Every spelling of a refused address the issue lists, refused by default and allowed
    /// once its class is.
    #[test]
    fn every_spelling_of_an_internal_address_is_refused() {
        use Class::*;
        let p = Policy::default();
        let cases = [
            ("http://127.0.0.1:5432/", "127.0.0.1", Loopback),
            ("http://localhost:8080/", "localhost", Loopback),
            ("http://api.localhost/", "api.localhost", Loopback),
            ("http://[::1]/", "[::1]", Loopback),
            ("http://2130706433/", "127.0.0.1", Loopback),
            ("http://0x7f.1/", "127.0.0.1", Loopback),
            ("http://0x7f000001/", "127.0.0.1", Loopback),
            ("http://0177.0.0.1/", "127.0.0.1", Loopback),
            ("http://127.1/", "127.0.0.1", Loopback),
            ("http://[::ffff:127.0.0.1]/", "[::ffff:127.0.0.1]", Loopback),
            ("http://[::ffff:7f00:1]/", "[::ffff:127.0.0.1]", Loopback),
            ("http://[::127.0.0.1]/", "[::7f00:1]", Loopback),
            (
                "http://169.254.169.254/latest/meta-data/",
                "169.254.169.254",
                LinkLocal,
            ),
            ("http://[fe80::1]/", "[fe80::1]", LinkLocal),
            (
                "http://[::ffff:169.254.169.254]/",
                "[::ffff:169.254.169.254]",
                LinkLocal,
            ),
            ("http://10.0.0.1/", "10.0.0.1", Private),
            ("http://0/", "0.0.0.0", Unspecified),
            ("http://0.0.0.0/", "0.0.0.0", Unspecified),
            ("http://[::]/", "[::]", Unspecified),
            ("http://224.0.0.1/", "224.0.0.1", Multicast),
            ("http://[ff02::1]/", "[ff02::1]", Multicast),
            ("http://255.255.255.255/", "255.255.255.255", Broadcast),
            ("http://0xffffffff/", "255.255.255.255", Broadcast),
        ];
        for (url, host, class) in cases {
            let want = Refusal::Address {
                host: host.into(),
                class,
            };
            assert_eq!(p.check_url(url), Err(want.clone()), "{url}");
            let text = want.to_string();
            assert!(text.contains(FLAG) && text.contains(class.name()), "{text}");
        }
        let loopback: Policy = "loopback".parse().unwrap();
        for url in [
            "http://127.1/",
            "http://2130706433/",
            "http://[::ffff:127.0.0.1]/",
        ] {
            assert!(loopback.check_url(url).is_ok(), "{url}");
        }
        assert_eq!(
            loopback.check_url("http://0x7f.1:9000/x").unwrap(),
            "http://127.0.0.1:9000/x"
        );
        assert!(loopback.check_url("http://localhost/").is_ok());
        assert!(loopback.check_url("http://169.254.169.254/").is_err());
        let any: Policy = "*".parse().unwrap();
        assert!(any.check_url("http://0/").is_ok());
    }
}
