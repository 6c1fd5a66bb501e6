//! Faults from Vault: each ends in a clear error within the Mount's
//! deadline, retries only what is safe to retry, and leaves the provider
//! serving other mounts.  Real OpenBao produces what it can (refused
//! connections, a huge answer, the answers behind a followed redirect); a
//! fault-injecting proxy between provider and OpenBao produces the rest.
//! A sealed Vault has its own binary, `tests/sealed.rs`, because sealing
//! stops the shared OpenBao.

mod common;

use std::time::Duration;

use common::fault_proxy::{Fault, FaultProxy};
use common::requests::file;
use common::{MountBuilder, Provider, TestPod, env, run};
use reqwest::Method;
use serde_json::json;
use tokio::sync::OnceCell;
use tonic::Code;
use vault_csi::proto::MountResponse;

/// The secret every test reads; its value must never appear in an error.
const VALUE: &str = "fault-value-5e1d";
/// The KV path, as a secretPath and as the proxy sees it.
const KV: &str = "secret/data/faults/app";
const KV_URL: &str = "/v1/secret/data/faults/app";
/// A PKI issue path: a write that issues a new credential each time.
const ISSUE: &str = "faults-pki/issue/web";
const ISSUE_URL: &str = "/v1/faults-pki/issue/web";
/// The Kubernetes auth login, as the proxy sees it.
const LOGIN_URL: &str = "/v1/auth/kubernetes/login";
/// The Mount deadline every call carries, as the driver's calls do.
const DEADLINE: Duration = Duration::from_secs(15);
/// Attempts of a read with the default `VAULT_MAX_RETRIES` of 2.
const READ_ATTEMPTS: usize = 3;

fn read_objects() -> String {
    format!("- objectName: password\n  secretPath: {KV}\n  secretKey: password\n")
}

fn issue_objects() -> String {
    format!(
        "- objectName: crt\n  secretPath: {ISSUE}\n  method: PUT\n  secretKey: certificate\n  \
         secretArgs:\n    common_name: app.faults.example\n"
    )
}

static SETUP: OnceCell<()> = OnceCell::const_new();

/// The secret, a PKI engine issuing for `faults.example`, and role `faults`
/// (SA `app` in `faults-ns`) allowed both; once per binary.
async fn setup() -> &'static common::Env {
    let env = env().await;
    SETUP
        .get_or_init(|| async {
            env.kv2_put("faults/app", json!({ "password": VALUE }))
                .await;
            env.api(
                Method::POST,
                "sys/mounts/faults-pki",
                Some(json!({"type": "pki"})),
            )
            .await;
            env.api(
                Method::POST,
                "faults-pki/root/generate/internal",
                Some(json!({"common_name": "faults-ca", "ttl": "24h"})),
            )
            .await;
            env.api(
                Method::POST,
                "faults-pki/roles/web",
                Some(json!({
                    "allowed_domains": "faults.example",
                    "allow_subdomains": true,
                    "ttl": "1h",
                    "max_ttl": "1h"
                })),
            )
            .await;
            env.k8s_role(
                "faults",
                "app",
                "faults-ns",
                &[
                    ("secret/data/faults/*", "\"read\""),
                    ("faults-pki/issue/web", "\"update\""),
                ],
                Duration::from_secs(600),
            )
            .await;
        })
        .await;
    env
}

/// A provider that never answers from stale content (so every fault shows)
/// with `args` and `env_vars`.
async fn provider(args: &[&str], env_vars: &[(&str, &str)]) -> Provider {
    let mut all = vec!["--stale-if-error=0"];
    all.extend_from_slice(args);
    Provider::start_with_env(&all, env_vars).await
}

/// A proxy in front of the shared OpenBao.
async fn proxy() -> FaultProxy {
    FaultProxy::start(Some(common::bao_addr())).await
}

/// A mount request of a new pod against `addr`.
fn request(addr: &str, objects: &str) -> MountBuilder {
    let env = common::env_now();
    let pod = TestPod::new("faults-ns", "app");
    MountBuilder::new(addr, "faults", objects).pod(&pod, &env.signer, "vault")
}

/// One Mount carrying the driver's deadline.
async fn mount(
    provider: &Provider,
    builder: &MountBuilder,
    deadline: Duration,
) -> Result<MountResponse, tonic::Status> {
    let mut call = tonic::Request::new(builder.build());
    call.set_timeout(deadline);
    provider
        .client()
        .await
        .mount(call)
        .await
        .map(|r| r.into_inner())
}

