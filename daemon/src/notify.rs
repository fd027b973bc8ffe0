//! systemd's readiness protocol (`sd_notify(3)`), spoken without libsystemd:
//! under `Type=notify` systemd passes the path of a datagram socket in
//! `NOTIFY_SOCKET`, and the service sends it newline-separated `KEY=VALUE`
//! states: `READY=1` once it serves, `STOPPING=1` when it begins to stop,
//! `WATCHDOG=1` at least every `WATCHDOG_USEC` microseconds when the unit sets
//! `WatchdogSec=`. A path starting with `@` names a socket in Linux's abstract
//! namespace. Outside systemd `NOTIFY_SOCKET` is unset and nothing is sent.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// Where the service manager listens, read once from the environment.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    target: SocketAddr,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// The notifier `NOTIFY_SOCKET` asks for; `Ok(None)` when the variable is
    /// unset or empty (not started by systemd), an error when it names no
    /// usable socket address.
    pub fn from_env() -> io::Result<Option<Notifier>> {
        let Some(path) = std::env::var_os("NOTIFY_SOCKET").filter(|p| !p.is_empty()) else {
            return Ok(None);
        };
        let watchdog = watchdog_interval(
            std::env::var("WATCHDOG_USEC").ok().as_deref(),
            std::env::var("WATCHDOG_PID").ok().as_deref(),
            std::process::id(),
        );
        Notifier::new(path.as_encoded_bytes(), watchdog).map(Some)
    }

    /// A notifier sending to `socket` (a path, or `@name` in the abstract
    /// namespace), with the watchdog timeout `watchdog`.
    pub fn new(socket: &[u8], watchdog: Option<Duration>) -> io::Result<Notifier> {
        Ok(Notifier {
            socket: UnixDatagram::unbound()?,
            target: socket_addr(socket)?,
            watchdog,
        })
    }

    /// Sends one state message, such as `READY=1`.
    pub fn notify(&self, state: &str) -> io::Result<()> {
        self.socket
            .send_to_addr(state.as_bytes(), &self.target)
            .map(drop)
    }

    /// Sends a state and logs, rather than fails, when it cannot: the service
    /// manager being gone is no reason to stop serving.
    pub fn notify_or_log(&self, state: &str) {
        if let Err(e) = self.notify(state) {
            log::warn!("cannot tell systemd {state:?}: {e}");
        }
    }

    /// The watchdog timeout systemd set for this process (`WatchdogSec=`), if any.
    pub fn watchdog(&self) -> Option<Duration> {
        self.watchdog
    }
}

/// `NOTIFY_SOCKET`'s value as a socket address: a filesystem path, or after
/// `@` a name in the abstract namespace.
fn socket_addr(path: &[u8]) -> io::Result<SocketAddr> {
    match path.strip_prefix(b"@") {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name)
        }
        None if path.starts_with(b"/") => {
            use std::os::unix::ffi::OsStrExt;
            SocketAddr::from_pathname(std::ffi::OsStr::from_bytes(path))
        }
        None => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "NOTIFY_SOCKET {:?} is neither an absolute path nor @abstract",
                String::from_utf8_lossy(path)
            ),
        )),
    }
}

/// The watchdog timeout, when `WATCHDOG_USEC` is a positive number and
/// `WATCHDOG_PID`, if set, names this process (a forked child must not ping
/// for its parent).
fn watchdog_interval(usec: Option<&str>, pid: Option<&str>, own_pid: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|&u| u > 0)?;
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok() != Some(own_pid) {
            return None;
        }
    }
    Some(Duration::from_micros(usec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_needs_a_positive_interval_for_this_process() {
        assert_eq!(
            watchdog_interval(Some("3000000"), None, 7),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            watchdog_interval(Some("3000000"), Some("7"), 7),
            Some(Duration::from_secs(3))
        );
        assert_eq!(watchdog_interval(Some("3000000"), Some("8"), 7), None);
        assert_eq!(watchdog_interval(Some("0"), None, 7), None);
        assert_eq!(watchdog_interval(Some("soon"), None, 7), None);
        assert_eq!(watchdog_interval(None, Some("7"), 7), None);
    }

    #[test]
    fn paths_and_abstract_names() {
        assert!(socket_addr(b"/run/systemd/notify").is_ok());
        assert!(socket_addr(b"@mq-test").is_ok());
        assert!(socket_addr(b"relative/path").is_err());
    }

    #[test]
    fn sends_to_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("mq-notify-test-{}", std::process::id());
        let listener =
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
                .unwrap();
        let notifier = Notifier::new(format!("@{name}").as_bytes(), None).unwrap();
        notifier.notify("READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
    }
}
