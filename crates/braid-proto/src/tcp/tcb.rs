//! The transmission control block: one TCP connection (or one MPTCP subflow).

use core::ops::Range;
use std::collections::VecDeque;

use super::buffer::{RecvBuffer, SendBuffer};
use super::rack::{Rack, SentLog};
use super::ranges::RangeSet;
use super::rtt::RttEstimator;
use super::{TcpConfig, TcpState};
use crate::cc::CongestionControl;
use crate::error::ConnectionError;
use crate::time::{Duration, Instant};
use crate::wire::tcp::Timestamps;
use crate::wire::{TcpFlags, TcpOptions, TcpRepr};

/// The timers of a TCB, indexing a fixed array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// Retransmission of SYN, SYN-ACK, data or FIN (RFC 6298).
    Retransmit = 0,
    /// Zero-window probing (RFC 9293 §3.8.6.1).
    Persist = 1,
    /// Delayed acknowledgment (RFC 9293 §3.8.6.3).
    DelayedAck = 2,
    /// 2 × MSL in TIME-WAIT.
    TimeWait = 3,
    /// Pacing: the next data segment may leave at this instant.
    Pacing = 4,
    /// RACK's reordering window of the oldest candidate ends (RFC 8985 §6.3).
    Reorder = 5,
    /// Tail loss probe (RFC 8985 §7).
    Probe = 6,
}

const TIMER_COUNT: usize = 7;
const ALL_TIMERS: [Timer; TIMER_COUNT] = [
    Timer::Retransmit,
    Timer::Persist,
    Timer::DelayedAck,
    Timer::TimeWait,
    Timer::Pacing,
    Timer::Reorder,
    Timer::Probe,
];

//= rfc6675#2
//# DupThresh: the number of duplicate acknowledgments required to trigger a fast retransmission (3)
const DUP_THRESH: u64 = 3;
/// RFC 5961 §7: challenge ACKs are rate limited (per TCB here).
const CHALLENGE_ACK_LIMIT: u32 = 10;
/// TCP option space (RFC 9293 §3.1: data offset of 15 words).
const MAX_OPTION_SPACE: usize = 40;
/// Bytes of the timestamp option (braid's wire codec packs options without NOPs).
const TS_OPTION_LEN: usize = 10;
/// RFC 7323 §5.5: a TS.Recent idle for more than 24 days is invalid.
/// Most disjoint SACKed ranges kept on the scoreboard.
const MAX_SACK_RANGES: usize = 1024;
/// How far behind a late driver may let pacing catch up.
const PACING_CREDIT: Duration = Duration::from_millis(1);
const PAWS_IDLE: Duration = Duration::from_secs(24 * 24 * 3600);

/// One segment to send: the header, which application bytes it carries, and whether those
/// bytes were sent before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// The header. Callers may add MPTCP options (within the reserved option length).
    pub repr: TcpRepr,
    /// Stream offsets of the payload (0 = the first byte ever written); empty for none.
    pub data: Range<u64>,
    /// True when the payload (or SYN/FIN) is a retransmission.
    pub retransmission: bool,
    /// A zero-window probe: an ACK with an old sequence number, which the peer answers
    /// with an ACK but otherwise drops (options such as MPTCP signals on it are lost).
    pub probe: bool,
}

/// What [`Tcb::handle_segment`] did with a segment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SegmentOutcome {
    /// The segment passed the acceptability tests and was processed.
    pub accepted: bool,
    /// Stream offsets of the payload as received (after trimming to the window), possibly
    /// empty. Bytes are readable once contiguous.
    pub data: Range<u64>,
}

/// Things that happened since the last [`Tcb::take_events`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcbEvents {
    /// The connection reached ESTABLISHED.
    pub established: bool,
    /// New bytes are readable, or the peer's FIN arrived.
    pub readable: bool,
    /// Send buffer space became available after a write was refused.
    pub writable: bool,
    /// The connection reached CLOSED (or TIME-WAIT, after which nothing is delivered).
    pub closed: bool,
}

/// Addressing and per-connection constants supplied by the endpoint.
#[derive(Debug, Clone, Copy)]
pub struct TcbParams {
    pub local_port: u16,
    pub remote_port: u16,
    /// Initial send sequence number.
    pub iss: u32,
    /// Offset added to the millisecond clock for TSval (RFC 7323 §5.4 randomisation).
    pub ts_offset: u32,
    /// MSS advertised in our SYN (from the config and the address family).
    pub mss: u16,
    /// MSS assumed when the peer sends none (536 on IPv4, 1220 on IPv6).
    pub default_mss: u16,
}

/// A pending RST reply not tied to the connection's own sequence state.
#[derive(Debug, Clone, Copy)]
struct RstReply {
    seq: u32,
    ack: Option<u32>,
}

/// A transmission control block. See the [module docs](super).
#[derive(Debug)]
pub struct Tcb {
    cfg: TcpConfig,
    params: TcbParams,
    state: TcpState,
    error: Option<ConnectionError>,
    events: TcbEvents,
    timers: [Option<Instant>; TIMER_COUNT],

    // --- send sequence space (offsets from ISS; SYN = 0, first data byte = 1) ---
    snd_una: u64,
    snd_nxt: u64,
    snd_wnd: u64,
    max_snd_wnd: u64,
    snd_wl1: i64,
    snd_wl2: u64,
    snd_wscale: u8,
    snd_mss: usize,
    send: SendBuffer,
    fin_queued: bool,
    fin_sent: bool,
    syn_pending: bool,
    want_writable: bool,

    // --- receive sequence space (offsets from IRS) ---
    irs: u32,
    rcv_nxt: u64,
    rcv_adv: u64,
    rcv_wscale: u8,
    recv: RecvBuffer,
    /// The window to advertise instead of the buffer's own free space, in bytes (an MPTCP
    /// subflow's share of the connection-level window; see [`Tcb::set_shared_window`]).
    shared_wnd: Option<u64>,
    /// The most this TCB advertises of its own free space (see [`Tcb::set_window_clamp`]).
    window_clamp: Option<u64>,
    fin_recv: Option<u64>,
    fin_received: bool,
    rcv_mss: usize,
    rcv_unacked: usize,
    ack_now: bool,
    last_ack_sent: u64,
    recent_ooo: [Option<u64>; 4],
    /// Duplicate data to report in the next ACK (RFC 2883), as stream offsets.
    dsack: Option<(u64, u64)>,

    // --- options ---
    ts_enabled: bool,
    ts_recent: u32,
    ts_recent_age: Option<Instant>,
    sack_enabled: bool,
    reserved_opt: usize,

    /// Sequence offsets at which a segment must end (the MPTCP layer's mapping boundaries),
    /// ascending; those at or below SND.UNA are dropped lazily.
    boundaries: VecDeque<u64>,

    // --- timing and recovery ---
    rtt: RttEstimator,
    backoff: u32,
    retries: u32,
    persist_backoff: u32,
    /// Zero-window probes due since the peer last acknowledged anything.
    unanswered_probes: u32,
    probe_pending: bool,
    timed: Option<(u64, Instant)>,
    scoreboard: RangeSet,
    dupacks: u64,
    in_recovery: bool,
    rto_recovery: bool,
    recovery_point: u64,
    high_rxt: u64,
    fast_rexmit: bool,
    nosack_inflation: u64,
    /// RACK (SACK connections): when each outstanding range was last sent.
    sent_log: SentLog,
    rack: Rack,
    /// Bytes found lost (by RACK, or all outstanding after an RTO) and not sent again yet;
    /// disjoint from the SACK scoreboard.
    lost: RangeSet,
    /// Proportional rate reduction during a fast recovery (RFC 6937).
    prr: Prr,
    /// The tail loss probe in flight: SND.NXT when it left, and whether it was a
    /// retransmission (RFC 8985 §7.4).
    tlp: Option<(u64, bool)>,
    /// The probe timeout fired: the next segment is the probe.
    probe_due: bool,
    /// Probes sent since the path last delivered anything.
    probes: u32,
    /// F-RTO after the last timeout, while it decides.
    frto: Option<Frto>,
    /// The earliest never-resent transmission the ACK being processed delivered.
    first_original: Option<Instant>,
    /// Bytes retransmitted since the last congestion event that no DSACK has shown
    /// unnecessary yet; when DSACKs cover them all, the reduction is undone (RFC 3708).
    /// `None` when there is nothing to undo.
    undo_retrans: Option<u64>,
    /// SND.UNA when the last congestion episode began: DSACKs below it are older.
    undo_marker: u64,
    /// TSval of the first retransmission of the current recovery or RTO (for undo).
    undo_tsval: Option<u32>,
    /// An RTO's retransmission went out and no ACK has advanced SND.UNA since (Eifel
    /// detection of a spurious timeout, RFC 3522).
    rto_undo_pending: bool,
    /// Retransmissions in the current fast recovery.
    episode_rexmits: u32,
    /// Fast recoveries undone because they were spurious.
    spurious_recoveries: u64,
    /// Earliest departure of the next paced segment.
    pace_next: Option<Instant>,
    cc: Box<dyn CongestionControl>,

    // --- replies and rate limits ---
    rst_reply: Option<RstReply>,
    challenge_window: Option<Instant>,
    challenge_count: u32,

