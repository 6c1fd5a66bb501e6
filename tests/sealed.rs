//! A sealed Vault: its own test binary, because sealing stops the shared
//! OpenBao for every test in the binary.

mod common;

use std::time::Duration;

use common::requests::file;
use common::{MountBuilder, Provider, TestPod, env, run};
use serde_json::json;
use tonic::Code;

#[test]
fn a_sealed_vault_is_unavailable_with_an_unseal_hint_and_recovers() {
    run(async {
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
        let provider = Provider::start_with_env(&[], &[("VAULT_MAX_RETRIES", "0")]).await;
        let pod = TestPod::new("sealed-ns", "app");
        let request = MountBuilder::new(
            env.bao.addr(),
            "sealed",
            "- objectName: v\n  secretPath: secret/data/sealed/app\n  secretKey: value\n",
        )
        .pod(&pod, &env.signer, "vault");
        provider
            .mount(request.build())
            .await
            .expect("mount while unsealed");

        env.bao.seal().await.unwrap();
        let err = provider.mount(request.build()).await.unwrap_err();
        assert_eq!(err.code(), Code::Unavailable, "{}", err.message());
        assert!(
            err.message().contains("Vault is sealed; unseal it"),
            "{}",
            err.message()
        );
        // A pod with no token yet fails at login, the same way.
        let new_pod = TestPod::new("sealed-ns", "app");
        let fresh = MountBuilder::new(
            env.bao.addr(),
            "sealed",
            "- objectName: v\n  secretPath: secret/data/sealed/app\n  secretKey: value\n",
        )
        .pod(&new_pod, &env.signer, "vault");
        let err = provider.mount(fresh.build()).await.unwrap_err();
        assert_eq!(err.code(), Code::Unavailable, "{}", err.message());
        assert!(err.message().contains("sealed"), "{}", err.message());

        env.bao.unseal().await.unwrap();
        let response = provider
            .mount(request.build())
            .await
            .expect("mount after unseal");
        assert_eq!(file(&response, "v"), "v");
    });
}
