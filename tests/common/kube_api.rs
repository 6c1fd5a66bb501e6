//! A small fake Kubernetes API server for the object-version key Secret.
//!
//! It serves `GET /api/v1/namespaces/{ns}/secrets/{name}` and
//! `POST /api/v1/namespaces/{ns}/secrets` over plain HTTP with bearer-token
//! auth, answering with the real API's JSON shapes (`v1 Secret`, `v1 Status`),
//! so the provider's real Kubernetes client talks to it unchanged through a
//! kubeconfig the fake writes.  It records every request, and can be switched
//! to the failures the provider must survive: 403 Forbidden on everything, and
//! a create race lost to another replica.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use k8s_openapi::jiff;
use serde_json::{Map, Value, json};
use tempfile::TempDir;
use tokio::sync::watch;

/// The namespace of the kubeconfig's context: the provider's own namespace.
pub const NAMESPACE: &str = "vault-csi";
/// The name HashiCorp's provider (and ours, by default) gives the key Secret.
pub const DEFAULT_SECRET: &str = "vault-csi-provider-hmac-key";
/// The identity the fake reports in Forbidden messages, like a real API
/// server would for the provider's service account.
const USER: &str = "system:serviceaccount:vault-csi:vault-csi";
/// The bearer token the kubeconfig carries and the fake insists on, so a
/// client that drops its credentials is noticed.
const TOKEN: &str = "fake-kube-api-token";
/// How long [`KubeApi::wait_until`] waits before failing the test.
const WAIT: Duration = Duration::from_secs(20);

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Request {
    /// HTTP method.
    pub method: Method,
    /// Path without the query.
    pub path: String,
    /// For POST, the JSON body (`Null` if it was not JSON).
    pub body: Option<Value>,
    /// The status the fake answered.
    pub status: u16,
}

/// What the fake holds; behind a mutex shared with the server task.
struct Inner {
    /// Stored Secrets by (namespace, name), as full `v1 Secret` objects.
    secrets: BTreeMap<(String, String), Value>,
    /// Every request so far, in arrival order.
    requests: Vec<Request>,
    /// Answer 403 to everything.
    forbidden: bool,
    /// Secrets "another replica" creates the moment the provider POSTs the
    /// same name, by (namespace, name) → key bytes.
    races: BTreeMap<(String, String), Vec<u8>>,
    /// Source of uids and resourceVersions.
    counter: u64,
    /// Signs TokenRequest answers, like the API server's service-account key.
    signer: Option<vault_csi::demo::sa_token::TokenSigner>,
}

/// State shared by the handle and the server task.
struct Shared {
    /// The fake's data.
    inner: Mutex<Inner>,
    /// Bumped after every recorded request, to wake [`KubeApi::wait_until`].
    seen: watch::Sender<usize>,
}

impl Shared {
    /// Locks the data; a panic elsewhere must not hide the log from a test.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends a request to the log and wakes waiters.
    fn record(&self, method: Method, uri: &Uri, body: Option<Value>, status: StatusCode) {
        let n = {
            let mut inner = self.lock();
            inner.requests.push(Request {
                method,
                path: uri.path().to_string(),
                body,
                status: status.as_u16(),
            });
            inner.requests.len()
        };
        self.seen.send_replace(n);
    }
}

/// A running fake API server with its kubeconfig.  Stops on drop.
pub struct KubeApi {
    /// Where it listens.
    addr: SocketAddr,
    /// Its data.
    shared: Arc<Shared>,
    /// The server task, aborted on drop.
    server: tokio::task::JoinHandle<()>,
    /// Holds `kubeconfig` and an empty `home/`.
    dir: TempDir,
}