    // --- statistics ---
    bytes_sent: u64,
    bytes_acked: u64,
    bytes_received: u64,
    retransmits: u64,
    paws_drops: u64,
    challenge_acks: u64,
    timeouts: u64,
    recoveries: u64,
    hystart: HyStart,
}

#[path = "recovery.rs"]
mod recovery;
#[path = "shared_window.rs"]
mod shared_window;
use recovery::{Frto, Prr};

/// RFC 9406 (HyStart++) delay-increase detection, per round of one window.
#[derive(Debug, Clone, Copy)]
struct HyStart {
    /// The round ends when this sequence offset is acknowledged.
    round_end: u64,
    last_round_min: Option<Duration>,
    current_round_min: Option<Duration>,
    samples: u32,
    done: bool,
}

//= rfc9406#4.2
//# N_RTT_SAMPLE = 8, MIN_RTT_THRESH = 4 ms, MAX_RTT_THRESH = 16 ms, MIN_RTT_DIVISOR = 8
const HYSTART_SAMPLES: u32 = 8;
const HYSTART_MIN_THRESH: Duration = Duration::from_millis(4);
const HYSTART_MAX_THRESH: Duration = Duration::from_millis(16);

fn window_shift(buffer: usize) -> u8 {
    let mut s = 0u8;
    while s < 14 && (buffer >> s) > 65535 {
        s += 1;
    }
    s
}

impl Tcb {
    fn new(cfg: &TcpConfig, params: TcbParams, state: TcpState) -> Tcb {
        let mss = usize::from(params.mss.max(64));
        let iw = (cfg.initial_window.max(1) as usize) * mss;
        Tcb {
            cfg: cfg.clone(),
            params,
            state,
            error: None,
            events: TcbEvents::default(),
            timers: [None; TIMER_COUNT],
            snd_una: 0,
            snd_nxt: 0,
            snd_wnd: 0,
            max_snd_wnd: 0,
            snd_wl1: 0,
            snd_wl2: 0,
            snd_wscale: 0,
            snd_mss: usize::from(params.default_mss.max(64)),
            send: SendBuffer::new(cfg.send_buffer),
            fin_queued: false,
            fin_sent: false,
            syn_pending: true,
            want_writable: false,
            irs: 0,
            rcv_nxt: 0,
            rcv_adv: 0,
            rcv_wscale: if cfg.window_scaling {
                window_shift(cfg.recv_buffer)
            } else {
                0
            },
            recv: RecvBuffer::new(cfg.recv_buffer),
            shared_wnd: None,
            window_clamp: None,
            fin_recv: None,
            fin_received: false,
            rcv_mss: 536,
            rcv_unacked: 0,
            ack_now: false,
            last_ack_sent: 0,
            recent_ooo: [None; 4],
            dsack: None,
            ts_enabled: false,
            ts_recent: 0,
            ts_recent_age: None,
            sack_enabled: false,
            reserved_opt: 0,

            boundaries: VecDeque::new(),
            rtt: RttEstimator::new(cfg.initial_rto, cfg.min_rto, cfg.max_rto),
            backoff: 0,
            retries: 0,
            persist_backoff: 0,
            unanswered_probes: 0,
            probe_pending: false,
            timed: None,
            scoreboard: RangeSet::new(),
            dupacks: 0,
            in_recovery: false,
            rto_recovery: false,
            recovery_point: 0,
            high_rxt: 0,
            fast_rexmit: false,
            nosack_inflation: 0,
            sent_log: SentLog::default(),
            rack: Rack::default(),
            lost: RangeSet::new(),
            prr: Prr::default(),
            tlp: None,
            probe_due: false,
            probes: 0,
            frto: None,
            first_original: None,
            undo_retrans: None,
            undo_marker: 0,
            rto_undo_pending: false,
            pace_next: None,
            undo_tsval: None,
            episode_rexmits: 0,
            spurious_recoveries: 0,
            cc: cfg.cc.build(mss, iw),
            rst_reply: None,
            challenge_window: None,
            challenge_count: 0,
            bytes_sent: 0,
            bytes_acked: 0,
            bytes_received: 0,
            retransmits: 0,
            paws_drops: 0,
            challenge_acks: 0,
            timeouts: 0,
            recoveries: 0,
            hystart: HyStart {
                round_end: 0,
                last_round_min: None,
                current_round_min: None,
                samples: 0,
                done: false,
            },
        }
    }

    /// An active open: the TCB starts in SYN-SENT and its first segment is the SYN.
    pub fn connect(cfg: &TcpConfig, params: TcbParams) -> Tcb {
        Tcb::new(cfg, params, TcpState::SynSent)
    }

    /// A passive open from a received SYN (the listener's job): the TCB starts in
    /// SYN-RECEIVED and its first segment is the SYN-ACK. Returns `None` if `syn` is not a
    /// plain SYN.
    pub fn accept(cfg: &TcpConfig, params: TcbParams, now: Instant, syn: &TcpRepr) -> Option<Tcb> {
        let f = syn.flags;
        if !f.syn() || f.ack() || f.rst() || f.fin() {
            return None;
        }
        let mut tcb = Tcb::new(cfg, params, TcpState::SynReceived);
        tcb.receive_syn(now, syn);
        Some(tcb)
    }

    // ------------------------------------------------------------------ getters

    pub fn state(&self) -> TcpState {
        self.state
    }
    /// Why the connection ended, if it ended abnormally.
    pub fn error(&self) -> Option<ConnectionError> {
        self.error
    }
    pub fn local_port(&self) -> u16 {
        self.params.local_port
    }
    pub fn remote_port(&self) -> u16 {
        self.params.remote_port
    }
    /// Smoothed RTT.
    pub fn rtt(&self) -> Option<Duration> {
        self.rtt.srtt()
    }
    /// The smallest RTT sample so far.
    pub fn min_rtt(&self) -> Option<Duration> {
        self.rtt.min_rtt()
    }
    /// The current retransmission timeout (with backoff).
    pub fn rto(&self) -> Duration {
        self.rtt.backed_off(self.backoff)
    }
    pub fn cwnd(&self) -> usize {
        self.cc.cwnd()
    }
    pub fn ssthresh(&self) -> usize {
        self.cc.ssthresh()
    }
    /// The MSS used for sending (before options).
    pub fn mss(&self) -> usize {
        self.snd_mss
    }
    /// Payload bytes of a full-sized segment (MSS minus timestamps and reserved options).
    pub fn effective_mss(&self) -> usize {
        let ts = if self.ts_enabled { TS_OPTION_LEN } else { 0 };
        //= rfc6691#2
        //# the MSS excludes TCP options: the sender subtracts the options it sends
        let opts = (ts + self.reserved_opt).div_ceil(4) * 4;
        self.snd_mss.saturating_sub(opts).max(1)
    }

    /// Payload bytes of the largest segment: MSS minus timestamps (an MPTCP subflow sends
    /// most segments without the room it reserves for a DSS mapping).
    fn full_mss(&self) -> usize {
        let ts = if self.ts_enabled { TS_OPTION_LEN } else { 0 };
        self.snd_mss.saturating_sub(ts.div_ceil(4) * 4).max(1)
    }

    /// How many SACK blocks fit after the timestamps and the reserved option space.
    fn sack_block_budget(&self) -> usize {
        let ts = if self.ts_enabled { TS_OPTION_LEN } else { 0 };
        let space = MAX_OPTION_SPACE.saturating_sub(self.reserved_opt + ts);
        //= rfc2018#3
        //# a SACK option with n blocks is 8*n+2 bytes long; at most 4 blocks fit the 40-byte option space
        if space < 10 {
            0
        } else {
            ((space - 2) / 8).min(4)
        }
    }
    /// Application bytes sent at least once.
    pub fn bytes_sent(&self) -> u64 {
        self.bytes_sent
    }
    /// Application bytes acknowledged by the peer (only grows).
    pub fn bytes_acked(&self) -> u64 {
        self.bytes_acked
    }
    /// Application bytes received in order (made readable).
    pub fn bytes_received(&self) -> u64 {
        self.bytes_received
    }
    /// Segments retransmitted.
    pub fn retransmits(&self) -> u64 {
        self.retransmits
    }
    /// Retransmission timeouts of data or FIN.
    pub fn timeouts(&self) -> u64 {
        self.timeouts
    }
    /// Fast recoveries undone as spurious (reordering detected by timestamps).
    pub fn spurious_recoveries(&self) -> u64 {
        self.spurious_recoveries
    }
    /// Fast recoveries entered.
    pub fn recoveries(&self) -> u64 {
        self.recoveries
    }
    /// Segments dropped by PAWS.
    pub fn paws_drops(&self) -> u64 {
        self.paws_drops
    }
    /// Challenge ACKs sent (RFC 5961).
    pub fn challenge_acks(&self) -> u64 {
        self.challenge_acks
    }
    /// True when timestamps were negotiated.
    pub fn timestamps_enabled(&self) -> bool {
        self.ts_enabled
    }
    /// True when SACK was negotiated.
    pub fn sack_enabled(&self) -> bool {
        self.sack_enabled
    }
    /// (our shift, peer's shift) when window scaling was negotiated.
    pub fn window_scales(&self) -> (u8, u8) {
        (self.rcv_wscale, self.snd_wscale)
    }
    /// The peer's receive window in bytes (scaled).
    pub fn send_window(&self) -> u64 {
        self.snd_wnd
    }
    /// Disjoint SACKed ranges on the scoreboard.
    pub fn sack_ranges(&self) -> usize {
        self.scoreboard.len()
    }
    /// True during SACK / NewReno fast recovery.
    pub fn in_recovery(&self) -> bool {
        self.in_recovery
    }
    /// The congestion controller (read only).
    pub fn congestion_control(&self) -> &dyn CongestionControl {
        self.cc.as_ref()
    }
    /// Replaces the congestion controller (MPTCP installs coupled ones).
    pub fn set_congestion_control(&mut self, cc: Box<dyn CongestionControl>) {
        self.cc = cc;
        let m = self.effective_mss();
        self.cc.set_mss(m);
    }
    /// Stream offset of the first unacknowledged byte.
    pub fn snd_una_offset(&self) -> u64 {
        self.snd_una.saturating_sub(1).min(self.send.end())
    }
    /// Stream offset of the next new byte to send.
    pub fn snd_nxt_offset(&self) -> u64 {
        self.snd_nxt.saturating_sub(1).min(self.send.end())
    }
    /// Stream offset of the next byte [`Tcb::read`] returns.
    pub fn recv_offset(&self) -> u64 {
        self.recv.contiguous_end() - self.recv.readable() as u64
    }
    /// Bytes waiting to be read.
    pub fn readable(&self) -> usize {
        self.recv.readable()
    }
    /// Space left in the send buffer.
    pub fn send_capacity(&self) -> usize {
        if self.fin_queued {
            0
        } else {
            self.send.free()
        }
    }
    /// Bytes written but not yet acknowledged.
    pub fn send_queued(&self) -> usize {
        self.send.len()
    }
    /// True when the peer's FIN has been received and every byte before it read.
    pub fn is_read_finished(&self) -> bool {
        self.fin_received && self.recv.readable() == 0
    }

