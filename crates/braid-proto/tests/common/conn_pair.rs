//! The one in-process pair harness of braid-proto's integration tests. Include it from a
//! test crate with `#[path = "common/conn_pair.rs"] mod conn_pair;`.
//!
//! - [`Pair`] (`pair.rs`): a client and a server `MptcpConnection` exchanging real packets
//!   (emitted and parsed with the wire codec, so every option must fit and round-trip) over
//!   one or more simulated paths with delay, a bottleneck rate, seeded loss and reordering,
//!   [`Faults`] on the whole wire and per [`Path`]; [`run`] and [`Pair::transfer`] move
//!   byte-exact streams both ways.
//! - [`EpNet`] (`ep_net.rs`): the same one level up, two whole `Endpoint`s over one wire,
//!   each direction a [`Link`] (`link.rs`: rate, delay, a tail-drop queue, periodic, random
//!   and outage loss, jitter, duplication); [`App`] is one side's application.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr};

use braid_proto::tcp::TcbParams;

#[path = "ep_net.rs"]
mod ep_net;
#[path = "link.rs"]
mod link;
#[path = "pair.rs"]
mod pair;

// Not every test uses every part.
#[allow(unused_imports)]
pub use ep_net::*;
#[allow(unused_imports)]
pub use link::*;
#[allow(unused_imports)]
pub use pair::*;

pub const CLIENT_KEY: u64 = 0xa460_6019_1787_3ac7;
pub const SERVER_KEY: u64 = 0xb100_1876_e183_73d4;
pub const C_ADDR: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
pub const S_ADDR: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));

pub fn params(local: u16, remote: u16, iss: u32) -> TcbParams {
    TcbParams {
        local_port: local,
        remote_port: remote,
        iss,
        ts_offset: 0,
        mss: 1460,
        default_mss: 536,
    }
}

/// A deterministic xorshift generator.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.next() % 1000 < per_mille
    }
}

/// The byte at offset `i` of the [`Pair`] stream `seed` (1: up, 2: down).
pub fn stream_byte(seed: u64, i: usize) -> u8 {
    ((i as u64).wrapping_mul(2654435761).wrapping_add(seed) >> 7) as u8
}

/// The byte at offset `i` of an endpoint application's stream `seed`.
pub fn byte(seed: u64, i: u64) -> u8 {
    (i.wrapping_mul(2654435761).wrapping_add(seed) >> 11) as u8
}
