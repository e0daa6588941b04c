//! Which proxy a request goes through: `--proxy URL`, else the standard
//! variables `HTTPS_PROXY` / `HTTP_PROXY` / `ALL_PROXY` (either case), less
//! the hosts `NO_PROXY` names (domains and their subdomains, IP addresses,
//! CIDR blocks, `host:port`, or `*` for none at all).
//!
//! The choice is the process's: made once at start ([`install`]) and read by
//! both engines (the HTTP/1.1 engine forwards `http://` requests to the
//! proxy in absolute form; reqwest forwards them too, and tunnels `https://`
//! with CONNECT) and by the side clients (metrics scrapes, sinks). The
//! built-in mock (`--mock`) is never proxied. Credentials in a proxy URL go
//! in `Proxy-Authorization` and are never printed: [`Proxy::shown`] is the
//! URL without them.

use std::net::IpAddr;
use std::sync::OnceLock;

use base64::Engine as _;

/// A proxy to send requests through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxy {
    /// The URL, credentials included (for reqwest).
    pub url: reqwest::Url,
    pub host: String,
    pub port: u16,
    /// `Basic …` from the URL's credentials.
    pub auth: Option<String>,
}

impl Proxy {
    /// Parse a proxy URL; `host:port` alone means `http://host:port`.
    pub fn parse(s: &str, from: &str) -> Result<Proxy, String> {
        let with_scheme = if s.contains("://") {
            s.to_string()
        } else {
            format!("http://{s}")
        };
        let url = reqwest::Url::parse(&with_scheme)
            .map_err(|e| format!("{from}: not a proxy URL ({e}); write http://host:port"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "{from}: periscope speaks to http:// and https:// proxies, not {}://",
                url.scheme()
            ));
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| format!("{from}: the proxy URL has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = url.port_or_known_default().unwrap_or(80);
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .to_string()
        };
        let auth = (!url.username().is_empty()).then(|| {
            let pair = format!(
                "{}:{}",
                decode(url.username()),
                decode(url.password().unwrap_or(""))
            );
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            )
        });
        Ok(Proxy {
            url,
            host,
            port,
            auth,
        })
    }

    /// The URL as it may be shown: no user name, no password.
    pub fn shown(&self) -> String {
        let mut u = self.url.clone();
        let _ = u.set_username("");
        let _ = u.set_password(None);
        u.as_str().trim_end_matches('/').to_string()
    }
}

/// One `NO_PROXY` entry.
#[derive(Debug, Clone, PartialEq)]
enum Skip {
    All,
    /// A domain and its subdomains (`example.com`, `.example.com`).
    Domain(String),
    Ip(IpAddr),
    Net(IpAddr, u8),
    HostPort(String, u16),
}

/// The proxies of the process and the hosts they skip.
#[derive(Debug, Clone, Default)]
pub struct Proxies {
    /// `--proxy`: every scheme.
    flag: Option<Proxy>,
    http: Option<Proxy>,
    https: Option<Proxy>,
    skip: Vec<Skip>,
}

impl Proxies {
    /// From `--proxy` and the environment (`var` reads a variable).
    pub fn from(flag: Option<&str>, var: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let either = |name: &str| {
            var(&name.to_ascii_lowercase())
                .or_else(|| var(name))
                .filter(|v| !v.trim().is_empty())
        };
        let env = |name: &str| -> Result<Option<Proxy>, String> {
            either(name)
                .map(|v| Proxy::parse(v.trim(), name))
                .transpose()
        };
        let all = env("ALL_PROXY")?;
        Ok(Proxies {
            flag: flag.map(|f| Proxy::parse(f, "--proxy")).transpose()?,
            http: env("HTTP_PROXY")?.or_else(|| all.clone()),
            https: env("HTTPS_PROXY")?.or(all),
            skip: either("NO_PROXY").map_or_else(Vec::new, |v| no_proxy(&v)),
        })
    }

    /// The proxy for a request to `url`, if any.
    pub fn for_url(&self, url: &reqwest::Url) -> Option<&Proxy> {
        let proxy = self.flag.as_ref().or(match url.scheme() {
            "https" => self.https.as_ref(),
            _ => self.http.as_ref(),
        })?;
        let host = url
            .host_str()?
            .trim_start_matches('[')
            .trim_end_matches(']');
        let port = url.port_or_known_default().unwrap_or(80);
        let mock = DIRECT
            .read()
            .is_ok_and(|d| d.iter().any(|(h, p)| h == host && *p == port));
        (!mock && !self.skips(host, port)).then_some(proxy)
    }

    fn skips(&self, host: &str, port: u16) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let ip = host.parse::<IpAddr>().ok();
        self.skip.iter().any(|s| match s {
            Skip::All => true,
            Skip::Domain(d) => host == *d || host.ends_with(&format!(".{d}")),
            Skip::Ip(a) => ip == Some(*a),
            Skip::Net(net, bits) => ip.is_some_and(|a| in_net(a, *net, *bits)),
            Skip::HostPort(h, p) => host == *h && port == *p,
        })
    }

    /// Whether any proxy is set.
    pub fn any(&self) -> bool {
        self.flag.is_some() || self.http.is_some() || self.https.is_some()
    }
}

