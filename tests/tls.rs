//! TLS to Vault against a real OpenBao with TLS listeners: CA file and
//! directory, server-name override, skip-verify, mutual TLS, bad files,
//! rotation, an OpenBao Proxy on a unix socket in front of TLS, and the Go
//! client's proxy and timeout environment.  Certificates are made here with
//! rcgen, so every run has fresh keys.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::provider::expect_error;
use common::requests::file;
use common::{Env, MountBuilder, Provider, TestPod, run};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use serde_json::json;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::OnceCell;
use tonic::Code;
use vault_csi::demo::openbao::{DevServer, TlsListener};
use vault_csi::demo::proxy::BaoProxy;
use vault_csi::demo::sa_token::TokenSigner;
use vault_csi::demo::token_review::{self, TokenReviewServer};

/// The name the server certificates are issued for; it resolves nowhere
/// (RFC 2606), so only our resolver or our proxy can reach it.
const SERVER_NAME: &str = "vault.test";
/// The secret every test mounts.
const SECRET: &str = "over-tls";
/// Text in files the provider must never quote.
const CANARY: &str = "CANARY-FILE-BODY";
/// The objects every test mounts.
const OBJECTS: &str =
    "- objectName: password\n  secretPath: secret/data/tls/app\n  secretKey: password\n";
/// The warning logged for every client built without verification.
const SKIP_WARNING: &str = "TLS verification of Vault's certificate is OFF";

/// The certificate files of one test binary.
struct Files {
    /// Holds them all.
    dir: TempDir,
    /// The CA that issued the server and client certificates.
    ca: PathBuf,
    /// A directory with an unrelated CA and [`Files::ca`].
    ca_dir: PathBuf,
    /// A client certificate and key issued by [`Files::ca`].
    client: (PathBuf, PathBuf),
    /// A client certificate and key issued by a CA the server does not trust.
    rogue_client: (PathBuf, PathBuf),
    /// An unrelated CA (PEM).
    other_ca: PathBuf,
    /// The server's key, which does not belong to the client certificate.
    server_key: PathBuf,
}

/// OpenBao with TLS listeners, and what the tests need to reach it.
struct Tls {
    /// The server (its plain-HTTP listener serves the setup calls), the
    /// token signer and the TokenReview fake, as in the other test binaries.
    env: Env,
    /// Certificates.
    files: Files,
    /// Certificate for `vault.test` and `127.0.0.1`.
    main: String,
    /// Certificate for `vault.test` only, at `https://127.0.0.1:…`.
    name_only: String,
    /// Like `main`, and requires a client certificate.
    mutual: String,
    /// Like `mutual`, with TLS 1.2 at most.
    mutual12: String,
}

static TLS: OnceCell<Tls> = OnceCell::const_new();

/// The shared TLS server, started once per test binary.
async fn tls() -> &'static Tls {
    TLS.get_or_init(|| async {
        let files = make_files();
        let dir = files.dir.path();
        let listener = |name: &str, client_ca: Option<&Path>, tls12_only| TlsListener {
            cert_file: dir.join(format!("{name}.pem")),
            key_file: dir.join(format!("{name}.key")),
            client_ca_file: client_ca.map(Path::to_path_buf),
            tls12_only,
        };
        let bao = DevServer::start_tls(&[
            listener("server", None, false),
            listener("name-only", None, false),
            listener("server", Some(&files.ca), false),
            listener("server", Some(&files.ca), true),
        ])
        .await
        .expect("start OpenBao with TLS listeners (run scripts/install-openbao.sh)");
        let signer = TokenSigner::new().expect("signer");
        let review = TokenReviewServer::start(&signer)
            .await
            .expect("TokenReview server");
        token_review::configure_kubernetes_auth(&bao, "kubernetes", &review, None)
            .await
            .expect("k8s auth");
        let [main, name_only, mutual, mutual12] =
            <[String; 4]>::try_from(bao.tls_addrs().to_vec()).expect("four TLS listeners");
        let env = Env {
            bao,
            signer,
            review,
        };
        env.kv2_put("tls/app", json!({ "password": SECRET })).await;
        env.k8s_role(
            "tls",
            "app",
            "tls-ns",
            &[("secret/data/tls/*", "\"read\"")],
            Duration::from_secs(600),
        )
        .await;
        Tls {
            env,
            files,
            main,
            name_only,
            mutual,
            mutual12,
        }
    })
    .await
}

