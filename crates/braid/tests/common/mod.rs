//! What the library's in-process tests share: endpoints joined by datagram socket pairs,
//! one pair per path, no privileges needed.

use std::net::{IpAddr, SocketAddr};
use std::os::unix::net::UnixDatagram;

use braid::{Builder, Endpoint};

pub fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

pub fn sa(s: &str) -> SocketAddr {
    s.parse().expect("socket address")
}

/// A connected pair of non-blocking datagram sockets: a path's two ends.
pub fn dgram_pair() -> (UnixDatagram, UnixDatagram) {
    let (a, b) = UnixDatagram::pair().expect("socketpair");
    a.set_nonblocking(true).expect("nonblocking");
    b.set_nonblocking(true).expect("nonblocking");
    (a, b)
}

/// A client and a server endpoint over `paths` datagram pairs: path i is 10.i.0.2 (client)
/// to 10.i.0.1 (server); `client` and `server` add to their builders.
pub fn pair_with(
    paths: usize,
    client: impl FnOnce(Builder) -> Builder,
    server: impl FnOnce(Builder) -> Builder,
) -> (Endpoint, Endpoint) {
    let mut c = Endpoint::builder().seed([1; 32]);
    let mut s = Endpoint::builder().seed([2; 32]);
    for i in 0..paths {
        let (a, b) = dgram_pair();
        c = c.device(a, ip(&format!("10.{i}.0.2")));
        s = s.device(b, ip(&format!("10.{i}.0.1")));
    }
    (
        client(c).build().expect("client endpoint"),
        server(s).build().expect("server endpoint"),
    )
}