impl KubeApi {
    /// Starts a fake with no Secrets, and writes a kubeconfig for it whose
    /// context sets the namespace [`NAMESPACE`].
    pub async fn start() -> KubeApi {
        let (seen, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                secrets: BTreeMap::new(),
                requests: Vec::new(),
                forbidden: false,
                races: BTreeMap::new(),
                counter: 0,
                signer: None,
            }),
            seen,
        });
        let app = Router::new()
            .route("/api/v1/namespaces/{ns}/secrets/{name}", get(get_secret))
            .route("/api/v1/namespaces/{ns}/secrets", post(create_secret))
            .route(
                "/api/v1/namespaces/{ns}/serviceaccounts/{sa}/token",
                post(create_token),
            )
            .fallback(other)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake Kubernetes API");
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .await
                .expect("fake Kubernetes API");
        });
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("home")).unwrap();
        let kubeconfig = format!(
            "apiVersion: v1\n\
             kind: Config\n\
             clusters:\n\
             - name: fake\n  cluster:\n    server: http://{addr}\n\
             users:\n\
             - name: vault-csi\n  user:\n    token: {TOKEN}\n\
             contexts:\n\
             - name: fake\n  context:\n    cluster: fake\n    user: vault-csi\n    namespace: {NAMESPACE}\n\
             current-context: fake\n"
        );
        std::fs::write(dir.path().join("kubeconfig"), kubeconfig).unwrap();
        KubeApi {
            addr,
            shared,
            server,
            dir,
        }
    }

    /// The kubeconfig file that targets this fake.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// An empty folder, for a provider's `HOME` (so no `~/.kube/config` is
    /// found by accident).
    pub fn empty_home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// `http://host:port` of the fake.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stores an immutable Opaque Secret `name` in [`NAMESPACE`] holding
    /// `key` under data key `key`, as if created earlier.
    pub fn seed(&self, name: &str, key: &[u8]) {
        let mut inner = self.shared.lock();
        let secret = key_secret(&mut inner, name, key);
        inner
            .secrets
            .insert((NAMESPACE.to_string(), name.to_string()), secret);
    }

    /// Makes the provider lose the race to create `name`: GETs answer 404
    /// until the provider POSTs it; at that moment another replica's Secret
    /// with `key` appears and the POST gets 409 AlreadyExists.
    pub fn lose_create_race(&self, name: &str, key: &[u8]) {
        self.shared
            .lock()
            .races
            .insert((NAMESPACE.to_string(), name.to_string()), key.to_vec());
    }

    /// Answers TokenRequests with tokens signed by `signer` (until then,
    /// TokenRequests get 404 like a cluster without the API).
    pub fn sign_tokens_with(&self, signer: vault_csi::demo::sa_token::TokenSigner) {
        self.shared.lock().signer = Some(signer);
    }

    /// Switches on or off answering 403 Forbidden to every request.
    pub fn set_forbidden(&self, forbidden: bool) {
        self.shared.lock().forbidden = forbidden;
    }

    /// The stored Secret `name` in [`NAMESPACE`], if any.
    pub fn secret(&self, name: &str) -> Option<Value> {
        self.shared
            .lock()
            .secrets
            .get(&(NAMESPACE.to_string(), name.to_string()))
            .cloned()
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.lock().requests.clone()
    }

    /// How many requests had `method` and `path`.
    pub fn count(&self, method: &Method, path: &str) -> usize {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|r| r.method == method && r.path == path)
            .count()
    }

    /// Waits until the request log satisfies `done`; fails the test after
    /// 20 s with the log.
    pub async fn wait_until(&self, what: &str, done: impl Fn(&[Request]) -> bool) {
        let mut seen = self.shared.seen.subscribe();
        let waited =
            tokio::time::timeout(WAIT, seen.wait_for(|_| done(&self.shared.lock().requests))).await;
        assert!(
            matches!(waited, Ok(Ok(_))),
            "fake Kubernetes API: {what} did not happen in {WAIT:?}; requests: {:#?}",
            self.requests()
        );
    }
}

impl Drop for KubeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The path of Secret `name` in [`NAMESPACE`].
pub fn secret_path(name: &str) -> String {
    format!("/api/v1/namespaces/{NAMESPACE}/secrets/{name}")
}

/// The path Secrets in [`NAMESPACE`] are created at.
pub fn secrets_path() -> String {
    format!("/api/v1/namespaces/{NAMESPACE}/secrets")
}

/// `GET /api/v1/namespaces/{ns}/secrets/{name}`.
async fn get_secret(
    State(shared): State<Arc<Shared>>,
    UrlPath((ns, name)): UrlPath<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let (status, body) = {
        let inner = shared.lock();
        if let Some(denied) = gate(&inner, &headers, &method, &ns, Some(&name), uri.path()) {
            denied
        } else if let Some(secret) = inner.secrets.get(&(ns.clone(), name.clone())) {
            (StatusCode::OK, secret.clone())
        } else {
            status(
                StatusCode::NOT_FOUND,
                "NotFound",
                &format!("secrets \"{name}\" not found"),
                Some(json!({"name": name, "kind": "secrets"})),
            )
        }
    };
    shared.record(method, &uri, None, status);
    (status, axum::Json(body)).into_response()
}

