//! Raw frames on a plain TCP connection, for peers that misbehave: frames
//! built by hand, read with a deadline, and checks that a connection was
//! closed or still serves.

use std::time::Duration;

use async_net::TcpStream;
use futures_lite::io::{AsyncReadExt, AsyncWriteExt};

use mq_protocol::codes::{request as req, response as resp};
use mq_protocol::frame::{frame_length, RemotingCommand, SerializeType, DEFAULT_MAX_FRAME};

use super::remoting::{request, TIMEOUT};

/// A raw connection.
pub async fn raw(addr: &str) -> TcpStream {
    TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"))
}

/// A frame with a JSON header given as text.
pub fn json_frame(header: &str, body: &[u8]) -> Vec<u8> {
    typed_frame(0, header.as_bytes(), body)
}

/// A frame with serialize type `ty` and the given header bytes.
pub fn typed_frame(ty: u8, header: &[u8], body: &[u8]) -> Vec<u8> {
    let length = 4 + header.len() + body.len();
    let mut out = Vec::with_capacity(4 + length);
    out.extend_from_slice(&(length as u32).to_be_bytes());
    out.extend_from_slice(&((u32::from(ty) << 24) | header.len() as u32).to_be_bytes());
    out.extend_from_slice(header);
    out.extend_from_slice(body);
    out
}

/// Writes `cmd` (with its own opaque) to a raw connection.
pub async fn write_cmd(stream: &mut TcpStream, cmd: &RemotingCommand) {
    let frame = cmd.encode().expect("encode");
    stream.write_all(&frame).await.expect("write a frame");
}

/// Reads one frame, or the I/O error that ended the stream; `None` if nothing
/// complete arrived within `limit`.
pub async fn read_within(
    stream: &mut TcpStream,
    limit: Duration,
) -> Option<std::io::Result<RemotingCommand>> {
    futures_lite::future::or(async { Some(read_frame(stream).await) }, async {
        async_io::Timer::after(limit).await;
        None
    })
    .await
}

async fn read_frame(stream: &mut TcpStream) -> std::io::Result<RemotingCommand> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await?;
    let length = frame_length(&len, DEFAULT_MAX_FRAME)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?
        .expect("four bytes");
    let mut frame = vec![0u8; length];
    stream.read_exact(&mut frame).await?;
    RemotingCommand::decode_frame_body(&frame)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))
}

/// Reads the next frame, which must arrive within [`TIMEOUT`].
pub async fn next_frame(stream: &mut TcpStream) -> RemotingCommand {
    match read_within(stream, TIMEOUT).await {
        Some(Ok(cmd)) => cmd,
        Some(Err(e)) => panic!("reading a response: {e}"),
        None => panic!("no response within {TIMEOUT:?}"),
    }
}

/// Whether the peer closed the connection within `limit` (EOF or reset).
pub async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut byte = [0u8; 1];
    let read = futures_lite::future::or(async { Some(stream.read(&mut byte).await) }, async {
        async_io::Timer::after(limit).await;
        None
    })
    .await;
    matches!(read, Some(Ok(0)) | Some(Err(_)))
}

/// Proves a raw connection still works: a GET_MAX_OFFSET with `opaque` is answered.
pub async fn still_serves(stream: &mut TcpStream, opaque: i32) {
    let mut probe = request(
        req::GET_MAX_OFFSET,
        SerializeType::Json,
        &[("topic", "TBW102"), ("queueId", "0")],
    );
    probe.opaque = opaque;
    write_cmd(stream, &probe).await;
    let answer = next_frame(stream).await;
    assert_eq!(
        (answer.opaque, answer.code),
        (opaque, resp::SUCCESS),
        "the connection must still serve requests: {:?}",
        answer.remark
    );
}
