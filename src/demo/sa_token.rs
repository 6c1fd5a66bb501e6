//! Service-account-shaped JWTs, signed like a Kubernetes API server signs
//! projected (pod-bound) tokens, with a key generated at runtime.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::DemoError;

/// The issuer of a default kind/kubeadm cluster, used unless another is chosen.
pub const DEFAULT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// Signs and verifies service-account tokens with a P-256 key made at runtime
/// (ES256), standing in for the API server's service-account signing key.
#[derive(Clone)]
pub struct TokenSigner {
    encoding: EncodingKey,
    decoding: DecodingKey,
    public_pem: String,
    issuer: String,
    kid: String,
}

/// What a pod-bound token is about; input to [`TokenSigner::sign`].
#[derive(Debug, Clone)]
pub struct PodTokenClaims {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's service account.
    pub service_account: String,
    /// The pod's name.
    pub pod_name: String,
    /// The pod's UID.
    pub pod_uid: String,
    /// The token's audiences (`aud`), as requested in the CSIDriver's `tokenRequests`.
    pub audience: Vec<String>,
    /// Lifetime from issue to `exp`.
    pub ttl: Duration,
}

impl PodTokenClaims {
    /// Claims for `namespace`/`service_account` with a pod name and UID
    /// derived from them, one audience and a one-hour lifetime.
    pub fn new(namespace: &str, service_account: &str, audience: &str) -> Self {
        PodTokenClaims {
            namespace: namespace.to_owned(),
            service_account: service_account.to_owned(),
            pod_name: format!("{service_account}-pod"),
            pod_uid: derived_uid("pod", namespace, service_account),
            audience: vec![audience.to_owned()],
            ttl: Duration::from_secs(3600),
        }
    }
}

/// The claims of a projected service-account token, as the API server writes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceAccountClaims {
    /// Issuer (the API server's `--service-account-issuer`).
    pub iss: String,
    /// `system:serviceaccount:<namespace>:<name>`.
    pub sub: String,
    /// Audiences; always an array in projected tokens.
    pub aud: Vec<String>,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Issued at, seconds since the epoch.
    pub iat: u64,
    /// Not before, seconds since the epoch.
    pub nbf: u64,
    /// The private `kubernetes.io` claim naming the namespace, pod and service account.
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: KubernetesClaim,
}

/// The `kubernetes.io` claim of a projected token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubernetesClaim {
    /// The service account's namespace.
    pub namespace: String,
    /// The pod the token is bound to (absent for tokens not bound to a pod).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<ObjectRef>,
    /// The service account.
    pub serviceaccount: ObjectRef,
}

/// A name and UID pair inside the `kubernetes.io` claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    /// Object name.
    pub name: String,
    /// Object UID.
    pub uid: String,
}

impl TokenSigner {
    /// A signer with a fresh key and the [`DEFAULT_ISSUER`].
    pub fn new() -> Result<Self, DemoError> {
        Self::with_issuer(DEFAULT_ISSUER)
    }

    /// A signer with a fresh key and the given issuer.
    pub fn with_issuer(issuer: impl Into<String>) -> Result<Self, DemoError> {
        let crypto = |what: &str| DemoError::Crypto(what.to_owned());
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(|_| crypto("generate P-256 key"))?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
            .map_err(|_| crypto("load generated P-256 key"))?;
        let spki = pair
            .public_key()
            .as_der()
            .map_err(|_| crypto("encode public key as SubjectPublicKeyInfo"))?;
        let public_pem = pem::encode_config(
            &pem::Pem::new("PUBLIC KEY", spki.as_ref().to_vec()),
            pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
        );
        // Verify through the same PEM that OpenBao is given, so a bad PEM fails here too.
        let decoding = DecodingKey::from_ec_pem(public_pem.as_bytes())?;
        // Like the API server, name the key by a hash of its public half.
        let kid = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            spki.as_ref(),
        ));
        Ok(TokenSigner {
            encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
            decoding,
            public_pem,
            issuer: issuer.into(),
            kid,
        })
    }

    /// The public key as SPKI PEM, as OpenBao's `jwt_validation_pubkeys` takes it.
    pub fn public_key_pem(&self) -> String {
        self.public_pem.clone()
    }

    /// The `iss` of every token this signer makes.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Signs a projected-token-shaped JWT issued now.
    pub fn sign(&self, claims: &PodTokenClaims) -> String {
        self.sign_at(claims, SystemTime::now())
    }

    /// Signs a token as if issued at `issued_at`; a past time with a short
    /// `ttl` makes an already expired token.
    pub fn sign_at(&self, claims: &PodTokenClaims, issued_at: SystemTime) -> String {
        let iat = issued_at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let body = ServiceAccountClaims {
            iss: self.issuer.clone(),
            sub: format!(
                "system:serviceaccount:{}:{}",
                claims.namespace, claims.service_account
            ),
            aud: claims.audience.clone(),
            exp: iat + claims.ttl.as_secs(),
            iat,
            nbf: iat,
            kubernetes: KubernetesClaim {
                namespace: claims.namespace.clone(),
                pod: Some(ObjectRef {
                    name: claims.pod_name.clone(),
                    uid: claims.pod_uid.clone(),
                }),
                serviceaccount: ObjectRef {
                    name: claims.service_account.clone(),
                    uid: service_account_uid(&claims.namespace, &claims.service_account),
                },
            },
        };
        self.sign_claims(&body)
    }

    /// Signs arbitrary claims with this key (for malformed-token tests).
    pub fn sign_claims<T: Serialize>(&self, claims: &T) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding)
            .expect("ES256 signing with a freshly generated P-256 key cannot fail")
    }

    /// Verifies signature, issuer, `exp` and `nbf` (60 s leeway, like the API
    /// server's JWT library) and returns the claims. Audiences are not checked
    /// here: that depends on who asks (see the TokenReview fake).
    pub fn verify(&self, token: &str) -> Result<ServiceAccountClaims, DemoError> {
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.validate_nbf = true;
        validation.validate_aud = false;
        validation.leeway = 60;
        let data =
            jsonwebtoken::decode::<ServiceAccountClaims>(token, &self.decoding, &validation)?;
        Ok(data.claims)
    }
}

