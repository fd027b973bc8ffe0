//! The plain ACL's signature check on untrusted input: any header fields and
//! body, signed, must verify under the signing key and under no other, and
//! must stop verifying when any byte of a value or of the body changes; a
//! signature taken from the input must never make the check panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mq_protocol::acl::{verify_request, Credentials, SIGNATURE, UNIQUE_MSG_QUERY_FLAG};
use mq_protocol::frame::RemotingCommand;

/// Splits `data` at 0xFF bytes: the first piece picks which byte to flip,
/// the next pieces are alternating keys and values, the last one the body.
fn command(data: &[u8]) -> (RemotingCommand, usize) {
    let mut pieces = data.split(|b| *b == 0xFF);
    let flip = pieces
        .next()
        .map_or(0, |p| p.iter().fold(0usize, |a, b| a.wrapping_mul(31).wrapping_add(usize::from(*b))));
    let pieces: Vec<&[u8]> = pieces.collect();
    let mut cmd = RemotingCommand::request(10);
    let (fields, body) = match pieces.split_last() {
        Some((body, fields)) => (fields, *body),
        None => (&[][..], &[][..]),
    };
    for pair in fields.chunks(2) {
        let key = String::from_utf8_lossy(pair[0]).into_owned();
        let value = pair.get(1).map_or(String::new(), |v| String::from_utf8_lossy(v).into_owned());
        if !key.is_empty() && key != SIGNATURE && key != UNIQUE_MSG_QUERY_FLAG {
            cmd.put(&key, value);
        }
    }
    cmd.body = body.to_vec();
    (cmd, flip)
}

fuzz_target!(|data: &[u8]| {
    let (mut cmd, flip) = command(data);
    // A signature straight from the input: never a panic, and (almost
    // surely) no pass.
    let guess = String::from_utf8_lossy(data);
    let _ = verify_request(b"fuzz-secret", &cmd.ext_fields, &cmd.body, &[SIGNATURE], &guess);

    Credentials::new("fuzzkey", "fuzz-secret").sign(&mut cmd);
    let signature = cmd.get(SIGNATURE).expect("signed").to_owned();
    let skip = [SIGNATURE, UNIQUE_MSG_QUERY_FLAG];
    assert!(verify_request(b"fuzz-secret", &cmd.ext_fields, &cmd.body, &skip, &signature));
    assert!(!verify_request(b"fuzz-secret2", &cmd.ext_fields, &cmd.body, &skip, &signature));

    // Flip one bit of one byte of the body or of a value (other than the
    // signature itself).
    let mut bad = cmd.clone();
    let values: Vec<String> = bad
        .ext_fields
        .iter()
        .filter(|(k, v)| k.as_str() != SIGNATURE && !v.is_empty())
        .map(|(k, _)| k.clone())
        .collect();
    let targets = values.len() + usize::from(!bad.body.is_empty());
    if targets == 0 {
        return;
    }
    let pick = flip % targets;
    if pick < values.len() {
        let key = &values[pick];
        let mut bytes = bad.ext_fields[key].clone().into_bytes();
        let at = (flip / targets) % bytes.len();
        bytes[at] ^= 1 << (flip % 7);
        let Ok(text) = String::from_utf8(bytes) else {
            return; // not text any more: cannot travel as a header value
        };
        bad.put(key, text);
    } else {
        let at = (flip / targets) % bad.body.len();
        bad.body[at] ^= 1 << (flip % 8);
    }
    assert!(
        !verify_request(b"fuzz-secret", &bad.ext_fields, &bad.body, &skip, &signature),
        "a changed request still verified"
    );
});
