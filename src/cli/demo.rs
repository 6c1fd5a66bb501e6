//! `vault-csi demo`: the provider's main job on an embedded default, for a
//! first look without a cluster.
//!
//! A real OpenBao dev server is configured the way a cluster would configure
//! it (Kubernetes auth against a fake TokenReview API), the provider serves
//! in-process on a temporary socket, and the embedded
//! `examples/secretproviderclass.yaml` is mounted over gRPC exactly as the
//! Secrets Store CSI driver would ask for it. The files are written the way
//! the driver writes them, the password is rotated, and the mount repeated.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use reqwest::Method;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use super::args::DemoArgs;
use super::logging::LogSettings;
use crate::check::{Documents, Entry, Manifest, PodIdentity, RequestParts};
use crate::demo::openbao::DevServer;
use crate::demo::sa_token::{PodTokenClaims, TokenSigner, tokens_attribute};
use crate::demo::token_review::{self, TokenReviewServer};
use crate::k8s::{HmacKeySource, HmacKeys};
use crate::mount::{Mounter, MounterSettings};
use crate::proto::csi_driver_provider_client::CsiDriverProviderClient;
use crate::proto::{File, MountRequest, MountResponse};
use crate::server::ServeOptions;
use crate::spc::Defaults;
use crate::vault::ClientOptions;

/// The SecretProviderClass the demo mounts; embedded so `demo` works from
/// any directory.
const SPC_YAML: &str = include_str!("../../examples/secretproviderclass.yaml");
/// Where [`SPC_YAML`] lives in the repository, for the output.
const SPC_SOURCE: &str = "examples/secretproviderclass.yaml";
/// The whole demo normally takes a few seconds; this bounds a hang.
const DEMO_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the in-process provider may take to accept connections.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(10);
/// Interval of the socket readiness poll.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Auth mount, role, and the pod identity the role is bound to.
const AUTH_MOUNT: &str = "kubernetes";
/// The Vault role and policy name; the SPC's `roleName`.
const ROLE: &str = "demo-app";
/// The pod's namespace; must match the SPC's namespace, as in a cluster.
const NAMESPACE: &str = "demo";
/// The pod's service account.
const SERVICE_ACCOUNT: &str = "app";
/// The token audience the provider asks for by default.
const AUDIENCE: &str = "vault";
/// What the role may read.
const POLICY: &str = "path \"secret/data/demo/*\" {\n  capabilities = [\"read\"]\n}\n";

/// KV v2 API paths of the seeded secrets.
const DB_PATH: &str = "secret/data/demo/db";
/// See [`DB_PATH`].
const API_PATH: &str = "secret/data/demo/api";
/// Fake demo values; "demo" in each makes them obviously not real.
const DB_USERNAME: &str = "demo-user";
/// The password before rotation.
const DB_PASSWORD_BEFORE: &str = "demo-password-v1";
/// The password after rotation.
const DB_PASSWORD_AFTER: &str = "demo-password-v2";
/// The file that shows the rotation.
const ROTATED_FILE: &str = "db-password";
/// The API key, mounted with mode 0600.
const API_KEY: &str = "demo-api-key-0123456789";

/// Settings of the demo.
#[derive(Debug)]
pub struct DemoSettings {
    /// Where mounted files are written.
    pub out: PathBuf,
    /// Logging.
    pub log: LogSettings,
}

