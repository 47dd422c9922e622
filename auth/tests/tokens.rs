//! Tokens a verifier must refuse.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use polyscale_auth::{AUDIENCE, Claims, ISSUER, KeyPair, Role, Signer, TokenError, Verifier, bearer};

fn setup() -> (KeyPair, Signer, Verifier) {
    let keys = KeyPair::generate().unwrap();
    let signer = Signer::new(&keys, std::time::Duration::from_secs(600)).unwrap();
    let verifier = Verifier::new(keys.public_pem()).unwrap();
    (keys, signer, verifier)
}

fn claims(exp_offset: i64) -> Claims {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    Claims {
        iss: ISSUER.into(),
        aud: AUDIENCE.into(),
        sub: "acct-1".into(),
        sid: "sess-1".into(),
        roles: vec![Role::Admin],
        iat: (now - 10) as u64,
        nbf: (now - 10) as u64,
        exp: (now + exp_offset) as u64,
        jti: "j".into(),
    }
}

fn sign(keys: &KeyPair, claims: &Claims) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::EdDSA),
        claims,
        &EncodingKey::from_ed_pem(keys.private_pem().as_bytes()).unwrap(),
    )
    .unwrap()
}

fn b64(bytes: &[u8]) -> String {
    // base64url without padding, as JWTs use.
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |acc, b| (acc << 8) | *b as u32) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[test]
fn issued_tokens_verify() {
    let (_, signer, verifier) = setup();
    let (token, exp) = signer.issue("acct-1", "sess-1", &[Role::Merchant]).unwrap();
    let claims = verifier.verify(&token).unwrap();
    assert_eq!(
        (claims.sub.as_str(), claims.sid.as_str(), claims.roles.as_slice(), claims.exp),
        ("acct-1", "sess-1", &[Role::Merchant][..], exp)
    );
}

#[test]
fn expired_tokens_are_refused() {
    let (keys, _, verifier) = setup();
    assert_eq!(verifier.verify(&sign(&keys, &claims(-120))), Err(TokenError::Expired));
}

#[test]
fn tampered_tokens_are_refused() {
    let (_, signer, verifier) = setup();
    let (token, _) = signer.issue("acct-1", "sess-1", &[Role::Customer]).unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    // Promote yourself to admin, keep the signature.
    let forged_payload = b64(serde_json::to_string(&claims(600)).unwrap().as_bytes());
    let forged = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
    assert!(matches!(verifier.verify(&forged), Err(TokenError::Invalid(_))));
    // Flip a signature character.
    let mut sig: Vec<char> = parts[2].chars().collect();
    sig[3] = if sig[3] == 'A' { 'B' } else { 'A' };
    let flipped = format!("{}.{}.{}", parts[0], parts[1], sig.into_iter().collect::<String>());
    assert!(matches!(verifier.verify(&flipped), Err(TokenError::Invalid(_))));
    for garbage in ["", "a.b.c", "not a token", &"x".repeat(10_000)] {
        assert!(matches!(verifier.verify(garbage), Err(TokenError::Invalid(_))), "{garbage}");
    }
}

#[test]
fn alg_none_is_refused() {
    let (_, _, verifier) = setup();
    let header = b64(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = b64(serde_json::to_string(&claims(600)).unwrap().as_bytes());
    for token in [format!("{header}.{payload}."), format!("{header}.{payload}")] {
        assert!(matches!(verifier.verify(&token), Err(TokenError::Invalid(_))));
    }
}

#[test]
fn hmac_keyed_with_the_public_key_is_refused() {
    let (keys, _, verifier) = setup();
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims(600),
        &EncodingKey::from_secret(keys.public_pem().as_bytes()),
    )
    .unwrap();
    assert!(matches!(verifier.verify(&token), Err(TokenError::Invalid(_))));
}

#[test]
fn other_audiences_issuers_and_keys_are_refused() {
    let (keys, _, verifier) = setup();
    let mut other_aud = claims(600);
    other_aud.aud = "another-api".into();
    assert!(matches!(verifier.verify(&sign(&keys, &other_aud)), Err(TokenError::Invalid(_))));
    let mut other_iss = claims(600);
    other_iss.iss = "someone-else".into();
    assert!(matches!(verifier.verify(&sign(&keys, &other_iss)), Err(TokenError::Invalid(_))));
    let stranger = KeyPair::generate().unwrap();
    assert!(matches!(verifier.verify(&sign(&stranger, &claims(600))), Err(TokenError::Invalid(_))));
    let mut not_yet = claims(600);
    not_yet.nbf += 3600;
    assert!(matches!(verifier.verify(&sign(&keys, &not_yet)), Err(TokenError::Invalid(_))));
}

#[test]
fn key_files_round_trip_and_stay_private() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys/signing.pem");
    let created = polyscale_auth::load_or_create_key_pair(&path).unwrap();
    let loaded = polyscale_auth::load_or_create_key_pair(&path).unwrap();
    assert_eq!(created.public_pem(), loaded.public_pem());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(!format!("{created:?}").contains("PRIVATE"));
}

#[test]
fn bearer_headers() {
    assert_eq!(bearer("Bearer abc"), Some("abc"));
    assert_eq!(bearer("bearer  abc "), Some("abc"));
    assert_eq!(bearer("Basic abc"), None);
    assert_eq!(bearer("Bearer "), None);
}
