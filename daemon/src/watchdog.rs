//! The systemd watchdog ping (`WatchdogSec=`), earned rather than timed: every
//! half interval a task on the daemon's own executor asks each of the
//! daemon's servers a cheap question over loopback TCP, and pings only when
//! every one answered. A wedged executor, a dead accept loop or a request
//! path that no longer answers all stop the pings, and systemd restarts the
//! service; a bare timer thread would keep pinging through all three.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use mq_protocol::codes::{request as req, response as resp};
use mq_protocol::frame::RemotingCommand;

use crate::notify::Notifier;
use crate::peer::PeerConnection;
use crate::shutdown::Shutdown;

/// One server the watchdog asks, and what it asks it.
#[derive(Debug, Clone, Copy)]
pub struct Probe {
    /// The address the server listens on (an unspecified address is asked
    /// on loopback).
    pub addr: SocketAddr,
    /// A request code it answers cheaply with SUCCESS.
    pub code: i32,
}

impl Probe {
    /// A NameServer, asked GET_NAMESRV_CONFIG.
    pub fn namesrv(addr: SocketAddr) -> Probe {
        Probe {
            addr,
            code: req::GET_NAMESRV_CONFIG,
        }
    }

    /// A broker's main port, asked GET_BROKER_CONFIG.
    pub fn broker(addr: SocketAddr) -> Probe {
        Probe {
            addr,
            code: req::GET_BROKER_CONFIG,
        }
    }
}

/// Pings systemd's watchdog at half of `interval` for as long as every probe
/// is answered, until shutdown. Runs on the daemon's executor on purpose.
pub async fn run(
    notifier: Arc<Notifier>,
    interval: Duration,
    probes: Vec<Probe>,
    shutdown: Shutdown,
) {
    let period = interval / 2;
    // A probe must answer well within the period, or the ping comes too late.
    let timeout = period / 2;
    let peers: Vec<(Probe, PeerConnection)> = probes
        .into_iter()
        .map(|p| {
            (
                p,
                PeerConnection::new(reachable(p.addr).to_string(), timeout),
            )
        })
        .collect();
    log::info!(
        "systemd watchdog {interval:?}: asking {} server(s) every {period:?}",
        peers.len()
    );
    loop {
        let mut all_answered = true;
        for (probe, peer) in &peers {
            match peer
                .invoke(RemotingCommand::request(probe.code), timeout)
                .await
            {
                Ok(answer) if answer.code == resp::SUCCESS => {}
                Ok(answer) => {
                    all_answered = false;
                    log::warn!(
                        "watchdog: {} answered request {} with code {}; not pinging systemd",
                        probe.addr,
                        probe.code,
                        answer.code
                    );
                }
                Err(e) => {
                    all_answered = false;
                    log::warn!("watchdog: {e}; not pinging systemd");
                }
            }
        }
        if all_answered {
            notifier.notify_or_log("WATCHDOG=1");
        }
        if shutdown.sleep(period).await {
            return;
        }
    }
}

/// Where to reach a server listening on `addr` from this host.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), addr.port())
        }
        _ => addr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr as UnixAddr, UnixDatagram};

    /// Runs the watchdog (a 400 ms interval: a round every 200 ms) against
    /// `probe` for a second; the pings systemd would have received.
    fn pings_for(probe: Probe, ex: &Arc<async_executor::Executor<'static>>, tag: &str) -> usize {
        let name = format!("mq-watchdog-test-{}-{tag}", std::process::id());
        let systemd =
            UnixDatagram::bind_addr(&UnixAddr::from_abstract_name(name.as_bytes()).unwrap())
                .unwrap();
        systemd.set_nonblocking(true).unwrap();
        let notifier = Arc::new(Notifier::new(format!("@{name}").as_bytes(), None).unwrap());
        let (shutdown, mut trigger) = Shutdown::new();
        let task = ex.spawn(run(
            notifier,
            Duration::from_millis(400),
            vec![probe],
            shutdown,
        ));
        std::thread::sleep(Duration::from_secs(1));
        trigger.trigger();
        async_io::block_on(ex.run(task));
        let mut buf = [0u8; 64];
        let mut pings = 0;
        while let Ok(n) = systemd.recv(&mut buf) {
            pings += usize::from(&buf[..n] == b"WATCHDOG=1");
        }
        pings
    }

    #[test]
    fn pings_only_while_the_server_answers() {
        let ex = Arc::new(async_executor::Executor::new());
        let (stop, stopped) = async_channel::bounded::<()>(1);
        let runner = {
            let ex = ex.clone();
            std::thread::spawn(move || async_io::block_on(ex.run(stopped.recv())))
        };
        let (shutdown, mut trigger) = Shutdown::new();
        let answering = async_io::block_on(crate::namesrv::start(
            ex.clone(),
            "127.0.0.1:0".parse().unwrap(),
            shutdown,
        ))
        .unwrap();
        assert!(pings_for(Probe::namesrv(answering), &ex, "answers") >= 3);

        // A listener the kernel accepts connections for, whose server never
        // answers: a wedged daemon.
        let wedged = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = wedged.local_addr().unwrap();
        assert_eq!(pings_for(Probe::namesrv(addr), &ex, "wedged"), 0);
        // And one nobody listens on any more.
        drop(wedged);
        assert_eq!(pings_for(Probe::namesrv(addr), &ex, "gone"), 0);

        trigger.trigger();
        drop(stop);
        let _ = runner.join().unwrap();
    }

    #[test]
    fn unspecified_addresses_are_asked_on_loopback() {
        assert_eq!(
            reachable("0.0.0.0:9876".parse().unwrap()),
            "127.0.0.1:9876".parse().unwrap()
        );
        assert_eq!(
            reachable("[::]:9876".parse().unwrap()),
            "[::1]:9876".parse().unwrap()
        );
        assert_eq!(
            reachable("10.0.0.5:10911".parse().unwrap()),
            "10.0.0.5:10911".parse().unwrap()
        );
    }
}
