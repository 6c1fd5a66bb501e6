//! A fake Kubernetes API that answers TokenReviews for tokens made by a
//! [`TokenSigner`], plus helpers that configure OpenBao's `kubernetes` and
//! `jwt` auth methods (and their roles) against it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use super::DemoError;
use super::openbao::DevServer;
use super::sa_token::{ServiceAccountClaims, TokenSigner};

/// The TokenReview endpoint path, as on a real API server.
pub const TOKEN_REVIEW_PATH: &str = "/apis/authentication.k8s.io/v1/tokenreviews";

/// A fake Kubernetes API server on `127.0.0.1:<free port>` (plain HTTP) that
/// implements only `POST /apis/authentication.k8s.io/v1/tokenreviews`.
///
/// It verifies the token's signature, issuer and expiry with the signer's
/// key and checks audiences the way the API server does: the token's `aud`
/// must intersect `spec.audiences`, or the API server's own audiences (the
/// issuer) when the request names none. It does not check that the bound pod
/// still exists, nor authorize the caller beyond requiring a bearer token.
/// The server stops when this value is dropped.
pub struct TokenReviewServer {
    url: String,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

struct Shared {
    signer: TokenSigner,
    api_audiences: Vec<String>,
    reviews: AtomicUsize,
}

impl TokenReviewServer {
    /// Starts the fake API server, trusting tokens signed by `signer`.
    pub async fn start(signer: &TokenSigner) -> Result<TokenReviewServer, DemoError> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| DemoError::io("bind TokenReview server", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| DemoError::io("TokenReview server address", e))?;
        let shared = Arc::new(Shared {
            signer: signer.clone(),
            // A real API server's default --api-audiences is its issuer.
            api_audiences: vec![signer.issuer().to_owned()],
            reviews: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route(TOKEN_REVIEW_PATH, post(review))
            .fallback(not_found)
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            // Ends only when aborted on drop; an accept error is not recoverable here.
            let _ = axum::serve(listener, app).await;
        });
        Ok(TokenReviewServer {
            url: format!("http://{addr}"),
            shared,
            task,
        })
    }

    /// The server's base URL (`http://127.0.0.1:PORT`), for `kubernetes_host`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// How many TokenReview requests arrived so far (valid or not).
    pub fn reviews(&self) -> usize {
        self.shared.reviews.load(Ordering::SeqCst)
    }
}

impl Drop for TokenReviewServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A `meta/v1` Status failure body, which the API server sends with every
/// error (also used by the tests' fake of the Secrets API).
pub fn status_body(code: u16, reason: &str, message: &str) -> serde_json::Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    })
}

/// An error answer with a Status body.
fn status_error(code: StatusCode, reason: &str, message: &str) -> Response {
    (code, Json(status_body(code.as_u16(), reason, message))).into_response()
}

async fn not_found() -> Response {
    status_error(
        StatusCode::NOT_FOUND,
        "NotFound",
        "the server could not find the requested resource",
    )
}

async fn review(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    shared.reviews.fetch_add(1, Ordering::SeqCst);

    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| !t.trim().is_empty());
    if !bearer {
        return status_error(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized");
    }

    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return status_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "the body of the request was in an unknown format",
        );
    };
    let spec = request.get("spec").cloned().unwrap_or_else(|| json!({}));
    let token = spec.get("token").and_then(Value::as_str).unwrap_or("");
    if token.is_empty() {
        return status_error(StatusCode::BAD_REQUEST, "BadRequest", "token is required");
    }
    let requested: Vec<String> = spec
        .get("audiences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let wanted = if requested.is_empty() {
        &shared.api_audiences
    } else {
        &requested
    };

    let status = match shared.signer.verify(token) {
        Err(e) => unauthenticated(&verify_error_message(&e)),
        Ok(claims) => authenticate(&claims, wanted),
    };
    // The API server answers a create with 201 and echoes metadata and spec.
    let answer = json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "metadata": { "creationTimestamp": null },
        "spec": spec,
        "status": status,
    });
    (StatusCode::CREATED, Json(answer)).into_response()
}

fn authenticate(claims: &ServiceAccountClaims, wanted: &[String]) -> Value {
    let matched: Vec<&String> = claims.aud.iter().filter(|a| wanted.contains(a)).collect();
    if matched.is_empty() {
        return unauthenticated(&format!(
            "token audiences {:?} is invalid for the target audiences {:?}",
            claims.aud, wanted
        ));
    }
    let k = &claims.kubernetes;
    let mut user = json!({
        "username": format!("system:serviceaccount:{}:{}", k.namespace, k.serviceaccount.name),
        "uid": k.serviceaccount.uid,
        "groups": [
            "system:serviceaccounts",
            format!("system:serviceaccounts:{}", k.namespace),
            "system:authenticated",
        ],
    });
    if let Some(pod) = &k.pod {
        user["extra"] = json!({
            "authentication.kubernetes.io/pod-name": [pod.name],
            "authentication.kubernetes.io/pod-uid": [pod.uid],
        });
    }
    json!({ "authenticated": true, "user": user, "audiences": matched })
}

fn unauthenticated(reason: &str) -> Value {
    // The API server's union authenticator wraps the cause this way.
    json!({ "user": {}, "error": format!("[invalid bearer token, {reason}]") })
}