/// Mounts `builder` within [`DEADLINE`]; it must fail with `code` and a
/// message containing every fragment and never the secret.
async fn expect_error(
    provider: &Provider,
    builder: &MountBuilder,
    code: Code,
    fragments: &[&str],
) -> String {
    let error = match mount(provider, builder, DEADLINE).await {
        // Names only: the files hold secrets.
        Ok(r) => panic!(
            "the mount must fail, but it gave {:?}",
            r.files.iter().map(|f| &f.path).collect::<Vec<_>>()
        ),
        Err(error) => error,
    };
    let message = common::provider::assert_status(&error, code, fragments);
    assert!(!message.contains(VALUE), "the secret in: {message}");
    message
}

/// The provider still mounts the secret from `addr`.
async fn still_serves(provider: &Provider, addr: &str) {
    let response = mount(provider, &request(addr, &read_objects()), DEADLINE)
        .await
        .unwrap_or_else(|e| panic!("a normal mount after the fault failed: {e:?}"));
    assert_eq!(file(&response, "password"), VALUE);
}

#[test]
fn a_refused_connection_is_unavailable_naming_the_address() {
    run(async {
        setup().await;
        let provider = provider(&[], &[]).await;
        // Bound then closed: nothing listens on the port.
        let closed = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}", listener.local_addr().unwrap())
        };
        expect_error(
            &provider,
            &request(&closed, &read_objects()),
            Code::Unavailable,
            &[&closed, "could not connect", "logging in"],
        )
        .await;
        still_serves(&provider, common::bao_addr()).await;
    });
}