    /// Sends an ACK at the next `poll_segment`, even with nothing new at the TCP level: the
    /// MPTCP layer acknowledges data-level events (a DATA_FIN on a pure ACK) this way.
    pub fn request_ack(&mut self) {
        if self.state.is_synchronized() {
            self.ack_now = true;
        }
    }

    /// Ends every segment (new or retransmitted) that would cover stream offset `offset - 1`
    /// and `offset` at `offset`: the MPTCP layer maps one contiguous data-level run per
    /// segment, so it marks where one run ends and the next one begins. Offsets may come in
    /// any order (repeated ones count once); they are forgotten once acknowledged.
    pub fn mark_segment_boundary(&mut self, offset: u64) {
        let seq = offset + 1;
        if seq <= self.snd_una {
            return;
        }
        let i = self.boundaries.partition_point(|&b| b < seq);
        if self.boundaries.get(i) != Some(&seq) {
            self.boundaries.insert(i, seq);
        }
    }

    /// The first segment boundary above sequence offset `p` (or `u64::MAX`).
    fn next_boundary(&mut self, p: u64) -> u64 {
        while self.boundaries.front().is_some_and(|&b| b <= self.snd_una) {
            self.boundaries.pop_front();
        }
        let i = self.boundaries.partition_point(|&b| b <= p);
        self.boundaries.get(i).copied().unwrap_or(u64::MAX)
    }

    /// How many RTOs fired since the last acknowledgment that advanced SND.UNA (0 while the
    /// subflow makes progress).
    pub fn rto_backoff(&self) -> u32 {
        self.backoff
    }

    /// True when the connection holds data it cannot get across and the peer has gone
    /// silent: an RTO fired since the last acknowledgment of data in flight, or (with a zero
    /// window and unsent data) two zero-window probes went unanswered. The MPTCP layer's
    /// sign of a stale path; a peer that answers its probes is merely not reading.
    pub fn is_stalled(&self) -> bool {
        let in_flight = self.snd_nxt > self.snd_una;
        let unsent = self.snd_nxt < self.data_end();
        (self.backoff >= 1 && in_flight) || (self.unanswered_probes >= 2 && unsent)
    }

    /// Reserves `len` bytes of option space on every segment after the SYN (MPTCP options).
    pub fn set_reserved_option_len(&mut self, len: usize) {
        self.reserved_opt = len.min(MAX_OPTION_SPACE);
        let m = self.effective_mss();
        self.cc.set_mss(m);
    }
    /// True while a segment is waiting to be sent even though the TCB is closed (the RST
    /// of an abort).
    pub fn has_pending_output(&self) -> bool {
        self.rst_reply.is_some()
    }
    /// Events since the last call.
    pub fn take_events(&mut self) -> TcbEvents {
        core::mem::take(&mut self.events)
    }
    /// The deadline of one timer.
    pub fn timer(&self, t: Timer) -> Option<Instant> {
        self.timers[t as usize]
    }

    // ------------------------------------------------------------------ application side

    /// Queues bytes for sending; returns how many were accepted (0 when the buffer is full
    /// or the connection can no longer send).
    pub fn write(&mut self, data: &[u8]) -> usize {
        let can = matches!(
            self.state,
            TcpState::SynSent | TcpState::SynReceived | TcpState::Established | TcpState::CloseWait
        ) && !self.fin_queued;
        if !can {
            return 0;
        }
        let n = self.send.write(data);
        if n < data.len() {
            self.want_writable = true;
        }
        n
    }

    /// Copies readable bytes into `buf`.
    pub fn read(&mut self, buf: &mut [u8]) -> usize {
        let before_wnd = self.rcv_adv.saturating_sub(self.rcv_nxt);
        let n = self.recv.read(buf);
        // With a shared window, the owner of that window sends the updates.
        if n > 0 && self.state.is_synchronized() && !self.fin_received && self.shared_wnd.is_none()
        {
            //= rfc9293#3.8.6.2.2
            //# receiver SWS avoidance: only announce a window increase of at least min(RCV.BUFF/2, Eff.snd.MSS)
            let new_wnd = self.advertisable_window();
            let thresh = (self.recv.capacity() as u64 / 2).min(self.rcv_mss as u64);
            if new_wnd >= before_wnd.saturating_mul(2) && new_wnd - before_wnd >= thresh {
                self.ack_now = true;
            }
        }
        n
    }

    /// Closes the sending direction: a FIN follows the queued data.
    pub fn close(&mut self) {
        match self.state {
            TcpState::Listen => self.enter_closed(None),
            //= rfc9293#3.10.4
            //# SYN-SENT: with nothing queued the TCB is deleted; queued data is sent first (the FIN follows it)
            TcpState::SynSent if self.send.is_empty() => self.enter_closed(None),
            TcpState::SynSent => self.fin_queued = true,
            TcpState::SynReceived | TcpState::Established => {
                //= rfc9293#3.10.4
                //# ESTABLISHED: queue the FIN until all preceding SENDs are segmentized; enter FIN-WAIT-1
                self.fin_queued = true;
                self.state = TcpState::FinWait1;
                if !self.state_synchronized_once() {
                    // SYN-RECEIVED: the FIN goes out after the handshake completes.
                    self.state = TcpState::SynReceived;
                }
            }
            TcpState::CloseWait => {
                self.fin_queued = true;
                self.state = TcpState::LastAck;
            }
            _ => {}
        }
    }

    fn state_synchronized_once(&self) -> bool {
        self.snd_una >= 1
    }

    /// Aborts: a RST is sent (if synchronized) and the TCB closes with `Aborted`.
    pub fn abort(&mut self) {
        self.abort_with(ConnectionError::Aborted);
    }

    /// Like [`Tcb::abort`], closing with `error` (for example `Reset` when the peer asked
    /// for the reset, as MPTCP's MP_FASTCLOSE does).
    pub fn abort_with(&mut self, error: ConnectionError) {
        if matches!(
            self.state,
            TcpState::SynReceived
                | TcpState::Established
                | TcpState::FinWait1
                | TcpState::FinWait2
                | TcpState::CloseWait
        ) {
            self.rst_reply = Some(RstReply {
                seq: self.wire_seq(self.snd_nxt),
                ack: None,
            });
        }
        self.enter_closed(Some(error));
    }

    // ------------------------------------------------------------------ sequence helpers

    fn wire_seq(&self, abs: u64) -> u32 {
        self.params.iss.wrapping_add(abs as u32)
    }
    fn wire_ack(&self) -> u32 {
        self.irs.wrapping_add(self.rcv_nxt as u32)
    }
    fn snd_abs(&self, wire: u32) -> i64 {
        let base = self.wire_seq(self.snd_una);
        self.snd_una as i64 + i64::from(wire.wrapping_sub(base) as i32)
    }
    fn rcv_abs(&self, wire: u32) -> i64 {
        let base = self.irs.wrapping_add(self.rcv_nxt as u32);
        self.rcv_nxt as i64 + i64::from(wire.wrapping_sub(base) as i32)
    }
    fn ts_now(&self, now: Instant) -> u32 {
        (now.as_millis() as u32).wrapping_add(self.params.ts_offset)
    }
    /// Sequence offset just past the last data byte written.
    fn data_end(&self) -> u64 {
        1 + self.send.end()
    }
    /// Sequence offset of our FIN (valid once queued).
    fn fin_seq(&self) -> u64 {
        self.data_end()
    }
    fn flight(&self) -> u64 {
        self.snd_nxt - self.snd_una
    }

