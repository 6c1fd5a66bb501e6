mod common;
use common::postgres::Postgres;
use reqwest::Method;
use serde_json::json;
use std::time::{Duration, Instant};

#[test]
fn explore() {
    common::run(async {
        let pg = Postgres::start().await;
        let env = common::env().await;
        let p = env.api(Method::GET, "sys/policies/acl/default", None).await;
        eprintln!("default policy: {}", p["data"]["policy"].as_str().unwrap());
        env.api(
            Method::POST,
            "sys/mounts/database",
            Some(json!({"type":"database"})),
        )
        .await;
        env.api(Method::POST, "database/config/pg", Some(json!({"plugin_name":"postgresql-database-plugin","connection_url":pg.connection_url_for_openbao(),"username":pg.superuser(),"password":pg.password(),"allowed_roles":"*"}))).await;
        let r = env.api(Method::GET, "database/config/pg", None).await;
        eprintln!("config read: {r:#}");
        env.api(Method::POST, "database/roles/short", Some(json!({"db_name":"pg","creation_statements":["CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"],"default_ttl":"2s","max_ttl":"4s"}))).await;
        let t1 = Instant::now();
        let creds = env.api(Method::GET, "database/creds/short", None).await;
        let lease = creds["lease_id"].as_str().unwrap().to_owned();
        let r = env
            .bao
            .raw(
                Method::PUT,
                "sys/leases/renew",
                Some("root"),
                None,
                Some(json!({"lease_id": lease})),
            )
            .await
            .unwrap();
        eprintln!("renew no increment at {:?}: {} {}", t1.elapsed(), r.0, r.1);
        let r = env
            .bao
            .raw(
                Method::PUT,
                "sys/leases/renew",
                Some("root"),
                None,
                Some(json!({"lease_id": lease, "increment": 60})),
            )
            .await
            .unwrap();
        eprintln!("renew increment 60 at {:?}: {} {}", t1.elapsed(), r.0, r.1);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let r = env
            .bao
            .raw(
                Method::PUT,
                &format!("sys/leases/renew/{lease}"),
                Some("root"),
                None,
                Some(json!({"increment": 2})),
            )
            .await
            .unwrap();
        eprintln!("renew url form at {:?}: {} {}", t1.elapsed(), r.0, r.1);
        tokio::time::sleep(Duration::from_millis(1900)).await;
        let r = env
            .bao
            .raw(
                Method::PUT,
                "sys/leases/renew",
                Some("root"),
                None,
                Some(json!({"lease_id": lease, "increment": 2})),
            )
            .await
            .unwrap();
        eprintln!("renew near max at {:?}: {} {}", t1.elapsed(), r.0, r.1);
        let r = env
            .bao
            .raw(
                Method::PUT,
                "sys/leases/lookup",
                Some("root"),
                None,
                Some(json!({"lease_id": lease})),
            )
            .await
            .unwrap();
        eprintln!("lookup at {:?}: {} {}", t1.elapsed(), r.0, r.1);
        tokio::time::sleep(Duration::from_millis(700)).await;
        let r = env
            .bao
            .raw(
                Method::PUT,
                "sys/leases/renew",
                Some("root"),
                None,
                Some(json!({"lease_id": lease, "increment": 2})),
            )
            .await
            .unwrap();
        eprintln!("renew past max at {:?}: {} {}", t1.elapsed(), r.0, r.1);
        // non-renewable? role with no max; check revoke-prefix
        let r = env
            .bao
            .raw(Method::GET, "database/creds/nope", Some("root"), None, None)
            .await
            .unwrap();
        eprintln!("creds unknown role: {} {}", r.0, r.1);
        // creds repeated: new user each time?
        let a = env.api(Method::GET, "database/creds/short", None).await;
        let b = env.api(Method::GET, "database/creds/short", None).await;
        eprintln!(
            "two reads: {} {}",
            a["data"]["username"], b["data"]["username"]
        );
    });
}
