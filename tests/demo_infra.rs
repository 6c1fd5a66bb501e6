//! Proves the demo infrastructure against a real OpenBao dev server: the
//! kubernetes auth method with the fake TokenReview API, the jwt auth method
//! with the runtime signing key, the audit log, and the exact answers OpenBao
//! gives in the cases the provider must handle.

use std::time::{Duration, SystemTime};

use reqwest::Method;
use serde_json::{Value, json};
use vault_csi::demo::openbao::DevServer;
use vault_csi::demo::sa_token::{PodTokenClaims, TokenSigner, service_account_uid};
use vault_csi::demo::token_review::{
    TOKEN_REVIEW_PATH, TokenReviewServer, configure_jwt_auth, configure_kubernetes_auth, jwt_role,
    kubernetes_role,
};

const WAIT: Duration = Duration::from_secs(10);

/// Logs in with a plain reqwest client, as the provider will: no token, only the role and JWT.
async fn login(bao: &DevServer, mount: &str, role: &str, jwt: &str) -> (u16, Value) {
    let resp = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(format!("{}/v1/auth/{mount}/login", bao.addr()))
        .header("X-Vault-Request", "true")
        .json(&json!({ "role": role, "jwt": jwt }))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

fn errors(body: &Value) -> Vec<&str> {
    body["errors"]
        .as_array()
        .map(|e| e.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn kubernetes_auth_through_the_token_review_fake() {
    let bao = DevServer::start().await.unwrap();
    let signer = TokenSigner::new().unwrap();
    let review = TokenReviewServer::start(&signer).await.unwrap();
    configure_kubernetes_auth(&bao, "kubernetes", &review, None)
        .await
        .unwrap();
    kubernetes_role(
        &bao,
        "kubernetes",
        "app",
        &["app"],
        &["team-a"],
        &["default"],
        Duration::from_secs(600),
    )
    .await
    .unwrap();

    let token = signer.sign(&PodTokenClaims::new("team-a", "app", "vault"));
    let (status, body) = login(&bao, "kubernetes", "app", &token).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["auth"]["client_token"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );
    let meta = &body["auth"]["metadata"];
    assert_eq!(meta["service_account_name"], "app");
    assert_eq!(meta["service_account_namespace"], "team-a");
    assert_eq!(
        meta["service_account_uid"],
        service_account_uid("team-a", "app").as_str()
    );
    assert_eq!(body["auth"]["lease_duration"], 600);
    assert!(review.reviews() >= 1);

    // (a) A service account the role is not bound to.
    let other = signer.sign(&PodTokenClaims::new("team-a", "other", "vault"));
    let (status, body) = login(&bao, "kubernetes", "app", &other).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(errors(&body), ["service account name not authorized"]);

    // A namespace the role is not bound to.
    let foreign = signer.sign(&PodTokenClaims::new("team-b", "app", "vault"));
    let (status, body) = login(&bao, "kubernetes", "app", &foreign).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(errors(&body), ["namespace not authorized"]);

    // A role that does not exist.
    let (status, body) = login(&bao, "kubernetes", "nope", &token).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(errors(&body), ["invalid role name \"nope\""]);

    // The successful login is in the audit log, with the SA in the auth metadata.
    let entries = bao
        .wait_for_audit(
            |e| {
                e["type"] == "response"
                    && e["request"]["path"] == "auth/kubernetes/login"
                    && e["response"]["auth"]["metadata"]["service_account_name"] == "app"
            },
            1,
            WAIT,
        )
        .await
        .unwrap();
    assert_eq!(entries[0]["request"]["data"]["role"], "app");
    // log_raw keeps values readable: the JWT is there verbatim.
    assert_eq!(entries[0]["request"]["data"]["jwt"], token.as_str());
}

#[tokio::test]
async fn jwt_auth_with_the_runtime_key() {
    let bao = DevServer::start().await.unwrap();
    let signer = TokenSigner::new().unwrap();
    configure_jwt_auth(&bao, "jwt", &signer, None)
        .await
        .unwrap();
    jwt_role(
        &bao,
        "jwt",
        "app",
        "system:serviceaccount:team-a:app",
        "vault",
        &["default"],
        Duration::from_secs(300),
    )
    .await
    .unwrap();

    let claims = PodTokenClaims::new("team-a", "app", "vault");
    let (status, body) = login(&bao, "jwt", "app", &signer.sign(&claims)).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["auth"]["client_token"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );
    assert_eq!(body["auth"]["metadata"]["role"], "app");
    assert_eq!(body["auth"]["lease_duration"], 300);

    // (b) Wrong audience.
    let mut wrong = claims.clone();
    wrong.audience = vec!["not-vault".into()];
    let (status, body) = login(&bao, "jwt", "app", &signer.sign(&wrong)).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        errors(&body),
        [
            "error validating token: invalid audience (aud) claim: audience claim does not match any expected audience"
        ]
    );

    // (c) Expired (issued two hours ago for one minute; past any clock-skew leeway).
    let mut short = claims.clone();
    short.ttl = Duration::from_secs(60);
    let old = SystemTime::now() - Duration::from_secs(7200);
    let (status, body) = login(&bao, "jwt", "app", &signer.sign_at(&short, old)).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        errors(&body),
        ["error validating token: invalid expiration time (exp) claim: token is expired"]
    );

    // Wrong subject.
    let other = PodTokenClaims::new("team-a", "other", "vault");
    let (status, body) = login(&bao, "jwt", "app", &signer.sign(&other)).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        errors(&body),
        ["error validating token: invalid subject (sub) claim"]
    );

    // A key OpenBao does not trust.
    let stranger = TokenSigner::new().unwrap();
    let (status, body) = login(&bao, "jwt", "app", &stranger.sign(&claims)).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(errors(&body).len(), 1, "{body}");

    bao.wait_for_audit(
        |e| {
            e["type"] == "response"
                && e["request"]["path"] == "auth/jwt/login"
                && e["response"]["auth"]["client_token"].is_string()
        },
        1,
        WAIT,
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn token_review_fake_answers_like_the_api_server() {
    let signer = TokenSigner::new().unwrap();
    let review = TokenReviewServer::start(&signer).await.unwrap();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let post = |spec: Value, bearer: bool| {
        let mut req = http
            .post(format!("{}{TOKEN_REVIEW_PATH}", review.url()))
            .json(&json!({ "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec }));
        if bearer {
            req = req.bearer_auth("reviewer");
        }
        async move {
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap())
        }
    };
    let claims = PodTokenClaims::new("team-a", "app", "vault");
    let token = signer.sign(&claims);

    let (status, body) = post(json!({ "token": token, "audiences": ["vault", "x"] }), true).await;
    assert_eq!(status, 201);
    assert_eq!(body["kind"], "TokenReview");
    let st = &body["status"];
    assert_eq!(st["authenticated"], true);
    assert_eq!(st["audiences"], json!(["vault"]));
    assert_eq!(st["user"]["username"], "system:serviceaccount:team-a:app");
    assert_eq!(
        st["user"]["uid"],
        service_account_uid("team-a", "app").as_str()
    );
    assert_eq!(
        st["user"]["groups"],
        json!([
            "system:serviceaccounts",
            "system:serviceaccounts:team-a",
            "system:authenticated"
        ])
    );
    assert_eq!(
        st["user"]["extra"]["authentication.kubernetes.io/pod-name"],
        json!([claims.pod_name])
    );
    assert_eq!(
        st["user"]["extra"]["authentication.kubernetes.io/pod-uid"],
        json!([claims.pod_uid])
    );

    // Audiences that do not intersect, and no audiences (then the API server's own).
    for spec in [
        json!({ "token": token, "audiences": ["other"] }),
        json!({ "token": token }),
    ] {
        let (status, body) = post(spec, true).await;
        assert_eq!(status, 201);
        assert_eq!(body["status"]["authenticated"], Value::Null);
        assert!(
            body["status"]["error"]
                .as_str()
                .unwrap()
                .contains("is invalid for the target audiences"),
            "{body}"
        );
    }

    // Expired, and signed by an unknown key.
    let mut short = claims.clone();
    short.ttl = Duration::from_secs(1);
    let expired = signer.sign_at(&short, SystemTime::now() - Duration::from_secs(3600));
    let (_, body) = post(json!({ "token": expired, "audiences": ["vault"] }), true).await;
    assert_eq!(
        body["status"]["error"],
        "[invalid bearer token, service account token has expired]"
    );
    let forged = TokenSigner::new().unwrap().sign(&claims);
    let (_, body) = post(json!({ "token": forged, "audiences": ["vault"] }), true).await;
    assert!(body["status"]["authenticated"].is_null(), "{body}");

    // No bearer token: the API server refuses before reviewing.
    let (status, body) = post(json!({ "token": token }), false).await;
    assert_eq!(status, 401);
    assert_eq!(body["kind"], "Status");
    assert_eq!(review.reviews(), 6);
}

#[tokio::test]
async fn openbao_answers_the_provider_must_handle() {
    let bao = DevServer::start().await.unwrap();

    // (g) A KV v2 read.
    bao.api(
        Method::POST,
        "secret/data/app",
        Some(json!({ "data": { "username": "u", "password": "p" } })),
    )
    .await
    .unwrap();
    let read = bao.api(Method::GET, "secret/data/app", None).await.unwrap();
    assert_eq!(
        read["data"]["data"],
        json!({ "username": "u", "password": "p" })
    );
    assert_eq!(read["data"]["metadata"]["version"], 1);
    assert_eq!(read["lease_id"], "");
    assert_eq!(read["lease_duration"], 0);
    assert_eq!(read["warnings"], Value::Null);

    // (d) A missing KV v2 path: 404 with an empty errors array.
    let (status, body) = bao
        .raw(Method::GET, "secret/data/nope", Some("root"), None, None)
        .await
        .unwrap();
    assert_eq!((status, body), (404, json!({ "errors": [] })));

    // (e) A KV v2 mount read without `data/`: 404 with a warning, not an error.
    let (status, body) = bao
        .raw(Method::GET, "secret/app", Some("root"), None, None)
        .await
        .unwrap();
    assert_eq!(status, 404);
    assert_eq!(body["data"], Value::Null);
    assert_eq!(
        body["warnings"],
        json!([
            "Invalid path for a versioned K/V secrets engine. See the API docs for the appropriate API endpoints to use. If using the OpenBao CLI, use 'bao kv get' for this operation."
        ])
    );

    // A path under no mount, and a bad token.
    let (status, body) = bao
        .raw(Method::GET, "nomount/x", Some("root"), None, None)
        .await
        .unwrap();
    assert_eq!(status, 404);
    assert_eq!(
        errors(&body),
        ["no handler for route \"nomount/x\". route entry not found."]
    );
    let (status, body) = bao
        .raw(Method::GET, "secret/data/app", Some("bad"), None, None)
        .await
        .unwrap();
    assert_eq!((status, errors(&body)), (403, vec!["permission denied"]));

    // (h) PKI issue: certificate material in data, no lease unless the role asks.
    bao.api(
        Method::POST,
        "sys/mounts/pki",
        Some(json!({ "type": "pki", "config": { "max_lease_ttl": "87600h" } })),
    )
    .await
    .unwrap();
    bao.api(
        Method::POST,
        "pki/root/generate/internal",
        Some(json!({ "common_name": "example.com", "ttl": "8760h" })),
    )
    .await
    .unwrap();
    bao.api(
        Method::POST,
        "pki/roles/web",
        Some(
            json!({ "allowed_domains": "example.com", "allow_subdomains": true, "max_ttl": "72h" }),
        ),
    )
    .await
    .unwrap();
    let cert = bao
        .api(
            Method::PUT,
            "pki/issue/web",
            Some(json!({ "common_name": "www.example.com", "ttl": "1h" })),
        )
        .await
        .unwrap();
    let mut keys: Vec<&str> = cert["data"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "ca_chain",
            "certificate",
            "expiration",
            "issuing_ca",
            "not_before",
            "private_key",
            "private_key_type",
            "serial_number"
        ]
    );
    assert_eq!(cert["lease_id"], "");
    assert!(cert["data"]["expiration"].is_u64());
    assert!(cert["data"]["ca_chain"].is_array());
    bao.api(
        Method::POST,
        "pki/roles/leased",
        Some(json!({ "allowed_domains": "example.com", "allow_subdomains": true, "generate_lease": true })),
    )
    .await
    .unwrap();
    let leased = bao
        .api(
            Method::PUT,
            "pki/issue/leased",
            Some(json!({ "common_name": "www.example.com", "ttl": "1h" })),
        )
        .await
        .unwrap();
    assert!(
        leased["lease_id"]
            .as_str()
            .unwrap()
            .starts_with("pki/issue/leased/")
    );
    // The lease runs to the certificate's NotAfter, so it can read 3599 at a second boundary.
    let lease = leased["lease_duration"].as_u64().unwrap();
    assert!((3590..=3600).contains(&lease), "{lease}");
    assert_eq!(leased["renewable"], false);

    // (i) Namespaces work in dev mode; a new namespace has no `secret/` until mounted.
    bao.api(Method::POST, "sys/namespaces/team-a", Some(json!({})))
        .await
        .unwrap();
    bao.api_ns(
        "team-a",
        Method::POST,
        "sys/mounts/secret",
        Some(json!({ "type": "kv", "options": { "version": "2" } })),
    )
    .await
    .unwrap();
    bao.api_ns(
        "team-a",
        Method::POST,
        "secret/data/db",
        Some(json!({ "data": { "pw": "in-namespace" } })),
    )
    .await
    .unwrap();
    let ns_read = bao
        .api_ns("team-a", Method::GET, "secret/data/db", None)
        .await
        .unwrap();
    assert_eq!(ns_read["data"]["data"]["pw"], "in-namespace");
    let err = bao
        .api(Method::GET, "secret/data/db", None)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(404));
    let err = bao
        .api_ns("nope", Method::GET, "secret/data/db", None)
        .await
        .unwrap_err();
    assert_eq!(
        (err.status(), err.api_errors()),
        (Some(404), vec!["namespace not found".to_owned()])
    );

    // (f) Sealed: every request gets 503 "Vault is sealed", until unsealed.
    bao.seal().await.unwrap();
    for (path, token) in [
        ("secret/data/app", Some("root")),
        ("auth/token/lookup-self", Some("root")),
        ("secret/data/app", None),
    ] {
        let (status, body) = bao.raw(Method::GET, path, token, None, None).await.unwrap();
        assert_eq!((status, errors(&body)), (503, vec!["Vault is sealed"]));
    }
    bao.unseal().await.unwrap();
    let again = bao.api(Method::GET, "secret/data/app", None).await.unwrap();
    assert_eq!(again["data"]["data"]["username"], "u");
}

#[tokio::test]
async fn dropping_the_server_reaps_the_process() {
    let bao = DevServer::start().await.unwrap();
    let pid = bao.pid().unwrap();
    let port = bao.port();
    let dir = bao.audit_log_path().parent().unwrap().to_owned();
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    drop(bao);
    // Both the watchdog and bao itself are gone: nothing listens any more.
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    assert!(!dir.exists());
}