    fn set_timer(&mut self, t: Timer, at: Option<Instant>) {
        self.timers[t as usize] = at;
    }

    fn enter_closed(&mut self, error: Option<ConnectionError>) {
        if self.state != TcpState::Closed {
            self.state = TcpState::Closed;
            if self.error.is_none() {
                self.error = error;
            }
            self.timers = [None; TIMER_COUNT];
            self.events.closed = true;
        }
    }

    fn enter_time_wait(&mut self, now: Instant) {
        self.state = TcpState::TimeWait;
        self.timers = [None; TIMER_COUNT];
        self.set_timer(Timer::TimeWait, Some(now + self.cfg.time_wait));
        self.events.closed = true;
    }

    fn challenge_ack(&mut self, now: Instant) {
        //= rfc5961#7
        //# an implementation SHOULD limit the number of challenge ACKs sent in a time window
        let fresh = match self.challenge_window {
            Some(s) => now.saturating_duration_since(s) >= Duration::from_secs(1),
            None => true,
        };
        if fresh {
            self.challenge_count = 0;
            self.challenge_window = Some(now);
        }
        if self.challenge_count < CHALLENGE_ACK_LIMIT {
            self.challenge_count += 1;
            self.challenge_acks += 1;
            self.ack_now = true;
        }
    }

    // ------------------------------------------------------------------ receiving

    /// Negotiates options from the peer's SYN (or SYN-ACK) and records its ISN.
    fn receive_syn(&mut self, now: Instant, syn: &TcpRepr) {
        self.irs = syn.seq;
        self.rcv_nxt = 1;
        self.last_ack_sent = 1;
        let o = &syn.options;
        //= rfc9293#3.7.1
        //# the send MSS is the peer's advertised MSS (default 536 / 1220 if absent), bounded by ours
        let peer_mss = usize::from(o.mss.unwrap_or(self.params.default_mss).max(64));
        self.snd_mss = peer_mss.min(usize::from(self.params.mss.max(64)));
        //= rfc7323#2.2
        //# window scaling is in effect only if both sides sent the Window Scale option on SYN
        match (self.cfg.window_scaling, o.window_scale) {
            (true, Some(ws)) => {
                //= rfc7323#2.3
                //# a shift count greater than 14 is treated as 14
                self.snd_wscale = ws.min(14);
            }
            _ => {
                self.snd_wscale = 0;
                self.rcv_wscale = 0;
            }
        }
        self.sack_enabled = self.cfg.sack && o.sack_permitted;
        match (self.cfg.timestamps, o.timestamps) {
            (true, Some(ts)) => {
                self.ts_enabled = true;
                self.ts_recent = ts.tsval;
                self.ts_recent_age = Some(now);
            }
            _ => self.ts_enabled = false,
        }
        // rcv_mss (the delayed-ACK unit) is learnt from the segments received: a "full-sized"
        // segment is the largest seen so far (the peer's options make it smaller than the MSS).
        //= rfc9293#3.10.7.3
        //# the window in a SYN is never scaled
        self.snd_wnd = u64::from(syn.window);
        self.max_snd_wnd = self.snd_wnd;
        self.snd_wl1 = 0;
        self.snd_wl2 = 0;
        let m = self.effective_mss();
        self.cc.set_mss(m);
        let iw = (self.cfg.initial_window.max(1) as usize) * m;
        self.cc = self.cfg.cc.build(m, iw);
        //= rfc7323#2.2
        //# the window in a SYN is never scaled
        // What the SYN (or SYN/ACK) advertises, no more: the first segment after it opens
        // the rest, as far as the window (and a clamp set since) allows.
        self.rcv_adv = 1 + self.advertisable_window().min(65535);
    }

    fn advertisable_window(&self) -> u64 {
        let max = 65535u64 << self.rcv_wscale;
        let clamp = self.window_clamp.unwrap_or(u64::MAX);
        (self.recv.window() as u64).min(max).min(clamp)
    }

    /// Processes one received segment addressed to this connection.
    pub fn handle_segment(
        &mut self,
        now: Instant,
        repr: &TcpRepr,
        payload: &[u8],
    ) -> SegmentOutcome {
        let out = match self.state {
            TcpState::Closed | TcpState::Listen => SegmentOutcome::default(),
            TcpState::SynSent => self.handle_syn_sent(now, repr),
            _ => self.handle_synchronized(now, repr, payload),
        };
        self.update_persist(now);
        out
    }

    /// SYN-RECEIVED -> ESTABLISHED on an acceptable ACK of our SYN.
    fn establish_passive(&mut self, now: Instant, repr: &TcpRepr, seq: i64, wnd: u64) {
        self.snd_una = 1;
        self.rtt_sample_on_ack(now, repr, 1);
        self.backoff = 0;
        self.retries = 0;
        self.set_timer(Timer::Retransmit, None);
        self.state = if self.fin_queued {
            TcpState::FinWait1
        } else {
            TcpState::Established
        };
        self.events.established = true;
        self.snd_wnd = wnd;
        self.max_snd_wnd = self.max_snd_wnd.max(self.snd_wnd);
        self.snd_wl1 = seq;
        self.snd_wl2 = 1;
    }

    fn handle_syn_sent(&mut self, now: Instant, repr: &TcpRepr) -> SegmentOutcome {
        let f = repr.flags;
        //= rfc9293#3.10.7.3
        //# SYN-SENT: if SEG.ACK =< ISS or SEG.ACK > SND.NXT, send a reset (unless RST) and discard
        if f.ack() {
            let ack = self.snd_abs(repr.ack);
            if ack <= 0 || ack > self.snd_nxt as i64 {
                if !f.rst() {
                    self.rst_reply = Some(RstReply {
                        seq: repr.ack,
                        ack: None,
                    });
                }
                return SegmentOutcome::default();
            }
        }
        if f.rst() {
            //= rfc9293#3.10.7.3
            //# if the ACK was acceptable, signal "connection reset" and enter CLOSED; else drop
            if f.ack() {
                self.enter_closed(Some(ConnectionError::Refused));
            }
            return SegmentOutcome::default();
        }
        if !f.syn() {
            return SegmentOutcome::default();
        }
        self.receive_syn(now, repr);
        if f.ack() {
            self.snd_una = 1;
            self.rtt_sample_on_ack(now, repr, 1);
            self.backoff = 0;
            self.retries = 0;
            self.set_timer(Timer::Retransmit, None);
            self.snd_wl1 = 0;
            self.snd_wl2 = 1;
            self.state = TcpState::Established;
            self.events.established = true;
            self.ack_now = true;
            if self.fin_queued {
                self.state = TcpState::FinWait1;
            }
        } else {
            //= rfc9293#3.10.7.3
            //# simultaneous open: enter SYN-RECEIVED and send <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK>
            self.state = TcpState::SynReceived;
            self.syn_pending = true;
        }
        SegmentOutcome {
            accepted: true,
            data: 0..0,
        }
    }

    fn rtt_sample_on_ack(&mut self, now: Instant, repr: &TcpRepr, ack: u64) {
        if self.ts_enabled {
            //= rfc7323#4.1
            //# RTT measurement from the echoed timestamp of an ACK that advances the left edge
            if let Some(ts) = repr.options.timestamps {
                if ts.tsecr != 0 || self.params.ts_offset == 0 {
                    let ms = self.ts_now(now).wrapping_sub(ts.tsecr);
                    if ms < 60_000 {
                        self.rtt.sample(Duration::from_millis(u64::from(ms)));
                        self.hystart_sample(now, ack, Duration::from_millis(u64::from(ms)));
                    }
                }
                self.timed = None;
                return;
            }
        }
        //= rfc6298#3
        //# Karn: RTT samples MUST NOT be made using segments that were retransmitted
        if let Some((end, at)) = self.timed {
            if ack >= end {
                let r = now.saturating_duration_since(at);
                self.rtt.sample(r);
                self.hystart_sample(now, ack, r);
                self.timed = None;
            }
        }
    }

    fn hystart_sample(&mut self, now: Instant, ack: u64, rtt: Duration) {
        let h = &mut self.hystart;
        if h.done || self.cc.cwnd() >= self.cc.ssthresh() || self.in_recovery || self.rto_recovery {
            return;
        }
        //= rfc9406#4.2
        //# at the start of each round, lastRoundMinRTT = currentRoundMinRTT, currentRoundMinRTT = infinity, rttSampleCount = 0
        if ack >= h.round_end {
            h.last_round_min = h.current_round_min;
            h.current_round_min = None;
            h.samples = 0;
            h.round_end = self.snd_nxt;
        }
        h.samples += 1;
        h.current_round_min = Some(h.current_round_min.map_or(rtt, |m| m.min(rtt)));
        if h.samples < HYSTART_SAMPLES {
            return;
        }
        if let (Some(last), Some(cur)) = (h.last_round_min, h.current_round_min) {
            //= rfc9406#4.2
            //# RttThresh = clamp(MIN_RTT_THRESH, lastRoundMinRTT / MIN_RTT_DIVISOR, MAX_RTT_THRESH); exit slow start if currentRoundMinRTT >= lastRoundMinRTT + RttThresh
            let thresh = (last / 8).clamp(HYSTART_MIN_THRESH, HYSTART_MAX_THRESH);
            if cur >= last + thresh {
                h.done = true;
                self.cc.exit_slow_start(now);
            }
        }
    }

