//! An in-process bulk transfer between two whole `Endpoint`s on one thread, with no I/O:
//! each packet one endpoint emits is handed to the other at once, and the clock moves
//! one microsecond per round (a round: the client's application writes what it can, the
//! client sends everything it may, the server's application reads everything, the server
//! sends its ACKs). What it measures is the engine's own cost, both ends together: the
//! benchmark `bulk` times it, the test `bulk_pair` checks that it moves every byte.

use std::net::SocketAddr;

use braid_proto::time::{Duration, Instant};
use braid_proto::{
    ConnectOptions, ConnectionHandle, Endpoint, EndpointConfig, Error, Event, ListenOptions,
};

/// Room for one packet as the endpoints emit them (MTU 1500).
const PACKET: usize = 2048;
/// The application's write and read size.
const CHUNK: usize = 64 * 1024;

/// Two endpoints with one connection between them: the client `a` connected from
/// 10.0.0.1 (and, with two subflows, joined from 10.0.1.1) to the server `b` at 10.0.0.2.
pub struct BulkPair {
    pub now: Instant,
    pub a: Endpoint,
    pub b: Endpoint,
    pub client: ConnectionHandle,
    pub server: ConnectionHandle,
    packet: Vec<u8>,
    chunk: Vec<u8>,
    /// The server application's read buffer.
    read: Vec<u8>,
}

/// What one transfer did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Moved {
    /// Application bytes the server read.
    pub received: u64,
    /// Packets each way.
    pub packets_ab: u64,
    pub packets_ba: u64,
    /// Rounds (simulated microseconds).
    pub rounds: u64,
}

impl BulkPair {
    /// A connected pair, MPTCP with `subflows` subflows (1 or 2) established, or plain TCP
    /// when `subflows` is 0. `None` if the handshakes did not complete (a bug).
    pub fn connected(subflows: usize) -> Option<BulkPair> {
        BulkPair::with_config(subflows, EndpointConfig::default())
    }

    /// [`BulkPair::connected`] with both endpoints on `cfg`.
    pub fn with_config(subflows: usize, cfg: EndpointConfig) -> Option<BulkPair> {
        let server: SocketAddr = SocketAddr::from(([10, 0, 0, 2], 5201));
        let mut a = Endpoint::new(cfg.clone(), [1; 32]);
        let mut b = Endpoint::new(cfg, [2; 32]);
        let mptcp = subflows > 0;
        b.listen(server, ListenOptions { mptcp }).ok()?;
        let now = Instant::ZERO;
        let client = a
            .connect(
                now,
                SocketAddr::from(([10, 0, 0, 1], 0)),
                server,
                ConnectOptions { mptcp },
            )
            .ok()?;
        let mut pair = BulkPair {
            now,
            a,
            b,
            client,
            server: ConnectionHandle(usize::MAX),
            packet: vec![0; PACKET],
            chunk: vec![0; CHUNK],
            read: vec![0; CHUNK],
        };
        let mut accepted = None;
        let mut joined = subflows < 2;
        for _ in 0..10_000 {
            while let Some(ev) = pair.a.poll_event() {
                if ev == Event::Connected(client) && !joined {
                    let second = SocketAddr::from(([10, 0, 1, 1], 0));
                    pair.a
                        .add_subflow(pair.now, client, second, server, false)
                        .ok()?;
                    joined = true;
                }
            }
            while let Some(ev) = pair.b.poll_event() {
                if let Event::Accepted { conn, .. } = ev {
                    accepted = Some(conn);
                }
            }
            let ready = pair.a.mptcp_connection(client).map_or(!mptcp, |m| {
                (0..subflows).all(|i| m.is_subflow_established(i))
            });
            if let (Some(s), true, true) = (accepted, joined, ready) {
                pair.server = s;
                return Some(pair);
            }
            pair.round();
        }
        None
    }

    /// One round of packets both ways; the number moved.
    fn round(&mut self) -> (u64, u64) {
        let (mut ab, mut ba) = (0, 0);
        while let Some(t) = self.a.poll_transmit(self.now, &mut self.packet) {
            self.b.handle_packet(self.now, &self.packet[..t.len]);
            ab += 1;
        }
        while let Some(t) = self.b.poll_transmit(self.now, &mut self.packet) {
            self.a.handle_packet(self.now, &self.packet[..t.len]);
            ba += 1;
        }
        if ab + ba == 0 {
            // Nothing moved: on to the next timer.
            let next = [self.a.poll_timeout(), self.b.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            if let Some(t) = next {
                self.now = self.now.max(t);
            }
        }
        self.now += Duration::from_micros(1);
        self.a.handle_timeout(self.now);
        self.b.handle_timeout(self.now);
        (ab, ba)
    }

    /// The client sends `bytes` and closes; the server reads until EOF. `fill` writes the
    /// bytes at an offset into a buffer before they are written; `check` sees what the
    /// server reads, at its offset. `None` if the transfer stalled (a bug).
    pub fn transfer(
        &mut self,
        bytes: u64,
        fill: impl FnMut(u64, &mut [u8]),
        check: impl FnMut(u64, &[u8]),
    ) -> Option<Moved> {
        self.run(bytes, true, fill, check)
    }

    /// The client sends `bytes` more and keeps the connection open; returns once the server
    /// read them all (a connection in its steady state: buffers grown, windows open).
    pub fn send_more(&mut self, bytes: u64) -> Option<Moved> {
        self.run(bytes, false, |_, _| {}, |_, _| {})
    }

    fn run(
        &mut self,
        bytes: u64,
        close: bool,
        mut fill: impl FnMut(u64, &mut [u8]),
        mut check: impl FnMut(u64, &[u8]),
    ) -> Option<Moved> {
        let mut moved = Moved::default();
        let (mut sent, mut filled_to) = (0u64, 0u64);
        let mut pending = 0..0;
        let mut closed = false;
        let mut idle = 0;
        loop {
            while !closed {
                if pending.is_empty() {
                    if sent == bytes {
                        if close {
                            self.a.close(self.client).ok()?;
                        }
                        closed = true;
                        break;
                    }
                    let n = (bytes - sent).min(CHUNK as u64) as usize;
                    fill(filled_to, &mut self.chunk[..n]);
                    filled_to += n as u64;
                    pending = 0..n;
                }
                match self.a.write(self.client, &self.chunk[pending.clone()]) {
                    Ok(w) => {
                        pending.start += w;
                        sent += w as u64;
                    }
                    Err(Error::WouldBlock) => break,
                    Err(_) => return None,
                }
            }
            let mut eof = false;
            loop {
                match self.b.read(self.server, &mut self.read) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(n) => {
                        check(moved.received, &self.read[..n]);
                        moved.received += n as u64;
                    }
                    Err(Error::WouldBlock) => break,
                    Err(_) => return None,
                }
            }
            if eof || (!close && moved.received == bytes) {
                return Some(moved);
            }
            let (ab, ba) = self.round();
            moved.packets_ab += ab;
            moved.packets_ba += ba;
            moved.rounds += 1;
            idle = if ab + ba == 0 { idle + 1 } else { 0 };
            if idle > 1000 {
                return None;
            }
        }
    }
}
