//! The checks as 4.9.7 makes them, and a property test of the signature
//! check against a reference signer written here from the definition.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use base64::Engine;
use mq_protocol::acl::Credentials;
use mq_protocol::codes::request::*;
use mq_protocol::codes::response;
use mq_protocol::frame::RemotingCommand;
use sha1::{Digest, Sha1};

use super::*;

const FILE: &str = "\
globalWhiteRemoteAddresses:
  - 10.10.103.*
accounts:
  - accessKey: RocketMQ
    secretKey: 12345678
    admin: false
    defaultTopicPerm: DENY
    defaultGroupPerm: SUB
    topicPerms:
      - topicA=DENY
      - topicB=PUB|SUB
      - topicC=SUB
    groupPerms:
      - groupA=DENY
  - accessKey: rocketmq2
    secretKey: 87654321
    whiteRemoteAddress: 192.168.1.*
    admin: true
";

struct TempFile(PathBuf);

impl TempFile {
    fn new(text: &str) -> TempFile {
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("mq-acl-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("plain_acl.yml");
        std::fs::write(&path, text).expect("write");
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            // Best effort: a leftover temp dir harms nothing.
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn acl(text: &str) -> (Acl, TempFile) {
    let file = TempFile::new(text);
    (Acl::open(file.0.clone(), None).expect("opens"), file)
}

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn send(topic: &str) -> RemotingCommand {
    let mut req = RemotingCommand::request(SEND_MESSAGE_V2);
    req.put("a", "PG").put("b", topic).put("c", "TBW102");
    req.body = b"hello".to_vec();
    req
}

fn signed(mut req: RemotingCommand, ak: &str, sk: &str) -> RemotingCommand {
    Credentials::new(ak, sk).sign(&mut req);
    req
}

#[test]
fn right_keys_and_permission_pass() {
    let (acl, _f) = acl(FILE);
    assert_eq!(
        acl.check(LOCAL, &signed(send("topicB"), "RocketMQ", "12345678")),
        Ok(())
    );
}

#[test]
fn refusals_carry_4_9_7_reasons() {
    let (acl, _f) = acl(FILE);
    let check = |req: &RemotingCommand| acl.check(LOCAL, req).expect_err("refused");
    assert_eq!(
        check(&signed(send("topicB"), "RocketMQ", "wrong-secret")),
        "Check signature failed for accessKey=RocketMQ"
    );
    assert_eq!(
        check(&signed(send("topicB"), "nobody00", "12345678")),
        "No acl config for nobody00"
    );
    assert_eq!(check(&send("topicB")), "No accessKey is configured");
    assert_eq!(
        check(&signed(send("topicC"), "RocketMQ", "12345678")),
        "No default permission for topic:topicC"
    );
    assert_eq!(
        check(&signed(send("other"), "RocketMQ", "12345678")),
        "No default permission for topic:other"
    );
    let mut create = RemotingCommand::request(UPDATE_AND_CREATE_TOPIC);
    create.put("topic", "New");
    assert_eq!(
        check(&signed(create, "RocketMQ", "12345678")),
        "Need admin permission for request code=17, but accessKey=RocketMQ is not"
    );
    let mut pull = RemotingCommand::request(PULL_MESSAGE);
    pull.put("topic", "topicB").put("consumerGroup", "groupA");
    assert_eq!(
        check(&signed(pull, "RocketMQ", "12345678")),
        "No default permission for group:groupA"
    );
}

#[test]
fn a_tampered_request_fails_the_signature() {
    let (acl, _f) = acl(FILE);
    let mut req = signed(send("topicB"), "RocketMQ", "12345678");
    req.body[0] ^= 1;
    assert!(acl.check(LOCAL, &req).is_err());
    let mut req = signed(send("topicB"), "RocketMQ", "12345678");
    req.put("b", "topicA");
    assert!(acl.check(LOCAL, &req).is_err());
}

#[test]
fn whitelists_let_in_without_keys() {
    let (acl, _f) = acl(FILE);
    let global: IpAddr = "10.10.103.7".parse().expect("ip");
    assert_eq!(acl.check(global, &send("anything")), Ok(()));
    // An account's whitelist needs its AccessKey, not its signature.
    let mut req = send("anything");
    req.put("AccessKey", "rocketmq2");
    assert_eq!(acl.check("192.168.1.9".parse().expect("ip"), &req), Ok(()));
    assert!(acl.check(LOCAL, &req).is_err());
}

#[test]
fn admin_without_resource_lists_may_do_anything() {
    let (acl, _f) = acl(FILE);
    let mut create = RemotingCommand::request(UPDATE_AND_CREATE_TOPIC);
    create.put("topic", "New");
    assert_eq!(
        acl.check(LOCAL, &signed(create, "rocketmq2", "87654321")),
        Ok(())
    );
    assert_eq!(
        acl.check(LOCAL, &signed(send("x"), "rocketmq2", "87654321")),
        Ok(())
    );
}

#[test]
fn trace_topic_sends_need_no_permission() {
    let (acl, _f) = acl(FILE);
    let req = signed(send(resource::TRACE_TOPIC), "RocketMQ", "12345678");
    assert_eq!(acl.check(LOCAL, &req), Ok(()));
}

#[test]
fn refusal_is_system_error_with_the_exception_text() {
    let (acl, _f) = acl(FILE);
    let peer = SocketAddr::new(LOCAL, 4000);
    let req = send("topicB");
    let resp = acl
        .refuse(peer, &req, "No accessKey is configured")
        .expect("answered");
    assert_eq!(resp.code, response::SYSTEM_ERROR);
    assert_eq!(
        resp.remark.as_deref(),
        Some("org.apache.rocketmq.acl.common.AclException: No accessKey is configured")
    );
    let mut oneway = send("topicB");
    oneway.set_oneway();
    assert!(acl.refuse(peer, &oneway, "x").is_none());
}

#[test]
fn reload_takes_a_good_file_and_keeps_the_last_good_one_over_a_broken_one() {
    let (acl, f) = acl(FILE);
    let req = signed(send("topicB"), "newuser1", "abcdefgh");
    assert!(acl.check(LOCAL, &req).is_err());
    std::fs::write(
        &f.0,
        "accounts:\n  - accessKey: newuser1\n    secretKey: abcdefgh\n    defaultTopicPerm: PUB\n",
    )
    .expect("write");
    acl.reload_if_changed();
    assert_eq!(acl.check(LOCAL, &req), Ok(()));
    std::fs::write(&f.0, "accounts:\n  - accessKey: x\n").expect("write");
    acl.reload_if_changed();
    assert_eq!(
        acl.check(LOCAL, &req),
        Ok(()),
        "the broken file changed nothing"
    );
    std::fs::remove_file(&f.0).expect("remove");
    acl.reload_if_changed();
    assert_eq!(
        acl.check(LOCAL, &req),
        Ok(()),
        "a vanished file changed nothing"
    );
}

#[test]
fn a_broken_file_at_start_is_an_error_and_a_missing_one_refuses_all() {
    let f = TempFile::new("accounts:\n  - accessKey: short\n");
    assert!(matches!(
        Acl::open(f.0.clone(), None),
        Err(AclError::Broken { .. })
    ));
    let missing = f.0.with_file_name("absent.yml");
    let acl = Acl::open(missing, None).expect("opens");
    assert!(acl
        .check(LOCAL, &signed(send("t"), "RocketMQ", "12345678"))
        .is_err());
}

#[test]
fn admin_edits_persist_and_take_effect() {
    let (acl, f) = acl(FILE);
    let update = AccountUpdate {
        access_key: "newuser1".into(),
        secret_key: Some("abcdefgh".into()),
        default_topic_perm: Some("PUB".into()),
        topic_perms: Some(vec!["topicX=DENY".into()]),
        ..Default::default()
    };
    acl.update_account(&update).expect("updated");
    assert_eq!(
        acl.check(LOCAL, &signed(send("t"), "newuser1", "abcdefgh")),
        Ok(())
    );
    assert!(acl
        .check(LOCAL, &signed(send("topicX"), "newuser1", "abcdefgh"))
        .is_err());
    let reread = AclFile::parse(&std::fs::read_to_string(&f.0).expect("read")).expect("parses");
    assert!(reread.accounts.contains_key("newuser1"));
    assert!(
        reread.accounts.contains_key("RocketMQ"),
        "other accounts kept"
    );
    assert_eq!(reread.data_version.counter, 1);

    assert!(acl
        .update_account(&AccountUpdate {
            access_key: "newuser1".into(),
            secret_key: Some("abcdefgh".into()),
            topic_perms: Some(vec!["topicX=WRITE".into()]),
            ..Default::default()
        })
        .is_err());

    acl.update_global_white(&["127.0.0.1".into()], None)
        .expect("updated");
    assert_eq!(acl.check(LOCAL, &send("anything")), Ok(()));
    acl.update_global_white(&[], None).expect("updated");

    assert_eq!(acl.delete_account("newuser1"), Ok(true));
    assert_eq!(acl.delete_account("newuser1"), Ok(false));
    assert!(acl
        .check(LOCAL, &signed(send("t"), "newuser1", "abcdefgh"))
        .is_err());
    let reread = AclFile::parse(&std::fs::read_to_string(&f.0).expect("read")).expect("parses");
    assert_eq!(reread.data_version.counter, 4);
}

#[test]
fn files_under_the_acl_directory_are_read_first_and_edited_in_place() {
    // As $ROCKETMQ_HOME/conf: plain_acl.yml and conf/acl/*.yml.
    let main = TempFile::new(FILE);
    let conf = main.0.parent().expect("a directory").to_path_buf();
    let dir = conf.join("acl");
    std::fs::create_dir_all(dir.join("team")).expect("acl dir");
    let a = dir.join("team").join("a.yml");
    std::fs::write(
        &a,
        "globalWhiteRemoteAddresses: [10.9.9.9]\n\
         accounts:\n\
         \x20 - accessKey: RocketMQ\n\
         \x20   secretKey: dirsecret1\n\
         \x20   defaultTopicPerm: PUB\n",
    )
    .expect("write a.yml");
    std::fs::write(dir.join("notes.txt"), "not an ACL file").expect("write");
    let acl = Acl::open(main.0.clone(), Some(dir.clone())).expect("opens");
    // The directory's RocketMQ wins over plain_acl.yml's.
    assert_eq!(
        acl.check(LOCAL, &signed(send("any"), "RocketMQ", "dirsecret1")),
        Ok(())
    );
    assert!(acl
        .check(LOCAL, &signed(send("topicB"), "RocketMQ", "12345678"))
        .is_err());
    // Both files' other entries count.
    assert_eq!(
        acl.check(LOCAL, &signed(send("x"), "rocketmq2", "87654321")),
        Ok(())
    );
    assert_eq!(
        acl.check("10.9.9.9".parse().expect("ip"), &send("x")),
        Ok(())
    );
    assert_eq!(acl.snapshot().versions.len(), 2);

    // A change to an account goes to its own file, a new account to plain_acl.yml.
    acl.update_account(&AccountUpdate {
        access_key: "RocketMQ".into(),
        secret_key: Some("dirsecret2".into()),
        default_topic_perm: Some("PUB".into()),
        ..Default::default()
    })
    .expect("updated");
    assert!(std::fs::read_to_string(&a)
        .expect("read")
        .contains("dirsecret2"));
    acl.update_account(&AccountUpdate {
        access_key: "brandnew1".into(),
        secret_key: Some("brandnew1".into()),
        ..Default::default()
    })
    .expect("created");
    assert!(std::fs::read_to_string(&main.0)
        .expect("read")
        .contains("brandnew1"));
    assert_eq!(acl.delete_account("RocketMQ"), Ok(true));
    // plain_acl.yml's RocketMQ is no longer shadowed.
    assert_eq!(
        acl.check(LOCAL, &signed(send("topicB"), "RocketMQ", "12345678")),
        Ok(())
    );
    assert!(acl
        .update_global_white(&["1.2.3.4".into()], Some(&conf.join("elsewhere.yml")))
        .is_err());
    acl.update_global_white(&["1.2.3.4".into()], Some(&a))
        .expect("a's whitelist");
    assert_eq!(
        acl.check("1.2.3.4".parse().expect("ip"), &send("x")),
        Ok(())
    );

    // A new file in the directory is picked up.
    std::fs::write(
        dir.join("b.yaml"),
        "accounts:\n  - accessKey: fromfileb\n    secretKey: fromfileb\n    defaultTopicPerm: PUB\n",
    )
    .expect("write b.yaml");
    acl.reload_if_changed();
    assert_eq!(
        acl.check(LOCAL, &signed(send("x"), "fromfileb", "fromfileb")),
        Ok(())
    );
}

/// HMAC-SHA1 from its definition (RFC 2104), over SHA-1 alone.
fn reference_hmac_sha1(key: &[u8], data: &[u8]) -> [u8; 20] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..20].copy_from_slice(&Sha1::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha1::new();
    inner.update(block.map(|b| b ^ 0x36));
    inner.update(data);
    let mut outer = Sha1::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// The reference signer: values sorted by key as Java's TreeMap sorts
/// (UTF-16 code units), `Signature` left out, then the body.
fn reference_sign(fields: &[(String, String)], body: &[u8], secret: &str) -> String {
    let mut sorted: Vec<&(String, String)> = fields.iter().collect();
    sorted.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
    let mut data = Vec::new();
    for (k, v) in sorted {
        if k != "Signature" {
            data.extend_from_slice(v.as_bytes());
        }
    }
    data.extend_from_slice(body);
    base64::engine::general_purpose::STANDARD.encode(reference_hmac_sha1(secret.as_bytes(), &data))
}

/// xorshift64*: enough randomness for a property test, reproducible by seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn text(&mut self) -> String {
        const CHARS: [char; 12] = [
            'a', 'Z', '0', '|', '%', ' ', 'é', '中', '\u{FF01}', '😀', '=', '.',
        ];
        (0..self.below(12))
            .map(|_| CHARS[self.below(CHARS.len() as u64) as usize])
            .collect()
    }
}

#[test]
fn signatures_from_a_reference_signer_verify_and_any_flipped_byte_fails() {
    let secret = "s3cret-key";
    let (acl, _f) =
        acl("accounts:\n  - accessKey: fuzzuser\n    secretKey: s3cret-key\n    admin: true\n");
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for round in 0..400 {
        // A code with no resources to check: only the signature decides.
        let mut req = RemotingCommand::request(GET_BROKER_RUNTIME_INFO);
        let mut fields = vec![("AccessKey".to_owned(), "fuzzuser".to_owned())];
        for _ in 0..rng.below(6) {
            let k = rng.text();
            if !k.is_empty() && k != "AccessKey" && k != "Signature" && k != "_UNIQUE_KEY_QUERY" {
                fields.retain(|(old, _)| *old != k);
                fields.push((k, rng.text()));
            }
        }
        req.body = (0..rng.below(64)).map(|_| rng.next() as u8).collect();
        let signature = reference_sign(&fields, &req.body, secret);
        for (k, v) in &fields {
            req.put(k, v);
        }
        req.put("Signature", &signature);
        assert_eq!(acl.check(LOCAL, &req), Ok(()), "round {round}: {fields:?}");

        // Flip one bit of one byte of the body, a value, or the signature.
        let mut bad = req.clone();
        let values: Vec<String> = fields
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, _)| k.clone())
            .collect();
        match rng.below(3) {
            0 if !bad.body.is_empty() => {
                let at = rng.below(bad.body.len() as u64) as usize;
                bad.body[at] ^= 1 << rng.below(8);
            }
            1 if !values.is_empty() => {
                let k = &values[rng.below(values.len() as u64) as usize];
                let mut bytes = bad
                    .ext_fields
                    .get(k)
                    .expect("a field of the request")
                    .as_bytes()
                    .to_vec();
                let at = rng.below(bytes.len() as u64) as usize;
                bytes[at] ^= 1 << rng.below(8);
                let Ok(text) = String::from_utf8(bytes) else {
                    // Not a string any more: cannot be on the wire as one.
                    continue;
                };
                bad.put(k, text);
            }
            _ => {
                let mut bytes = signature.clone().into_bytes();
                let at = rng.below(bytes.len() as u64) as usize;
                bytes[at] ^= 1 << rng.below(7);
                bad.put("Signature", String::from_utf8_lossy(&bytes));
            }
        }
        assert!(
            acl.check(LOCAL, &bad).is_err(),
            "round {round}: a flipped byte verified"
        );
    }
}

#[test]
fn admin_only_checks_need_an_admin_signature_or_a_whitelist() {
    let (acl, _f) = acl(FILE);
    let register = || {
        let mut req = RemotingCommand::request(REGISTER_BROKER);
        req.put("brokerName", "b");
        req
    };
    assert_eq!(
        acl.check_admin(LOCAL, &signed(register(), "rocketmq2", "87654321")),
        Ok(())
    );
    assert_eq!(
        acl.check_admin(LOCAL, &signed(register(), "RocketMQ", "12345678")),
        Err("Need admin permission for request code=103, but accessKey=RocketMQ is not".into())
    );
    assert_eq!(
        acl.check_admin(LOCAL, &register()),
        Err("No accessKey is configured".into())
    );
    assert_eq!(
        acl.check_admin("10.10.103.1".parse().expect("ip"), &register()),
        Ok(())
    );
}