    /// The receive window the acceptability test uses: what was advertised, or more if the
    /// buffer has since freed room.
    fn acceptance_window(&self) -> u64 {
        self.rcv_adv
            .saturating_sub(self.rcv_nxt)
            .max(self.recv.window() as u64)
    }

    fn segment_acceptable(&self, seq: i64, len: u64) -> bool {
        //= rfc9293#3.10.7.4
        //# four cases of the acceptability test on segment length and receive window
        let wnd = self.acceptance_window() as i64;
        let nxt = self.rcv_nxt as i64;
        let len = len as i64;
        if len == 0 {
            if wnd == 0 {
                seq == nxt
            } else {
                nxt <= seq && seq < nxt + wnd
            }
        } else if wnd == 0 {
            false
        } else {
            (nxt <= seq && seq < nxt + wnd) || (nxt < seq + len && seq + len - 1 < nxt + wnd)
        }
    }

    fn handle_synchronized(
        &mut self,
        now: Instant,
        repr: &TcpRepr,
        payload: &[u8],
    ) -> SegmentOutcome {
        let mut f = repr.flags;
        // The segment's own text length: a segment that carried data is no duplicate ACK,
        // even when its data is dropped.
        let text_len = payload.len();
        let mut payload = payload;
        let seq = self.rcv_abs(repr.seq);
        let mut seg_len = payload.len() as u64 + u64::from(f.syn()) + u64::from(f.fin());

        // SYN-RECEIVED: a retransmitted SYN gets the SYN-ACK again.
        if self.state == TcpState::SynReceived
            && f.syn()
            && !f.ack()
            && !f.rst()
            && repr.seq == self.irs
        {
            self.syn_pending = true;
            return SegmentOutcome::default();
        }

        // Simultaneous open: the peer's SYN-ACK crosses ours. It acknowledges our SYN, so it
        // completes the handshake (as Linux does), and our ACK lets the peer complete too.
        if self.state == TcpState::SynReceived
            && f.syn()
            && f.ack()
            && !f.rst()
            && repr.seq == self.irs
            && self.snd_nxt >= 1
            && self.snd_abs(repr.ack) == 1
        {
            //= rfc7323#2.2
            //# the window field of a SYN-ACK is not scaled
            self.establish_passive(now, repr, 0, u64::from(repr.window));
            self.ack_now = true;
            return SegmentOutcome {
                accepted: true,
                data: 0..0,
            };
        }

        //= rfc7323#5.3
        //# PAWS: a segment with SEG.TSval < TS.Recent is not acceptable (send an ACK, drop), RST excepted
        if self.ts_enabled && !f.rst() {
            if let Some(ts) = repr.options.timestamps {
                if let Some(age) = self.ts_recent_age {
                    if (ts.tsval.wrapping_sub(self.ts_recent) as i32) < 0 {
                        if now.saturating_duration_since(age) > PAWS_IDLE {
                            //= rfc7323#5.5
                            //# a TS.Recent idle for more than 24 days is invalid
                            self.ts_recent_age = None;
                        } else {
                            self.paws_drops += 1;
                            self.ack_now = true;
                            return SegmentOutcome::default();
                        }
                    }
                }
            }
        }

        if seg_len > 0
            && seq == self.rcv_nxt as i64
            && self.acceptance_window() == 0
            && f.ack()
            && !f.rst()
            && !f.syn()
        {
            //= rfc9293#3.10.7.4
            //# if the RCV.WND is zero, no segments will be acceptable, but special allowance should be made to accept valid ACKs
            // The segment's text (and a FIN behind it) is dropped, its acknowledgment and
            // window processed: with both sides' buffers full, the peer's ACKs ride on data,
            // and dropping them whole would leave both senders waiting on each other's RTO.
            // The peer learns of the drop from our ACK. Linux does the same.
            payload = &[];
            f = TcpFlags(f.0 & !TcpFlags::FIN);
            seg_len = 0;
            self.ack_now = true;
        }

        if !self.segment_acceptable(seq, seg_len) {
            //= rfc9293#3.10.7.4
            //# if a segment is not acceptable, send an acknowledgment (unless RST) and drop it
            if !f.rst() {
                self.ack_now = true;
                let end = seq + payload.len() as i64;
                if self.sack_enabled
                    && !payload.is_empty()
                    && seq >= 1
                    && end <= self.rcv_nxt as i64
                {
                    //= rfc2883#4
                    //# a duplicate segment is reported in a D-SACK block
                    self.dsack = Some((seq as u64 - 1, end as u64 - 1));
                }
                //= rfc9293#3.10.7.4
                //# TIME-WAIT: a retransmission of the remote FIN is acknowledged and the 2 MSL timeout restarted
                if self.state == TcpState::TimeWait
                    && f.fin()
                    && seq + seg_len as i64 == self.rcv_nxt as i64
                {
                    self.set_timer(Timer::TimeWait, Some(now + self.cfg.time_wait));
                }
            }
            return SegmentOutcome::default();
        }

        if f.rst() {
            //= rfc5961#3.2
            //# RST: reset only if SEG.SEQ exactly matches RCV.NXT; otherwise (in window) send a challenge ACK
            if seq == self.rcv_nxt as i64 {
                let err = if self.state == TcpState::SynReceived {
                    ConnectionError::Refused
                } else {
                    ConnectionError::Reset
                };
                if self.state == TcpState::TimeWait {
                    self.enter_closed(None);
                } else {
                    self.enter_closed(Some(err));
                }
            } else {
                self.challenge_ack(now);
            }
            return SegmentOutcome::default();
        }

        if f.syn() {
            //= rfc5961#4.2
            //# a SYN in a synchronized state gets a challenge ACK, whatever its sequence number
            self.challenge_ack(now);
            return SegmentOutcome::default();
        }

        if !f.ack() {
            //= rfc9293#3.10.7.4
            //# fifth: if the ACK bit is off, drop the segment
            return SegmentOutcome::default();
        }

        // Timestamps: TS.Recent update (RFC 7323 §4.3).
        if self.ts_enabled {
            if let Some(ts) = repr.options.timestamps {
                //= rfc7323#4.3
                //# if SEG.TSval >= TS.Recent and SEG.SEQ =< Last.ACK.sent then TS.Recent = SEG.TSval
                if seq <= self.last_ack_sent as i64
                    && (self.ts_recent_age.is_none()
                        || (ts.tsval.wrapping_sub(self.ts_recent) as i32) >= 0)
                {
                    self.ts_recent = ts.tsval;
                    self.ts_recent_age = Some(now);
                }
            }
        }

        if self.state == TcpState::SynReceived {
            let ack = self.snd_abs(repr.ack);
            //= rfc9293#3.10.7.4
            //# SYN-RECEIVED: if SND.UNA < SEG.ACK =< SND.NXT enter ESTABLISHED, else send <SEQ=SEG.ACK><CTL=RST>
            if ack == 1 && self.snd_nxt >= 1 {
                let wnd = u64::from(repr.window) << self.snd_wscale;
                self.establish_passive(now, repr, seq, wnd);
            } else {
                self.rst_reply = Some(RstReply {
                    seq: repr.ack,
                    ack: None,
                });
                return SegmentOutcome::default();
            }
        }

        if !self.process_ack(now, repr, seq, text_len) {
            return SegmentOutcome::default();
        }
        if self.state == TcpState::Closed {
            return SegmentOutcome {
                accepted: true,
                data: 0..0,
            };
        }

        // Data.
        let mut data_range = 0..0;
        if !payload.is_empty()
            && matches!(
                self.state,
                TcpState::Established | TcpState::FinWait1 | TcpState::FinWait2
            )
        {
            data_range = self.receive_data(now, seq, payload);
        } else if !payload.is_empty() {
            // Data after the peer's FIN: acknowledge and ignore.
            self.ack_now = true;
        }

        // FIN.
        if f.fin() && !self.fin_received {
            let fin_at = seq + payload.len() as i64;
            if fin_at >= self.rcv_nxt as i64 {
                self.fin_recv = Some(fin_at as u64);
            }
        }
        if let Some(fin_at) = self.fin_recv {
            if !self.fin_received && fin_at == self.rcv_nxt {
                self.accept_fin(now);
            }
        } else if f.fin() && self.state == TcpState::TimeWait {
            //= rfc9293#3.10.7.4
            //# TIME-WAIT: a retransmitted FIN is acknowledged and the 2 MSL timeout restarted
            self.ack_now = true;
            self.set_timer(Timer::TimeWait, Some(now + self.cfg.time_wait));
        }
        SegmentOutcome {
            accepted: true,
            data: data_range,
        }
    }

    fn accept_fin(&mut self, now: Instant) {
        self.fin_received = true;
        self.rcv_nxt += 1;
        self.ack_now = true;
        self.events.readable = true;
        //= rfc9293#3.10.7.4
        //# eighth, FIN: ESTABLISHED -> CLOSE-WAIT; FIN-WAIT-1 -> CLOSING (or TIME-WAIT if our FIN is acked); FIN-WAIT-2 -> TIME-WAIT
        match self.state {
            TcpState::SynReceived | TcpState::Established => self.state = TcpState::CloseWait,
            TcpState::FinWait1 => {
                if self.fin_sent && self.snd_una > self.fin_seq() {
                    self.enter_time_wait(now);
                } else {
                    self.state = TcpState::Closing;
                }
            }
            TcpState::FinWait2 => self.enter_time_wait(now),
            TcpState::TimeWait => self.set_timer(Timer::TimeWait, Some(now + self.cfg.time_wait)),
            _ => {}
        }
    }