#[test]
fn server_errors_on_reads_are_retried_a_bounded_number_of_times() {
    run(async {
        setup().await;
        let proxy = proxy().await;
        let provider = provider(&[], &[]).await;
        for (status, code) in [
            (500, Code::Internal),
            (502, Code::Unavailable),
            (503, Code::Unavailable),
        ] {
            proxy.forget();
            proxy.inject(
                KV_URL,
                Fault::status(status, r#"{"errors":["injected failure"]}"#),
            );
            expect_error(
                &provider,
                &request(&proxy.addr, &read_objects()),
                code,
                &[&status.to_string(), "injected failure", KV],
            )
            .await;
            assert_eq!(proxy.count("GET", KV_URL), READ_ATTEMPTS, "{status}");
        }
        proxy.clear();
        still_serves(&provider, &proxy.addr).await;
    });
}

#[test]
fn server_errors_on_writes_are_never_repeated() {
    run(async {
        setup().await;
        let proxy = proxy().await;
        let provider = provider(&[], &[]).await;
        for (status, code) in [
            (500, Code::Internal),
            // A gateway may have passed the write on: Aborted, which the
            // driver does not retry.
            (502, Code::Aborted),
            (504, Code::Aborted),
            // Vault itself refused to act (sealed, standby): nothing issued.
            (503, Code::Unavailable),
        ] {
            proxy.forget();
            proxy.inject(
                ISSUE_URL,
                Fault::status(status, r#"{"errors":["injected failure"]}"#),
            );
            expect_error(
                &provider,
                &request(&proxy.addr, &issue_objects()),
                code,
                &[&status.to_string(), ISSUE],
            )
            .await;
            assert_eq!(proxy.count("PUT", ISSUE_URL), 1, "{status}");
        }
        proxy.clear();
        still_serves(&provider, &proxy.addr).await;
    });
}

#[test]
fn a_server_that_never_answers_fails_within_the_deadline() {
    run(async {
        setup().await;
        let proxy = proxy().await;
        let provider = provider(&[], &[("VAULT_CLIENT_TIMEOUT", "1s")]).await;
        // A read: retried until the deadline cuts it short.
        proxy.inject(KV_URL, Fault::Hang);
        let error = mount(
            &provider,
            &request(&proxy.addr, &read_objects()),
            Duration::from_secs(2),
        )
        .await
        .expect_err("a silent server cannot serve the mount");
        assert!(
            matches!(error.code(), Code::DeadlineExceeded | Code::Unavailable),
            "{error:?}"
        );
        assert!(proxy.count("GET", KV_URL) >= 1);
        // The provider's own message, in its log, says what it waited for.
        let waited = std::time::Instant::now() + Duration::from_secs(10);
        while !provider.logs().contains("did not finish within") {
            assert!(std::time::Instant::now() < waited, "{}", provider.logs());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // A write: sent once, then Aborted when the request times out.
        proxy.inject(ISSUE_URL, Fault::Hang);
        expect_error(
            &provider,
            &request(&proxy.addr, &issue_objects()),
            Code::Aborted,
            &["did not answer in time", "may have reached Vault", ISSUE],
        )
        .await;
        assert_eq!(proxy.count("PUT", ISSUE_URL), 1);
        proxy.clear();
        still_serves(&provider, &proxy.addr).await;
    });
}

#[test]
fn an_answer_cut_off_mid_body_is_retried_for_reads_and_aborted_for_writes() {
    run(async {
        setup().await;
        let proxy = proxy().await;
        let provider = provider(&[], &[]).await;
        let partial = br#"{"request_id":"x","data":{"data":{"password":"fault-va"#.to_vec();
        let cut = Fault::CutOff {
            declared: 4096,
            body: partial,
        };
        proxy.inject(KV_URL, cut.clone());
        expect_error(
            &provider,
            &request(&proxy.addr, &read_objects()),
            Code::Unavailable,
            &["connection to Vault broke", KV],
        )
        .await;
        assert_eq!(proxy.count("GET", KV_URL), READ_ATTEMPTS);
        proxy.inject(ISSUE_URL, cut);
        expect_error(
            &provider,
            &request(&proxy.addr, &issue_objects()),
            Code::Aborted,
            &["may have reached Vault", "PUT", ISSUE],
        )
        .await;
        assert_eq!(proxy.count("PUT", ISSUE_URL), 1);
        proxy.clear();
        still_serves(&provider, &proxy.addr).await;
    });
}

#[test]
fn an_answer_that_is_not_vault_json_is_failed_precondition_and_never_quoted() {
    run(async {
        setup().await;
        let proxy = proxy().await;
        let provider = provider(&["--log-level=trace"], &[]).await;
        let canary = "canary-body-91c2";
        for body in [
            format!(r#"{{"data": "{canary}"}}"#),
            format!(r#"{{"data": {{"password": "{canary}""#),
            format!("<html>{canary}</html>"),
        ] {
            proxy.forget();
            proxy.inject(KV_URL, Fault::status(200, &body));
            let message = expect_error(
                &provider,
                &request(&proxy.addr, &read_objects()),
                Code::FailedPrecondition,
                &["not a Vault JSON response", KV, "line 1"],
            )
            .await;
            assert!(!message.contains(canary), "{message}");
            // Not retried: the same answer would come back.
            assert_eq!(proxy.count("GET", KV_URL), 1);
        }
        assert!(!provider.logs().contains(canary), "{}", provider.logs());
        proxy.clear();
        still_serves(&provider, &proxy.addr).await;
    });
}

#[test]
fn a_redirect_to_an_unlisted_host_is_not_followed_and_the_token_stays() {
    run(async {
        setup().await;
        let proxy = proxy().await;
        // Where the redirects point: it records, and must see nothing.
        let elsewhere = FaultProxy::start(None).await;
        let provider = provider(&[], &[]).await;
        // The login first (a standby node's usual first answer), before the
        // identity has a cached token.
        let login_target = format!("{}{LOGIN_URL}", elsewhere.addr);
        proxy.inject(LOGIN_URL, Fault::redirect(307, &login_target));
        expect_error(
            &provider,
            &request(&proxy.addr, &read_objects()),
            Code::FailedPrecondition,
            &[
                "login at auth/kubernetes",
                &login_target,
                "--vault-redirect-hosts",
            ],
        )
        .await;
        proxy.clear();
        let target = format!("{}{KV_URL}", elsewhere.addr);
        for status in [301, 307] {
            proxy.inject(KV_URL, Fault::redirect(status, &target));
            expect_error(
                &provider,
                &request(&proxy.addr, &read_objects()),
                Code::FailedPrecondition,
                &[
                    &format!("Vault answered {status} redirecting to {target}"),
                    &format!("{} is not in --vault-redirect-hosts", elsewhere.authority),
                    "vaultAddress at the active Vault node",
                ],
            )
            .await;
        }
        // A write.
        let issue_target = format!("{}{ISSUE_URL}", elsewhere.addr);
        proxy.inject(ISSUE_URL, Fault::redirect(307, &issue_target));
        expect_error(
            &provider,
            &request(&proxy.addr, &issue_objects()),
            Code::FailedPrecondition,
            &[&issue_target, "--vault-redirect-hosts"],
        )
        .await;
        assert_eq!(elsewhere.seen(), vec![], "a request reached the other host");
        assert!(proxy.count("POST", LOGIN_URL) >= 1);
        proxy.clear();
        still_serves(&provider, &proxy.addr).await;
    });
}

#[test]
fn a_redirect_to_a_listed_host_is_followed_with_method_and_body() {
    run(async {
        let env = setup().await;
        // The standby redirects everything to the active node, which is
        // OpenBao behind a recording proxy.
        let standby = FaultProxy::start(None).await;
        let active = proxy().await;
        let provider = provider(
            &[&format!("--vault-redirect-hosts={}", active.authority)],
            &[],
        )
        .await;
        for path in [LOGIN_URL, KV_URL, ISSUE_URL] {
            standby.inject(
                path,
                Fault::redirect(307, &format!("{}{path}", active.addr)),
            );
        }
        let objects = format!("{}{}", read_objects(), issue_objects());
        let response = mount(&provider, &request(&standby.addr, &objects), DEADLINE)
            .await
            .expect("the mount follows the redirects");
        assert_eq!(file(&response, "password"), VALUE);
        assert!(file(&response, "crt").starts_with("-----BEGIN CERTIFICATE-----"));
        // Each request went once to each node, the token only where it belongs:
        // not with the login, with every later request.
        for (method, path, token) in [
            ("POST", LOGIN_URL, false),
            ("GET", KV_URL, true),
            ("PUT", ISSUE_URL, true),
        ] {
            for node in [&standby, &active] {
                let seen: Vec<_> = node
                    .seen()
                    .into_iter()
                    .filter(|s| s.method == method && s.path == path)
                    .collect();
                assert_eq!(seen.len(), 1, "{method} {path} at {}", node.addr);
                assert_eq!(seen[0].token, token, "{method} {path}");
            }
        }
        // One certificate was issued: the 307 re-sent the PUT to the active
        // node, and the standby did not act on it.
        assert_eq!(env.audit_requests("faults-pki/issue/web"), 1);
        // 302 would turn the PUT into a GET without its body: refused.
        standby.inject(
            ISSUE_URL,
            Fault::redirect(302, &format!("{}{ISSUE_URL}", active.addr)),
        );
        active.forget();
        expect_error(
            &provider,
            // Not the certificate issued above, which the identity reuses.
            &request(&standby.addr, &issue_objects()).param("dynamicSecretReuse", "false"),
            Code::FailedPrecondition,
            &["302", "only through 307 or 308"],
        )
        .await;
        assert_eq!(active.count("PUT", ISSUE_URL), 0);
        still_serves(&provider, &standby.addr).await;
    });
}

#[test]
fn an_answer_over_the_limit_is_resource_exhausted_stating_its_size() {
    run(async {
        let env = setup().await;
        let limit = 4 * 1024 * 1024;
        env.kv2_put("faults/big", json!({ "blob": "x".repeat(limit + 10) }))
            .await;
        let proxy = proxy().await;
        let provider = provider(&[], &[]).await;
        // OpenBao streams the big answer without a Content-Length: counted.
        let big = "- objectName: blob\n  secretPath: secret/data/faults/big\n  secretKey: blob\n";
        let message = expect_error(
            &provider,
            &request(&proxy.addr, big),
            Code::ResourceExhausted,
            &[
                "over the --max-response-bytes limit of 4194304 bytes",
                "--max-call-recv-msg-size",
            ],
        )
        .await;
        let size = size_in(&message, "Vault's answer is ");
        assert!(size > limit + 10 && size < limit + 4096, "{message}");
        // A declared Content-Length is stated as is.
        proxy.inject(
            KV_URL,
            Fault::CutOff {
                declared: limit + 1,
                body: vec![],
            },
        );
        expect_error(
            &provider,
            &request(&proxy.addr, &read_objects()),
            Code::ResourceExhausted,
            &["Vault's answer is 4194305 bytes"],
        )
        .await;
        // Not retried: the answer would be as large again.
        assert_eq!(proxy.count("GET", KV_URL), 1);
        proxy.clear();
        still_serves(&provider, &proxy.addr).await;
    });
}

#[test]
fn a_mount_whose_files_total_more_than_the_limit_is_resource_exhausted() {
    run(async {
        let env = setup().await;
        let provider = provider(&["--max-response-bytes=65536"], &[]).await;
        // Two secrets of 40 KiB each: every Vault answer is under the limit,
        // the two files together are not.
        env.kv2_put("faults/part-a", json!({ "v": "y".repeat(40 * 1024) }))
            .await;
        env.kv2_put("faults/part-b", json!({ "v": "z".repeat(40 * 1024) }))
            .await;
        let two = "- objectName: a\n  secretPath: secret/data/faults/part-a\n  secretKey: v\n\
                   - objectName: b\n  secretPath: secret/data/faults/part-b\n  secretKey: v\n";
        let message = expect_error(
            &provider,
            &request(common::bao_addr(), two),
            Code::ResourceExhausted,
            &[
                "the Mount response is",
                "2 files holding 81920 bytes",
                "over the --max-response-bytes limit of 65536 bytes",
                "--max-call-recv-msg-size",
            ],
        )
        .await;
        assert!(
            size_in(&message, "the Mount response is ") > 81920,
            "{message}"
        );
        // Either file alone fits.
        let one = "- objectName: a\n  secretPath: secret/data/faults/part-a\n  secretKey: v\n";
        mount(&provider, &request(common::bao_addr(), one), DEADLINE)
            .await
            .expect("one file fits");
        still_serves(&provider, common::bao_addr()).await;
    });
}

/// The number right after `prefix` in `message`.
fn size_in(message: &str, prefix: &str) -> usize {
    let start = message.find(prefix).unwrap_or_else(|| panic!("{message}")) + prefix.len();
    let digits: String = message[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().unwrap_or_else(|_| panic!("{message}"))
}