/// Parse `NO_PROXY`: comma- or space-separated entries.
fn no_proxy(v: &str) -> Vec<Skip> {
    v.split([',', ' '])
        .map(|e| e.trim().to_ascii_lowercase())
        .filter(|e| !e.is_empty())
        .map(|e| {
            if e == "*" {
                return Skip::All;
            }
            if let Some((net, bits)) = e.split_once('/') {
                if let (Ok(net), Ok(bits)) = (net.parse::<IpAddr>(), bits.parse::<u8>()) {
                    return Skip::Net(net, bits);
                }
            }
            let bare = e.trim_start_matches('[').trim_end_matches(']');
            if let Ok(ip) = bare.parse::<IpAddr>() {
                return Skip::Ip(ip);
            }
            if let Some((h, p)) = e.rsplit_once(':') {
                if let Ok(p) = p.parse::<u16>() {
                    let h = h.trim_start_matches('[').trim_end_matches(']');
                    return Skip::HostPort(h.trim_start_matches('.').to_string(), p);
                }
            }
            Skip::Domain(
                e.trim_start_matches("*.")
                    .trim_start_matches('.')
                    .to_string(),
            )
        })
        .collect()
}

fn in_net(a: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (a, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) if bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) if bits <= 128 => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

static PROXIES: OnceLock<Proxies> = OnceLock::new();
/// The in-process mocks' addresses: never proxied.
static DIRECT: std::sync::RwLock<Vec<(String, u16)>> = std::sync::RwLock::new(Vec::new());

/// Never proxy requests to this address (the in-process mock's).
pub fn direct(addr: std::net::SocketAddr) {
    if let Ok(mut d) = DIRECT.write() {
        d.push((addr.ip().to_string(), addr.port()));
    }
}

/// Set the process's proxies from `--proxy` and the environment, once, at
/// start; a bad proxy URL is the user's to fix.
pub fn install(flag: Option<&str>) -> Result<(), String> {
    let p = Proxies::from(flag, |k| std::env::var(k).ok())?;
    let _ = PROXIES.set(p);
    Ok(())
}

/// The process's proxies (none before [`install`]).
pub fn proxies() -> &'static Proxies {
    PROXIES.get_or_init(Proxies::default)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(flag: Option<&str>, vars: &[(&str, &str)]) -> Proxies {
        Proxies::from(flag, |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        })
        .unwrap()
    }

    fn via(p: &Proxies, url: &str) -> Option<String> {
        p.for_url(&reqwest::Url::parse(url).unwrap())
            .map(Proxy::shown)
    }

    #[test]
    fn each_scheme_takes_its_variable_in_either_case_and_the_flag_wins() {
        let p = with(
            None,
            &[("http_proxy", "http://h:3128"), ("HTTPS_PROXY", "s:8080")],
        );
        assert_eq!(
            via(&p, "http://a.example/v1").as_deref(),
            Some("http://h:3128")
        );
        assert_eq!(
            via(&p, "https://a.example/v1").as_deref(),
            Some("http://s:8080")
        );
        let p = with(Some("http://f:1"), &[("HTTP_PROXY", "http://h:3128")]);
        assert_eq!(via(&p, "https://a.example").as_deref(), Some("http://f:1"));
        let p = with(None, &[("ALL_PROXY", "http://all:9")]);
        assert_eq!(
            via(&p, "https://x.example").as_deref(),
            Some("http://all:9")
        );
        assert!(!with(None, &[]).any());
    }

    #[test]
    fn no_proxy_takes_domains_ips_cidrs_ports_and_a_star() {
        let p = with(
            Some("http://p:3128"),
            &[(
                "NO_PROXY",
                "internal.example, .corp.example 10.0.0.0/8,192.168.1.7,[::1],api.example:8443",
            )],
        );
        for direct in [
            "http://internal.example/",
            "http://a.internal.example/",
            "https://x.corp.example/",
            "http://10.1.2.3:8000/",
            "http://192.168.1.7/",
            "http://[::1]:8000/",
            "https://api.example:8443/",
        ] {
            assert_eq!(via(&p, direct), None, "{direct}");
        }
        for proxied in [
            "http://notinternal.example/",
            "http://11.1.2.3/",
            "http://192.168.1.8/",
            "https://api.example/",
        ] {
            assert!(via(&p, proxied).is_some(), "{proxied}");
        }
        let p = with(Some("http://p:3128"), &[("no_proxy", "*")]);
        assert_eq!(via(&p, "http://anything.example/"), None);
    }

    #[test]
    fn credentials_go_in_a_header_and_are_never_shown() {
        let p = Proxy::parse("http://us%40er:s3cr%3At@proxy.example:3128", "--proxy").unwrap();
        assert_eq!(p.shown(), "http://proxy.example:3128");
        let want = base64::engine::general_purpose::STANDARD.encode("us@er:s3cr:t");
        assert_eq!(p.auth.as_deref(), Some(format!("Basic {want}").as_str()));
        assert_eq!((p.host.as_str(), p.port), ("proxy.example", 3128));
    }

    #[test]
    fn a_bad_proxy_says_which_setting_and_what_to_write() {
        let e = Proxies::from(Some("socks5://h:1"), |_| None).unwrap_err();
        assert!(e.starts_with("--proxy:") && e.contains("http://"), "{e}");
        let e =
            Proxies::from(None, |k| (k == "HTTPS_PROXY").then(|| "http://".into())).unwrap_err();
        assert!(e.starts_with("HTTPS_PROXY:"), "{e}");
    }
}
