//! The object-version key from the Kubernetes Secret (no `--hmac-key-file`):
//! created when missing, read once, shared across restarts, a custom name,
//! a lost create race, and the fallbacks when the API forbids it or there is
//! no Kubernetes configuration at all.  The provider is the real binary; its
//! Kubernetes API is the fake in `common::kube_api`, reached via KUBECONFIG.

mod common;

use std::time::{Duration, Instant};

use common::kube_api::{DEFAULT_SECRET, KubeApi, NAMESPACE, data_key, secret_path, secrets_path};
use common::requests::version;
use common::{MountBuilder, Provider, TestPod, env, run};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::OnceCell;

/// Pod namespace of every mount here.
const POD_NS: &str = "hmac-ns";
/// The objects mounted; two, so "all versions differ" means something.
const OBJECTS: &str = r#"
- objectName: username
  secretPath: secret/data/hmac-key/app
  secretKey: username
- objectName: password
  secretPath: secret/data/hmac-key/app
  secretKey: password
"#;
/// Object names in [`OBJECTS`].
const IDS: [&str; 2] = ["username", "password"];
/// The key the common helper writes to `--hmac-key-file`; seeding a Secret
/// with it must give the same versions as that file.
const FILE_KEY: [u8; 32] = [7; 32];

static SETUP: OnceCell<()> = OnceCell::const_new();

/// Writes the secret and role once per binary, so parallel tests never see
/// the content change under them.
async fn setup() {
    SETUP
        .get_or_init(|| async {
            let env = env().await;
            env.kv2_put(
                "hmac-key/app",
                json!({"username": "hmac-user", "password": "hmac-pass"}),
            )
            .await;
            env.k8s_role(
                "hmac-key",
                "app",
                POD_NS,
                &[("secret/data/hmac-key/*", "\"read\"")],
                Duration::from_secs(600),
            )
            .await;
        })
        .await;
}

/// Starts a provider without a key file whose Kubernetes API is `kube`.
async fn start_against(kube: &KubeApi, args: &[&str]) -> Provider {
    let kubeconfig = kube.kubeconfig().display().to_string();
    let home = kube.empty_home().display().to_string();
    Provider::start_opts(args, &[("KUBECONFIG", &kubeconfig), ("HOME", &home)], false).await
}

/// Mounts [`OBJECTS`] for a fresh pod and returns the versions in [`IDS`]
/// order.
async fn versions(provider: &Provider) -> Vec<String> {
    setup().await;
    let env = env().await;
    let pod = TestPod::new(POD_NS, "app");
    let request =
        MountBuilder::new(env.bao.addr(), "hmac-key", OBJECTS).pod(&pod, &env.signer, "vault");
    let response = provider
        .mount(request.build())
        .await
        .unwrap_or_else(|e| panic!("mount: {e}\n{}", provider.logs()));
    assert!(response.error.is_none(), "{:?}", response.error);
    IDS.iter()
        .map(|id| version(&response, id).to_string())
        .collect()
}

/// Versions from a provider using the common helper's key file.
async fn file_key_versions() -> Vec<String> {
    versions(&Provider::start(&[]).await).await
}

/// True when no version in `a` equals the one in `b` for the same object.
fn all_differ(a: &[String], b: &[String]) -> bool {
    a.iter().zip(b).all(|(x, y)| x != y)
}

