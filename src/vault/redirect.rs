//! Which redirects from Vault are followed (`--vault-redirect-hosts`).
//!
//! Every request carries the Vault token, and reqwest would keep our
//! `X-Vault-Token` header on a redirect to any host, so redirects are
//! followed here, by hand, and only to hosts the operator listed: a
//! redirect is a way to make the provider hand its token to someone else.
//! A standby Vault node answers 307 pointing at the active node; listing
//! the cluster's nodes lets those through.

use std::fmt;

use reqwest::Url;

use crate::spc::Method;

/// Most redirects followed for one request.
pub(super) const MAX_REDIRECTS: usize = 3;

/// One entry of `--vault-redirect-hosts`: a host, with or without a port.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AllowedHost {
    /// The host as the URL parser normalises it (lower case; IPv6 in brackets).
    host: String,
    /// The port; `None` allows any port of the host.
    port: Option<u16>,
}

/// The hosts Vault may redirect requests to; empty (the default) follows
/// no redirect.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedirectHosts(Vec<AllowedHost>);

impl RedirectHosts {
    /// Parses a comma-separated list of `host` or `host:port` entries
    /// (`vault-1.example:8200,vault-2.example`, `[fd00::1]:8200`).
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut hosts = Vec::new();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let bad = |why: &str| format!("{entry:?} is not a host or host:port ({why})");
            if entry.contains(['/', '@', '?', '#']) {
                return Err(bad("give only the host and port, no scheme or path"));
            }
            let url = Url::parse(&format!("http://{entry}")).map_err(|e| bad(&e.to_string()))?;
            let host = url.host_str().ok_or_else(|| bad("no host"))?.to_string();
            hosts.push(AllowedHost {
                host,
                port: url.port(),
            });
        }
        Ok(Self(hosts))
    }

    /// Whether `url`'s host (and port) is listed.
    fn allows(&self, url: &Url) -> bool {
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
            return false;
        };
        self.0
            .iter()
            .any(|a| a.host == host && a.port.is_none_or(|p| p == port))
    }
}

/// Why a redirect was not followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The target's host is not in `--vault-redirect-hosts`.
    NotListed {
        /// `host:port` of the target, as an entry of the flag would name it.
        host: String,
    },
    /// The redirect leaves HTTPS for plain HTTP, where the token would
    /// travel in clear text.
    Downgrade,
    /// A write redirected with 301, 302 or 303, which clients may turn into
    /// a GET without its body; only 307 and 308 keep a write intact.
    ChangesMethod {
        /// The request's method.
        method: Method,
    },
    /// The Vault address is a unix socket: every request goes to the
    /// socket whatever the URL says, so no other host can be reached.
    UnixSocket,
    /// More than [`MAX_REDIRECTS`] in a row.
    TooMany,
    /// The `Location` header is not a usable http(s) URL.
    BadLocation,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NotListed { host } => {
                write!(
                    f,
                    "{host} is not in --vault-redirect-hosts, and the token goes only to listed hosts"
                )
            }
            Refusal::Downgrade => f.write_str("it leads from HTTPS to plain HTTP"),
            Refusal::ChangesMethod { method } => write!(
                f,
                "a {method} is followed only through 307 or 308, which keep its method and body"
            ),
            Refusal::UnixSocket => f.write_str("the Vault address is a unix socket"),
            Refusal::TooMany => write!(f, "more than {MAX_REDIRECTS} redirects in a row"),
            Refusal::BadLocation => f.write_str("the Location header is not an http(s) URL"),
        }
    }
}

/// What a redirect names, without user info, query or fragment (for
/// messages: a path is no secret, but a query or user info might be).
pub(super) fn describe(url: &Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.set_fragment(None);
    shown.to_string()
}

/// What one redirect answer asks for.
#[derive(Debug, Clone, Copy)]
pub(super) struct Redirect<'a> {
    /// The URL that was requested.
    pub from: &'a Url,
    /// The 3xx status.
    pub status: u16,
    /// The `Location` header.
    pub location: &'a str,
    /// The request's method.
    pub method: Method,
    /// Redirects already followed for this request.
    pub hops: usize,
}

