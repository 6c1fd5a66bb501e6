//! One Vault server reached with one pooled HTTP client.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use zeroize::Zeroizing;

use super::error::{TransportKind, VaultError, from_reqwest, json_error};
use super::limit::Slots;
use super::redirect::{self, Redirect, RedirectHosts};
use super::response::VaultResponse;
use crate::metrics::{Metrics, VaultOperation, VaultStatus};
use crate::secret::SecretString;
use crate::spc::{Method, RequestKey};

/// The default of `--max-response-bytes`: the driver's default gRPC receive
/// limit (`--max-call-recv-msg-size`), 4 MiB.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// How long the provider keeps counting an answer that is over the limit,
/// so its error can state the size; past it the size is a lower bound.
const COUNT_OVERSIZE_FOR: Duration = Duration::from_secs(2);

/// Default of `--vault-max-concurrent-requests`: four Mounts' worth of
/// parallel fetches (8 each) per Vault address.  A Vault answers a read in
/// a few milliseconds, so 32 in flight carry thousands of requests a second
/// from one node, while a node-wide stampede (a reboot with a hundred pods)
/// queues on the node instead of opening hundreds of connections to Vault.
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 32;

/// Limits and retry settings shared by every Vault request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOptions {
    /// Timeout of one HTTP request (`VAULT_CLIENT_TIMEOUT`, default 60 s).
    pub request_timeout: Duration,
    /// Timeout for establishing a connection.
    pub connect_timeout: Duration,
    /// Extra attempts for a read that failed transiently (`VAULT_MAX_RETRIES`).
    pub max_retries: u32,
    /// Largest Vault answer accepted, and largest Mount response sent, in
    /// bytes (`--max-response-bytes`): the driver refuses larger messages.
    pub max_response_bytes: usize,
    /// Hosts Vault may redirect requests to (`--vault-redirect-hosts`).
    pub redirect_hosts: RedirectHosts,
    /// Most exchanges in flight to one Vault address at a time
    /// (`--vault-max-concurrent-requests`); 0 means no limit.
    pub max_concurrent_requests: usize,
    /// Where every HTTP exchange and login is counted.  It rides along
    /// with the options so every client a pool builds records into the
    /// server's registry without the pool's callers passing it.
    pub metrics: Metrics,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            max_retries: 2,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            redirect_hosts: RedirectHosts::default(),
            max_concurrent_requests: DEFAULT_MAX_CONCURRENT_REQUESTS,
            metrics: Metrics::default(),
        }
    }
}

/// A client for one Vault address and namespace.  Cheap to clone: the HTTP
/// connection pool is shared.
#[derive(Debug, Clone)]
pub struct VaultClient {
    /// The pooled HTTP client for this address and TLS configuration.
    pub(super) http: reqwest::Client,
    /// Base URL (`https://vault:8200`, or a placeholder for unix sockets).
    pub(super) base: reqwest::Url,
    /// Namespace sent as `X-Vault-Namespace`.
    pub(super) namespace: Option<String>,
    /// Whether requests go over a unix socket (whatever host a URL names),
    /// so no redirect can be followed.
    pub(super) over_socket: bool,
    /// Limits and retries.
    pub(super) options: ClientOptions,
    /// This address's request slots; `None` without a limit.
    pub(super) slots: Option<Arc<Slots>>,
}

/// A successful login.
#[derive(Debug)]
pub struct LoginResponse {
    /// The Vault token.
    pub token: SecretString,
    /// Token TTL in seconds; 0 means it does not expire.
    pub lease_duration: u64,
    /// Whether the token can be renewed.
    pub renewable: bool,
    /// Auth metadata (Kubernetes auth: `service_account_name`, …).
    pub metadata: HashMap<String, String>,
    /// How many requests the token may make; 0 means unlimited.
    pub num_uses: u64,
}

/// The `auth` block of a login response.
#[derive(Deserialize)]
struct AuthBlock {
    client_token: SecretString,
    #[serde(default)]
    lease_duration: u64,
    #[serde(default)]
    renewable: bool,
    #[serde(default)]
    metadata: Option<HashMap<String, String>>,
    #[serde(default)]
    num_uses: u64,
}

/// A login response envelope.
#[derive(Deserialize)]
struct LoginEnvelope {
    auth: Option<AuthBlock>,
}

/// Parses a response carrying an `auth` block (login or renewal).
fn parse_login(answer: &[u8]) -> Result<LoginResponse, VaultError> {
    let envelope: LoginEnvelope =
        serde_json::from_slice(answer).map_err(|e| json_error("the login response", &e))?;
    let auth = envelope.auth.ok_or_else(|| VaultError::Body {
        detail: "the login response has no auth block".into(),
    })?;
    if auth.client_token.is_empty() {
        return Err(VaultError::Body {
            detail: "the login response has an empty token".into(),
        });
    }
    Ok(LoginResponse {
        token: auth.client_token,
        lease_duration: auth.lease_duration,
        renewable: auth.renewable,
        metadata: auth.metadata.unwrap_or_default(),
        num_uses: auth.num_uses,
    })
}

