//! The delivery client: one HTTP POST per attempt, over the one TLS stack of the binary
//! (OpenSSL, vendored, through native-tls: libpq already links it), trusting the system's
//! roots plus `--webhook-ca-file`. Its resolver applies the destination policy to every
//! address a host resolves to and hands the connector only the allowed ones, so the address
//! checked is the address connected to; TLS verification, SNI and `Host` keep the URL's
//! name. No proxy from the environment (it would connect elsewhere than what was checked),
//! no redirects (a 3xx is a failed attempt), at most 64 KiB of a receiver's answer read.
//! Depends on storage (the claimed row) and `wire` only.

use std::collections::HashSet;
use std::fmt;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ureq::config::Config;
use ureq::http::Uri;
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig, TlsProvider};
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

use super::policy::Policy;
use super::wire::{secret_key, sign};
use super::{body_of, Failure};
use crate::scim::time::now_micros;
use crate::storage::deliveries::ClaimedRow;

/// The most of a receiver's answer that is read (and thrown away): enough to keep the
/// connection for the next delivery, never a memory cost a receiver chooses.
pub const MAX_ANSWER: u64 = 64 * 1024;

/// The certificates an https receiver's chain may end in.
#[derive(Clone)]
pub struct Trust {
    roots: Arc<Vec<Certificate<'static>>>,
    /// Where the system's roots came from and how many (for the startup log).
    pub system: (String, usize),
    /// How many came from `--webhook-ca-file`.
    pub extra: usize,
}

impl fmt::Debug for Trust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Trust({} system roots from {}, {} from --webhook-ca-file)",
            self.system.1, self.system.0, self.extra
        )
    }
}

/// The certificates of a PEM bundle; each must be a well-formed X.509 certificate.
fn pem_certificates(pem: &[u8], source: &str) -> Result<Vec<Certificate<'static>>, String> {
    let mut certs = Vec::new();
    for (i, item) in ureq::tls::parse_pem(pem).enumerate() {
        match item {
            Ok(PemItem::Certificate(c)) => {
                native_tls::Certificate::from_der(c.der()).map_err(|e| {
                    format!(
                        "{source}: PEM block {} is not an X.509 certificate: {e}",
                        i + 1
                    )
                })?;
                certs.push(c);
            }
            Ok(_) => {} // a key in a bundle is not a root; ignored
            Err(e) => return Err(format!("{source}: not a PEM bundle: {e}")),
        }
    }
    Ok(certs)
}

impl Trust {
    /// No root at all: every https receiver fails with `tls` (for callers that deliver
    /// nothing).
    pub fn none() -> Trust {
        Trust {
            roots: Arc::new(Vec::new()),
            system: ("nowhere".into(), 0),
            extra: 0,
        }
    }

    /// The system's roots, as OpenSSL finds them (`openssl-probe`: `SSL_CERT_FILE` and
    /// `SSL_CERT_DIR` first, then the distribution's bundle), plus every certificate of
    /// `ca_file` (a PEM bundle; an unreadable file, or one without a certificate, is an error
    /// at startup, not a surprise at the first delivery).
    pub fn load(ca_file: Option<&Path>) -> Result<Trust, String> {
        let probe = openssl_probe::probe();
        let mut roots = Vec::new();
        let mut source = String::from("nowhere (no system CA bundle found)");
        if let Some(file) = &probe.cert_file {
            if let Ok(pem) = std::fs::read(file) {
                // A broken system bundle is the system's business: keep what parses.
                roots.extend(ureq::tls::parse_pem(&pem).filter_map(|i| match i {
                    Ok(PemItem::Certificate(c)) => Some(c),
                    _ => None,
                }));
                source = file.display().to_string();
            }
        }
        if roots.is_empty() {
            for dir in &probe.cert_dir {
                let Ok(entries) = std::fs::read_dir(dir) else {
                    continue;
                };
                for entry in entries.flatten() {
                    if let Ok(pem) = std::fs::read(entry.path()) {
                        roots.extend(ureq::tls::parse_pem(&pem).filter_map(|i| match i {
                            Ok(PemItem::Certificate(c)) => Some(c),
                            _ => None,
                        }));
                    }
                }
                source = dir.display().to_string();
            }
        }
        // The bundle and the directory of a distribution hold the same certificates.
        let mut seen = HashSet::new();
        roots.retain(|c| seen.insert(c.der().to_vec()));
        let system = roots.len();
        let mut extra = 0;
        if let Some(path) = ca_file {
            let name = format!("--webhook-ca-file {}", path.display());
            let pem = std::fs::read(path).map_err(|e| format!("{name}: {e}"))?;
            let certs = pem_certificates(&pem, &name)?;
            if certs.is_empty() {
                return Err(format!("{name}: no PEM certificate in it"));
            }
            extra = certs.len();
            roots.extend(certs);
        }
        Ok(Trust {
            roots: Arc::new(roots),
            system: (source, system),
            extra,
        })
    }
}

