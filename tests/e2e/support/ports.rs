//! Free loopback ports for the daemons a test starts.
//!
//! Two things used to hand the same port to two listeners. Asking the kernel
//! for port 0 and closing the probe gives the port back, so the next probe of
//! the same test could get it again (a standalone mqd once found its broker
//! port equal to its NameServer port). And a port from the kernel's ephemeral
//! range may be taken by any outgoing connection before mqd binds it. So
//! ports come from below the ephemeral range, which only explicit binds use,
//! and none is handed out twice in one test process.

use std::collections::HashSet;
use std::net::TcpListener;
use std::sync::Mutex;

/// Ports this process has handed out already.
static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// The lowest port considered: above the well-known and most registered
/// service ports.
const LOWEST: u16 = 12000;

/// The first port of the kernel's ephemeral range (32768 when unreadable).
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768)
}

/// The first port P such that every `P + offset` is free and not handed out
/// before; all of them are then marked handed out. The search starts at a
/// place chosen by the process id, so that test processes running side by
/// side start apart.
fn reserve(offsets: &[i32]) -> u16 {
    let high = ephemeral_low().max(LOWEST + 1000);
    let span = u32::from(high - LOWEST - 8);
    let mut handed = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let handed = handed.get_or_insert_with(HashSet::new);
    let start = std::process::id().wrapping_mul(7919) % span;
    for step in 0..span {
        let port = LOWEST + 4 + ((start + step) % span) as u16;
        let ports: Vec<u16> = offsets
            .iter()
            .map(|offset| (i32::from(port) + offset) as u16)
            .collect();
        if ports.iter().any(|p| handed.contains(p)) {
            continue;
        }
        if ports
            .iter()
            .all(|p| TcpListener::bind(("127.0.0.1", *p)).is_ok())
        {
            handed.extend(ports);
            return port;
        }
    }
    panic!("no free loopback ports between {LOWEST} and {high}");
}

/// A free loopback port (for a NameServer, a metrics endpoint).
pub fn free_port() -> u16 {
    reserve(&[0])
}

/// A broker listen port P with P - 2 (the VIP port) and P + 1 (HA) free as
/// well.
pub fn free_broker_port() -> u16 {
    reserve(&[0, -2, 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_port_is_handed_out_twice() {
        let mut seen = HashSet::new();
        for _ in 0..50 {
            let broker = free_broker_port();
            for port in [free_port(), broker, broker - 2, broker + 1] {
                assert!(seen.insert(port), "port {port} handed out twice");
            }
        }
    }
}