impl RedirectHosts {
    /// The URL to send the same request to next, or why not.  The target is
    /// resolved against the requested URL, so relative locations work.
    pub(super) fn follow(
        &self,
        redirect: &Redirect<'_>,
        over_socket: bool,
    ) -> Result<Url, (Option<Url>, Refusal)> {
        let target = match redirect.from.join(redirect.location) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => url,
            _ => return Err((None, Refusal::BadLocation)),
        };
        let refuse = |refusal| Err((Some(target.clone()), refusal));
        if over_socket {
            return refuse(Refusal::UnixSocket);
        }
        if redirect.from.scheme() == "https" && target.scheme() != "https" {
            return refuse(Refusal::Downgrade);
        }
        if !redirect.method.is_read() && !matches!(redirect.status, 307 | 308) {
            return refuse(Refusal::ChangesMethod {
                method: redirect.method,
            });
        }
        if !self.allows(&target) {
            let host = match (target.host_str(), target.port_or_known_default()) {
                (Some(host), Some(port)) => format!("{host}:{port}"),
                (Some(host), None) => host.to_string(),
                _ => String::new(),
            };
            return refuse(Refusal::NotListed { host });
        }
        if redirect.hops >= MAX_REDIRECTS {
            return refuse(Refusal::TooMany);
        }
        Ok(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn follow(
        hosts: &str,
        from: &str,
        status: u16,
        method: Method,
        location: &str,
    ) -> Result<String, Refusal> {
        let from = url(from);
        RedirectHosts::parse(hosts)
            .unwrap()
            .follow(
                &Redirect {
                    from: &from,
                    status,
                    location,
                    method,
                    hops: 0,
                },
                false,
            )
            .map(|u| u.to_string())
            .map_err(|(_, refusal)| refusal)
    }

    #[test]
    fn parses_hosts_with_and_without_ports() {
        let hosts = RedirectHosts::parse(" Vault-1.Example:8200, vault-2.example ,[FD00::1]:8200,")
            .unwrap();
        assert_eq!(
            hosts.0,
            vec![
                AllowedHost {
                    host: "vault-1.example".into(),
                    port: Some(8200)
                },
                AllowedHost {
                    host: "vault-2.example".into(),
                    port: None
                },
                AllowedHost {
                    host: "[fd00::1]".into(),
                    port: Some(8200)
                },
            ]
        );
        assert_eq!(RedirectHosts::parse("").unwrap(), RedirectHosts::default());
        for bad in [
            "https://vault:8200",
            "vault/v1",
            "user@vault",
            "vault:notaport",
            "vault:99999",
        ] {
            assert!(RedirectHosts::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn follows_only_listed_hosts() {
        let from = "http://standby:8200/v1/secret/data/a";
        let to = "http://active:8200/v1/secret/data/a";
        assert_eq!(
            follow("", from, 307, Method::Get, to),
            Err(Refusal::NotListed {
                host: "active:8200".into()
            })
        );
        assert_eq!(
            follow("active:8200", from, 307, Method::Get, to).as_deref(),
            Ok(to)
        );
        assert_eq!(
            follow("ACTIVE", from, 301, Method::Get, to).as_deref(),
            Ok(to)
        );
        assert!(follow("active:8201", from, 307, Method::Get, to).is_err());
        // The default https port counts when the entry names one.
        assert!(
            follow(
                "active:443",
                "https://standby/v1/x",
                307,
                Method::Get,
                "https://active/v1/x"
            )
            .is_ok()
        );
        // A relative location stays on the requested host, which must be listed too.
        assert_eq!(
            follow("standby:8200", from, 307, Method::Get, "/v1/other").as_deref(),
            Ok("http://standby:8200/v1/other")
        );
        assert!(follow("", from, 307, Method::Get, "/v1/other").is_err());
    }

    #[test]
    fn never_from_https_to_http() {
        assert_eq!(
            follow(
                "active",
                "https://standby:8200/v1/x",
                307,
                Method::Get,
                "http://active:8200/v1/x"
            ),
            Err(Refusal::Downgrade)
        );
        assert!(
            follow(
                "active",
                "http://standby:8200/v1/x",
                307,
                Method::Get,
                "https://active:8200/v1/x"
            )
            .is_ok()
        );
    }

    #[test]
    fn writes_follow_only_method_keeping_redirects() {
        let (from, to) = (
            "http://a:8200/v1/pki/issue/r",
            "http://b:8200/v1/pki/issue/r",
        );
        for status in [307, 308] {
            assert!(follow("b", from, status, Method::Put, to).is_ok());
            assert!(follow("b", from, status, Method::Post, to).is_ok());
        }
        for status in [301, 302, 303] {
            assert_eq!(
                follow("b", from, status, Method::Put, to),
                Err(Refusal::ChangesMethod {
                    method: Method::Put
                })
            );
            assert!(follow("b", from, status, Method::List, to).is_ok());
        }
    }

    #[test]
    fn bounded_and_never_over_a_socket_or_to_odd_schemes() {
        let from = url("http://a:8200/v1/x");
        let hosts = RedirectHosts::parse("b").unwrap();
        let redirect = |hops, location| Redirect {
            from: &from,
            status: 307,
            location,
            method: Method::Get,
            hops,
        };
        assert!(
            hosts
                .follow(&redirect(MAX_REDIRECTS - 1, "http://b/v1/x"), false)
                .is_ok()
        );
        assert_eq!(
            hosts
                .follow(&redirect(MAX_REDIRECTS, "http://b/v1/x"), false)
                .unwrap_err()
                .1,
            Refusal::TooMany
        );
        assert_eq!(
            hosts
                .follow(&redirect(0, "http://b/v1/x"), true)
                .unwrap_err()
                .1,
            Refusal::UnixSocket
        );
        for bad in ["ftp://b/x", "http://", "file:///etc/passwd"] {
            assert_eq!(
                hosts.follow(&redirect(0, bad), false).unwrap_err().1,
                Refusal::BadLocation,
                "{bad}"
            );
        }
    }

    #[test]
    fn descriptions_drop_user_info_and_query() {
        assert_eq!(
            describe(&url("https://u:p@active:8200/v1/x?token=abc#f")),
            "https://active:8200/v1/x"
        );
    }
}
