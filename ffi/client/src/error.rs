//! The client's error type, and the stable kind a program tells errors apart by.
//!
//! [`ClientError`] carries what a human needs (topic, peer, response code and
//! remark) and keeps the typed cause as its [`source`](std::error::Error::source).
//! Its `Display` repeats the cause's text, so one line (a log line, `mqctl`'s
//! message, the C ABI's `mq_last_error`) tells the whole story; walk `source()`
//! to inspect the cause, not to print it again. [`ClientError::kind`] is what a
//! program matches on: an [`ErrorKind`] whose numbers never change.

use std::error::Error as StdError;

use mq_protocol::frame::RemotingCommand;
use thiserror::Error;

use crate::connection::RemotingError;

/// What kind of failure a [`ClientError`] is. The numbers are stable: a kind
/// keeps its number for good, and a retired number is never given to another
/// kind (the C ABI and the bindings hand them to programs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[repr(i32)]
pub enum ErrorKind {
    /// A caller's argument is not acceptable: an empty group or topic, an
    /// empty or oversized message, a batch of several topics, an offset
    /// outside its queue, a configuration value out of range.
    InvalidArgument = 1,
    /// The call is not allowed in the object's current state: `subscribe`
    /// after `assign` (or the reverse), `seek` on a queue not assigned.
    State = 2,
    /// A request got no response within its timeout, or a send ran out of
    /// its time budget before an attempt could be made.
    Timeout = 3,
    /// No connection could be made to a server (refused, unreachable, timed
    /// out, or refused at once while backing off after a recent failure).
    Connect = 4,
    /// The connection closed before the response came.
    ConnectionLost = 5,
    /// The server answered with an error code, which
    /// [`ClientError::response_code`] gives.
    BrokerRefused = 6,
    /// No NameServer knows the topic, or its route has no usable queue, or the
    /// broker a route names has no address.
    NoRoute = 7,
    /// No NameServer is configured, or none answered.
    NoNameServer = 8,
    /// A server's response (header, body, messages) or the local offsets file
    /// could not be decoded.
    Decode = 9,
    /// A local operation failed: the offsets file could not be read or
    /// written, or a library thread could not be started.
    Io = 10,
    /// The client instance, producer or consumer has been shut down.
    Closed = 11,
}

impl ErrorKind {
    /// The kind's stable number.
    pub fn code(self) -> i32 {
        self as i32
    }