impl DemoSettings {
    /// Resolves the demo's flags.
    pub fn from_args(
        args: DemoArgs,
        _env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, String> {
        Ok(Self {
            out: args.out,
            log: LogSettings::from_args(&args.log, false)?,
        })
    }
}

/// Runs the demo, bounded by [`DEMO_TIMEOUT`] and stopped by Ctrl-C.
///
/// Cancelling drops the demo's state, whose `Drop`s stop OpenBao, the fake
/// API server and the provider task, so nothing outlives the command.
pub async fn run(settings: DemoSettings) -> Result<(), String> {
    let demo = tokio::time::timeout(DEMO_TIMEOUT, demo(&settings.out));
    tokio::select! {
        result = demo => result.unwrap_or_else(|_| Err(format!(
            "the demo did not finish within {} s; rerun with --log-level=debug to see where it stopped",
            DEMO_TIMEOUT.as_secs()
        ))),
        () = interrupted() => Err("interrupted; OpenBao and the provider were stopped".into()),
    }
}

/// Resolves on Ctrl-C. The in-process server also listens for SIGINT, so
/// without this the demo would carry on against a stopping provider.
async fn interrupted() {
    if tokio::signal::ctrl_c().await.is_err() {
        // No handler: never report an interrupt that did not happen.
        std::future::pending::<()>().await;
    }
}

/// The demo's steps, in order.
async fn demo(out: &Path) -> Result<(), String> {
    // Parsed first: a broken embedded file should fail before any process starts.
    let spc = load_spc(SPC_YAML)?;
    println!(
        "vault-csi demo: one Mount and one rotation against a real OpenBao, no cluster needed."
    );
    println!("All secret values below are fake demo data, printed on purpose.\n");

    let bao = DevServer::start().await.map_err(|e| e.to_string())?;
    println!(
        "[1/6] OpenBao dev server running at {} (pid {}).",
        bao.addr(),
        bao.pid().map_or_else(|| "?".into(), |p| p.to_string())
    );

    let cluster = FakeCluster::configure(&bao).await?;
    println!(
        "[2/6] Configured like a cluster: auth/{AUTH_MOUNT} -> TokenReview API at {},",
        cluster.review.url()
    );
    println!(
        "      role and policy {ROLE} for service account {NAMESPACE}/{SERVICE_ACCOUNT}; \
         seeded {DB_PATH} and {API_PATH}."
    );

    let mut provider = LocalProvider::start().await?;
    println!(
        "[3/6] Provider serving in-process on {}.",
        provider.socket.display()
    );

    let mut driver = Driver {
        client: connect(&provider.socket).await?,
        spc: &spc,
        vault_addr: bao.addr(),
        signer: &cluster.signer,
        out,
    };
    let before = first_mount(&mut driver).await?;
    rotation(&bao, &mut driver, &before).await?;

    drop(driver);
    provider.stop().await;
    drop(cluster);
    drop(bao);
    println!("[6/6] Stopped the provider, the fake TokenReview API and OpenBao.\n");
    print_what_next(out);
    Ok(())
}

/// Step 4: mounts the SPC and shows every file written.
async fn first_mount(driver: &mut Driver<'_>) -> Result<MountResponse, String> {
    let spc = driver.spc;
    println!(
        "[4/6] Mounting SecretProviderClass {}/{} ({SPC_SOURCE}) for pod {NAMESPACE}/{}",
        spc.at.namespace.as_deref().unwrap_or_default(),
        spc.at.name.as_deref().unwrap_or_default(),
        PodTokenClaims::new(NAMESPACE, SERVICE_ACCOUNT, AUDIENCE).pod_name
    );
    println!(
        "      (its vaultAddress {} is replaced by {}).",
        spc.parameters
            .get("vaultAddress")
            .map_or("-", String::as_str),
        driver.vault_addr
    );
    let response = driver.mount_and_write().await?;
    println!(
        "      Wrote {} files to {}:",
        response.files.len(),
        driver.out.join("").display()
    );
    for file in &response.files {
        print_file(driver.out, file, &response);
    }
    Ok(response)
}

/// Step 5: rotates the password, mounts again and shows what changed.
async fn rotation(
    bao: &DevServer,
    driver: &mut Driver<'_>,
    before: &MountResponse,
) -> Result<(), String> {
    rotate_password(bao).await?;
    println!("[5/6] Rotated the password (new KV v2 version of {DB_PATH}) and mounted again:");
    let after = driver.mount_and_write().await?;
    print_changes(before, &after);
    let rotated = after
        .files
        .iter()
        .find(|f| f.path == ROTATED_FILE)
        .ok_or_else(|| format!("the second Mount returned no {ROTATED_FILE}"))?;
    println!("      The rotated file now:");
    print_file(driver.out, rotated, &after);
    Ok(())
}

/// The Secrets Store CSI driver's part, played by the demo: it sends Mount
/// requests for one pod and writes the answers into `out`.
struct Driver<'a> {
    /// A gRPC connection over the provider's unix socket.
    client: CsiDriverProviderClient<Channel>,
    /// The SecretProviderClass the pod's volume names.
    spc: &'a Manifest,
    /// Replaces the SPC's placeholder `vaultAddress`.
    vault_addr: &'a str,
    /// Plays kubelet's TokenRequest for the pod's token.
    signer: &'a TokenSigner,
    /// The "volume": where files are written.
    out: &'a Path,
}