/// A CA: its certificate (PEM) and an issuer for leaf certificates.
fn make_ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(Vec::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), Issuer::new(params, key))
}

/// A leaf certificate for `names` with `usage`, issued by `issuer`, written
/// to `<stem>.pem` and `<stem>.key` in `dir`.
fn make_leaf(
    dir: &Path,
    stem: &str,
    names: &[&str],
    usage: ExtendedKeyUsagePurpose,
    issuer: &Issuer<'static, KeyPair>,
) -> (PathBuf, PathBuf) {
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, names[0]);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    let (cert_path, key_path) = (
        dir.join(format!("{stem}.pem")),
        dir.join(format!("{stem}.key")),
    );
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (cert_path, key_path)
}

/// Generates every certificate the tests use.
fn make_files() -> Files {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let (ca_pem, ca) = make_ca("vault-csi test CA");
    let (other_pem, other) = make_ca("an unrelated CA");
    std::fs::write(path.join("ca.pem"), &ca_pem).unwrap();
    std::fs::write(path.join("other-ca.pem"), &other_pem).unwrap();
    let ca_dir = path.join("ca-dir");
    std::fs::create_dir(&ca_dir).unwrap();
    std::fs::write(ca_dir.join("0-unrelated.pem"), &other_pem).unwrap();
    std::fs::write(ca_dir.join("1-ours.crt"), &ca_pem).unwrap();
    let server = ExtendedKeyUsagePurpose::ServerAuth;
    let client = ExtendedKeyUsagePurpose::ClientAuth;
    let (_, server_key) = make_leaf(
        path,
        "server",
        &[SERVER_NAME, "127.0.0.1"],
        server.clone(),
        &ca,
    );
    make_leaf(path, "name-only", &[SERVER_NAME], server, &ca);
    Files {
        ca: path.join("ca.pem"),
        ca_dir,
        client: make_leaf(path, "client", &["vault-csi"], client.clone(), &ca),
        rogue_client: make_leaf(path, "rogue-client", &["vault-csi"], client, &other),
        other_ca: path.join("other-ca.pem"),
        server_key,
        dir,
    }
}

/// A path as a parameter value.
fn s(path: &Path) -> &str {
    path.to_str().expect("UTF-8 temp path")
}

/// A mount request for the test secret against `addr`, for a new pod.
fn request(tls: &Tls, addr: &str) -> MountBuilder {
    MountBuilder::new(addr, "tls", OBJECTS).pod(
        &TestPod::new("tls-ns", "app"),
        &tls.env.signer,
        "vault",
    )
}

/// Mounts and checks the secret arrived.
async fn expect_secret(provider: &Provider, request: MountBuilder) {
    let response = provider
        .mount(request.build())
        .await
        .unwrap_or_else(|e| panic!("mount failed: {e:?}\n{}", provider.logs()));
    assert_eq!(file(&response, "password"), SECRET);
}

#[test]
fn a_ca_file_or_directory_verifies_vault_and_no_ca_fails_clearly() {
    run(async {
        let tls = tls().await;
        let provider = Provider::start(&[]).await;
        expect_secret(
            &provider,
            request(tls, &tls.main).param("vaultCACertPath", s(&tls.files.ca)),
        )
        .await;
        expect_secret(
            &provider,
            request(tls, &tls.main).param("vaultCADirectory", s(&tls.files.ca_dir)),
        )
        .await;
        // The same from the provider's flags.
        let flags = Provider::start(&[&format!("-vault-tls-ca-cert={}", s(&tls.files.ca))]).await;
        expect_secret(&flags, request(tls, &tls.main)).await;

        // Without our CA (the system's roots) and with the wrong one.
        expect_error(
            &provider,
            request(tls, &tls.main),
            Code::Unavailable,
            &[&tls.main, "invalid peer certificate", "UnknownIssuer"],
        )
        .await;
        expect_error(
            &provider,
            request(tls, &tls.main).param("vaultCACertPath", s(&tls.files.other_ca)),
            Code::Unavailable,
            &["invalid peer certificate", "UnknownIssuer"],
        )
        .await;
    });
}