/// Vault's error body.
#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    errors: Option<Vec<String>>,
    #[serde(default)]
    warnings: Option<Vec<String>>,
}

impl VaultClient {
    /// Sends one secret request with `token` and returns Vault's envelope.
    pub async fn request(
        &self,
        token: &SecretString,
        key: &RequestKey,
    ) -> Result<VaultResponse, VaultError> {
        let body = self
            .send(
                key.method,
                &key.path,
                &key.query,
                key.body.as_deref(),
                Some(token),
            )
            .await?;
        if body.is_empty() {
            // 204 No Content: a response with no data.
            return Ok(VaultResponse::default());
        }
        let mut response: VaultResponse =
            serde_json::from_slice(&body).map_err(|e| json_error("the answer", &e))?;
        response.wire_bytes = body.len();
        Ok(response)
    }

    /// Logs in with a JWT (Kubernetes or JWT auth): `POST auth/<mount>/login`.
    pub async fn login_jwt(
        &self,
        mount: &str,
        role: &str,
        jwt: &SecretString,
    ) -> Result<LoginResponse, VaultError> {
        #[derive(serde::Serialize)]
        struct Body<'a> {
            role: &'a str,
            jwt: &'a str,
        }
        self.login(
            mount,
            &Body {
                role,
                jwt: jwt.expose(),
            },
        )
        .await
    }

    /// Logs in with AppRole: `POST auth/<mount>/login {role_id, secret_id}`.
    pub async fn login_approle(
        &self,
        mount: &str,
        role_id: &SecretString,
        secret_id: &SecretString,
    ) -> Result<LoginResponse, VaultError> {
        #[derive(serde::Serialize)]
        struct Body<'a> {
            role_id: &'a str,
            secret_id: &'a str,
        }
        self.login(
            mount,
            &Body {
                role_id: role_id.expose(),
                secret_id: secret_id.expose(),
            },
        )
        .await
    }

    /// Checks a given Vault token (`auth/token/lookup-self`) and returns it
    /// with its remaining TTL, so an expired or revoked token fails clearly.
    pub async fn lookup_self(&self, token: &SecretString) -> Result<LoginResponse, VaultError> {
        #[derive(Deserialize)]
        struct Data {
            #[serde(default)]
            ttl: u64,
            #[serde(default)]
            renewable: bool,
            #[serde(default)]
            num_uses: u64,
        }
        #[derive(Deserialize)]
        struct Envelope {
            data: Option<Data>,
        }
        let answer = self
            .send(
                Method::Get,
                "auth/token/lookup-self",
                &[],
                None,
                Some(token),
            )
            .await?;
        let envelope: Envelope = serde_json::from_slice(&answer)
            .map_err(|e| json_error("the token lookup response", &e))?;
        let data = envelope.data.ok_or_else(|| VaultError::Body {
            detail: "the token lookup returned no data".into(),
        })?;
        Ok(LoginResponse {
            token: token.clone(),
            lease_duration: data.ttl,
            renewable: data.renewable,
            metadata: HashMap::new(),
            num_uses: data.num_uses,
        })
    }

    /// Renews a token (`auth/token/renew-self`); returns its new TTL.
    pub async fn renew_self(&self, token: &SecretString) -> Result<LoginResponse, VaultError> {
        let answer = self
            .send(
                Method::Post,
                "auth/token/renew-self",
                &[],
                Some("{}"),
                Some(token),
            )
            .await?;
        parse_login(&answer)
    }

    /// Renews a lease (`PUT sys/leases/renew`) by `increment` seconds;
    /// returns Vault's answer (its `lease_duration` may be capped by the
    /// lease's max TTL).
    pub async fn renew_lease(
        &self,
        token: &SecretString,
        lease_id: &str,
        increment: u64,
    ) -> Result<VaultResponse, VaultError> {
        let body = serde_json::json!({ "lease_id": lease_id, "increment": increment }).to_string();
        let answer = self
            .send(
                Method::Put,
                "sys/leases/renew",
                &[],
                Some(&body),
                Some(token),
            )
            .await?;
        serde_json::from_slice(&answer).map_err(|e| json_error("the lease renewal response", &e))
    }

    /// `POST auth/<mount>/login` with `body`; parses the `auth` block.
    async fn login(
        &self,
        mount: &str,
        body: &impl serde::Serialize,
    ) -> Result<LoginResponse, VaultError> {
        let body = Zeroizing::new(serde_json::to_string(body).map_err(|e| VaultError::Body {
            detail: e.to_string(),
        })?);
        let path = format!("auth/{mount}/login");
        let answer = self
            .send(Method::Post, &path, &[], Some(&body), None)
            .await?;
        let login = parse_login(&answer)?;
        self.options.metrics.vault_login();
        Ok(login)
    }

    /// Sends a request, retrying what is safe to retry, and returns the body
    /// of a successful answer.
    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: Option<&str>,
        token: Option<&SecretString>,
    ) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let mut attempt = 0;
        loop {
            let result = self.send_once(method, path, query, body, token).await;
            let retry = match &result {
                Err(e) if attempt < self.options.max_retries => {
                    // A write may issue a credential: repeat it only when it
                    // cannot have reached Vault.
                    if method.is_read() {
                        e.is_transient()
                    } else {
                        matches!(
                            e,
                            VaultError::Transport {
                                kind: TransportKind::Connect,
                                ..
                            }
                        )
                    }
                }
                _ => false,
            };
            if !retry {
                return result;
            }
            tokio::time::sleep(backoff(attempt)).await;
            attempt += 1;
        }
    }

    /// One HTTP exchange, counted and timed by operation and status.
    async fn send_once(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: Option<&str>,
        token: Option<&SecretString>,
    ) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        // The slot is taken per exchange, so a retry's backoff frees it.
        let _slot = match &self.slots {
            Some(slots) => Some(
                slots
                    .take(self.options.request_timeout, &self.options.metrics)
                    .await?,
            ),
            None => None,
        };
        let _in_flight = self.options.metrics.vault_request_in_flight();
        let started = Instant::now();
        let mut answered = None;
        let result = self
            .exchange(method, path, query, body, token, &mut answered)
            .await;
        let status = match (&result, answered) {
            (Err(VaultError::Transport { .. }), _) => Some(VaultStatus::Error),
            (_, Some(code)) => Some(VaultStatus::Http(code)),
            // Failed before anything was sent (a URL or header that cannot
            // be built): no exchange took place, so none is counted.
            (_, None) => None,
        };
        if let Some(status) = status {
            self.options
                .metrics
                .vault_request(operation(method, path), status, started.elapsed());
        }
        result
    }

    /// One HTTP exchange, following redirects to `--vault-redirect-hosts`;
    /// sets `answered` to the HTTP status once Vault's answer starts
    /// arriving, so the caller can count it even when the body is then
    /// refused.
    async fn exchange(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: Option<&str>,
        token: Option<&SecretString>,
        answered: &mut Option<u16>,
    ) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| VaultError::Body {
                detail: "the Vault address cannot take a path".into(),
            })?
            .pop_if_empty()
            .push("v1")
            .extend(path.split('/'));
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let mut hops = 0;
        loop {
            let request = self.build_request(method, url.clone(), body, token)?;
            let response = request.send().await.map_err(from_reqwest)?;
            let status = response.status();
            *answered = Some(status.as_u16());
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok());
            if let (true, Some(location)) = (status.is_redirection(), location) {
                let asked = Redirect {
                    from: &url,
                    status: status.as_u16(),
                    location,
                    method,
                    hops,
                };
                match self.options.redirect_hosts.follow(&asked, self.over_socket) {
                    Ok(next) => {
                        tracing::debug!(
                            status = status.as_u16(),
                            to = %redirect::describe(&next),
                            "following Vault's redirect"
                        );
                        // The 3xx answer's body is dropped unread: the
                        // connection is not reused, which costs little on
                        // a path taken once per redirect.
                        url = next;
                        hops += 1;
                        continue;
                    }
                    Err((target, refusal)) => {
                        return Err(VaultError::Redirect {
                            status: status.as_u16(),
                            target: target.as_ref().map(redirect::describe),
                            refusal,
                        });
                    }
                }
            }
            let bytes = self.read_body(response).await?;
            if status.is_success() {
                return Ok(bytes);
            }
            let parsed: ErrorBody = serde_json::from_slice(&bytes).unwrap_or_default();
            return Err(VaultError::Status {
                status: status.as_u16(),
                errors: parsed.errors.unwrap_or_default(),
                warnings: parsed.warnings.unwrap_or_default(),
            });
        }
    }

    /// The HTTP request for one exchange, with Vault's headers and the token.
    fn build_request(
        &self,
        method: Method,
        url: reqwest::Url,
        body: Option<&str>,
        token: Option<&SecretString>,
    ) -> Result<reqwest::RequestBuilder, VaultError> {
        let http_method = reqwest::Method::from_bytes(method.as_str().as_bytes()).map_err(|e| {
            VaultError::Body {
                detail: e.to_string(),
            }
        })?;
        let mut request = self
            .http
            .request(http_method, url)
            .timeout(self.options.request_timeout)
            .header("X-Vault-Request", "true");
        if let Some(namespace) = &self.namespace {
            request = request.header("X-Vault-Namespace", namespace);
        }
        if let Some(token) = token {
            let mut value =
                reqwest::header::HeaderValue::from_str(token.expose()).map_err(|_| {
                    VaultError::Body {
                        detail: "the Vault token has characters a header cannot carry".into(),
                    }
                })?;
            value.set_sensitive(true);
            request = request.header("X-Vault-Token", value);
        }
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        Ok(request)
    }

    /// Reads an answer's body up to `--max-response-bytes`.  A larger one is
    /// refused with its size: the declared `Content-Length`, or what could
    /// be counted (without keeping it) within [`COUNT_OVERSIZE_FOR`].
    async fn read_body(
        &self,
        mut response: reqwest::Response,
    ) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let limit = self.options.max_response_bytes;
        if let Some(size) = response.content_length().filter(|&n| n > limit as u64) {
            return Err(VaultError::TooLarge {
                limit,
                size,
                at_least: false,
            });
        }
        let mut bytes = Zeroizing::new(Vec::new());
        while let Some(chunk) = response.chunk().await.map_err(from_reqwest)? {
            if bytes.len() + chunk.len() > limit {
                let mut size = (bytes.len() + chunk.len()) as u64;
                // The chunks are dropped as they come: only their length
                // is kept.  An answer that breaks off or goes on past the
                // time allowed leaves the size a lower bound.
                let whole = tokio::time::timeout(COUNT_OVERSIZE_FOR, async {
                    loop {
                        match response.chunk().await {
                            Ok(Some(chunk)) => size += chunk.len() as u64,
                            Ok(None) => return true,
                            Err(_) => return false,
                        }
                    }
                })
                .await;
                return Err(VaultError::TooLarge {
                    limit,
                    size,
                    at_least: whole != Ok(true),
                });
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }
}

