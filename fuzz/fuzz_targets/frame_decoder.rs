//! Remoting frames from an untrusted peer: `RemotingCommand::decode` (with the
//! length field) and `decode_frame_body` (without it) must never panic, and
//! whatever decodes must survive an encode/decode round trip unchanged.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mq_protocol::frame::{RemotingCommand, DEFAULT_MAX_FRAME};

/// Encodes `cmd` and decodes it again; the result must equal `cmd`.
fn round_trip(cmd: &RemotingCommand) {
    // Encoding may legitimately refuse (a code that does not fit the binary
    // header's i16, say); only what encodes has to come back.
    let Ok(frame) = cmd.encode() else {
        return;
    };
    let (again, used) = RemotingCommand::decode(&frame, usize::MAX)
        .expect("a frame we encoded decodes")
        .expect("a frame we encoded is complete");
    assert_eq!(used, frame.len(), "decode used the whole frame");
    let mut expected = cmd.clone();
    // The binary header writes an empty remark as length 0, read back as none
    // (as Java does), and keeps only the i16 range of `version`.
    if expected.serialize_type == mq_protocol::frame::SerializeType::RocketMq {
        if expected.remark.as_deref() == Some("") {
            expected.remark = None;
        }
        expected.version = i16::try_from(expected.version).unwrap_or(i16::MAX).into();
    }
    assert_eq!(again, expected, "round trip changed the command");
}

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((cmd, used))) = RemotingCommand::decode(data, DEFAULT_MAX_FRAME) {
        assert!(used <= data.len());
        round_trip(&cmd);
    }
    if let Ok(cmd) = RemotingCommand::decode_frame_body(data) {
        round_trip(&cmd);
    }
});