/// `POST /api/v1/namespaces/{ns}/secrets`.
async fn create_secret(
    State(shared): State<Arc<Shared>>,
    UrlPath(ns): UrlPath<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let posted: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (status, answer) = {
        let mut inner = shared.lock();
        let name = posted["metadata"]["name"].as_str().map(str::to_string);
        match gate(&inner, &headers, &method, &ns, None, uri.path()) {
            Some(denied) => denied,
            None => create(&mut inner, &ns, name, &posted),
        }
    };
    shared.record(method, &uri, Some(posted), status);
    (status, axum::Json(answer)).into_response()
}

/// `POST /api/v1/namespaces/{ns}/serviceaccounts/{sa}/token`: a TokenRequest
/// answered like the API server: the spec echoed, `status.token` a JWT for
/// the service account bound to the pod in `boundObjectRef`.
async fn create_token(
    State(shared): State<Arc<Shared>>,
    UrlPath((ns, sa)): UrlPath<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let posted: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (status_code, answer) = {
        let inner = shared.lock();
        let denied = gate(&inner, &headers, &method, &ns, None, uri.path());
        match (denied, &inner.signer) {
            (Some((StatusCode::FORBIDDEN, _)), _) => status(
                StatusCode::FORBIDDEN,
                "Forbidden",
                &format!(
                    "serviceaccounts \"{sa}\" is forbidden: User \"{USER}\" cannot create resource \"serviceaccounts/token\" in API group \"\" in the namespace \"{ns}\""
                ),
                Some(json!({"name": sa, "kind": "serviceaccounts"})),
            ),
            (Some(denied), _) => denied,
            (None, None) => status(
                StatusCode::NOT_FOUND,
                "NotFound",
                "the server could not find the requested resource",
                None,
            ),
            (None, Some(signer)) => {
                let spec = &posted["spec"];
                let pod = &spec["boundObjectRef"];
                let audience: Vec<String> = spec["audiences"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(str::to_string))
                            .collect()
                    })
                    .filter(|a: &Vec<String>| !a.is_empty())
                    // The API server's default audience is its issuer.
                    .unwrap_or_else(|| vec![signer.issuer().to_string()]);
                let seconds = spec["expirationSeconds"].as_u64().unwrap_or(3600);
                let token = signer.sign(&vault_csi::demo::sa_token::PodTokenClaims {
                    namespace: ns.clone(),
                    service_account: sa.clone(),
                    pod_name: pod["name"].as_str().unwrap_or_default().to_string(),
                    pod_uid: pod["uid"].as_str().unwrap_or_default().to_string(),
                    audience,
                    ttl: Duration::from_secs(seconds),
                });
                let expiry =
                    jiff::Timestamp::now() + jiff::SignedDuration::from_secs(seconds as i64);
                (
                    StatusCode::CREATED,
                    json!({
                        "kind": "TokenRequest",
                        "apiVersion": "authentication.k8s.io/v1",
                        "metadata": {"name": sa, "namespace": ns, "creationTimestamp": jiff::Timestamp::now().to_string()},
                        "spec": spec,
                        "status": {"token": token, "expirationTimestamp": expiry.to_string()},
                    }),
                )
            }
        }
    };
    shared.record(method, &uri, Some(posted), status_code);
    (status_code, axum::Json(answer)).into_response()
}

/// Any other request: the API server's 404 for an unknown resource.
async fn other(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let (status, body) = {
        let inner = shared.lock();
        gate(&inner, &headers, &method, NAMESPACE, None, uri.path()).unwrap_or_else(|| {
            status(
                StatusCode::NOT_FOUND,
                "NotFound",
                "the server could not find the requested resource",
                None,
            )
        })
    };
    shared.record(method, &uri, None, status);
    (status, axum::Json(body)).into_response()
}

/// Authentication (401 without the token) then authorization (403 while
/// forbidden), in the API server's order.  `None` lets the request through.
fn gate(
    inner: &Inner,
    headers: &HeaderMap,
    method: &Method,
    ns: &str,
    name: Option<&str>,
    path: &str,
) -> Option<(StatusCode, Value)> {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if bearer != Some(TOKEN) {
        return Some(status(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "Unauthorized",
            None,
        ));
    }
    if !inner.forbidden {
        return None;
    }
    let verb = match *method {
        Method::GET => "get",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "unknown",
    };
    let (message, details) = if !path.contains("/secrets") {
        (
            format!("forbidden: User \"{USER}\" cannot {verb} path \"{path}\""),
            None,
        )
    } else if let Some(name) = name {
        (
            format!(
                "secrets \"{name}\" is forbidden: User \"{USER}\" cannot {verb} resource \"secrets\" in API group \"\" in the namespace \"{ns}\""
            ),
            Some(json!({"name": name, "kind": "secrets"})),
        )
    } else {
        (
            format!(
                "secrets is forbidden: User \"{USER}\" cannot {verb} resource \"secrets\" in API group \"\" in the namespace \"{ns}\""
            ),
            Some(json!({"kind": "secrets"})),
        )
    };
    Some(status(
        StatusCode::FORBIDDEN,
        "Forbidden",
        &message,
        details,
    ))
}