#[test]
fn the_server_name_is_verified_instead_of_the_address_host() {
    run(async {
        let tls = tls().await;
        assert!(tls.name_only.starts_with("https://127.0.0.1:"));
        let provider = Provider::start(&[]).await;
        let with_ca = || request(tls, &tls.name_only).param("vaultCACertPath", s(&tls.files.ca));
        expect_error(
            &provider,
            with_ca(),
            Code::Unavailable,
            &[
                "invalid peer certificate",
                "not valid for name \"127.0.0.1\"",
                SERVER_NAME,
            ],
        )
        .await;
        expect_secret(
            &provider,
            with_ca().param("vaultTLSServerName", SERVER_NAME),
        )
        .await;

        // From the environment, as vault-helm sets it; no SPC TLS parameters.
        let from_env = Provider::start_with_env(
            &[],
            &[
                ("VAULT_ADDR", &tls.name_only),
                ("VAULT_CACERT", s(&tls.files.ca)),
                ("VAULT_TLS_SERVER_NAME", SERVER_NAME),
            ],
        )
        .await;
        expect_secret(&from_env, request(tls, "unused").without("vaultAddress")).await;
        assert!(
            !from_env.logs().contains("server-name"),
            "{}",
            from_env.logs()
        );
    });
}

#[test]
fn skip_verify_accepts_any_certificate_and_warns_each_time() {
    run(async {
        let tls = tls().await;
        let provider = Provider::start(&[]).await;
        expect_secret(
            &provider,
            request(tls, &tls.name_only).param("vaultSkipTLSVerify", "true"),
        )
        .await;
        assert!(
            provider.logs().contains(SKIP_WARNING),
            "{}",
            provider.logs()
        );

        let from_env = Provider::start_with_env(&[], &[("VAULT_SKIP_VERIFY", "1")]).await;
        expect_secret(&from_env, request(tls, &tls.main)).await;
        expect_secret(&from_env, request(tls, &tls.name_only)).await;
        // One client per address, each built with a warning.
        assert_eq!(
            from_env.logs().matches(SKIP_WARNING).count(),
            2,
            "{}",
            from_env.logs()
        );
        // The SPC turns it back on.
        expect_error(
            &from_env,
            request(tls, &tls.main).param("vaultSkipTLSVerify", "false"),
            Code::Unavailable,
            &["UnknownIssuer"],
        )
        .await;
    });
}

