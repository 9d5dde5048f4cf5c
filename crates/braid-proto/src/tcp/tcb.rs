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
use crate::wire::Payload;
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
    /// A RST answering a segment that the TCB could not take (RFC 9293 §3.10.7): as a
    /// host without the connection would send it, it carries nothing else.
    pub reset_reply: bool,
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

/// Where [`Tcb::handle_segment_into`] may put new in-order bytes instead of the receive
/// buffer: called with their stream offset and the bytes, returns true when it took them.
pub type InOrderSink<'a> = &'a mut dyn FnMut(u64, &[u8]) -> bool;

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
    /// Answers a segment that reached the closed TCB (see [`Segment::reset_reply`]).
    closed: bool,
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
    /// The ACK owed is one RFC 5681 wants at once (for an out-of-order segment, one that
    /// fills a gap, or a duplicate): see [`Tcb::urgent_ack`].
    urgent_ack: bool,
    /// SACK compression (Linux's `tcp_comp_sack_*`): the `rcv_nxt` of the current hole, the
    /// duplicate ACKs sent at once for it, and the out-of-order segments since whose ACK
    /// waited for the end of the batch.
    ooo_acks: (u64, u8, u8),
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
    /// Of them, bytes an in-order sink took without the receive buffer storing them.
    bytes_passed: u64,
    retransmits: u64,
    paws_drops: u64,
    challenge_acks: u64,
    timeouts: u64,
    recoveries: u64,
    hystart: HyStart,
}

#[path = "getters.rs"]
mod getters;
#[path = "input.rs"]
mod input;
#[path = "output.rs"]
mod output;
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
            urgent_ack: false,
            ooo_acks: (0, 0, 0),
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
            bytes_passed: 0,
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

    // ------------------------------------------------------------------ application side

    /// From now on the TCB counts the bytes written and acknowledged but keeps none: the
    /// owner holds them and supplies each segment's payload itself ([`Tcb::payload`] is
    /// empty). An MPTCP subflow's bytes live once, in the connection's data-level buffer.
    /// Only before anything was written.
    pub fn count_send_bytes_only(&mut self) {
        if self.send.is_empty() && !self.send.is_counting() {
            self.send = SendBuffer::counting(self.send.capacity());
        }
    }

    /// The TCB keeps its bytes again (after [`Tcb::count_send_bytes_only`]): `parts` are the
    /// bytes it holds, from SND.UNA on, in order. False (nothing changes) when they are not
    /// as many.
    pub fn keep_send_bytes(&mut self, parts: &[Payload<'_>]) -> bool {
        self.send.keep(parts)
    }

    /// The TCB holds its unacknowledged bytes itself (see [`Tcb::count_send_bytes_only`]).
    pub fn keeps_send_bytes(&self) -> bool {
        !self.send.is_counting()
    }

    /// Queues bytes for sending; returns how many were accepted (0 when the buffer is full
    /// or the connection can no longer send).
    pub fn write(&mut self, data: &[u8]) -> usize {
        self.write_parts(Payload::from(data))
    }

    /// [`Tcb::write`] of the (up to) two runs of a payload taken from another ring buffer
    /// (an MPTCP connection's data-level send buffer), in order.
    pub fn write_parts(&mut self, data: Payload<'_>) -> usize {
        let can = matches!(
            self.state,
            TcpState::SynSent | TcpState::SynReceived | TcpState::Established | TcpState::CloseWait
        ) && !self.fin_queued;
        if !can {
            return 0;
        }
        let n = self.send.write_parts(data);
        if n < data.len() {
            self.want_writable = true;
        }
        n
    }

    /// Copies readable bytes into `buf`.
    pub fn read(&mut self, buf: &mut [u8]) -> usize {
        let p = self.recv.peek(buf.len());
        let n = p.len();
        p.copy_to(buf);
        let n = self.consume(n);
        self.recv.release_if_drained();
        n
    }

    /// Frees the receive buffer when nothing waits in it (see
    /// [`RecvBuffer::release_if_drained`](super::RecvBuffer::release_if_drained)).
    pub fn release_recv_if_drained(&mut self) {
        self.recv.release_if_drained();
    }

    /// Up to `max` readable bytes in place, for a reader that copies them where they go
    /// (an MPTCP connection into its data-level buffer); then [`Tcb::consume`].
    pub fn peek(&self, max: usize) -> Payload<'_> {
        self.recv.peek(max)
    }

    /// Marks `n` bytes read (as [`Tcb::read`] does once it copied them); returns how many.
    pub fn consume(&mut self, n: usize) -> usize {
        let before_wnd = self.rcv_adv.saturating_sub(self.rcv_nxt);
        let n = n.min(self.recv.readable());
        self.recv.consume(n);
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
                closed: false,
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
}