/// Waits until the provider has logged a JSON line satisfying `found`, and
/// returns it; fails with the log after 20 s.
async fn wait_for_log(provider: &Provider, found: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let logs = provider.logs();
        if let Some(line) = logs
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|l| found(l))
        {
            return line;
        }
        assert!(
            Instant::now() < deadline,
            "expected log line not seen:\n{logs}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A log line's level, message and fields as one lower-case text.
fn line_text(line: &Value) -> String {
    line.to_string().to_lowercase()
}

#[test]
fn a_missing_secret_is_created_immutable_and_a_restart_reads_it_once() {
    run(async {
        let kube = KubeApi::start().await;
        let mut first = start_against(&kube, &[]).await;
        let before = versions(&first).await;
        assert_eq!(versions(&first).await, before, "one key per process");

        let get = secret_path(DEFAULT_SECRET);
        assert_eq!(kube.count(&Method::GET, &get), 1, "read once and cached");
        let posts: Vec<_> = kube
            .requests()
            .into_iter()
            .filter(|r| r.method == Method::POST)
            .collect();
        assert_eq!(posts.len(), 1, "{posts:#?}");
        let post = &posts[0];
        assert_eq!(
            post.path,
            secrets_path(),
            "created in the provider's namespace"
        );
        assert_eq!(post.status, 201);
        let body = post.body.as_ref().unwrap();
        assert_eq!(body["metadata"]["name"], DEFAULT_SECRET);
        assert!(
            body["metadata"]["namespace"].is_null() || body["metadata"]["namespace"] == NAMESPACE,
            "{body}"
        );
        assert_eq!(body["immutable"], true, "{body}");
        assert_eq!(data_key(body).len(), 32, "{body}");
        let stored = kube.secret(DEFAULT_SECRET).expect("the Secret exists now");
        assert_eq!(data_key(&stored), data_key(body));

        // A restart (new process, same Secret) gives the same versions, reads
        // the Secret once and creates nothing.
        first.send_sigterm();
        assert!(first.wait_exit(Duration::from_secs(30)).await.success());
        let second = first.restart().await;
        assert_eq!(versions(&second).await, before);
        assert_eq!(versions(&second).await, before);
        assert_eq!(kube.count(&Method::GET, &get), 2, "one GET per process");
        assert_eq!(kube.count(&Method::POST, &secrets_path()), 1);
        assert_eq!(kube.requests().len(), 3, "{:#?}", kube.requests());
    });
}

#[test]
fn an_existing_secret_is_used_and_never_recreated() {
    run(async {
        let kube = KubeApi::start().await;
        kube.seed(DEFAULT_SECRET, &FILE_KEY);
        let a = start_against(&kube, &[]).await;
        let b = start_against(&kube, &[]).await;
        let from_a = versions(&a).await;
        assert_eq!(versions(&b).await, from_a, "two processes, one key");
        assert_eq!(
            file_key_versions().await,
            from_a,
            "the Secret's bytes are the key, as from a key file"
        );
        assert_eq!(kube.count(&Method::GET, &secret_path(DEFAULT_SECRET)), 2);
        assert!(
            kube.requests()
                .iter()
                .all(|r| r.method == Method::GET && r.status == 200),
            "{:#?}",
            kube.requests()
        );

        // Another key gives other versions: the Secret's key is really used.
        let other = KubeApi::start().await;
        other.seed(DEFAULT_SECRET, &[9; 32]);
        let c = start_against(&other, &[]).await;
        let from_c = versions(&c).await;
        assert!(all_differ(&from_a, &from_c), "{from_a:?} vs {from_c:?}");
    });
}

#[test]
fn a_custom_secret_name_is_honoured() {
    run(async {
        // Existing: read under the custom name only.
        let kube = KubeApi::start().await;
        kube.seed("custom", &FILE_KEY);
        kube.seed(DEFAULT_SECRET, &[9; 32]);
        let provider = start_against(&kube, &["--hmac-secret-name=custom"]).await;
        assert_eq!(versions(&provider).await, file_key_versions().await);
        let requests = kube.requests();
        assert_eq!(requests.len(), 1, "{requests:#?}");
        assert_eq!(requests[0].method, Method::GET);
        assert_eq!(requests[0].path, secret_path("custom"));

        // Missing: created under the custom name.
        let empty = KubeApi::start().await;
        let provider = start_against(&empty, &["--hmac-secret-name=custom"]).await;
        versions(&provider).await;
        let post = empty
            .requests()
            .into_iter()
            .find(|r| r.method == Method::POST)
            .expect("a create");
        assert_eq!(post.body.as_ref().unwrap()["metadata"]["name"], "custom");
        assert!(empty.secret("custom").is_some());
        assert!(empty.secret(DEFAULT_SECRET).is_none());
    });
}

#[test]
fn a_lost_create_race_uses_the_winners_key() {
    run(async {
        let kube = KubeApi::start().await;
        kube.lose_create_race(DEFAULT_SECRET, &FILE_KEY);
        let provider = start_against(&kube, &[]).await;
        let got = versions(&provider).await;
        let seen: Vec<(Method, u16)> = kube
            .requests()
            .into_iter()
            .map(|r| (r.method, r.status))
            .collect();
        assert_eq!(
            seen,
            [(Method::GET, 404), (Method::POST, 409), (Method::GET, 200)],
            "404, lost create, re-read"
        );
        assert_eq!(got, file_key_versions().await, "the winner's key is used");
        assert_eq!(data_key(&kube.secret(DEFAULT_SECRET).unwrap()), FILE_KEY);
        assert_eq!(versions(&provider).await, got);
        assert_eq!(kube.requests().len(), 3, "cached after the race");
    });
}

#[test]
fn forbidden_falls_back_to_a_per_process_key_and_does_not_retry_every_mount() {
    run(async {
        let kube = KubeApi::start().await;
        // A readable Secret would give the key file's versions; it stays unread.
        kube.seed(DEFAULT_SECRET, &FILE_KEY);
        kube.set_forbidden(true);
        let provider = start_against(&kube, &["--log-format=json"]).await;
        let first = versions(&provider).await;
        assert_eq!(
            versions(&provider).await,
            first,
            "one fallback key per process"
        );
        let requests = kube.requests();
        assert_eq!(
            requests.len(),
            1,
            "one attempt, not one per mount: {requests:#?}"
        );
        assert_eq!(requests[0].method, Method::GET);
        assert_eq!(requests[0].status, 403);

        let secret = format!("{NAMESPACE}/{DEFAULT_SECRET}");
        let warning = wait_for_log(&provider, |l| {
            l["level"] == "WARN" && l["secret"] == secret.as_str()
        })
        .await;
        let error = warning["error"].as_str().unwrap_or_default();
        assert!(error.contains("Forbidden"), "the API's reason: {warning}");
        let message = warning["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(" get ") && message.contains(" create "),
            "names the RBAC needed: {warning}"
        );

        assert!(all_differ(&first, &file_key_versions().await));
        let again = start_against(&kube, &["--log-format=json"]).await;
        let other = versions(&again).await;
        assert!(all_differ(&first, &other), "a random key per process");
    });
}

/// Starts a provider with neither a key file nor a Kubernetes configuration:
/// no KUBECONFIG, no in-cluster variables, and an empty `home`.
async fn start_without_kube(home: &str) -> Provider {
    Provider::start_opts(&["--log-format=json"], &[("HOME", home)], false).await
}

#[test]
fn without_any_kubernetes_configuration_a_random_key_is_used() {
    run(async {
        let home_dir = tempfile::tempdir().unwrap();
        let home = home_dir.path().display().to_string();
        let provider = start_without_kube(&home).await;
        let warning = wait_for_log(&provider, |l| {
            l["level"] == "WARN" && line_text(l).contains("no kubernetes configuration")
        })
        .await;
        assert!(line_text(&warning).contains("random"), "{warning}");
        let first = versions(&provider).await;
        assert_eq!(versions(&provider).await, first);
        let other = versions(&start_without_kube(&home).await).await;
        assert!(all_differ(&first, &other), "a random key per process");
    });
}