fn verify_error_message(e: &DemoError) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match e {
        DemoError::Jwt(j) => match j.kind() {
            ErrorKind::ExpiredSignature => "service account token has expired".into(),
            ErrorKind::ImmatureSignature => "service account token is not valid yet".into(),
            ErrorKind::InvalidSignature => "invalid signature".into(),
            ErrorKind::InvalidIssuer => "token issuer is not trusted".into(),
            other => format!("invalid token: {other:?}"),
        },
        other => other.to_string(),
    }
}

/// Calls the API in the root namespace or in `namespace`.
async fn call(
    bao: &DevServer,
    namespace: Option<&str>,
    method: Method,
    path: &str,
    body: Value,
) -> Result<(), DemoError> {
    match namespace {
        Some(ns) => bao.api_ns(ns, method, path, Some(body)).await,
        None => bao.api(method, path, Some(body)).await,
    }
    .map(drop)
}

/// Enables the `kubernetes` auth method at `mount` (in `namespace`, if any)
/// and points it at the fake API server.
///
/// Outside a cluster OpenBao would read the pod's CA and reviewer JWT from
/// `/var/run/secrets/...`; `disable_local_ca_jwt` stops that, and then a CA
/// is mandatory even for a plain-HTTP host, so a placeholder is given (it is
/// never used for `http://`). Without `token_reviewer_jwt`, OpenBao sends
/// the client's own JWT as the TokenReview bearer. Issuer checks are off by
/// default in the kubernetes method, so no `issuer` is needed.
pub async fn configure_kubernetes_auth(
    bao: &DevServer,
    mount: &str,
    review: &TokenReviewServer,
    namespace: Option<&str>,
) -> Result<(), DemoError> {
    call(
        bao,
        namespace,
        Method::POST,
        &format!("sys/auth/{mount}"),
        json!({ "type": "kubernetes" }),
    )
    .await?;
    call(
        bao,
        namespace,
        Method::POST,
        &format!("auth/{mount}/config"),
        json!({
            "kubernetes_host": review.url(),
            "disable_local_ca_jwt": true,
            "kubernetes_ca_cert": "unused: the fake API server speaks plain http",
        }),
    )
    .await
}

/// Enables the `jwt` auth method at `mount` (in `namespace`, if any),
/// trusting `signer`'s public key and requiring its issuer.
pub async fn configure_jwt_auth(
    bao: &DevServer,
    mount: &str,
    signer: &TokenSigner,
    namespace: Option<&str>,
) -> Result<(), DemoError> {
    call(
        bao,
        namespace,
        Method::POST,
        &format!("sys/auth/{mount}"),
        json!({ "type": "jwt" }),
    )
    .await?;
    call(
        bao,
        namespace,
        Method::POST,
        &format!("auth/{mount}/config"),
        json!({
            "jwt_validation_pubkeys": [signer.public_key_pem()],
            "bound_issuer": signer.issuer(),
        }),
    )
    .await
}

/// Creates a `kubernetes` auth role in the root namespace: see [`kubernetes_role_in`].
pub async fn kubernetes_role(
    bao: &DevServer,
    mount: &str,
    role: &str,
    sa_names: &[&str],
    sa_namespaces: &[&str],
    policies: &[&str],
    ttl: Duration,
) -> Result<(), DemoError> {
    kubernetes_role_in(
        bao,
        None,
        mount,
        role,
        sa_names,
        sa_namespaces,
        policies,
        ttl,
    )
    .await
}

/// Creates a `kubernetes` auth role bound to the given service account names
/// and namespaces, granting `policies` with token TTL `ttl`.
#[allow(clippy::too_many_arguments)] // mirrors the role's fields one to one
pub async fn kubernetes_role_in(
    bao: &DevServer,
    namespace: Option<&str>,
    mount: &str,
    role: &str,
    sa_names: &[&str],
    sa_namespaces: &[&str],
    policies: &[&str],
    ttl: Duration,
) -> Result<(), DemoError> {
    call(
        bao,
        namespace,
        Method::POST,
        &format!("auth/{mount}/role/{role}"),
        json!({
            "bound_service_account_names": sa_names,
            "bound_service_account_namespaces": sa_namespaces,
            "token_policies": policies,
            "token_ttl": ttl.as_secs(),
        }),
    )
    .await
}

/// Creates a `jwt` auth role in the root namespace: see [`jwt_role_in`].
pub async fn jwt_role(
    bao: &DevServer,
    mount: &str,
    role: &str,
    bound_subject: &str,
    audience: &str,
    policies: &[&str],
    ttl: Duration,
) -> Result<(), DemoError> {
    jwt_role_in(
        bao,
        None,
        mount,
        role,
        bound_subject,
        audience,
        policies,
        ttl,
    )
    .await
}

/// Creates a `jwt` auth role (`role_type=jwt`, `user_claim=sub`) that accepts
/// tokens for `bound_subject` (e.g. `system:serviceaccount:<ns>:<sa>`) with
/// `audience` among their `aud`.
#[allow(clippy::too_many_arguments)] // mirrors the role's fields one to one
pub async fn jwt_role_in(
    bao: &DevServer,
    namespace: Option<&str>,
    mount: &str,
    role: &str,
    bound_subject: &str,
    audience: &str,
    policies: &[&str],
    ttl: Duration,
) -> Result<(), DemoError> {
    call(
        bao,
        namespace,
        Method::POST,
        &format!("auth/{mount}/role/{role}"),
        json!({
            "role_type": "jwt",
            "user_claim": "sub",
            "bound_subject": bound_subject,
            "bound_audiences": [audience],
            "token_policies": policies,
            "token_ttl": ttl.as_secs(),
        }),
    )
    .await
}
