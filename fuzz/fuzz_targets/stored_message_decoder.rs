//! Stored messages come from disk (CommitLog records), from the wire (PULL,
//! QUERY and VIEW bodies, SEND_BATCH bodies) and from users (offset message
//! ids). None of these decoders may panic on any input.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mq_protocol::message::{
    decode_batch, decode_offset_msg_id, decode_record, decode_records, offset_msg_id, Record,
};

fuzz_target!(|data: &[u8]| {
    for verify_crc in [true, false] {
        if let Ok(Record::Message(_, len)) = decode_record(data, verify_crc) {
            assert!(len <= data.len(), "record longer than its input");
        }
        let _ = decode_records(data, verify_crc);
    }
    let _ = decode_batch(data);
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some((host, offset)) = decode_offset_msg_id(text) {
            // An id that decodes re-encodes to one naming the same host and offset
            // (not necessarily the same text: hex case, and a port field wider
            // than 16 bits keeps only its low bits).
            let again = offset_msg_id(&host, offset);
            assert_eq!(decode_offset_msg_id(&again), Some((host, offset)));
        }
    }
});
