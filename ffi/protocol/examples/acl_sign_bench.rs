//! Times signing and verifying a typical 1 KiB SEND_MESSAGE_V2 (not a
//! test), and what the two extra header fields cost to encode and decode:
//! `cargo run --release -p mq-protocol --example acl_sign_bench`.
use std::time::Instant;

use mq_protocol::acl::{verify_request, verify_request_with, Credentials, SigningKey, SIGNATURE};
use mq_protocol::frame::RemotingCommand;

fn main() {
    let mut cmd = RemotingCommand::request(310);
    for (k, v) in [
        ("a", "mqctl_bench_producer"),
        ("b", "BenchTopic"),
        ("c", "TBW102"),
        ("d", "8"),
        ("e", "3"),
        ("f", "0"),
        ("g", "1764547200000"),
        ("h", "0"),
        (
            "i",
            "UNIQ_KEY\u{1}0A0B0C0D0E0F101112131415161718191A1B1C\u{2}WAIT\u{1}true",
        ),
        ("j", "0"),
        ("k", "false"),
        ("m", "false"),
    ] {
        cmd.put(k, v);
    }
    cmd.body = vec![b'x'; 1024];
    let creds = Credentials::new("benchuser", "benchsecret");
    let n = 200_000;
    let t = Instant::now();
    for _ in 0..n {
        let mut c = cmd.clone();
        creds.sign(&mut c);
        std::hint::black_box(&c);
    }
    let sign = t.elapsed().as_nanos() as f64 / n as f64;
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(cmd.clone());
    }
    let clone = t.elapsed().as_nanos() as f64 / n as f64;
    let mut signed = cmd.clone();
    creds.sign(&mut signed);
    let sig = signed.get(SIGNATURE).expect("signed").to_owned();
    let t = Instant::now();
    for _ in 0..n {
        assert!(verify_request(
            b"benchsecret",
            &signed.ext_fields,
            &signed.body,
            &[SIGNATURE],
            &sig
        ));
    }
    let verify = t.elapsed().as_nanos() as f64 / n as f64;
    // What a client connection and a broker do: the key made ready once.
    let signer = creds.signer();
    let t = Instant::now();
    for _ in 0..n {
        let mut c = cmd.clone();
        signer.sign(&mut c);
        std::hint::black_box(&c);
    }
    let sign_ready = t.elapsed().as_nanos() as f64 / n as f64;
    let key = SigningKey::new(b"benchsecret");
    let t = Instant::now();
    for _ in 0..n {
        assert!(verify_request_with(
            &key,
            &signed.ext_fields,
            &signed.body,
            &[SIGNATURE],
            &sig
        ));
    }
    let verify_ready = t.elapsed().as_nanos() as f64 / n as f64;
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(signed.encode().expect("encodes"));
    }
    let enc_signed = t.elapsed().as_nanos() as f64 / n as f64;
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(cmd.encode().expect("encodes"));
    }
    let enc = t.elapsed().as_nanos() as f64 / n as f64;
    let frame = signed.encode().expect("encodes");
    let plain = cmd.encode().expect("encodes");
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(RemotingCommand::decode(&frame, 1 << 24).expect("decodes"));
    }
    let dec_signed = t.elapsed().as_nanos() as f64 / n as f64;
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(RemotingCommand::decode(&plain, 1 << 24).expect("decodes"));
    }
    let dec = t.elapsed().as_nanos() as f64 / n as f64;
    let content =
        mq_protocol::acl::signature_content(&signed.ext_fields, &signed.body, &[SIGNATURE]);
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(mq_protocol::acl::sign(
            b"benchsecret",
            std::hint::black_box(&content),
        ));
    }
    let raw = t.elapsed().as_nanos() as f64 / n as f64;
    println!(
        "raw HMAC-SHA1 + Base64 of {} bytes: {raw:.0} ns",
        content.len()
    );
    println!(
        "sign {:.0} ns (clone {clone:.0} ns), verify {verify:.0} ns; encode {enc:.0} -> {enc_signed:.0} ns, decode {dec:.0} -> {dec_signed:.0} ns",
        sign - clone
    );
    println!(
        "with the key made ready once (a connection's, an account's): sign {:.0} ns, verify {verify_ready:.0} ns",
        sign_ready - clone
    );
}