/// Why the resolver gave no address: every one the host resolves to is refused.
#[derive(Debug)]
struct Refused;

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("every address of the host is refused by the destination policy")
    }
}

impl std::error::Error for Refused {}

/// Resolves as ureq would, then keeps only the addresses the policy allows (all of them for
/// a host name the policy names). The connector connects to what this returns.
#[derive(Debug)]
pub(crate) struct PolicyResolver<R: Resolver = DefaultResolver> {
    policy: Arc<Policy>,
    inner: R,
}

impl<R: Resolver> PolicyResolver<R> {
    pub(crate) fn new(policy: Arc<Policy>, inner: R) -> Self {
        PolicyResolver { policy, inner }
    }
}

impl<R: Resolver> Resolver for PolicyResolver<R> {
    fn resolve(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let resolved = self.inner.resolve(uri, config, timeout)?;
        let host = uri.host().unwrap_or("");
        // An address literal is never a name (`[::1]` keeps its brackets here).
        let is_name = !host.starts_with('[') && host.parse::<std::net::IpAddr>().is_err();
        if is_name && self.policy.allows_name(host) {
            return Ok(resolved);
        }
        let mut kept = self.empty();
        for addr in resolved.iter() {
            if self.policy.allows_addr(addr.ip()).is_ok() {
                kept.push(*addr);
            }
        }
        if kept.is_empty() {
            Err(ureq::Error::Other(Box::new(Refused)))
        } else {
            Ok(kept)
        }
    }
}

/// Called on an attempt's thread before it sends, with the URL. For tests only (to make an
/// attempt panic); configuration never sets it and no request can reach it.
pub type AttemptHook = Arc<dyn Fn(&str) + Send + Sync>;

/// The HTTP side of deliveries: one agent (its connection pool shared by every attempt).
#[derive(Clone)]
pub struct Client {
    agent: ureq::Agent,
    hook: Option<AttemptHook>,
}

impl Client {
    pub fn new(
        timeout: Duration,
        connections: usize,
        trust: &Trust,
        policy: Arc<Policy>,
        hook: Option<AttemptHook>,
    ) -> Client {
        Client::with_resolver(
            timeout,
            connections,
            trust,
            hook,
            PolicyResolver::new(policy, DefaultResolver::default()),
        )
    }

    pub(crate) fn with_resolver(
        timeout: Duration,
        connections: usize,
        trust: &Trust,
        hook: Option<AttemptHook>,
        resolver: impl Resolver,
    ) -> Client {
        let tls = TlsConfig::builder()
            .provider(TlsProvider::NativeTls)
            .root_certs(RootCerts::Specific(trust.roots.clone()))
            .build();
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .proxy(None)
            .tls_config(tls)
            .user_agent(concat!("Scimitar-Webhooks/", env!("CARGO_PKG_VERSION")))
            .max_idle_connections(connections.max(1))
            .max_idle_connections_per_host(connections.max(1))
            .build();
        Client {
            agent: ureq::Agent::with_parts(config, DefaultConnector::default(), resolver),
            hook,
        }
    }

