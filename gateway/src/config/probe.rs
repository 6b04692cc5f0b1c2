//! What `gateway healthcheck` probes: the server's own listen address, over loopback when it
//! listens on a wildcard. Running the probe is `healthcheck.rs`'s.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// One health probe of a local server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub addr: SocketAddr,
    pub timeout: Duration,
}

impl Probe {
    /// The probe of a server configured to listen on `listen`. A wildcard address (`0.0.0.0`,
    /// `[::]`) is reached over loopback of the same family: the probe runs in the server's own
    /// container, and loopback is the one address that is always there.
    pub fn for_listen_addr(listen: SocketAddr, timeout: Duration) -> Self {
        let mut addr = listen;
        if addr.ip().is_unspecified() {
            addr.set_ip(if addr.is_ipv4() { Ipv4Addr::LOCALHOST.into() } else { Ipv6Addr::LOCALHOST.into() });
        }
        Self { addr, timeout }
    }
}
