//! Free loopback ports. A port found free may be taken by another process
//! before the server binds it; the servers' starters fail or retry then.

use std::net::TcpListener;

/// A free loopback port (for a NameServer).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// A broker listen port P with P - 2 (the VIP port) and P + 1 (HA) free as
/// well.
pub fn free_broker_port() -> u16 {
    for _ in 0..200 {
        let main = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = main.local_addr().expect("local address").port();
        if !(1030..u16::MAX).contains(&port) {
            continue;
        }
        let vip = TcpListener::bind(("127.0.0.1", port - 2));
        let ha = TcpListener::bind(("127.0.0.1", port + 1));
        if vip.is_ok() && ha.is_ok() {
            return port;
        }
    }
    panic!("no free loopback port P with P-2 and P+1 free");
}