impl Driver<'_> {
    /// One Mount call, then the files written like the driver writes them.
    async fn mount_and_write(&mut self) -> Result<MountResponse, String> {
        let request = mount_request(self.spc, self.vault_addr, self.signer, self.out);
        let response = mount(&mut self.client, request).await?;
        write_files(self.out, &response)?;
        Ok(response)
    }
}

/// Reads the embedded SPC with the same reader as `check` and `mount`,
/// refusing anything `check` would complain about when reading it, so the
/// example stays usable in a real cluster.
fn load_spc(yaml: &str) -> Result<Manifest, String> {
    let mut documents = Documents::default();
    crate::check::parse_text(SPC_SOURCE, yaml, &mut documents);
    if let Some(finding) = documents.findings.first() {
        return Err(format!("{SPC_SOURCE}: {}", finding.message));
    }
    let mut manifests = documents.entries.into_iter().filter_map(|e| match e {
        Entry::Spc(m) => Some(m),
        Entry::Skipped { .. } => None,
    });
    let spc = manifests
        .next()
        .ok_or_else(|| format!("{SPC_SOURCE} holds no SecretProviderClass for provider vault"))?;
    if spc.at.namespace.as_deref() != Some(NAMESPACE) {
        return Err(format!(
            "{SPC_SOURCE}: metadata.namespace is {:?}, expected {NAMESPACE:?}",
            spc.at.namespace
        ));
    }
    Ok(spc)
}

/// What a cluster contributes: the API server's token signing key and its
/// TokenReview endpoint. Dropping it stops the fake API server.
struct FakeCluster {
    /// Signs the pod's projected service-account tokens.
    signer: TokenSigner,
    /// The fake API server OpenBao asks to review tokens.
    review: TokenReviewServer,
}

impl FakeCluster {
    /// Starts the fake API server and configures OpenBao against it: auth
    /// method, policy, role, and the seeded secrets.
    async fn configure(bao: &DevServer) -> Result<Self, String> {
        let err = |e: crate::demo::DemoError| format!("configuring OpenBao: {e}");
        let signer = TokenSigner::new().map_err(err)?;
        let review = TokenReviewServer::start(&signer).await.map_err(err)?;
        token_review::configure_kubernetes_auth(bao, AUTH_MOUNT, &review, None)
            .await
            .map_err(err)?;
        bao.write_policy(ROLE, POLICY).await.map_err(err)?;
        token_review::kubernetes_role(
            bao,
            AUTH_MOUNT,
            ROLE,
            &[SERVICE_ACCOUNT],
            &[NAMESPACE],
            &[ROLE],
            Duration::from_secs(600),
        )
        .await
        .map_err(err)?;
        put_kv2(
            bao,
            DB_PATH,
            json!({ "username": DB_USERNAME, "password": DB_PASSWORD_BEFORE }),
        )
        .await?;
        put_kv2(bao, API_PATH, json!({ "key": API_KEY })).await?;
        Ok(Self { signer, review })
    }
}

/// Writes a new version of a KV v2 secret as root.
async fn put_kv2(bao: &DevServer, path: &str, data: Value) -> Result<(), String> {
    bao.api(Method::POST, path, Some(json!({ "data": data })))
        .await
        .map(drop)
        .map_err(|e| format!("writing {path}: {e}"))
}

/// Changes the database password: KV v2 keeps the old one as version 1.
async fn rotate_password(bao: &DevServer) -> Result<(), String> {
    put_kv2(
        bao,
        DB_PATH,
        json!({ "username": DB_USERNAME, "password": DB_PASSWORD_AFTER }),
    )
    .await
}