    /// One POST of a delivery with the Standard Webhooks headers; Ok on a 2xx answer.
    pub fn attempt(&self, d: &ClaimedRow) -> Result<(), Failure> {
        if let Some(hook) = &self.hook {
            hook(&d.url);
        }
        let body = body_of(d).map_err(|e| {
            log::error!("webhook delivery {}: cannot render its event: {e}", d.id);
            Failure::Internal
        })?;
        let key = secret_key(&d.secret).ok_or_else(|| {
            log::error!(
                "webhook subscription {}: its secret is malformed",
                d.webhook_id
            );
            Failure::Internal
        })?;
        let ts = now_micros() / 1_000_000;
        let sig = sign(&key, &d.event.id, ts, &body);
        let resp = self
            .agent
            .post(&d.url)
            .header("content-type", "application/json")
            .header("webhook-id", &d.event.id)
            .header("webhook-timestamp", &ts.to_string())
            .header("webhook-signature", &sig)
            .send(body.as_str())
            .map_err(|e| {
                let f = Failure::of(&e);
                // For the operator; the tenant sees only the word. No URL (it may carry a
                // token in its query).
                log::info!(
                    "webhook delivery {} of subscription {} (tenant {}): {f}: {e}",
                    d.id,
                    d.webhook_id,
                    d.tenant_id
                );
                f
            })?;
        let status = resp.status();
        // Read (and drop) a bounded part of the answer, so the connection can carry the next
        // delivery; a longer answer only costs that connection.
        let _ = std::io::copy(
            &mut resp.into_body().into_reader().take(MAX_ANSWER),
            &mut std::io::sink(),
        );
        if status.is_success() {
            Ok(())
        } else {
            Err(Failure::Http(status.as_u16()))
        }
    }
}