    fn receive_data(&mut self, now: Instant, seq: i64, payload: &[u8]) -> Range<u64> {
        let rcv_nxt = self.rcv_nxt as i64;
        // Trim what was already received.
        let skip = if seq < rcv_nxt {
            ((rcv_nxt - seq) as usize).min(payload.len())
        } else {
            0
        };
        let start_seq = (seq + skip as i64) as u64;
        let bytes = &payload[skip..];
        if skip > 0 && self.sack_enabled && seq >= 1 {
            let lo = seq as u64 - 1;
            self.dsack = Some((lo, lo + skip as u64));
        }
        if bytes.is_empty() {
            // A pure duplicate: acknowledge at once (RFC 9293 §3.10.7.4, RFC 5681 §4.2).
            self.ack_now = true;
            return 0..0;
        }
        let offset = start_seq - 1;
        if self.sack_enabled && self.dsack.is_none() {
            if let Some((a, b)) = self.recv.ooo().containing(offset) {
                let end = offset + bytes.len() as u64;
                if end <= b && offset >= a {
                    self.dsack = Some((offset, end));
                }
            }
        }
        let had_gap = !self.recv.ooo().is_empty();
        let in_order = start_seq == self.rcv_nxt;
        let newly = self.recv.write_at(offset, bytes);
        self.rcv_mss = self.rcv_mss.max(payload.len());
        if newly > 0 {
            self.rcv_nxt += newly as u64;
            self.bytes_received += newly as u64;
            self.events.readable = true;
        }
        if !in_order {
            self.note_ooo(offset);
        }
        //= rfc5681#4.2
        //# an out-of-order segment or one that fills a gap SHOULD be acknowledged immediately
        if !in_order || had_gap || !self.cfg.delayed_ack {
            self.ack_now = true;
        } else {
            //= rfc9293#3.8.6.3
            //# an ACK SHOULD be generated for at least every second full-sized segment
            // Counted as Linux does: more than one full segment waiting is two segments, even
            // when their sizes differ by a few option bytes (MPTCP puts its DSS on the first
            // segment of a mapping only), which `>= 2 * MSS` would stretch to three.
            self.rcv_unacked += newly;
            if self.rcv_unacked > self.rcv_mss {
                self.ack_now = true;
            } else if self.timer(Timer::DelayedAck).is_none() {
                self.set_timer(Timer::DelayedAck, Some(now + self.cfg.delayed_ack_timeout));
            }
        }
        offset..offset + bytes.len() as u64
    }

    fn note_ooo(&mut self, offset: u64) {
        self.recent_ooo.rotate_right(1);
        self.recent_ooo[0] = Some(offset);
    }

    // ------------------------------------------------------------------ timers