/// The provider serving in a task of this process, on a socket in a temp
/// dir. `stop` shuts it down gracefully; dropping it aborts the task; the
/// dir (socket, key) goes with it.
struct LocalProvider {
    /// The server task.
    task: JoinHandle<Result<(), String>>,
    /// Sending (or dropping) this asks the server to shut down gracefully.
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// The unix socket the "driver" dials.
    socket: PathBuf,
    /// Holds the socket and HMAC key; declared last so it outlives the task.
    _dir: TempDir,
}

impl LocalProvider {
    /// Starts `serve` with a fresh HMAC key file and waits until the socket
    /// accepts connections.
    async fn start() -> Result<Self, String> {
        let dir = tempfile::Builder::new()
            .prefix("vault-csi-demo-")
            .tempdir()
            .map_err(|e| format!("cannot create a temp dir for the provider: {e}"))?;
        let key_file = dir.path().join("hmac.key");
        write_key_file(&key_file)?;
        let hmac = HmacKeys::new(&HmacKeySource::File(key_file)).await?;
        let client = ClientOptions::default();
        // The server serves the registry the Vault clients record into.
        let metrics = client.metrics.clone();
        let mounter = Mounter::new(MounterSettings {
            // The SPC names its Vault; flags and environment play no part.
            defaults: Defaults::default(),
            client,
            cache_size: 16,
            cache_max_bytes: 1024 * 1024,
            // The demo shows a rotation at once: no response reuse.
            cache_ttl: std::time::Duration::ZERO,
            max_cache_ttl: std::time::Duration::ZERO,
            cache_scope: crate::mount::CacheScope::Identity,
            lease_idle_timeout: None,
            stale_if_error: std::time::Duration::ZERO,
            hmac,
            // The demo's driver always passes a token.
            minter: crate::k8s::TokenMinter::disabled(),
        });
        let socket = dir.path().join("provider.sock");
        let options = ServeOptions {
            endpoint: socket.clone(),
            // Port 0: any free port, so a running provider cannot clash.
            health_addr: "127.0.0.1:0".into(),
            metrics,
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let stop_requested = async move {
            let _ = stopped.await;
        };
        let mut provider = Self {
            task: tokio::spawn(crate::server::serve_until(options, mounter, stop_requested)),
            stop: Some(stop),
            socket,
            _dir: dir,
        };
        provider.wait_until_accepting().await?;
        Ok(provider)
    }

    /// Polls the socket; reports the server's own error if it stopped.
    async fn wait_until_accepting(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + SOCKET_TIMEOUT;
        loop {
            if self.task.is_finished() {
                let reason = match (&mut self.task).await {
                    Ok(Ok(())) => "it stopped".to_string(),
                    Ok(Err(e)) => e,
                    Err(e) => e.to_string(),
                };
                return Err(format!("the provider did not start: {reason}"));
            }
            if tokio::net::UnixStream::connect(&self.socket).await.is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "the provider's socket {} did not accept connections within {} s",
                    self.socket.display(),
                    SOCKET_TIMEOUT.as_secs()
                ));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Shuts the server down gracefully (it removes its socket) and waits
    /// until it is gone; aborts it if that takes longer than a few seconds.
    async fn stop(&mut self) {
        drop(self.stop.take());
        if tokio::time::timeout(Duration::from_secs(5), &mut self.task)
            .await
            .is_err()
        {
            self.task.abort();
        }
    }
}

impl Drop for LocalProvider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Writes 32 random bytes, owner-only, as the object-version key.
fn write_key_file(path: &Path) -> Result<(), String> {
    let mut key = [0u8; 32];
    aws_lc_rs::rand::fill(&mut key).map_err(|_| "cannot generate a random HMAC key".to_string())?;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(&key))
        .map_err(|e| format!("cannot write the HMAC key file {}: {e}", path.display()))
}

/// Connects over the unix socket, as the driver does.
async fn connect(socket: &Path) -> Result<CsiDriverProviderClient<Channel>, String> {
    CsiDriverProviderClient::connect(format!("unix://{}", socket.display()))
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", socket.display()))
}

