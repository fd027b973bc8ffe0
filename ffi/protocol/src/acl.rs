//! Request signing for RocketMQ's plain ACL (4.9.7's `AclClientRPCHook` and
//! `PlainAccessValidator`), shared by the clients that sign and the broker
//! that checks.
//!
//! A signed request carries three more extFields: `AccessKey`, `Signature`
//! and, when the credentials have one, `SecurityToken`. The signature is
//! Base64(HMAC-SHA1(secret key, content)), where the content is the values
//! of every extField but `Signature`, concatenated in the order of their
//! keys, followed by the body. The broker also leaves `_UNIQUE_KEY_QUERY` out
//! of the content (4.9.7 does, for a flag some tools add after signing).
//!
//! Keys are ordered as Java's `TreeMap<String, _>` orders them, by UTF-16
//! code units. That equals the byte order of UTF-8 for every key but those
//! mixing characters above U+FFFF with characters from U+E000 to U+FFFF,
//! which [`signature_content`] handles.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;

use crate::ext_fields::ExtFields;
use crate::frame::RemotingCommand;

/// The header fields as signed. They are kept in the order they were added
/// (the frame's), so the signature sorts them as Java's `TreeMap` would.
type Fields = ExtFields;

/// More fields than any request carries; a longer header sorts on the heap.
const MAX_INLINE_FIELDS: usize = 32;

/// The extField naming the account.
pub const ACCESS_KEY: &str = "AccessKey";
/// The extField carrying the signature.
pub const SIGNATURE: &str = "Signature";
/// The extField carrying the optional security token.
pub const SECURITY_TOKEN: &str = "SecurityToken";
/// A flag the broker leaves out of the signed content, as 4.9.7 does.
pub const UNIQUE_MSG_QUERY_FLAG: &str = "_UNIQUE_KEY_QUERY";

/// The credentials a client signs its requests with.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The account's name (`accessKey` in `plain_acl.yml`).
    pub access_key: String,
    /// The account's secret; never logged.
    pub secret_key: String,
    /// An optional token sent with every request and covered by the signature.
    pub security_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    // The secret stays out of logs and panic messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key", &self.access_key)
            .field("secret_key", &"***")
            .field(
                "security_token",
                &self.security_token.as_ref().map(|_| "***"),
            )
            .finish()
    }
}

impl Credentials {
    /// Credentials of `access_key` with `secret_key` and no token.
    pub fn new(access_key: impl Into<String>, secret_key: impl Into<String>) -> Self {
        Credentials {
            access_key: access_key.into(),
            secret_key: secret_key.into(),
            security_token: None,
        }
    }

    /// Adds `AccessKey` (and `SecurityToken`) to `cmd` and signs it, as
    /// `AclClientRPCHook` does just before a request is written.
    pub fn sign(&self, cmd: &mut RemotingCommand) {
        self.signer().sign(cmd);
    }

    /// These credentials made ready to sign many requests.
    pub fn signer(&self) -> Signer {
        Signer {
            access_key: self.access_key.clone(),
            security_token: self.security_token.clone(),
            key: SigningKey::new(self.secret_key.as_bytes()),
        }
    }
}

/// A secret key made ready for HMAC-SHA1: the keyed state, computed once
/// and copied per request (two of the hash's blocks a request saved).
#[derive(Clone)]
pub struct SigningKey(Hmac<Sha1>);

impl SigningKey {
    /// The key of `secret`.
    pub fn new(secret: &[u8]) -> Self {
        SigningKey(mac(secret))
    }
}

impl std::fmt::Debug for SigningKey {
    // Derived from the secret: kept out of logs like it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(***)")
    }
}

/// [`Credentials`] ready to sign: what a connection keeps.
#[derive(Clone, Debug)]
pub struct Signer {
    access_key: String,
    security_token: Option<String>,
    key: SigningKey,
}

impl Signer {
    /// Adds `AccessKey` (and `SecurityToken`) to `cmd` and signs it, as
    /// `AclClientRPCHook` does just before a request is written.
    pub fn sign(&self, cmd: &mut RemotingCommand) {
        let body = std::mem::take(&mut cmd.body);
        self.sign_with_body(cmd, &body);
        cmd.body = body;
    }

    /// [`sign`](Self::sign) for a command sent with `body` in place of its
    /// own ([`RemotingCommand::encode_with_body_into`]).
    pub fn sign_with_body(&self, cmd: &mut RemotingCommand, body: &[u8]) {
        cmd.ext_fields.insert(ACCESS_KEY, &self.access_key);
        if let Some(token) = &self.security_token {
            cmd.ext_fields.insert(SECURITY_TOKEN, token);
        }
        cmd.ext_fields.remove(SIGNATURE);
        let mut mac = self.key.0.clone();
        feed(&mut mac, &cmd.ext_fields, body, &[]);
        let mut text = [0u8; SIGNATURE_TEXT_LEN];
        let signature = encode_signature(&mac.finalize().into_bytes(), &mut text);
        cmd.ext_fields.insert(SIGNATURE, signature);
    }
}