#[test]
fn mutual_tls_presents_the_client_certificate() {
    run(async {
        let tls = tls().await;
        let provider = Provider::start(&[]).await;
        let (cert, key) = &tls.files.client;
        let with_ca = || request(tls, &tls.mutual).param("vaultCACertPath", s(&tls.files.ca));
        expect_secret(
            &provider,
            with_ca()
                .param("vaultTLSClientCertPath", s(cert))
                .param("vaultTLSClientKeyPath", s(key)),
        )
        .await;

        // The same from the environment.
        let from_env = Provider::start_with_env(
            &[],
            &[
                ("VAULT_CACERT", s(&tls.files.ca)),
                ("VAULT_CLIENT_CERT", s(cert)),
                ("VAULT_CLIENT_KEY", s(key)),
            ],
        )
        .await;
        expect_secret(&from_env, request(tls, &tls.mutual)).await;

        // TLS 1.2: the server judges the client certificate within the
        // handshake, and its alert is the error.
        let with_ca12 = || request(tls, &tls.mutual12).param("vaultCACertPath", s(&tls.files.ca));
        expect_secret(
            &provider,
            with_ca12()
                .param("vaultTLSClientCertPath", s(cert))
                .param("vaultTLSClientKeyPath", s(key)),
        )
        .await;
        expect_error(
            &provider,
            with_ca12(),
            Code::Unavailable,
            &[
                &tls.mutual12,
                "could not connect",
                "received fatal alert: HandshakeFailure",
            ],
        )
        .await;
        let (rogue_cert, rogue_key) = &tls.files.rogue_client;
        expect_error(
            &provider,
            with_ca12()
                .param("vaultTLSClientCertPath", s(rogue_cert))
                .param("vaultTLSClientKeyPath", s(rogue_key)),
            Code::Unavailable,
            &[
                &tls.mutual12,
                "could not connect",
                "received fatal alert: UnknownCA",
            ],
        )
        .await;

        // TLS 1.3: the client sends its request before the server has judged
        // its certificate, and the server's alert races with its reset of
        // the connection, so the reason shows only sometimes.
        for rejected in [
            with_ca(),
            with_ca()
                .param("vaultTLSClientCertPath", s(rogue_cert))
                .param("vaultTLSClientKeyPath", s(rogue_key)),
        ] {
            expect_error(&provider, rejected, Code::Unavailable, &[&tls.mutual]).await;
        }
    });
}

#[test]
fn bad_tls_files_are_invalid_argument_naming_the_file() {
    run(async {
        let tls = tls().await;
        let dir = tls.files.dir.path();
        let provider = Provider::start(&[]).await;
        let garbage = dir.join("garbage.pem");
        std::fs::write(&garbage, format!("{CANARY}\n")).unwrap();
        let truncated = dir.join("truncated.pem");
        let ca_text = std::fs::read_to_string(&tls.files.ca).unwrap();
        std::fs::write(&truncated, &ca_text[..ca_text.len() / 2]).unwrap();
        let (cert, _) = &tls.files.client;

        expect_error(
            &provider,
            request(tls, &tls.main).param("vaultCACertPath", s(&garbage)),
            Code::InvalidArgument,
            &[s(&garbage), "vaultCACertPath", "holds no PEM certificate"],
        )
        .await;
        expect_error(
            &provider,
            request(tls, &tls.main).param("vaultCACertPath", s(&truncated)),
            Code::InvalidArgument,
            &[s(&truncated), "not valid PEM"],
        )
        .await;
        let missing = dir.join("no-such-ca.pem");
        expect_error(
            &provider,
            request(tls, &tls.main).param("vaultCACertPath", s(&missing)),
            Code::InvalidArgument,
            &[s(&missing), "cannot read", "No such file"],
        )
        .await;
        // An unreadable key: a directory where the key should be.
        expect_error(
            &provider,
            request(tls, &tls.mutual)
                .param("vaultCACertPath", s(&tls.files.ca))
                .param("vaultTLSClientCertPath", s(cert))
                .param("vaultTLSClientKeyPath", s(dir)),
            Code::InvalidArgument,
            &[
                s(dir),
                "cannot read the client key",
                "vaultTLSClientKeyPath",
            ],
        )
        .await;
        // A certificate where the key should be.
        expect_error(
            &provider,
            request(tls, &tls.mutual)
                .param("vaultTLSClientCertPath", s(cert))
                .param("vaultTLSClientKeyPath", s(cert)),
            Code::InvalidArgument,
            &[s(cert), "holds no PEM private key"],
        )
        .await;
        // A key that belongs to another certificate.
        expect_error(
            &provider,
            request(tls, &tls.mutual)
                .param("vaultTLSClientCertPath", s(cert))
                .param("vaultTLSClientKeyPath", s(&tls.files.server_key)),
            Code::InvalidArgument,
            &[s(cert), s(&tls.files.server_key), "does not belong to"],
        )
        .await;
        // A bad file in a CA directory.
        let bad_dir = dir.join("bad-ca-dir");
        std::fs::create_dir_all(&bad_dir).unwrap();
        std::fs::copy(&tls.files.ca, bad_dir.join("ca.pem")).unwrap();
        std::fs::copy(&garbage, bad_dir.join("notes.txt")).unwrap();
        expect_error(
            &provider,
            request(tls, &tls.main).param("vaultCADirectory", s(&bad_dir)),
            Code::InvalidArgument,
            &[s(&bad_dir.join("notes.txt")), "vaultCADirectory"],
        )
        .await;
        // Nothing was sent to Vault for any of them.
        assert!(!provider.logs().contains(CANARY));
    });
}

