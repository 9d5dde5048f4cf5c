//! Helpers of the TCB tests in smoltcp's style: segments are built from a template, fed
//! with `send!` and the TCB's output checked with `recv!`.
#![allow(dead_code, unused_macros, unused_imports)]

use braid_proto::cc::CcAlgorithm;
use braid_proto::tcp::{Tcb, TcbParams, TcpConfig, TcpState, Timer};
use braid_proto::wire::{TcpFlags, TcpOptions, TcpRepr, Timestamps};
use braid_proto::{ConnectionError, Duration, Instant};

pub const LOCAL_PORT: u16 = 80;
pub const REMOTE_PORT: u16 = 49500;
pub const LOCAL_ISS: u32 = 0xffff_ff00; // wraps during the tests
pub const REMOTE_ISS: u32 = 5000;
pub const T0: Instant = Instant::ZERO;

pub fn params() -> TcbParams {
    TcbParams {
        local_port: LOCAL_PORT,
        remote_port: REMOTE_PORT,
        iss: LOCAL_ISS,
        ts_offset: 0,
        mss: 1460,
        default_mss: 536,
    }
}

/// A plain config: no timestamps, no window scaling, no delayed ACKs, small buffers.
pub fn plain() -> TcpConfig {
    TcpConfig {
        timestamps: false,
        window_scaling: false,
        delayed_ack: false,
        sack: false,
        send_buffer: 64 * 1024,
        recv_buffer: 16 * 1024,
        cc: CcAlgorithm::Reno,
        time_wait: Duration::from_secs(2),
        ..TcpConfig::default()
    }
}

pub fn l(off: u32) -> u32 {
    LOCAL_ISS.wrapping_add(off)
}
pub fn r(off: u32) -> u32 {
    REMOTE_ISS.wrapping_add(off)
}

/// The template of a segment from the peer.
pub fn seg(seq: u32, ack: u32, flags: u8) -> TcpRepr {
    TcpRepr {
        src_port: REMOTE_PORT,
        dst_port: LOCAL_PORT,
        seq,
        ack,
        flags: TcpFlags(flags),
        window: 65535,
        urgent: 0,
        options: TcpOptions::default(),
    }
}

pub const ACK: u8 = TcpFlags::ACK;
pub const SYN: u8 = TcpFlags::SYN;
pub const FIN: u8 = TcpFlags::FIN;
pub const RST: u8 = TcpFlags::RST;
pub const PSH: u8 = TcpFlags::PSH;

macro_rules! send {
    ($t:expr, $now:expr, $repr:expr) => {
        $t.handle_segment($now, &$repr, &[])
    };
    ($t:expr, $now:expr, $repr:expr, $payload:expr) => {
        $t.handle_segment($now, &$repr, $payload)
    };
}

macro_rules! recv {
    ($t:expr, $now:expr) => {{
        match $t.poll_segment($now) {
            Some(s) => {
                let p = $t.payload(&s).to_vec();
                Some((s.repr, p))
            }
            None => None,
        }
    }};
}

macro_rules! recv_nothing {
    ($t:expr, $now:expr) => {{
        let s = recv!($t, $now);
        assert!(s.is_none(), "unexpected segment {:?}", s);
    }};
}

pub fn drain(t: &mut Tcb, now: Instant) -> Vec<(TcpRepr, Vec<u8>)> {
    let mut v = Vec::new();
    while let Some(s) = recv!(t, now) {
        v.push(s);
        assert!(v.len() < 10_000);
    }
    v
}

/// An established connection from an active open with `cfg`; the peer offered `peer_opts`.
pub fn established_with(cfg: &TcpConfig, peer_opts: TcpOptions) -> Tcb {
    let mut t = Tcb::connect(cfg, params());
    let (syn, _) = recv!(t, T0).unwrap();
    assert_eq!(syn.flags.0, SYN);
    let mut sa = seg(r(0), l(1), SYN | ACK);
    sa.options = peer_opts;
    if let Some(ts) = sa.options.timestamps.as_mut() {
        ts.tsecr = syn.options.timestamps.map_or(0, |t| t.tsval);
    }
    send!(t, T0, sa);
    assert_eq!(t.state(), TcpState::Established);
    let (ack, _) = recv!(t, T0).unwrap();
    assert_eq!(ack.flags.0, ACK);
    t.take_events();
    t
}

pub fn established() -> Tcb {
    established_with(
        &plain(),
        TcpOptions {
            mss: Some(1000),
            ..TcpOptions::default()
        },
    )
}

pub fn established_with_rtt(cfg: &TcpConfig, rtt: Duration) -> Tcb {
    let mut t = Tcb::connect(cfg, params());
    recv!(t, T0).unwrap();
    let mut sa = seg(r(0), l(1), SYN | ACK);
    sa.options.mss = Some(1000);
    send!(t, T0 + rtt, sa);
    recv!(t, T0 + rtt).unwrap();
    t
}

/// A controller with a fixed window, standing in for a coupled (MPTCP) controller (or one
/// whose window stays below a segment); counts the bytes acknowledged to it.
#[derive(Debug)]
pub struct Fixed {
    pub cwnd: usize,
    pub acks: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl braid_proto::cc::CongestionControl for Fixed {
    fn on_ack(&mut self, _: Instant, acked: usize, _: Option<Duration>, _: usize) {
        self.acks
            .fetch_add(acked, std::sync::atomic::Ordering::Relaxed);
    }
    fn on_congestion_event(&mut self, _: Instant, _: usize) {}
    fn on_rto(&mut self, _: Instant, _: usize) {}
    fn exit_slow_start(&mut self, _: Instant) {}
    fn cwnd(&self) -> usize {
        self.cwnd
    }
    fn ssthresh(&self) -> usize {
        self.cwnd
    }
    fn set_mss(&mut self, _: usize) {}
    fn name(&self) -> &'static str {
        "fixed"
    }
}