/// Bytes of an HMAC-SHA1.
const MAC_LEN: usize = 20;
/// Base64 text of an HMAC-SHA1, padded.
const SIGNATURE_TEXT_LEN: usize = 28;

/// The Base64 text of `mac`, written into `out`.
fn encode_signature<'a>(mac: &[u8], out: &'a mut [u8; SIGNATURE_TEXT_LEN]) -> &'a str {
    let n = base64::engine::general_purpose::STANDARD
        .encode_slice(mac, out)
        .expect("28 bytes hold the Base64 of 20");
    std::str::from_utf8(&out[..n]).expect("Base64 is ASCII")
}

/// What is signed: the values of `fields` but those named in `skip`, in
/// Java's key order, then `body`. (The checks feed the same bytes to the
/// MAC without building this copy.)
pub fn signature_content(fields: &Fields, body: &[u8], skip: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for_each_value(fields, skip, |v| out.extend_from_slice(v.as_bytes()));
    out.extend_from_slice(body);
    out
}

/// Calls `f` with the values of `fields` but those named in `skip`, in
/// Java's key order (a `TreeMap<String, _>`: UTF-16 code units).
fn for_each_value<'a>(fields: &'a Fields, skip: &[&str], mut f: impl FnMut(&'a str)) {
    let mut inline: [(&str, &str); MAX_INLINE_FIELDS] = [("", ""); MAX_INLINE_FIELDS];
    let mut heap = Vec::new();
    let kept = fields.iter().filter(|(k, _)| !skip.contains(k));
    let entries: &mut [(&str, &str)] = if fields.len() <= MAX_INLINE_FIELDS {
        let mut n = 0;
        for entry in kept {
            inline[n] = entry;
            n += 1;
        }
        &mut inline[..n]
    } else {
        heap.extend(kept);
        &mut heap
    };
    if entries.iter().all(|(k, _)| k.is_ascii()) {
        // The common case: byte order is Java's order.
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    } else {
        entries.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
    }
    for (_, v) in entries.iter() {
        f(v);
    }
}

fn feed(mac: &mut Hmac<Sha1>, fields: &Fields, body: &[u8], skip: &[&str]) {
    // The values are short: gathered into one buffer, they cost the MAC one
    // update instead of one each (a tenth of the check's time, in perf).
    let mut buf = [0u8; 512];
    let mut len = 0;
    for_each_value(fields, skip, |v| {
        let bytes = v.as_bytes();
        if len + bytes.len() > buf.len() {
            mac.update(&buf[..len]);
            len = 0;
        }
        if bytes.len() > buf.len() {
            mac.update(bytes);
        } else {
            buf[len..len + bytes.len()].copy_from_slice(bytes);
            len += bytes.len();
        }
    });
    mac.update(&buf[..len]);
    mac.update(body);
}

