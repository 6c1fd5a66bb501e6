//! A sealed Vault, and stale-if-error: its own test binary, because sealing
//! stops the shared OpenBao for every test in the binary.

mod common;

use std::time::{Duration, Instant};

use common::requests::file;
use common::{MountBuilder, Provider, TestPod, env, run};
use serde_json::json;
use tonic::Code;

const OBJECTS: &str = "- objectName: v\n  secretPath: secret/data/sealed/app\n  secretKey: value\n";

#[test]
fn a_sealed_vault_serves_cached_identities_within_the_window_and_fails_clearly_otherwise() {
    run(async {
        let _serial = common::SERIAL.lock().await;
        let env = env().await;
        env.kv2_put("sealed/app", json!({"value": "v"})).await;
        env.k8s_role(
            "sealed",
            "app",
            "sealed-ns",
            &[("secret/data/sealed/*", "\"read\"")],
            Duration::from_secs(600),
        )
        .await;
        env.k8s_role(
            "sealed-other",
            "other",
            "sealed-ns",
            &[("secret/data/sealed/*", "\"read\"")],
            Duration::from_secs(600),
        )
        .await;
        let args = ["--stale-if-error=1h"];
        let env_vars = [("VAULT_MAX_RETRIES", "0")];
        let stale_ok = Provider::start_with_env(&args, &env_vars).await;
        let no_stale = Provider::start_with_env(&["--stale-if-error=0"], &env_vars).await;
        let short = Provider::start_with_env(&["--stale-if-error=3s"], &env_vars).await;
        let pod = TestPod::new("sealed-ns", "app");
        let request =
            MountBuilder::new(env.bao.addr(), "sealed", OBJECTS).pod(&pod, &env.signer, "vault");
        for provider in [&stale_ok, &no_stale, &short] {
            provider
                .mount(request.build())
                .await
                .expect("mount while unsealed");
        }
        let sealed_at = Instant::now();
        env.bao.seal().await.unwrap();

        // A cached identity keeps its content, with a warning in the log.
        let response = stale_ok
            .mount(request.build())
            .await
            .expect("stale content while sealed");
        assert_eq!(file(&response, "v"), "v");
        assert!(
            stale_ok.logs().contains("stale-if-error"),
            "{}",
            stale_ok.logs()
        );
        // Opted out in the SecretProviderClass: the clear error.
        let opted_out = request.clone().param("staleIfError", "false");
        let err = stale_ok.mount(opted_out.build()).await.unwrap_err();
        assert_eq!(err.code(), Code::Unavailable, "{}", err.message());
        assert!(
            err.message().contains("Vault is sealed; unseal it"),
            "{}",
            err.message()
        );
        // An identity with nothing cached fails at login, clearly.
        let stranger = TestPod::new("sealed-ns", "other");
        let fresh = MountBuilder::new(env.bao.addr(), "sealed-other", OBJECTS).pod(
            &stranger,
            &env.signer,
            "vault",
        );
        let err = stale_ok.mount(fresh.build()).await.unwrap_err();
        assert_eq!(err.code(), Code::Unavailable, "{}", err.message());
        assert!(err.message().contains("sealed"), "{}", err.message());
        // --stale-if-error=0: nothing stale.
        let err = no_stale.mount(request.build()).await.unwrap_err();
        assert_eq!(err.code(), Code::Unavailable);
        // --stale-if-error=3s: served until 3 s after the last good read, then the error.
        loop {
            match short.mount(request.build()).await {
                Ok(_) => assert!(
                    sealed_at.elapsed() < Duration::from_secs(10),
                    "stale content past its window"
                ),
                Err(e) => {
                    assert_eq!(e.code(), Code::Unavailable);
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }

        env.bao.unseal().await.unwrap();
        let response = no_stale
            .mount(request.build())
            .await
            .expect("mount after unseal");
        assert_eq!(file(&response, "v"), "v");
    });
}