#[test]
fn a_rotated_ca_file_is_used_by_the_next_mount() {
    run(async {
        let tls = tls().await;
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::copy(&tls.files.other_ca, &ca).unwrap();
        let provider = Provider::start(&[]).await;
        let with_ca = || request(tls, &tls.main).param("vaultCACertPath", s(&ca));
        expect_error(&provider, with_ca(), Code::Unavailable, &["UnknownIssuer"]).await;
        // Rotation as tools do it: write aside, rename over.
        let next = dir.path().join("ca.pem.new");
        std::fs::copy(&tls.files.ca, &next).unwrap();
        std::fs::rename(&next, &ca).unwrap();
        expect_secret(&provider, with_ca()).await;
    });
}

#[test]
fn an_openbao_proxy_on_a_unix_socket_in_front_of_tls_vault() {
    run(async {
        let tls = tls().await;
        let proxy = BaoProxy::start_tls(&tls.main, true, &tls.files.ca)
            .await
            .expect("bao proxy");
        let agent = format!("unix://{}", proxy.socket().display());
        // The provider's TLS defaults do not apply to the socket's plain HTTP.
        let provider = Provider::start_with_env(
            &[],
            &[("VAULT_ADDR", &agent), ("VAULT_CACERT", s(&tls.files.ca))],
        )
        .await;
        expect_secret(&provider, request(tls, "unused").without("vaultAddress")).await;
        assert!(
            proxy.log().contains("forwarding request"),
            "{}",
            proxy.log()
        );
        // A proxy in the environment is not used for the socket.
        let http_proxy = HttpProxy::start().await;
        let with_proxy = Provider::start_with_env(
            &[],
            &[
                ("HTTPS_PROXY", &http_proxy.url),
                ("HTTP_PROXY", &http_proxy.url),
            ],
        )
        .await;
        expect_secret(&with_proxy, request(tls, &agent)).await;
        assert_eq!(http_proxy.requests(), Vec::<String>::new());
    });
}

#[test]
fn https_proxy_is_used_unless_no_proxy_or_loopback_says_otherwise() {
    run(async {
        let tls = tls().await;
        let proxy = HttpProxy::start().await;
        // vault.test resolves only inside the proxy, so success proves the
        // request went through it.
        let port = tls.main.rsplit(':').next().unwrap();
        let by_name = format!("https://{SERVER_NAME}:{port}");
        let proxied = Provider::start_with_env(
            &[],
            &[
                ("HTTPS_PROXY", &proxy.url),
                ("VAULT_CACERT", s(&tls.files.ca)),
            ],
        )
        .await;
        expect_secret(&proxied, request(tls, &by_name)).await;
        let seen = proxy.requests();
        assert!(!seen.is_empty(), "nothing went through the proxy");
        assert!(
            seen.iter()
                .all(|r| r == &format!("CONNECT {SERVER_NAME}:{port}")),
            "{seen:?}"
        );

        // NO_PROXY naming the host: the provider goes direct, where the name
        // does not resolve, and the proxy sees nothing more.
        let before = proxy.requests().len();
        let bypassing = Provider::start_with_env(
            &[],
            &[
                ("HTTPS_PROXY", &proxy.url),
                ("NO_PROXY", "example.com, vault.test"),
                ("VAULT_CACERT", s(&tls.files.ca)),
                ("VAULT_MAX_RETRIES", "0"),
            ],
        )
        .await;
        expect_error(
            &bypassing,
            request(tls, &by_name),
            Code::Unavailable,
            &["dns error"],
        )
        .await;
        assert_eq!(proxy.requests().len(), before);

        // Loopback is never proxied (as in Go's http.ProxyFromEnvironment).
        expect_secret(&proxied, request(tls, &tls.main)).await;
        assert_eq!(proxy.requests().len(), before);

        // HTTP_PROXY for a plain-HTTP Vault: an absolute-form request.
        let http_port = tls.env.bao.port();
        let plain = Provider::start_with_env(&[], &[("HTTP_PROXY", &proxy.url)]).await;
        expect_secret(
            &plain,
            request(tls, &format!("http://{SERVER_NAME}:{http_port}")),
        )
        .await;
        let forwarded = proxy.requests().split_off(before);
        assert!(
            forwarded.iter().any(|r| r.starts_with(&format!(
                "POST http://{SERVER_NAME}:{http_port}/v1/auth/kubernetes/login"
            ))),
            "{forwarded:?}"
        );
    });
}