/// Calls Mount; an error in the answer (older drivers' style) fails too.
async fn mount(
    client: &mut CsiDriverProviderClient<Channel>,
    request: MountRequest,
) -> Result<MountResponse, String> {
    let response = client
        .mount(request)
        .await
        .map_err(|s| format!("Mount failed ({:?}): {}", s.code(), s.message()))?
        .into_inner();
    match &response.error {
        Some(error) if !error.code.is_empty() => {
            Err(format!("Mount answered with error code {}", error.code))
        }
        _ => Ok(response),
    }
}

/// The driver's MountRequest: SPC parameters plus the pod's attributes and
/// a fresh projected token for audience `vault`, as kubelet supplies them.
fn mount_request(
    spc: &Manifest,
    vault_addr: &str,
    signer: &TokenSigner,
    target: &Path,
) -> MountRequest {
    let claims = PodTokenClaims::new(NAMESPACE, SERVICE_ACCOUNT, AUDIENCE);
    let token = signer.sign(&claims);
    let expiry = SystemTime::now() + claims.ttl;
    let tokens = tokens_attribute(&[(AUDIENCE, &token, expiry)]);
    let pod = PodIdentity {
        name: claims.pod_name,
        namespace: claims.namespace,
        uid: claims.pod_uid,
        service_account: claims.service_account,
    };
    let parts = RequestParts {
        overrides: vec![("vaultAddress", vault_addr.to_string())],
        tokens: Some(&tokens),
        secrets: None,
    };
    MountRequest {
        target_path: target.display().to_string(),
        ..spc.mount_request(&pod, &parts)
    }
}

/// Writes every file of a response under `out`.
fn write_files(out: &Path, response: &MountResponse) -> Result<(), String> {
    for file in &response.files {
        super::files::write_file(out, file)?;
    }
    Ok(())
}

/// The version the response gives for `id`, or `-`.
fn version_of<'a>(response: &'a MountResponse, id: &str) -> &'a str {
    response
        .object_version
        .iter()
        .find(|v| v.id == id)
        .map_or("-", |v| v.version.as_str())
}

/// Prints one written file: path, mode, size, version and the demo content.
fn print_file(out: &Path, file: &File, response: &MountResponse) {
    println!(
        "      {}  mode {:04o}  {} bytes  version {}",
        out.join(&file.path).display(),
        file.mode,
        file.contents.len(),
        version_of(response, &file.path)
    );
    for line in String::from_utf8_lossy(&file.contents).lines() {
        println!("        | {line}");
    }
}

/// Prints, per file, whether content and version changed.
fn print_changes(before: &MountResponse, after: &MountResponse) {
    for file in &after.files {
        let old = before.files.iter().find(|f| f.path == file.path);
        let content = if old.is_some_and(|o| o.contents == file.contents) {
            "same content"
        } else {
            "new content"
        };
        let (v1, v2) = (
            version_of(before, &file.path),
            version_of(after, &file.path),
        );
        if v1 == v2 {
            println!(
                "      {:<12} unchanged: {content}, same version {}",
                file.path,
                short(v2)
            );
        } else {
            println!(
                "      {:<12} changed:   {content}, version {} -> {}",
                file.path,
                short(v1),
                short(v2)
            );
        }
    }
}

/// The start of a version: enough to compare by eye, short enough for a line.
fn short(version: &str) -> String {
    match version.char_indices().nth(12) {
        Some((end, _)) => format!("{}...", &version[..end]),
        None => version.to_string(),
    }
}

/// Where to go from here.
fn print_what_next(out: &Path) {
    println!("What next:");
    println!(
        "  - The mounted files are in {}; the SecretProviderClass is {SPC_SOURCE}.",
        out.join("").display()
    );
    println!(
        "  - README.md shows how to run the provider in a cluster next to the Secrets Store CSI driver."
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The embedded example is a valid SPC with the parameters the demo relies on.
    #[test]
    fn embedded_spc_parses_with_the_demo_parameters() {
        let spc = load_spc(SPC_YAML).expect("embedded SPC");
        assert_eq!(spc.at.name.as_deref(), Some("demo-db"));
        assert_eq!(spc.parameters["roleName"], ROLE);
        assert!(spc.parameters["objects"].contains("filePermission: 0600"));
    }
}