/// A stable UUID-shaped UID for a service account, so tokens and the
/// TokenReview fake agree without a registry of accounts.
pub fn service_account_uid(namespace: &str, service_account: &str) -> String {
    derived_uid("serviceaccount", namespace, service_account)
}

fn derived_uid(kind: &str, namespace: &str, name: &str) -> String {
    let d = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        format!("{kind}/{namespace}/{name}").as_bytes(),
    );
    let h = hex::encode(&d.as_ref()[..16]);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The driver's `csi.storage.k8s.io/serviceAccount.tokens` attribute:
/// `{"<audience>":{"token":"…","expirationTimestamp":"<RFC 3339>"}}`.
pub fn tokens_attribute(audience_to_token: &[(&str, &str, SystemTime)]) -> String {
    let map: serde_json::Map<String, serde_json::Value> = audience_to_token
        .iter()
        .map(|(aud, token, expiry)| {
            (
                (*aud).to_owned(),
                serde_json::json!({
                    "token": token,
                    "expirationTimestamp": rfc3339(*expiry),
                }),
            )
        })
        .collect();
    serde_json::Value::Object(map).to_string()
}

/// Formats a time as RFC 3339 UTC with whole seconds (`2024-05-01T12:00:00Z`),
/// the way Kubernetes serialises `metav1.Time`.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_then_verify_round_trips() {
        let signer = TokenSigner::new().unwrap();
        let claims = PodTokenClaims::new("team-a", "app", "vault");
        let token = signer.sign(&claims);
        let got = signer.verify(&token).unwrap();
        assert_eq!(got.sub, "system:serviceaccount:team-a:app");
        assert_eq!(got.aud, vec!["vault".to_owned()]);
        assert_eq!(got.iss, DEFAULT_ISSUER);
        assert_eq!(got.exp - got.iat, 3600);
        assert_eq!(got.kubernetes.namespace, "team-a");
        assert_eq!(got.kubernetes.pod.unwrap().uid, claims.pod_uid);
        assert_eq!(
            got.kubernetes.serviceaccount.uid,
            service_account_uid("team-a", "app")
        );
        assert!(
            signer
                .public_key_pem()
                .starts_with("-----BEGIN PUBLIC KEY-----\n")
        );
    }

    #[test]
    fn expired_and_foreign_tokens_are_rejected() {
        let signer = TokenSigner::new().unwrap();
        let mut claims = PodTokenClaims::new("team-a", "app", "vault");
        claims.ttl = Duration::from_secs(60);
        let old = SystemTime::now() - Duration::from_secs(3600);
        assert!(signer.verify(&signer.sign_at(&claims, old)).is_err());
        let other = TokenSigner::new().unwrap();
        assert!(signer.verify(&other.sign(&claims)).is_err());
    }

    #[test]
    fn tokens_attribute_has_the_driver_shape() {
        let exp = UNIX_EPOCH + Duration::from_secs(1_735_689_599);
        let attr = tokens_attribute(&[("vault", "tok", exp)]);
        let v: serde_json::Value = serde_json::from_str(&attr).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"vault": {"token": "tok", "expirationTimestamp": "2024-12-31T23:59:59Z"}})
        );
    }
}