    /// The earliest timer deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.iter().flatten().min().copied()
    }

    /// Fires every timer whose deadline is at or before `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        for t in ALL_TIMERS {
            match self.timers[t as usize] {
                Some(at) if at <= now => {
                    self.timers[t as usize] = None;
                    self.fire(now, t);
                }
                _ => {}
            }
        }
        self.update_persist(now);
    }

    fn fire(&mut self, now: Instant, t: Timer) {
        match t {
            Timer::Retransmit => self.on_rto(now),
            Timer::Persist => {
                //= rfc9293#3.8.6.1
                //# the sender keeps probing a zero window, with exponential backoff
                self.probe_pending = true;
                self.persist_backoff = (self.persist_backoff + 1).min(16);
                self.unanswered_probes = self.unanswered_probes.saturating_add(1);
            }
            Timer::DelayedAck => self.ack_now = true,
            Timer::Pacing => {}
            Timer::Reorder => {
                if self.sack_enabled {
                    self.rack_detect(now);
                    self.maybe_enter_recovery(now);
                }
            }
            Timer::Probe => {
                self.probe_due = self.snd_nxt > self.snd_una && self.can_send_data();
            }
            Timer::TimeWait => {
                if self.state == TcpState::TimeWait {
                    self.state = TcpState::Closed;
                    self.events.closed = true;
                }
            }
        }
    }

    fn can_send_data(&self) -> bool {
        matches!(
            self.state,
            TcpState::Established
                | TcpState::CloseWait
                | TcpState::FinWait1
                | TcpState::Closing
                | TcpState::LastAck
        )
    }

    fn update_persist(&mut self, now: Instant) {
        let waiting = self.can_send_data()
            && self.snd_nxt < self.data_end()
            && self.snd_nxt >= self.snd_una
            && self.snd_wnd == 0
            && self.snd_nxt == self.snd_una;
        if waiting {
            if self.timer(Timer::Persist).is_none() {
                let at = now + self.rtt.backed_off(self.persist_backoff);
                self.set_timer(Timer::Persist, Some(at));
            }
        } else {
            self.set_timer(Timer::Persist, None);
            if self.snd_wnd > 0 {
                self.persist_backoff = 0;
                self.probe_pending = false;
            }
        }
    }

    // ------------------------------------------------------------------ sending

    fn sack_blocks(&self, max: usize) -> arrayvec::ArrayVec<(u32, u32), 4> {
        let mut blocks: arrayvec::ArrayVec<(u64, u64), 4> = arrayvec::ArrayVec::new();
        //= rfc2883#4
        //# a D-SACK block reporting duplicate data is the first block of the next ACK
        if let Some(d) = self.dsack {
            if max > 0 {
                blocks.push(d);
            }
        }
        //= rfc2018#4
        //# the first SACK block MUST specify the block containing the most recently received segment
        for at in self.recent_ooo.iter().flatten() {
            if blocks.len() >= max {
                break;
            }
            if let Some(r) = self.recv.ooo().containing(*at) {
                if !blocks.contains(&r) {
                    blocks.push(r);
                }
            }
        }
        for r in self.recv.ooo().iter_rev() {
            if blocks.len() >= max {
                break;
            }
            if !blocks.contains(&r) {
                blocks.push(r);
            }
        }
        let base = self.irs.wrapping_add(1);
        blocks
            .iter()
            .map(|&(s, e)| (base.wrapping_add(s as u32), base.wrapping_add(e as u32)))
            .collect()
    }

    /// Builds a header; `data_len` is used to size the SACK blocks.
    fn make_repr(&mut self, now: Instant, seq: u64, flags: u8) -> TcpRepr {
        let syn = flags & TcpFlags::SYN != 0;
        let mut options = TcpOptions::default();
        let window;
        if syn {
            options.mss = Some(self.params.mss);
            let peer_said_ws =
                self.state == TcpState::SynSent || self.rcv_wscale > 0 || self.snd_wscale > 0;
            if self.cfg.window_scaling && (self.state == TcpState::SynSent || peer_said_ws) {
                options.window_scale = Some(self.rcv_wscale);
            }
            let offer = |negotiated: bool, cfg: bool, state: TcpState| {
                if state == TcpState::SynSent {
                    cfg
                } else {
                    negotiated
                }
            };
            options.sack_permitted = offer(self.sack_enabled, self.cfg.sack, self.state);
            if offer(self.ts_enabled, self.cfg.timestamps, self.state) {
                options.timestamps = Some(Timestamps {
                    tsval: self.ts_now(now),
                    tsecr: if flags & TcpFlags::ACK != 0 {
                        self.ts_recent
                    } else {
                        0
                    },
                });
            }
            window = self.advertisable_window().min(65535) as u16;
            if self.state == TcpState::SynReceived {
                // The SYN/ACK's window is the right edge the peer knows.
                self.rcv_adv = self.rcv_nxt + u64::from(window);
            }
        } else {
            if self.ts_enabled {
                options.timestamps = Some(Timestamps {
                    tsval: self.ts_now(now),
                    tsecr: self.ts_recent,
                });
            }
            if self.sack_enabled
                && (!self.recv.ooo().is_empty() || self.dsack.is_some())
                && flags & TcpFlags::RST == 0
            {
                let max = self.sack_block_budget();
                options.sack_blocks = self.sack_blocks(max);
            }
            window = self.window_field();
        }
        let ack_flag = flags & TcpFlags::ACK != 0;
        if ack_flag {
            self.ack_sent();
        }
        TcpRepr {
            src_port: self.params.local_port,
            dst_port: self.params.remote_port,
            seq: self.wire_seq(seq),
            ack: if ack_flag { self.wire_ack() } else { 0 },
            flags: TcpFlags(flags),
            window,
            urgent: 0,
            options,
        }
    }

    /// Length of the options (rounded to 4) that a non-SYN segment will carry now.
    fn option_len(&self) -> usize {
        let ts = if self.ts_enabled { TS_OPTION_LEN } else { 0 };
        let mut sack = 0;
        if self.sack_enabled && (!self.recv.ooo().is_empty() || self.dsack.is_some()) {
            let n = self
                .sack_block_budget()
                .min(self.recv.ooo().len() + usize::from(self.dsack.is_some()));
            if n > 0 {
                sack = 2 + 8 * n;
            }
        }
        (self.reserved_opt + ts + sack).div_ceil(4) * 4
    }

    fn window_field(&mut self) -> u16 {
        let wnd = if let Some(shared) = self.shared_wnd {
            // The owner of the shared window keeps its right edge from moving left (in its
            // own sequence space) and does its own silly window syndrome avoidance.
            let wnd = shared.min(65535u64 << self.rcv_wscale);
            self.rcv_adv = self.rcv_nxt + wnd;
            wnd
        } else {
            let candidate = self.rcv_nxt + self.advertisable_window();
            let thresh = (self.recv.capacity() as u64 / 2).min(self.rcv_mss as u64);
            //= rfc9293#3.8.6.2.2
            //# the right window edge is advanced only by at least min(RCV.BUFF/2, Eff.snd.MSS); it never moves left
            if candidate >= self.rcv_adv + thresh || self.rcv_adv < self.rcv_nxt {
                self.rcv_adv = candidate.max(self.rcv_nxt);
            }
            self.rcv_adv - self.rcv_nxt
        };
        //= rfc7323#2.3
        //# the window field is the window shifted right by Rcv.Wind.Shift
        (wnd >> self.rcv_wscale).min(65535) as u16
    }

    fn ack_sent(&mut self) {
        self.dsack = None;
        self.ack_now = false;
        self.rcv_unacked = 0;
        self.last_ack_sent = self.rcv_nxt;
        self.set_timer(Timer::DelayedAck, None);
    }

    fn arm_rto(&mut self, now: Instant) {
        if self.timer(Timer::Retransmit).is_none() {
            //= rfc6298#5
            //# (5.1) every time a packet containing data is sent, start the timer if it is not running
            self.set_timer(
                Timer::Retransmit,
                Some(now + self.rtt.backed_off(self.backoff)),
            );
        }
    }

    /// The next segment to send, or `None`. One segment per call (bounded work).
    pub fn poll_segment(&mut self, now: Instant) -> Option<Segment> {
        self.poll_segment_with(now, None)
    }

    /// [`Tcb::poll_segment`], asking `new_data_reserve(offset)` how many option bytes to
    /// reserve (instead of [`Tcb::set_reserved_option_len`]'s) when the segment carries data
    /// from stream offset `offset` on (new data, and with SACK retransmissions too). The
    /// MPTCP layer reserves room for a DSS mapping only on the first segment of a mapping
    /// that covers several segments; pure ACKs and SYNs keep the reservation set with
    /// `set_reserved_option_len`.
    pub fn poll_segment_with(
        &mut self,
        now: Instant,
        new_data_reserve: Option<&mut dyn FnMut(u64) -> usize>,
    ) -> Option<Segment> {
        if let Some(r) = self.rst_reply.take() {
            let mut repr = TcpRepr {
                src_port: self.params.local_port,
                dst_port: self.params.remote_port,
                seq: r.seq,
                ack: r.ack.unwrap_or(0),
                flags: TcpFlags(TcpFlags::RST | if r.ack.is_some() { TcpFlags::ACK } else { 0 }),
                window: 0,
                urgent: 0,
                options: TcpOptions::default(),
            };
            if self.ts_enabled && self.state != TcpState::Closed {
                repr.options.timestamps = Some(Timestamps {
                    tsval: self.ts_now(now),
                    tsecr: self.ts_recent,
                });
            }
            return Some(Segment {
                repr,
                data: 0..0,
                retransmission: false,
                probe: false,
            });
        }
        match self.state {
            TcpState::Closed | TcpState::Listen => None,
            TcpState::SynSent | TcpState::SynReceived => {
                if !self.syn_pending {
                    return self.pure_ack(now);
                }
                self.syn_pending = false;
                let flags = if self.state == TcpState::SynSent {
                    TcpFlags::SYN
                } else {
                    TcpFlags::SYN | TcpFlags::ACK
                };
                let retransmission = self.snd_nxt > 0;
                if retransmission {
                    self.retransmits += 1;
                    self.timed = None;
                } else {
                    self.timed = Some((1, now));
                }
                self.snd_nxt = 1;
                let repr = self.make_repr(now, 0, flags);
                self.arm_rto(now);
                Some(Segment {
                    repr,
                    data: 0..0,
                    retransmission,
                    probe: false,
                })
            }
            TcpState::TimeWait | TcpState::FinWait2 if !self.can_send_data() => {
                if self.fin_sent && self.snd_una <= self.fin_seq() {
                    return self.send_data(now, new_data_reserve);
                }
                self.pure_ack(now)
            }
            _ => self.send_data(now, new_data_reserve),
        }
    }

    fn pure_ack(&mut self, now: Instant) -> Option<Segment> {
        if !self.ack_now {
            return None;
        }
        //= rfc9293#3.10.7.4
        //# SYN-RECEIVED answers an unacceptable segment (the crossing SYN-ACK of a simultaneous open) with <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>
        let ok = self.state.is_synchronized()
            || (self.state == TcpState::SynReceived && self.snd_nxt >= 1);
        if !ok {
            return None;
        }
        let repr = self.make_repr(now, self.snd_nxt, TcpFlags::ACK);
        Some(Segment {
            repr,
            data: 0..0,
            retransmission: false,
            probe: false,
        })
    }

    /// Pacing rate in bytes per second: the congestion controller's hint if it gives one,
    /// else 2 × cwnd / SRTT in slow start and 1.2 × cwnd / SRTT after (Linux's defaults);
    /// `None` before an RTT sample or with pacing off.
    pub fn pacing_rate(&self) -> Option<u64> {
        if !self.cfg.pacing {
            return None;
        }
        if let Some(rate) = self.cc.pacing_rate(self.rtt.srtt()) {
            return Some(rate.max(1));
        }
        let srtt = self.rtt.srtt()?.as_micros() as u64;
        if srtt == 0 {
            return None;
        }
        let cwnd = self.cc.cwnd() as u64;
        let factor = if cwnd < self.cc.ssthresh() as u64 {
            200
        } else {
            120
        };
        Some(cwnd.saturating_mul(factor).saturating_mul(10_000) / srtt)
    }

    fn pacing_blocked(&mut self, now: Instant) -> bool {
        match self.pace_next {
            Some(t) if t > now => {
                self.set_timer(Timer::Pacing, Some(t));
                true
            }
            _ => false,
        }
    }

    fn paced(&mut self, now: Instant, wire_len: usize) {
        let Some(rate) = self.pacing_rate() else {
            self.pace_next = None;
            return;
        };
        // A driver that wakes up late may catch up by at most PACING_CREDIT.
        let base = self.pace_next.unwrap_or(now).max(now - PACING_CREDIT);
        let us = (wire_len as u64).saturating_mul(1_000_000) / rate.max(1);
        self.pace_next = Some(base + Duration::from_micros(us));
    }

    fn send_data(
        &mut self,
        now: Instant,
        reserve: Option<&mut dyn FnMut(u64) -> usize>,
    ) -> Option<Segment> {
        self.update_persist(now);
        let forced = self.fast_rexmit;
        let blocked = !forced && self.pacing_blocked(now);
        let seg = self.send_data_inner(now, blocked, reserve)?;
        if !seg.data.is_empty() || seg.repr.flags.fin() {
            let opts = seg.repr.options.padded_len();
            self.paced(now, (seg.data.end - seg.data.start) as usize + 40 + opts);
        }
        Some(seg)
    }

    fn send_data_inner(
        &mut self,
        now: Instant,
        blocked: bool,
        reserve: Option<&mut dyn FnMut(u64) -> usize>,
    ) -> Option<Segment> {
        let max_payload = self.max_payload();
        let mut reserve = reserve;
        if self.sack_enabled {
            return self.send_data_sack(now, blocked, &mut reserve, max_payload);
        }

        // (1) The forced first retransmission of fast recovery.
        if self.fast_rexmit {
            self.fast_rexmit = false;
            if self.snd_una < self.snd_nxt {
                let p = self.snd_una;
                return Some(self.retransmit(now, p, self.snd_nxt, max_payload));
            }
        }
        if blocked {
            return self.probe_or_ack(now);
        }
        let cwnd_avail = self.send_allowance();

        // (2) NextSeg rule 1: the first lost, not yet retransmitted range (without SACK:
        // everything after an RTO).
        if self.rto_recovery {
            let p = self.high_rxt.max(self.snd_una);
            if p < self.snd_nxt {
                //= rfc6675#4
                //# NextSeg (1): the first un-SACKed sequence number > HighRxt that IsLost, if cwnd - pipe >= 1 SMSS
                if cwnd_avail >= max_payload.min(self.snd_nxt - p) {
                    return Some(self.retransmit(now, p, self.snd_nxt, max_payload));
                }
                return self.pure_ack(now);
            }
        }

        // (3) NextSeg rule 2: new data.
        if let Some(seg) = self.send_new_reserved(now, cwnd_avail, &mut reserve) {
            return Some(seg);
        }
        self.probe_or_ack(now)
    }

    /// [`Tcb::send_data_inner`] for a SACK peer: the forced first retransmission of a fast
    /// recovery, a due tail loss probe, lost ranges lowest first, new data; all but the first
    /// two within [`Tcb::send_allowance`].
    fn send_data_sack(
        &mut self,
        now: Instant,
        blocked: bool,
        reserve: &mut Option<&mut dyn FnMut(u64) -> usize>,
        max_payload: u64,
    ) -> Option<Segment> {
        //= rfc6675#5
        //# (4.3) retransmit the first segment presumed dropped
        if self.fast_rexmit {
            self.fast_rexmit = false;
            if let Some((s, e)) = self.lost.first() {
                return Some(self.retransmit_reserved(now, s, e, reserve));
            }
        }
        if self.probe_due {
            self.probe_due = false;
            if let Some(seg) = self.send_probe(now, reserve, max_payload) {
                return Some(seg);
            }
        }
        if blocked {
            return self.probe_or_ack(now);
        }
        let allowance = self.send_allowance();
        if self.frto_new_data() {
            if let Some(seg) = self.send_new_reserved(now, allowance, reserve) {
                return Some(seg);
            }
        }
        if let Some((s, e)) = self.lost.first() {
            if allowance >= max_payload.min(e - s) {
                return Some(self.retransmit_reserved(now, s, e, reserve));
            }
            return self.probe_or_ack(now);
        }
        if let Some(seg) = self.send_new_reserved(now, allowance, reserve) {
            return Some(seg);
        }
        self.probe_or_ack(now)
    }

    /// [`Tcb::retransmit`] with the caller's option reservation for the bytes at `p`: the
    /// MPTCP layer needs room for a DSS only where a mapping starts (TCP delivers in order,
    /// so the receiver has the mapping before any byte that continues it), so a whole
    /// segment goes again as one segment.
    pub(super) fn retransmit_reserved(
        &mut self,
        now: Instant,
        p: u64,
        hole_end: u64,
        reserve: &mut Option<&mut dyn FnMut(u64) -> usize>,
    ) -> Segment {
        self.with_reservation_at(p, reserve, |t, max_payload| {
            t.retransmit(now, p, hole_end, max_payload)
        })
    }

    /// New data within `avail` bytes, with the caller's option reservation for it.
    fn send_new_reserved(
        &mut self,
        now: Instant,
        avail: u64,
        reserve: &mut Option<&mut dyn FnMut(u64) -> usize>,
    ) -> Option<Segment> {
        let at = self.snd_nxt;
        self.with_reservation_at(at, reserve, |t, max_payload| {
            t.send_new(now, avail, max_payload)
        })
    }

    /// Runs `f` with the payload size of a segment from sequence offset `seq` on: the
    /// caller's reservation for that stream offset (the sizing and the header of this
    /// segment only), else the one set with [`Tcb::set_reserved_option_len`].
    fn with_reservation_at<R>(
        &mut self,
        seq: u64,
        reserve: &mut Option<&mut dyn FnMut(u64) -> usize>,
        f: impl FnOnce(&mut Tcb, u64) -> R,
    ) -> R {
        let saved = self.reserved_opt;
        if let Some(r) = reserve.as_mut().filter(|_| seq >= 1) {
            self.reserved_opt = r(seq - 1).min(MAX_OPTION_SPACE);
        }
        let max_payload = self.max_payload();
        let out = f(self, max_payload);
        self.reserved_opt = saved;
        out
    }

    /// Payload bytes of a full segment with the current option reservation.
    fn max_payload(&self) -> u64 {
        self.snd_mss.saturating_sub(self.option_len()).max(1) as u64
    }

    fn probe_or_ack(&mut self, now: Instant) -> Option<Segment> {
        // (5) Zero-window probe.
        if self.probe_pending {
            self.probe_pending = false;
            //= rfc9293#3.8.6.1
            //# a zero-window probe elicits an ACK carrying the current window (sent with an old sequence number)
            let repr = self.make_repr(now, self.snd_una.saturating_sub(1), TcpFlags::ACK);
            let at = now + self.rtt.backed_off(self.persist_backoff);
            self.set_timer(Timer::Persist, Some(at));
            return Some(Segment {
                repr,
                data: 0..0,
                retransmission: false,
                probe: true,
            });
        }
        self.pure_ack(now)
    }

    /// Retransmits from `p` up to `hole_end` (at most one segment); FIN included if it is the
    /// last thing in the hole.
    fn retransmit(&mut self, now: Instant, p: u64, hole_end: u64, max_payload: u64) -> Segment {
        let data_end = self.data_end();
        let mut flags = TcpFlags::ACK;
        let data_hi = (p + max_payload)
            .min(hole_end)
            .min(data_end)
            .min(self.next_boundary(p));
        let data = if p < data_end { p..data_hi } else { p..p };
        let mut end = data.end;
        if self.fin_sent && end == data_end && hole_end > data_end {
            flags |= TcpFlags::FIN;
            end += 1;
        }
        if !data.is_empty() && end == data_end {
            flags |= TcpFlags::PSH;
        }
        self.high_rxt = self.high_rxt.max(end);
        self.lost.remove(p, end);
        self.sent_log.on_send(p, end, now, true);
        self.prr_sent(end - p);
        if let Some(u) = self.undo_retrans.as_mut() {
            *u += end - p;
        }
        self.episode_rexmits += 1;
        self.retransmits += 1;
        self.timed = None;
        let repr = self.make_repr(now, p, flags);
        if self.episode_rexmits == 1 {
            self.undo_tsval = repr.options.timestamps.map(|t| t.tsval);
        }
        if p == self.snd_una && (self.rto_recovery || self.in_recovery) {
            // The head went again: the timer runs from this retransmission (Linux); after a
            // timeout its first ACK tells whether the timeout was spurious (Eifel).
            self.rto_undo_pending =
                self.rto_recovery && self.backoff == 1 && self.episode_rexmits == 1;
            self.set_timer(
                Timer::Retransmit,
                Some(now + self.rtt.backed_off(self.backoff)),
            );
        }
        self.arm_rto(now);
        if self.timer(Timer::Probe).is_none() {
            self.arm_probe(now);
        }
        Segment {
            repr,
            data: data.start.saturating_sub(1)..data.end.saturating_sub(1),
            retransmission: true,
            probe: false,
        }
    }

    fn send_new(&mut self, now: Instant, cwnd_avail: u64, max_payload: u64) -> Option<Segment> {
        if !self.can_send_data() {
            return None;
        }
        let data_end = self.data_end();
        let fin_pending = self.fin_queued && !self.fin_sent;
        if self.snd_nxt > data_end || (self.snd_nxt == data_end && !fin_pending) {
            return None;
        }
        // A segment never crosses a boundary the MPTCP layer marked: up to it, a short
        // segment counts as a full one (it cannot grow).
        let run_end = data_end.min(self.next_boundary(self.snd_nxt));
        let avail = run_end - self.snd_nxt;
        let rwnd_avail = (self.snd_una + self.snd_wnd).saturating_sub(self.snd_nxt);
        let len = avail.min(max_payload).min(rwnd_avail).min(cwnd_avail);
        let nothing_in_flight = self.snd_nxt == self.snd_una;
        if avail > 0 {
            if len == 0 {
                return None;
            }
            if len < max_payload && len < avail {
                //= rfc9293#3.8.6.2.1
                //# sender SWS avoidance: send a partial segment only if at least half the max window fits, or nothing is in flight
                let sws_ok = len >= self.max_snd_wnd / 2 && len == rwnd_avail.min(len);
                if !(nothing_in_flight || sws_ok && cwnd_avail > len) {
                    return None;
                }
            }
            //= rfc9293#3.7.4
            //# Nagle: hold a small segment while unacknowledged data is outstanding
            let at_boundary = len == avail && run_end < data_end;
            if self.cfg.nagle
                && len < max_payload
                && !nothing_in_flight
                && !fin_pending
                && !at_boundary
            {
                return None;
            }
        }
        let start = self.snd_nxt;
        let mut end = start + len;
        let mut flags = TcpFlags::ACK;
        if len > 0 && end == data_end {
            flags |= TcpFlags::PSH;
        }
        if fin_pending && end == data_end {
            flags |= TcpFlags::FIN;
            self.fin_sent = true;
            end += 1;
        }
        if len == 0 && flags & TcpFlags::FIN == 0 {
            return None;
        }
        if self.timed.is_none() && !self.ts_enabled && !self.rto_recovery && !self.in_recovery {
            self.timed = Some((end, now));
        }
        self.snd_nxt = end;
        self.high_rxt = self.high_rxt.max(self.snd_una);
        self.bytes_sent += len;
        self.sent_log.on_send(start, end, now, false);
        self.prr_sent(end - start);
        let repr = self.make_repr(now, start, flags);
        self.arm_rto(now);
        self.arm_probe(now);
        Some(Segment {
            repr,
            data: start - 1..start - 1 + len,
            retransmission: false,
            probe: false,
        })
    }

    /// Bytes of the send buffer at stream offsets `r` (clipped to what is still held: the
    /// unacknowledged and unsent bytes).
    pub fn send_slice(&self, r: Range<u64>) -> &[u8] {
        self.send.slice(r.start, r.end)
    }

    /// The payload bytes of a segment returned by [`Tcb::poll_segment`] (call before the next
    /// `handle_segment`, which may free acknowledged bytes).
    pub fn payload(&self, seg: &Segment) -> &[u8] {
        self.send.slice(seg.data.start, seg.data.end)
    }
}