impl Failure {
    /// The word for a client error. Anything that is neither a timeout, a TLS failure nor
    /// the policy is `connect`: refused, reset, unknown name, or an answer that is not
    /// HTTP; a tenant learns no more than that from it.
    fn of(e: &ureq::Error) -> Failure {
        use ureq::Error as E;
        match e {
            E::Timeout(_) => Failure::Timeout,
            E::Io(io)
                if matches!(
                    io.kind(),
                    std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
                ) =>
            {
                Failure::Timeout
            }
            E::Other(inner) if inner.is::<Refused>() => Failure::Refused,
            E::Tls(_) | E::NativeTls(_) | E::Der(_) | E::Pem(_) | E::TlsRequired => Failure::Tls,
            _ => Failure::Connect,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{SocketAddr, TcpListener};
    use std::sync::atomic::{AtomicUsize, Ordering};

    use crate::storage::feed::FeedRow;

    /// Resolves every name to one address, as a DNS server rebinding a name would.
    #[derive(Debug)]
    struct Fixed(SocketAddr);

    impl Resolver for Fixed {
        fn resolve(
            &self,
            _: &Uri,
            _: &Config,
            _: NextTimeout,
        ) -> Result<ResolvedSocketAddrs, ureq::Error> {
            let mut v = self.empty();
            v.push(self.0);
            Ok(v)
        }
    }

    fn row(url: &str) -> ClaimedRow {
        ClaimedRow {
            id: "d1".into(),
            webhook_id: "w1".into(),
            tenant_id: "t1".into(),
            attempts: 0,
            created: 0,
            url: url.into(),
            secret: wire_secret(),
            event: FeedRow {
                seq: 1,
                id: "e1".into(),
                kind: "account.activated".into(),
                account_id: None,
                resource_type: None,
                resource_id: None,
                at: 0,
                data: "{}".into(),
                credential_id: None,
            },
        }
    }

    fn wire_secret() -> String {
        super::super::wire::generate_secret()
    }

    /// A listener on loopback that counts the connections it accepts and answers 204.
    fn listener() -> (SocketAddr, Arc<AtomicUsize>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let n = Arc::new(AtomicUsize::new(0));
        let seen = n.clone();
        std::thread::spawn(move || {
            for c in l.incoming().flatten() {
                seen.fetch_add(1, Ordering::SeqCst);
                use std::io::{BufRead, BufReader, Write};
                let mut r = BufReader::new(c.try_clone().unwrap());
                let mut len = 0;
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; len];
                let _ = r.read_exact(&mut body);
                let mut c = c;
                let _ = c.write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n");
            }
        });
        (addr, n)
    }

    fn trust() -> Trust {
        Trust::none()
    }

    /// A name that resolves to a refused address is refused at delivery, and nothing
    /// connects to it; the same name under a policy that allows the address is delivered.
    #[test]
    fn a_name_resolving_to_a_refused_address_is_never_connected_to() {
        let (addr, accepted) = listener();
        let url = format!("http://rebound.example:{}/hook", addr.port());
        let refused = PolicyResolver::new(Arc::new(Policy::default()), Fixed(addr));
        let client = Client::with_resolver(Duration::from_secs(2), 1, &trust(), None, refused);
        assert_eq!(client.attempt(&row(&url)), Err(Failure::Refused));
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(accepted.load(Ordering::SeqCst), 0);

        let loopback: Policy = "loopback".parse().unwrap();
        let allowed = PolicyResolver::new(Arc::new(loopback), Fixed(addr));
        let client = Client::with_resolver(Duration::from_secs(2), 1, &trust(), None, allowed);
        assert_eq!(client.attempt(&row(&url)), Ok(()));
        assert_eq!(accepted.load(Ordering::SeqCst), 1);

        // A name glob allows the name whatever it resolves to.
        let named: Policy = "*.example".parse().unwrap();
        let by_name = PolicyResolver::new(Arc::new(named), Fixed(addr));
        let client = Client::with_resolver(Duration::from_secs(2), 1, &trust(), None, by_name);
        assert_eq!(client.attempt(&row(&url)), Ok(()));
    }

    #[test]
    fn addresses_are_checked_whatever_the_spelling() {
        let (addr, accepted) = listener();
        let client = Client::new(
            Duration::from_secs(2),
            1,
            &trust(),
            Arc::new(Policy::default()),
            None,
        );
        for host in [
            "127.0.0.1",
            "localhost",
            "[::ffff:127.0.0.1]",
            "2130706433",
            "127.1",
        ] {
            let url = format!("http://{host}:{}/", addr.port());
            assert_eq!(client.attempt(&row(&url)), Err(Failure::Refused), "{url}");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn failures_are_told_in_a_few_words() {
        // A closed port.
        let closed = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let loopback = Arc::new("loopback".parse::<Policy>().unwrap());
        let client = Client::new(Duration::from_millis(500), 1, &trust(), loopback, None);
        let url = format!("http://127.0.0.1:{}/", closed.port());
        assert_eq!(client.attempt(&row(&url)), Err(Failure::Connect));
        // A port that accepts and never answers.
        let silent = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://127.0.0.1:{}/", silent.local_addr().unwrap().port());
        assert_eq!(client.attempt(&row(&url)), Err(Failure::Timeout));
        // https to a plain HTTP port: the handshake fails.
        let (addr, _) = listener();
        let url = format!("https://127.0.0.1:{}/", addr.port());
        assert_eq!(client.attempt(&row(&url)), Err(Failure::Tls));
        for (f, word) in [
            (Failure::Timeout, "timeout"),
            (Failure::Connect, "connect"),
            (Failure::Tls, "tls"),
            (Failure::Http(302), "http 302"),
            (Failure::Refused, "refused by destination policy"),
            (Failure::Internal, "internal error"),
        ] {
            assert_eq!(f.to_string(), word);
        }
    }

    #[test]
    fn a_ca_file_must_hold_certificates() {
        let dir = std::env::temp_dir().join(format!("scimitar-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = Trust::load(Some(&empty)).unwrap_err();
        assert!(
            e.contains("--webhook-ca-file") && e.contains("no PEM certificate"),
            "{e}"
        );
        let missing = dir.join("missing.pem");
        let e = Trust::load(Some(&missing)).unwrap_err();
        assert!(e.contains("missing.pem"), "{e}");
        let garbage = dir.join("garbage.pem");
        std::fs::write(
            &garbage,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let e = Trust::load(Some(&garbage)).unwrap_err();
        assert!(e.contains("not an X.509 certificate"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