/// The fixed operation a request counts under.  Only these well-known paths
/// are matched; any other path (which may name a secret) decides nothing but
/// read versus write, and never reaches a label.
fn operation(method: Method, path: &str) -> VaultOperation {
    match path {
        "auth/token/renew-self" | "sys/leases/renew" => VaultOperation::Renew,
        "auth/token/lookup-self" => VaultOperation::Lookup,
        p if p.starts_with("auth/") && p.ends_with("/login") => VaultOperation::Login,
        _ if method.is_read() => VaultOperation::Read,
        _ => VaultOperation::Write,
    }
}

/// Exponential backoff with jitter: 250 ms, 500 ms, 1 s … capped at 2 s,
/// each plus up to 50 % so that a node's retries do not arrive in step.
fn backoff(attempt: u32) -> Duration {
    let base = Duration::from_millis(250)
        .saturating_mul(1 << attempt.min(3))
        .min(Duration::from_secs(2));
    let mut byte = [0u8; 1];
    let jitter = match aws_lc_rs::rand::fill(&mut byte) {
        Ok(()) => base.mul_f64(f64::from(byte[0]) / 510.0),
        Err(_) => Duration::ZERO,
    };
    base + jitter
}

#[cfg(test)]
mod tests {
    use super::{Method, VaultOperation, backoff, operation};
    use std::time::Duration;