/// Base64(HMAC-SHA1(`secret`, `content`)): 4.9.7's `AclSigner` with its
/// default algorithm.
pub fn sign(secret: &[u8], content: &[u8]) -> String {
    let mut mac = mac(secret);
    mac.update(content);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Whether `signature` signs `fields` (but those in `skip`) and `body`
/// under `secret`. The comparison of the MACs takes constant time.
pub fn verify_request(
    secret: &[u8],
    fields: &Fields,
    body: &[u8],
    skip: &[&str],
    signature: &str,
) -> bool {
    verify_request_with(&SigningKey::new(secret), fields, body, skip, signature)
}

/// [`verify_request`] with a key made ready beforehand (a broker keeps
/// one per account).
pub fn verify_request_with(
    key: &SigningKey,
    fields: &Fields,
    body: &[u8],
    skip: &[&str],
    signature: &str,
) -> bool {
    let Some(given) = decode_canonical(signature) else {
        return false;
    };
    let mut mac = key.0.clone();
    feed(&mut mac, fields, body, skip);
    mac.verify_slice(&given).is_ok()
}

/// Whether `signature` is the signature of `content` under `secret`.
pub fn verify(secret: &[u8], content: &[u8], signature: &str) -> bool {
    let Some(given) = decode_canonical(signature) else {
        return false;
    };
    let mut mac = mac(secret);
    mac.update(content);
    mac.verify_slice(&given).is_ok()
}

/// The bytes of a Base64 text that is exactly what Java would have written
/// for them: 4.9.7 compares the texts, so a second spelling of the same
/// bytes (padding bits set) must not pass either.
fn decode_canonical(signature: &str) -> Option<[u8; MAC_LEN]> {
    if signature.len() != SIGNATURE_TEXT_LEN {
        return None;
    }
    // Into a buffer the decoder may need a little room past the end of.
    let mut room = [0u8; MAC_LEN + 3];
    let n = base64::engine::general_purpose::STANDARD
        .decode_slice(signature, &mut room)
        .ok()?;
    let bytes: [u8; MAC_LEN] = room[..n].try_into().ok()?;
    let mut text = [0u8; SIGNATURE_TEXT_LEN];
    (encode_signature(&bytes, &mut text) == signature).then_some(bytes)
}

fn mac(secret: &[u8]) -> Hmac<Sha1> {
    Hmac::<Sha1>::new_from_slice(secret).expect("HMAC takes a key of any length")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_as_java_hmac_sha1_base64() {
        // RFC 2202 test case 2: HMAC-SHA1("Jefe", "what do ya want for nothing?")
        // = effcdf6ae5eb2fa2d27416d5f184df9c259a7c79.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "7/zfauXrL6LSdBbV8YTfnCWafHk="
        );
    }

    #[test]
    fn content_is_sorted_values_then_body_without_signature() {
        let mut fields = Fields::new();
        fields.insert("b", "2");
        fields.insert("a", "1");
        fields.insert(SIGNATURE, "x");
        fields.insert(ACCESS_KEY, "AK");
        assert_eq!(
            signature_content(&fields, b"body", &[SIGNATURE]),
            b"AK12body".to_vec()
        );
    }

    #[test]
    fn content_orders_keys_by_utf16_like_java() {
        // U+FF01 sorts before U+1F600 in UTF-8 bytes (EF.. < F0..) and after
        // it in UTF-16 (FF01 > D83D).
        let mut fields = Fields::new();
        fields.insert("\u{FF01}", "wide");
        fields.insert("\u{1F600}", "emoji");
        assert_eq!(signature_content(&fields, b"", &[]), b"emojiwide".to_vec());
    }

    #[test]
    fn signed_request_verifies_and_a_flipped_byte_does_not() {
        let mut cmd = RemotingCommand::request(10);
        cmd.put("topic", "T");
        cmd.body = b"hello".to_vec();
        Credentials::new("RocketMQ", "12345678").sign(&mut cmd);
        let sig = cmd.get(SIGNATURE).expect("signed").to_owned();
        let content = signature_content(&cmd.ext_fields, &cmd.body, &[SIGNATURE]);
        assert!(verify(b"12345678", &content, &sig));
        assert!(!verify(b"12345679", &content, &sig));
        let mut flipped = content.clone();
        flipped[0] ^= 1;
        assert!(!verify(b"12345678", &flipped, &sig));
        assert!(!verify(b"12345678", &content, "not base64!"));
        assert!(verify_request(
            b"12345678",
            &cmd.ext_fields,
            &cmd.body,
            &[SIGNATURE],
            &sig
        ));
    }

    #[test]
    fn a_ready_key_signs_alike_and_only_the_canonical_spelling_verifies() {
        let mut unsigned = RemotingCommand::request(10);
        unsigned.put("topic", "T");
        unsigned.body = b"hello".to_vec();
        let credentials = Credentials::new("RocketMQ", "12345678");
        let mut cmd = unsigned.clone();
        credentials.sign(&mut cmd);
        let sig = cmd.get(SIGNATURE).expect("signed").to_owned();
        let mut again = unsigned.clone();
        credentials.signer().sign(&mut again);
        assert_eq!(again.get(SIGNATURE), Some(sig.as_str()));

        let key = SigningKey::new(b"12345678");
        let check =
            |s: &str| verify_request_with(&key, &cmd.ext_fields, &cmd.body, &[SIGNATURE], s);
        assert!(check(&sig));
        // The last character before the padding carries two unused bits:
        // setting one spells the same bytes another way, which 4.9.7's
        // text comparison refuses.
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut other = sig.clone().into_bytes();
        let i = alphabet
            .iter()
            .position(|&c| c == other[26])
            .expect("base64");
        other[26] = alphabet[i ^ 1];
        assert!(!check(std::str::from_utf8(&other).expect("ASCII")));
        assert!(!check(&sig[..27]));
        assert!(!check(&format!("{sig}A")));
        assert!(!check(""));
    }

    #[test]
    fn credentials_debug_hides_the_secret() {
        let text = format!("{:?}", Credentials::new("ak", "very-secret"));
        assert!(!text.contains("very-secret"));
    }
}
