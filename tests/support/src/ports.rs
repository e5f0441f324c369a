//! Free ports on loopback, for servers the tests start.
//!
//! The port is free when it is returned: the socket that found it is closed again, so another
//! process could take it in between, which on a test machine does not happen in practice.

use std::net::{Ipv4Addr, TcpListener, UdpSocket};

/// A free TCP port on 127.0.0.1.
///
/// # Panics
///
/// If the system has no free port on loopback.
pub fn free_tcp_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free TCP port on loopback")
}

/// A free UDP port on 127.0.0.1.
///
/// # Panics
///
/// If the system has no free port on loopback.
pub fn free_udp_port() -> u16 {
    UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free UDP port on loopback")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ports_can_be_bound() {
        let tcp = free_tcp_port();
        TcpListener::bind((Ipv4Addr::LOCALHOST, tcp)).expect("the TCP port is free");
        let udp = free_udp_port();
        UdpSocket::bind((Ipv4Addr::LOCALHOST, udp)).expect("the UDP port is free");
    }
}