    /// The kind's stable name, lowercase with underscores (`no_route`).
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::State => "state",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Connect => "connect",
            ErrorKind::ConnectionLost => "connection_lost",
            ErrorKind::BrokerRefused => "broker_refused",
            ErrorKind::NoRoute => "no_route",
            ErrorKind::NoNameServer => "no_name_server",
            ErrorKind::Decode => "decode",
            ErrorKind::Io => "io",
            ErrorKind::Closed => "closed",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The cause an error keeps: the failing layer's own error (downcast it to
/// inspect it), or a sentence where that layer has none.
pub type Cause = Box<dyn StdError + Send + Sync>;

/// Everything a client call can fail with.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The request got no response (connect failure, timeout, closed
    /// connection) or could not be encoded.
    #[error(transparent)]
    Remoting(#[from] RemotingError),
    /// The server answered with an error code.
    #[error("broker error {code}: {remark}")]
    Broker {
        /// The response code.
        code: i32,
        /// The server's remark.
        remark: String,
    },
    /// No NameServer knows the topic, or it has no usable queue.
    #[error("no route info of topic {0}")]
    NoRoute(String),
    /// No NameServer is configured, or none answered.
    #[error(
        "no NameServer reachable (tried {tried}){}",
        last.as_ref().map(|e| format!(": {e}")).unwrap_or_default()
    )]
    NoNameServer {
        /// The addresses tried (`;`-separated), or why none was.
        tried: String,
        /// The last NameServer's failure (a [`ClientError`]).
        #[source]
        last: Option<Cause>,
    },
    /// The broker named in a route has no known address.
    #[error("broker {0} has no address in the route")]
    NoBrokerAddress(String),
    /// A caller's argument is not acceptable.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A caller's message cannot be put in a batch (its properties or body
    /// are too long for the record).
    #[error("invalid message: {0}")]
    InvalidMessage(#[source] mq_protocol::message::EncodeError),
    /// The call is not allowed in the object's current state.
    #[error("not allowed now: {0}")]
    State(String),
    /// A response body or header, or the offsets file, could not be decoded.
    #[error("cannot decode {what}: {source}")]
    Decode {
        /// What was being decoded.
        what: &'static str,
        /// Why it failed.
        #[source]
        source: Cause,
    },
    /// A local operation failed (the offsets file, starting a thread).
    #[error("{what}: {source}")]
    Io {
        /// What was being done (`writing offsets file /x/offsets.json`).
        what: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// The client has been shut down.
    #[error("client is shut down")]
    Closed,
}

impl ClientError {
    /// A decode error: what was being decoded, and the codec's error (or a
    /// sentence saying what was wrong).
    pub fn decode(what: &'static str, source: impl Into<Cause>) -> Self {
        ClientError::Decode {
            what,
            source: source.into(),
        }
    }

    /// The error of a response whose code says the server refused: its code
    /// and remark.
    pub(crate) fn refused(response: RemotingCommand) -> Self {
        ClientError::Broker {
            code: response.code,
            remark: response.remark.unwrap_or_default(),
        }
    }

    /// The kind of failure, for programs to match on.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ClientError::Remoting(RemotingError::Connect { .. }) => ErrorKind::Connect,
            ClientError::Remoting(RemotingError::Timeout { .. }) => ErrorKind::Timeout,
            ClientError::Remoting(RemotingError::Closed(_)) => ErrorKind::ConnectionLost,
            // The request is the caller's: a header or body too large to frame.
            ClientError::Remoting(RemotingError::Encode(_)) => ErrorKind::InvalidArgument,
            ClientError::Broker { .. } => ErrorKind::BrokerRefused,
            ClientError::NoRoute(_) | ClientError::NoBrokerAddress(_) => ErrorKind::NoRoute,
            ClientError::NoNameServer { .. } => ErrorKind::NoNameServer,
            ClientError::InvalidArgument(_) | ClientError::InvalidMessage(_) => {
                ErrorKind::InvalidArgument
            }
            ClientError::State(_) => ErrorKind::State,
            ClientError::Decode { .. } => ErrorKind::Decode,
            ClientError::Io { .. } => ErrorKind::Io,
            ClientError::Closed => ErrorKind::Closed,
        }
    }

    /// The server's response code, when the server answered with an error.
    pub fn response_code(&self) -> Option<i32> {
        match self {
            ClientError::Broker { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// The client's result type.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_numbers_are_stable() {
        // Append new kinds; never renumber one (the C ABI hands these out).
        let table = [
            (ErrorKind::InvalidArgument, 1, "invalid_argument"),
            (ErrorKind::State, 2, "state"),
            (ErrorKind::Timeout, 3, "timeout"),
            (ErrorKind::Connect, 4, "connect"),
            (ErrorKind::ConnectionLost, 5, "connection_lost"),
            (ErrorKind::BrokerRefused, 6, "broker_refused"),
            (ErrorKind::NoRoute, 7, "no_route"),
            (ErrorKind::NoNameServer, 8, "no_name_server"),
            (ErrorKind::Decode, 9, "decode"),
            (ErrorKind::Io, 10, "io"),
            (ErrorKind::Closed, 11, "closed"),
        ];
        for (kind, code, name) in table {
            assert_eq!((kind.code(), kind.name()), (code, name));
        }
    }

    #[test]
    fn each_error_has_its_kind_and_keeps_its_cause() {
        let refused = ClientError::Broker {
            code: 17,
            remark: "no topic".into(),
        };
        assert_eq!(refused.kind(), ErrorKind::BrokerRefused);
        assert_eq!(refused.response_code(), Some(17));

        let lost = ClientError::from(RemotingError::Closed("b:1".into()));
        assert_eq!(lost.kind(), ErrorKind::ConnectionLost);
        assert_eq!(lost.response_code(), None);

        let none = ClientError::NoNameServer {
            tried: "a:1".into(),
            last: Some(Box::new(lost)),
        };
        assert_eq!(none.kind(), ErrorKind::NoNameServer);
        assert_eq!(
            none.to_string(),
            "no NameServer reachable (tried a:1): connection to b:1 closed"
        );
        let last = none.source().expect("the last NameServer's failure");
        assert_eq!(
            last.downcast_ref::<ClientError>().map(ClientError::kind),
            Some(ErrorKind::ConnectionLost)
        );

        let bad = ClientError::decode("route data", "not JSON");
        assert_eq!(bad.kind(), ErrorKind::Decode);
        assert_eq!(bad.to_string(), "cannot decode route data: not JSON");
        assert!(bad.source().is_some());

        assert_eq!(
            ClientError::InvalidArgument("empty".into()).kind(),
            ErrorKind::InvalidArgument
        );
        assert_eq!(ClientError::State("x".into()).kind(), ErrorKind::State);
        assert_eq!(ClientError::NoRoute("T".into()).kind(), ErrorKind::NoRoute);
        assert_eq!(ClientError::Closed.kind(), ErrorKind::Closed);
    }
}
