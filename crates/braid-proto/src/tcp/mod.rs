//! The subflow TCP engine: RFC 9293 state machine, RFC 7323 window scaling and timestamps,
//! RFC 2018 SACK, RFC 6298 RTO, RACK-TLP loss detection (RFC 8985) with PRR (RFC 6937) for
//! SACK peers and RFC 6675 / NewReno (RFC 6582) for the others, RFC 5961 blind-attack
//! mitigations, and pluggable congestion control ([`crate::cc`]).
//!
//! [`Tcb`] is one transmission control block. It works on decoded segments
//! ([`crate::wire::TcpRepr`] plus a payload slice), never on raw bytes, and it performs no I/O:
//! - [`Tcb::handle_segment`] processes one received segment;
//! - [`Tcb::poll_segment`] returns the next segment to send (header + a range of the send
//!   buffer) and [`Tcb::payload`] gives the bytes of that range;
//! - [`Tcb::poll_timeout`] / [`Tcb::handle_timeout`] drive the timers (an enum-indexed array);
//! - [`Tcb::write`], [`Tcb::read`], [`Tcb::close`], [`Tcb::abort`] are the application side.
//!
//! Sending, with SACK: the forced first retransmission of a fast recovery, a due tail loss
//! probe, ranges RACK found lost (lowest first), new data (bounded by PRR's allowance in
//! recovery, else `cwnd - pipe`, the peer's window, sender SWS avoidance, optional Nagle), then
//! a zero-window probe or a pure ACK; without SACK, RFC 6675 / NewReno. Loss detection and
//! recovery are in `recovery.rs` (RACK-TLP, RFC 8985; PRR, RFC 6937; undo by timestamps, RFC
//! 3522, and DSACK, RFC 3708) and `rack.rs` (the transmission log). Beyond the core RFCs,
//! these keep throughput up on real paths, each modelled on Linux: **pacing** (2 × cwnd /
//! SRTT in slow start, 1.2 × after; [`TcpConfig::pacing`]) and **HyStart++** delay-based
//! slow-start exit (RFC 9406, without the conservative phase). Duplicate segments are
//! reported with D-SACK (RFC 2883) so that peers can undo their own spurious retransmissions.
//!
//! Sequence numbers are handled internally as 64-bit offsets from the initial sequence numbers
//! (the SYN is offset 0, the first data byte offset 1), so wrap-around is confined to the
//! conversions at the edge of the TCB.
//!
//! # Hooks for the MPTCP subflow layer
//!
//! Every MPTCP subflow is one `Tcb`. The connection layer uses these hooks:
//! - **Option space.** [`Tcb::set_reserved_option_len`] reserves bytes of TCP option space on
//!   every segment; the payload per segment shrinks accordingly (RFC 6691: the MSS excludes
//!   options), so the MPTCP options the caller adds always fit in the 40-byte option area
//!   (SACK blocks shrink to what is left). SYN and SYN-ACK carry at most 20 bytes of TCP
//!   options (MSS, SACK-permitted, window scale, timestamps), leaving 20 for MP_CAPABLE or
//!   MP_JOIN.
//! - **Outgoing options.** [`Tcb::poll_segment`] returns a [`Segment`] whose `repr` the caller
//!   may amend before emitting: push DSS / MP_CAPABLE / ADD_ADDR options into
//!   `segment.repr.options.mptcp`. The segment tells which subflow bytes it carries
//!   (`segment.data` is a range of subflow stream offsets, 0 = the first byte written with
//!   [`Tcb::write`]) and whether it is a retransmission, so a DSS mapping can be attached.
//! - **Incoming options.** [`Tcb::handle_segment`] borrows the caller's decoded `TcpRepr`; the
//!   caller inspects `repr.options.mptcp` before or after handing the segment to the TCB.
//!   [`Tcb::handle_segment`] returns a [`SegmentOutcome`] telling whether the segment was
//!   accepted and which stream offsets its payload landed at.
//! - **Sequence view.** [`Tcb::snd_una_offset`] and [`Tcb::snd_nxt_offset`] give the
//!   acknowledged and sent subflow stream offsets; [`Tcb::bytes_acked`] counts acknowledged
//!   application bytes (it only grows), so the connection layer can map subflow ranges back to
//!   data sequence numbers and free its own buffers; [`Tcb::recv_offset`] is the stream offset
//!   of the next byte [`Tcb::read`] returns.

mod buffer;
mod rack;
mod ranges;
mod rtt;
mod tcb;

pub use buffer::{RecvBuffer, SendBuffer, MAX_OOO_RANGES};
pub use ranges::RangeSet;
pub use rtt::RttEstimator;
pub use tcb::{InOrderSink, Segment, SegmentOutcome, Tcb, TcbEvents, TcbParams, Timer};

use crate::cc::CcAlgorithm;
use crate::time::Duration;
use crate::wire::TcpRepr;