#[test]
fn vault_client_timeout_bounds_each_request() {
    run(async {
        let tls = tls().await;
        let slow = common::proxy::SlowProxy::start(
            &format!("127.0.0.1:{}", tls.env.bao.port()),
            Duration::from_secs(30),
        )
        .await;
        let provider = Provider::start_with_env(
            &[],
            &[("VAULT_CLIENT_TIMEOUT", "1s"), ("VAULT_MAX_RETRIES", "0")],
        )
        .await;
        let started = std::time::Instant::now();
        expect_error(
            &provider,
            request(tls, &slow.addr),
            Code::Unavailable,
            &["did not answer in time"],
        )
        .await;
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{:?}",
            started.elapsed()
        );
    });
}

/// A small HTTP proxy of the tests' own: CONNECT tunnels and absolute-form
/// requests, each request line recorded; `vault.test` means 127.0.0.1 here.
struct HttpProxy {
    /// `http://127.0.0.1:PORT`.
    url: String,
    /// The first line of every request received (without the version).
    seen: Arc<Mutex<Vec<String>>>,
    /// The accept loop.
    task: tokio::task::JoinHandle<()>,
}

impl HttpProxy {
    /// Starts the proxy on a free loopback port.
    async fn start() -> HttpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(serve_proxy_client(client, log.clone()));
            }
        });
        HttpProxy { url, seen, task }
    }

    /// The request lines received so far.
    fn requests(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for HttpProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Where the proxy connects for `host:port`.
fn upstream(authority: &str) -> String {
    match authority.rsplit_once(':') {
        Some((host, port)) if host == SERVER_NAME => format!("127.0.0.1:{port}"),
        _ => authority.to_string(),
    }
}

/// Serves one client connection of [`HttpProxy`].
async fn serve_proxy_client(mut client: TcpStream, seen: Arc<Mutex<Vec<String>>>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    // Byte by byte up to the blank line: nothing past the head is consumed.
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 16 * 1024 || !matches!(client.read(&mut byte).await, Ok(1)) {
            return;
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let line = text.lines().next().unwrap_or_default();
    let mut parts = line.split_whitespace();
    let (method, target) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    seen.lock().unwrap().push(format!("{method} {target}"));
    if method == "CONNECT" {
        let Ok(mut server) = TcpStream::connect(upstream(target)).await else {
            let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
            return;
        };
        if client
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .await
            .is_ok()
        {
            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
        }
        return;
    }
    // An absolute-form request: forward it as it is (Vault accepts that
    // form); later requests on this connection go to the same server.
    let Ok(url) = reqwest::Url::parse(target) else {
        return;
    };
    let authority = format!(
        "{}:{}",
        url.host_str().unwrap_or_default(),
        url.port_or_known_default().unwrap_or(80)
    );
    let Ok(mut server) = TcpStream::connect(upstream(&authority)).await else {
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
        return;
    };
    if server.write_all(&head).await.is_ok() {
        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
    }
}