    #[test]
    fn operations_come_from_a_fixed_set() {
        for (method, path, expected) in [
            (Method::Post, "auth/kubernetes/login", VaultOperation::Login),
            (Method::Post, "auth/team/k8s/login", VaultOperation::Login),
            (Method::Post, "auth/approle/login", VaultOperation::Login),
            (Method::Post, "auth/token/renew-self", VaultOperation::Renew),
            (Method::Put, "sys/leases/renew", VaultOperation::Renew),
            (
                Method::Get,
                "auth/token/lookup-self",
                VaultOperation::Lookup,
            ),
            (Method::Get, "secret/data/app", VaultOperation::Read),
            (Method::List, "secret/metadata/", VaultOperation::Read),
            (Method::Put, "pki/issue/web", VaultOperation::Write),
            (Method::Post, "transit/encrypt/k", VaultOperation::Write),
            // Look-alikes are not special: only the exact shapes are.
            (
                Method::Get,
                "secret/data/auth/x/login",
                VaultOperation::Read,
            ),
            (Method::Get, "auth/kubernetes/role/x", VaultOperation::Read),
        ] {
            assert_eq!(operation(method, path), expected, "{method:?} {path}");
        }
    }

    #[test]
    fn backoff_grows_and_is_bounded() {
        assert!(
            backoff(0) >= Duration::from_millis(250) && backoff(0) <= Duration::from_millis(375)
        );
        assert!(backoff(10) <= Duration::from_secs(3));
    }
}