//= rfc9293#3.10.7.1
//# CLOSED: an incoming RST is discarded; otherwise send <SEQ=SEG.ACK><CTL=RST> if ACK is on, else <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>
/// The RST that answers `seg` (with `len` payload bytes) where no connection takes it:
/// its sequence number, and its acknowledgment number when it carries one (RST,ACK).
/// `None` for a RST, which is not answered.
pub(crate) fn reset_answer(seg: &TcpRepr, len: usize) -> Option<(u32, Option<u32>)> {
    let f = seg.flags;
    if f.rst() {
        None
    } else if f.ack() {
        Some((seg.ack, None))
    } else {
        let seg_len = len as u32 + u32::from(f.syn()) + u32::from(f.fin());
        Some((0, Some(seg.seq.wrapping_add(seg_len))))
    }
}

/// TCP engine configuration, shared by every connection of an endpoint
/// (`EndpointConfig::tcp`).
#[derive(Debug, Clone)]
pub struct TcpConfig {
    /// MSS advertised on IPv4 (MTU 1500 minus 40). On IPv6 20 bytes less is advertised.
    pub mss: u16,
    /// Send buffer size in bytes (unacknowledged plus unsent application data).
    pub send_buffer: usize,
    /// Receive buffer size in bytes (bounds the window and the out-of-order reassembly).
    pub recv_buffer: usize,
    /// Offer window scaling (RFC 7323 §2).
    pub window_scaling: bool,
    /// Offer timestamps (RFC 7323 §3).
    pub timestamps: bool,
    /// Offer SACK (RFC 2018).
    pub sack: bool,
    /// Nagle's algorithm (RFC 9293 §3.7.4). Off by default.
    pub nagle: bool,
    /// Delay ACKs (ACK every second full segment or after `delayed_ack_timeout`).
    pub delayed_ack: bool,
    /// The delayed-ACK timer.
    pub delayed_ack_timeout: Duration,
    /// Lower bound of the RTO (Linux: 200 ms).
    pub min_rto: Duration,
    /// Upper bound of the RTO (RFC 6298 §2.5 allows ≥ 60 s).
    pub max_rto: Duration,
    /// RTO before any RTT sample (RFC 6298 §2.1: 1 s).
    pub initial_rto: Duration,
    /// Congestion control algorithm.
    pub cc: CcAlgorithm,
    /// How long TIME-WAIT lasts (2 × MSL).
    pub time_wait: Duration,
    /// Consecutive retransmission timeouts of data or FIN before the connection times out.
    pub max_retransmissions: u32,
    /// Consecutive SYN or SYN-ACK retransmissions before the connection times out.
    pub max_syn_retransmissions: u32,
    /// Initial congestion window in segments (RFC 6928: 10).
    pub initial_window: u32,
    /// Pace data segments at 2 × cwnd / SRTT in slow start and 1.2 × cwnd / SRTT after
    /// (like Linux), instead of sending bursts. On by default: it keeps slow start from
    /// overflowing small bottleneck queues.
    pub pacing: bool,
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            mss: 1460,
            send_buffer: 4 << 20,
            recv_buffer: 4 << 20,
            window_scaling: true,
            timestamps: true,
            sack: true,
            nagle: false,
            delayed_ack: true,
            delayed_ack_timeout: Duration::from_millis(40),
            min_rto: Duration::from_millis(200),
            max_rto: Duration::from_secs(120),
            initial_rto: Duration::from_secs(1),
            cc: CcAlgorithm::Cubic,
            time_wait: Duration::from_secs(60),
            max_retransmissions: 15,
            max_syn_retransmissions: 6,
            initial_window: 10,
            pacing: true,
        }
    }
}

/// The RFC 9293 §3.3.2 connection states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TcpState {
    Closed,
    Listen,
    SynSent,
    SynReceived,
    Established,
    FinWait1,
    FinWait2,
    CloseWait,
    Closing,
    LastAck,
    TimeWait,
}

impl TcpState {
    /// True once the three-way handshake completed (and until CLOSED).
    pub fn is_synchronized(self) -> bool {
        !matches!(
            self,
            TcpState::Closed | TcpState::Listen | TcpState::SynSent | TcpState::SynReceived
        )
    }
}

impl core::fmt::Display for TcpState {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            TcpState::Closed => "CLOSED",
            TcpState::Listen => "LISTEN",
            TcpState::SynSent => "SYN-SENT",
            TcpState::SynReceived => "SYN-RECEIVED",
            TcpState::Established => "ESTABLISHED",
            TcpState::FinWait1 => "FIN-WAIT-1",
            TcpState::FinWait2 => "FIN-WAIT-2",
            TcpState::CloseWait => "CLOSE-WAIT",
            TcpState::Closing => "CLOSING",
            TcpState::LastAck => "LAST-ACK",
            TcpState::TimeWait => "TIME-WAIT",
        })
    }
}