/// Validates and stores a posted Secret, like the API server: 400 for a body
/// that is not a Secret of this namespace, 422 without a name, 409 when the
/// name exists, else 201 with the stored object.
fn create(
    inner: &mut Inner,
    ns: &str,
    name: Option<String>,
    posted: &Value,
) -> (StatusCode, Value) {
    if !posted.is_object() {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "the body of the request was in an unknown format",
            None,
        );
    }
    if let Some(body_ns) = posted["metadata"]["namespace"].as_str()
        && body_ns != ns
    {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "the namespace of the provided object does not match the namespace sent on the request",
            None,
        );
    }
    let Some(name) = name.filter(|n| !n.is_empty()) else {
        return status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            "Secret \"\" is invalid: metadata.name: Required value: name or generateName is required",
            Some(json!({"kind": "Secret"})),
        );
    };
    let mut data = Map::new();
    if let Some(posted_data) = posted["data"].as_object() {
        for (k, v) in posted_data {
            let decodes = v.as_str().is_some_and(|s| STANDARD.decode(s).is_ok());
            if !decodes {
                return status(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    &format!(
                        "Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data in data.{k}"
                    ),
                    None,
                );
            }
            data.insert(k.clone(), v.clone());
        }
    }
    let id = (ns.to_string(), name.clone());
    // The other replica's create lands first, so this one must see 409.
    if let Some(key) = inner.races.remove(&id) {
        let winner = key_secret(inner, &name, &key);
        inner.secrets.insert(id.clone(), winner);
    }
    if inner.secrets.contains_key(&id) {
        return status(
            StatusCode::CONFLICT,
            "AlreadyExists",
            &format!("secrets \"{name}\" already exists"),
            Some(json!({"name": name, "kind": "secrets"})),
        );
    }
    let mut secret = secret_object(
        inner,
        ns,
        &name,
        data,
        posted["immutable"].as_bool(),
        posted["type"].as_str().unwrap_or("Opaque"),
    );
    // Labels and annotations are kept as posted.
    for field in ["labels", "annotations"] {
        if let Some(v) = posted["metadata"].get(field) {
            secret["metadata"][field] = v.clone();
        }
    }
    inner.secrets.insert(id, secret.clone());
    (StatusCode::CREATED, secret)
}

/// An immutable Opaque key Secret `name` in [`NAMESPACE`].
fn key_secret(inner: &mut Inner, name: &str, key: &[u8]) -> Value {
    let mut data = Map::new();
    data.insert("key".into(), json!(STANDARD.encode(key)));
    secret_object(inner, NAMESPACE, name, data, Some(true), "Opaque")
}

/// A `v1 Secret` as the API server returns it, with server-set metadata.
fn secret_object(
    inner: &mut Inner,
    ns: &str,
    name: &str,
    data: Map<String, Value>,
    immutable: Option<bool>,
    kind: &str,
) -> Value {
    inner.counter += 1;
    let n = inner.counter;
    let created = jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .expect("round the time");
    let mut secret = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": ns,
            "uid": format!("6b1f0c52-0000-4000-8000-{n:012x}"),
            "resourceVersion": (1000 + n).to_string(),
            "creationTimestamp": created.to_string(),
        },
        "data": data,
        "type": kind,
    });
    if let Some(immutable) = immutable {
        secret["immutable"] = json!(immutable);
    }
    secret
}

/// A `v1 Status` failure body.
fn status(
    code: StatusCode,
    reason: &str,
    message: &str,
    details: Option<Value>,
) -> (StatusCode, Value) {
    let mut body = vault_csi::demo::token_review::status_body(code.as_u16(), reason, message);
    if let Some(details) = details {
        body["details"] = details;
    }
    (code, body)
}

/// Decodes a Secret's (or a posted body's) `data.key`.
pub fn data_key(secret: &Value) -> Vec<u8> {
    let text = secret["data"]["key"]
        .as_str()
        .unwrap_or_else(|| panic!("no data.key in {secret}"));
    STANDARD.decode(text).expect("data.key is base64")
}
