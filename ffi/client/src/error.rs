//! The client's error type.

use thiserror::Error;

use super::connection::RemotingError;

/// Everything a client call can fail with.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The request got no response (connect failure, timeout, closed connection).
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
    #[error("no NameServer reachable (tried {0})")]
    NoNameServer(String),
    /// The broker named in a route has no known address.
    #[error("broker {0} has no address in the route")]
    NoBrokerAddress(String),
    /// A caller's argument is not acceptable.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A response body or header could not be decoded.
    #[error("cannot decode {what}: {why}")]
    Decode {
        /// What was being decoded.
        what: &'static str,
        /// Why it failed.
        why: String,
    },
    /// The client has been shut down.
    #[error("client is shut down")]
    Closed,
}

impl ClientError {
    /// A decode error.
    pub fn decode(what: &'static str, why: impl std::fmt::Display) -> Self {
        ClientError::Decode {
            what,
            why: why.to_string(),
        }
    }

    /// The server's response code, when the server answered.
    pub fn response_code(&self) -> Option<i32> {
        match self {
            ClientError::Broker { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// The client's result type.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;
