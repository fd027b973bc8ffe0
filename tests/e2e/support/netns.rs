//! A network namespace of a test's own, joined to this one by a veth pair
//! (`ip netns`, `ip link`; root needed), removed on drop. Cutting the pair
//! (both ends down) is a network partition: packets go nowhere, connections
//! stay open until a side gives up on them.

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// A namespace and the veth pair into it.
pub struct VethNetns {
    /// The namespace (`ip netns exec NAME ...`).
    pub name: String,
    /// This namespace's end of the pair.
    host_if: String,
    /// The other end, inside the namespace.
    ns_if: String,
    /// The address of this end.
    pub host_ip: Ipv4Addr,
    /// The address of the end inside the namespace.
    pub ns_ip: Ipv4Addr,
}

/// Runs `ip ARGS` (in namespace `netns` if given); panics with its output
/// when it fails.
fn ip(netns: Option<&str>, args: &[&str]) {
    let mut cmd = Command::new("ip");
    if let Some(ns) = netns {
        cmd.args(["netns", "exec", ns, "ip"]);
    }
    let out = cmd
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run ip (iproute2 is needed): {e}"));
    assert!(
        out.status.success(),
        "ip {} failed (network namespaces need root): {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl VethNetns {
    /// Creates the namespace and the pair, addresses them in a /24 of
    /// 10.201.0.0/16 of their own, and brings them up.
    pub fn create() -> VethNetns {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let n = std::process::id() % 10_000 * 10 + SEQ.fetch_add(1, Ordering::Relaxed) % 10;
        let net = VethNetns {
            name: format!("mqha{n}"),
            host_if: format!("mq{n}h"),
            ns_if: format!("mq{n}n"),
            host_ip: Ipv4Addr::new(10, 201, (n % 250 + 1) as u8, 1),
            ns_ip: Ipv4Addr::new(10, 201, (n % 250 + 1) as u8, 2),
        };
        ip(None, &["netns", "add", &net.name]);
        ip(
            None,
            &[
                "link",
                "add",
                &net.host_if,
                "type",
                "veth",
                "peer",
                "name",
                &net.ns_if,
            ],
        );
        ip(None, &["link", "set", &net.ns_if, "netns", &net.name]);
        ip(
            None,
            &[
                "addr",
                "add",
                &format!("{}/24", net.host_ip),
                "dev",
                &net.host_if,
            ],
        );
        let ns = Some(net.name.as_str());
        ip(
            ns,
            &[
                "addr",
                "add",
                &format!("{}/24", net.ns_ip),
                "dev",
                &net.ns_if,
            ],
        );
        ip(ns, &["link", "set", "lo", "up"]);
        net.heal();
        net
    }

    /// Cuts the pair: both ends down.
    pub fn cut(&self) {
        ip(None, &["link", "set", &self.host_if, "down"]);
        ip(Some(&self.name), &["link", "set", &self.ns_if, "down"]);
        eprintln!("[e2e] cut the link to network namespace {}", self.name);
    }

    /// Restores the pair: both ends up.
    pub fn heal(&self) {
        ip(None, &["link", "set", &self.host_if, "up"]);
        ip(Some(&self.name), &["link", "set", &self.ns_if, "up"]);
    }
}

impl Drop for VethNetns {
    fn drop(&mut self) {
        // Deleting the namespace deletes the pair; best effort either way.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .stderr(std::process::Stdio::null())
            .status();
    }
}
