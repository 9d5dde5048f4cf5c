//! [`MptcpConnection`]: one MPTCP connection at the data level, driving its subflow TCBs.
//!
//! Sans-IO like the rest of the engine: decoded segments in
//! ([`MptcpConnection::handle_segment`]), decoded segments out
//! ([`MptcpConnection::poll_segment`]), timers ([`MptcpConnection::poll_timeout`] /
//! [`MptcpConnection::handle_timeout`]) and the application side
//! ([`MptcpConnection::write`], [`MptcpConnection::read`], [`MptcpConnection::close`]).
//!
//! This first version runs the initial subflow: the MP_CAPABLE handshake (the client repeats
//! MP_CAPABLE until the server's first DSS; the server also completes from the first data's
//! MP_CAPABLE when the third ACK was lost), a DSS with a 64-bit DATA_ACK on every segment and
//! a 64-bit mapping on every data segment, DSS checksums when either side asks, the DATA_FIN
//! close in both directions, and the single-subflow fallbacks of RFC 8684 §3.7 with Linux's
//! choices:
//! - no (valid) MP_CAPABLE on the SYN, the SYN/ACK or the first segment after it;
//! - the client, before the server's first DSS, gets a segment with no MPTCP option;
//! - in-order data without a mapping (a middlebox stripped the options);
//! - a DSS checksum failure: the receiver sends MP_FAIL with the failed mapping's DSN and
//!   delivers the bytes (the subflow acknowledged them); the sender answers with an
//!   infinite mapping on its next data segment; both go on as plain TCP.
//!
//! More subflows (RFC 8684 §3.2): [`MptcpConnection::add_subflow`] (client: MP_JOIN SYN,
//! SYN/ACK HMAC verified, third ACK with the 160-bit HMAC repeated until the peer's DSS
//! shows it arrived) and [`MptcpConnection::accept_join`] (server: SYN/ACK with HMAC and
//! nonce, third-ACK HMAC verified); a failed check resets the subflow with MP_TCPRST.
//! Which subflow carries which bytes is the [`crate::sched::Scheduler`]'s decision
//! ([`MptcpConfig::scheduler`], the kernel's default unless chosen otherwise), taken in
//! rounds on every poll; DATA_ACKs count from any subflow. A subflow whose RTO fired without
//! an acknowledgment since is *stale*: it gets no new data and its bytes not yet DATA_ACKed
//! are reinjected on the others at once, so a dead path costs about one RTO; a subflow that
//! closes has its bytes reinjected the same way.
//!
//! A mapping that contradicts an earlier one (`DSSNotMatching`) or any other invalid mapping
//! resets the subflow, as the brief for this layer asks (Linux falls back instead while the
//! connection has a single subflow; with more subflows it resets, as here).
//!
//! The structure (a subflow table, per-subflow mapping state, a shared data-level send
//! buffer that keeps bytes until DATA_ACKed, [`MptcpConnection::unacked_on`] for
//! reinjection) is the one more subflows plug into.
//!
//! How the layers meet (workarounds for hooks the TCB does not have):
//! - **Receiving** is pull-based: payload stays in the subflow TCB until a mapping covers it
//!   and the connection-level buffer has room; only then is it read out of the TCB
//!   ([`crate::tcp::Tcb::read`]). The window every subflow advertises is the connection's
//!   (`rwnd.rs`): the largest right edge advertised so far (DATA_ACK plus the data-level
//!   buffer's free space, never moved left) minus the DATA_ACK the segment carries
//!   ([`Tcb::set_shared_window`]), so the peer sees one window on all subflows and a
//!   subflow TCB holds no more than that; reads that open it send a window update on every
//!   open subflow. As a sender, a window update on one subflow opens the others'
//!   ([`Tcb::raise_send_window`]), and a data-level window that stays closed is probed
//!   ([`Tcb::probe_window`]) rather than retransmitted.
//! - **Sending**: the scheduler sees each subflow as a [`SubflowView`]; with more than one
//!   usable subflow a subflow's send space is capped at its congestion window plus one DSS
//!   mapping's worth ([`SEND_AHEAD`]), handed over only once that backlog has run down to
//!   half and in whole segments, so bytes are committed to a path about one round trip ahead
//!   (this bounds head-of-line blocking at the receiver and how long a reinjection waits)
//!   in long runs. Each assignment is written into the subflow's TCB and recorded in its
//!   [`TxMap`] as DSS mappings of up to 64 KiB; where a new mapping begins the connection
//!   marks a segment boundary in the TCB ([`Tcb::mark_segment_boundary`]), so no segment,
//!   first transmission or retransmission, straddles two mappings. A zero data-level window
//!   is probed with one MSS on an idle subflow.
//! - **Option space**: a mapping's DSS rides on its first segment and on every
//!   retransmission, which reserve [`DSS_OPTION_SPACE`]; the other segments of the mapping
//!   reserve nothing, or [`ACK_OPTION_SPACE`] for a DATA_ACK once data flows towards us too
//!   (asked per segment through [`Tcb::poll_segment_with`]), so most data segments carry
//!   1448 payload bytes instead of 1420. Pure ACKs reserve [`ACK_OPTION_SPACE`] and keep
//!   room for SACK blocks; SACK blocks give way when a segment without payload carries more
//!   (MP_CAPABLE, a DATA_FIN mapping, MP_FAIL). Nothing is added beyond what the segment was
//!   sized for.
//! - **DATA_FIN** rides on the last data segment when the close came first, otherwise on a
//!   pure ACK (a FIN-only mapping: subflow sequence 0, length 1, like Linux); every pure ACK
//!   carries it until it is DATA_ACKed, and the data-level timer asks for another ACK at each
//!   expiry. The subflows' FINs follow the DATA_ACK of the DATA_FIN (Linux closes a subflow
//!   whose FIN comes first and drops the DATA_FIN on it); in fallback the subflow's FIN is
//!   the DATA_FIN.

use crate::crypto::{dss_checksum_parts, join_ack_hmac, join_synack_hmac};
use crate::error::ConnectionError;
use crate::tcp::{Tcb, TcbParams, TcpConfig, TcpState};
use crate::time::Instant;
use crate::wire::mptcp::{rst_reason, Dss, DssMapping, MpCapable, MptcpOption};
use crate::wire::{Payload, TcpRepr};

use super::dsn::DsnSpace;
use super::handshake::{ack_option_counts, HandshakeState, MpCapableHandshake, Negotiated};
use super::mapping::{tx_mapping, tx_mapping_of, MappingError, RxMap, RxStep, TxMap, TxSegment};
use super::recv::{DataRecv, RecvError};
use super::send::DataSend;
use crate::sched::{Assignment, Reinject, SchedInput, Scheduler, SubflowView};

#[path = "access.rs"]
mod access;
#[path = "addr.rs"]
mod addr;
#[path = "addr_wire.rs"]
mod addr_wire;
#[path = "data_rtx.rs"]
mod data_rtx;
#[path = "info.rs"]
mod info;
#[path = "input.rs"]
mod input;
#[path = "output.rs"]
mod output;
#[path = "rwnd.rs"]
mod rwnd;
pub use addr::{AddrError, AnnouncedAddr, ConnPmEvent, PeerAddr};
pub use info::{MptcpCounters, MptcpInfo, SubflowInfo};

/// Index of a subflow in its connection.
pub type SubflowId = usize;

/// TCP option bytes reserved on every subflow segment after the SYN: a DSS with a 64-bit
/// DATA_ACK and a 64-bit mapping with checksum (28 bytes; MP_CAPABLE form 4 is 24).
pub const DSS_OPTION_SPACE: usize = 28;
/// Option bytes reserved while a subflow has no data to send: a DSS with a 64-bit DATA_ACK
/// (12 bytes), so pure ACKs keep room for two SACK blocks beside the timestamps.
pub const ACK_OPTION_SPACE: usize = 12;
/// TCP option space.
const MAX_OPTION_SPACE: usize = 40;
/// Bytes of the MP_FAIL option.
const MP_FAIL_LEN: usize = 12;
/// Smallest data-level receive buffer: a whole DSS mapping (at most 64 KiB, the size Linux
/// uses) must fit, since a checksummed mapping is verified before any of it is delivered.
pub const MIN_RECV_BUFFER: usize = 64 * 1024;
/// Most scheduling rounds per poll (each places at most one burst per subflow).
const MAX_SCHED_ROUNDS: usize = 64;
/// Largest chunk read out of a subflow at once.
const PULL_CHUNK: usize = 64 * 1024;

/// Configuration of an MPTCP connection.
#[derive(Debug, Clone)]
pub struct MptcpConfig {
    /// The subflows' TCP configuration.
    pub tcp: TcpConfig,
    /// Ask for DSS checksums (the A flag; Linux's `net.mptcp.checksum_enabled`).
    pub checksum: bool,
    /// Data-level send buffer (bytes kept until DATA_ACKed).
    pub send_buffer: usize,
    /// Data-level receive buffer (the receive window shared by all subflows); at least
    /// [`MIN_RECV_BUFFER`].
    pub recv_buffer: usize,
    /// SYN retransmissions that still carry MP_CAPABLE; later ones go without, in case a
    /// middlebox drops MPTCP SYNs (Linux's `net.mptcp.syn_retrans_before_tcp_fallback`,
    /// default 2).
    pub syn_retrans_before_tcp_fallback: u32,
    /// Additional subflows allowed (MP_JOIN, both roles; Linux's path-manager limit
    /// `subflows`, default 2).
    pub max_subflows: usize,
    /// The packet scheduler each connection builds for itself.
    pub scheduler: crate::sched::SchedulerKind,
    /// Time between retransmissions of an ADD_ADDR the peer has not echoed (Linux's
    /// `net.mptcp.add_addr_timeout`, default 120 s).
    pub add_addr_timeout: crate::time::Duration,
    /// Retransmissions of an unechoed ADD_ADDR (Linux's `ADD_ADDR_RETRANS_MAX`, 3).
    pub add_addr_retrans_max: u8,
    /// How long subflows may take to close once both DATA_FINs are acknowledged; those
    /// still open then are reset (Linux's `net.mptcp.close_timeout`, default 60 s).
    pub close_timeout: crate::time::Duration,
}

impl Default for MptcpConfig {
    fn default() -> Self {
        let tcp = TcpConfig::default();
        MptcpConfig {
            send_buffer: tcp.send_buffer,
            recv_buffer: tcp.recv_buffer,
            tcp,
            checksum: false,
            syn_retrans_before_tcp_fallback: 2,
            max_subflows: 2,
            scheduler: crate::sched::SchedulerKind::Default,
            add_addr_timeout: crate::time::Duration::from_secs(120),
            add_addr_retrans_max: 3,
            close_timeout: crate::time::Duration::from_secs(60),
        }
    }
}

/// Why a connection or subflow failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MptcpError {
    /// A received mapping was refused; the subflow was reset.
    #[error("subflow {subflow}: {error}")]
    Mapping {
        subflow: SubflowId,
        error: MappingError,
    },
    /// A DSS checksum failed (MP_FAIL territory); the subflow was reset.
    #[error("subflow {subflow}: DSS checksum failed for DSN {dsn}")]
    Checksum { subflow: SubflowId, dsn: u64 },
    /// Inconsistent DATA_FIN.
    #[error("data level: {0}")]
    Recv(RecvError),
    /// An MP_JOIN HMAC did not verify (or the MP_JOIN option was missing); the subflow was
    /// reset.
    #[error("subflow {subflow}: MP_JOIN authentication failed")]
    JoinAuth { subflow: SubflowId },
}

/// Why a subflow could not be added or accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    /// MPTCP is not (or no longer) running: no keys yet, or fallback to plain TCP.
    #[error("the connection is not an established MPTCP connection")]
    NotMptcp,
    /// The subflow limit is reached.
    #[error("subflow limit reached")]
    Limit,
    /// The SYN carries no MP_JOIN, or one with another token.
    #[error("not an MP_JOIN SYN for this connection")]
    NotJoin,
}

/// Parameters of a new subflow (MP_JOIN, RFC 8684 §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinParams {
    /// Our address id for the subflow's local address.
    pub local_id: u8,
    /// The peer's address id (client side: the one announced for the remote address, 0
    /// for the initial address).
    pub remote_id: u8,
    /// The backup bit.
    pub backup: bool,
    /// Our random MP_JOIN nonce (from the endpoint's RNG).
    pub nonce: u32,
}

/// Where a joined subflow is in the MP_JOIN handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JoinState {
    /// Client: SYN with MP_JOIN sent.
    SynSent,
    /// Client: SYN/ACK verified, third ACK (with the 160-bit HMAC) sent, waiting for the
    /// peer's acknowledgment of it.
    AckSent,
    /// Server: SYN/ACK with the 64-bit HMAC sent, waiting for the third ACK.
    SynReceived,
    /// Data may flow.
    Established,
}

#[derive(Debug, Clone, Copy)]
struct Join {
    state: JoinState,
    local_nonce: u32,
    remote_nonce: u32,
}

fn find_join_syn(repr: &TcpRepr) -> Option<(bool, u8, u32, u32)> {
    repr.options.mptcp.iter().find_map(|o| match *o {
        MptcpOption::MpJoinSyn {
            backup,
            addr_id,
            token,
            nonce,
        } => Some((backup, addr_id, token, nonce)),
        _ => None,
    })
}

/// What happened since the last [`MptcpConnection::take_events`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConnEvents {
    /// The connection is established (as MPTCP, or as plain TCP after a fallback).
    pub established: bool,
    /// New data-level bytes are readable, or the peer's DATA_FIN was reached.
    pub readable: bool,
    /// Send buffer space became available after a write was cut short.
    pub writable: bool,
    /// Every subflow closed.
    pub closed: bool,
}

/// Event bookkeeping: what was reported already.
#[derive(Debug, Default)]
struct Reported {
    established: bool,
    /// DATA_ACK offset at the last report (it moves with every in-order byte and the FIN).
    data_ack: u64,
    want_writable: bool,
    closed: bool,
}

/// Which side opened the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Client,
    Server,
}

/// One subflow: a TCB with its mapping state.
#[derive(Debug)]
struct Subflow {
    tcb: Tcb,
    tx: TxMap,
    rx: RxMap,
    /// Bytes written into the TCB so far (its next stream offset).
    written: u64,
    /// Address ids (0 for the initial subflow) and the backup flag.
    local_id: u8,
    remote_id: u8,
    backup: bool,
    /// The TCB was closed because the DATA_FIN rides on its FIN.
    fin_closed: bool,
    /// Option bytes currently reserved in the TCB.
    reserved: usize,
    /// MP_TCPRST reason for the reset the TCB is about to send.
    rst_reason: Option<u8>,
    /// MP_FAIL (the DSN of the failed mapping) for that reset.
    rst_mp_fail: Option<u64>,
    /// MP_JOIN state (`None` for the initial subflow).
    join: Option<Join>,
    /// The subflow closed or was reset and its unacknowledged data was queued for
    /// reinjection.
    dead: bool,
    /// The subflow stopped making progress (an RTO fired since its last acknowledgment):
    /// no new data goes to it and its unacknowledged data was queued for reinjection.
    stale: bool,
    /// How often the subflow was found stale (the kernel's `stale_count`).
    stale_count: u32,
    // Address signalling and path-manager reporting (see `addr.rs`).
    /// `SubflowEstablished` was reported.
    pm_established: bool,
    /// `SubflowClosed` was reported.
    pm_closed: bool,
    /// Closed on purpose (REMOVE_ADDR, the path manager): not an error.
    pm_closing: bool,
    /// MP_PRIO to send on this subflow.
    prio_tx: Option<bool>,
}

impl Subflow {
    fn new(mut tcb: Tcb, local_id: u8, remote_id: u8, backup: bool, join: Option<Join>) -> Subflow {
        // Its bytes stay in the connection's buffer, once for every subflow (`TxMap` says
        // which data offsets each subflow offset carries).
        tcb.count_send_bytes_only();
        Subflow {
            tcb,
            tx: TxMap::new(),
            rx: RxMap::new(),
            written: 0,
            local_id,
            remote_id,
            backup,
            fin_closed: false,
            reserved: DSS_OPTION_SPACE,
            rst_reason: None,
            rst_mp_fail: None,
            join,
            dead: false,
            stale: false,
            stale_count: 0,
            pm_established: false,
            pm_closed: false,
            pm_closing: false,
            prio_tx: None,
        }
    }

    /// True when the subflow may carry data (the initial one, or a join past its
    /// handshake).
    fn usable(&self) -> bool {
        !self.dead && self.join.is_none_or(|j| j.state == JoinState::Established)
    }
}

/// Payload bytes of a full data segment on `tcb` that reserves `reserve` option bytes
/// beside the timestamps.
fn data_mss(tcb: &Tcb, reserve: usize) -> u64 {
    let ts = if tcb.timestamps_enabled() { 10 } else { 0 };
    let opts = (ts + reserve).div_ceil(4) * 4;
    (tcb.mss().saturating_sub(opts).max(1)) as u64
}

/// The longest DSS mapping to record on `tcb`: whole segments (the first carries the DSS,
/// the others `cont` option bytes) up to [`super::mapping::MAX_MAPPING_LEN`].
fn mapping_len(tcb: &Tcb, cont: usize) -> u64 {
    let max = super::mapping::MAX_MAPPING_LEN;
    let first = data_mss(tcb, DSS_OPTION_SPACE);
    let next = data_mss(tcb, cont);
    if first >= max {
        return max;
    }
    first + (max - first) / next * next
}

/// Bytes to add to a run of `len` bytes recorded behind an open mapping of `open` bytes
/// (0: the run starts a mapping) so that the last mapping it ends in fills whole segments:
/// `first` bytes in the segment that carries the DSS, `next` in each of the others, with
/// mappings split at `max_len` (itself a whole number of segments, see [`mapping_len`]).
fn segment_padding(open: u64, len: u64, max_len: u64, first: u64, next: u64) -> u64 {
    let (first, next, max_len) = (first.max(1), next.max(1), max_len.max(1));
    let total = open + len;
    // The last mapping's length once `record` has split the run at `max_len`.
    let last = match total % max_len {
        0 if total > 0 => return 0,
        r => r,
    };
    let whole = if last <= first {
        first
    } else {
        first + (last - first).div_ceil(next) * next
    };
    whole.min(max_len).saturating_sub(last)
}

/// The shortest data-level retransmission timeout (Linux's `TCP_RTO_MIN`).
pub const DATA_RTX_MIN: crate::time::Duration = crate::time::Duration::from_millis(200);
/// The longest one, backoff included.
pub const DATA_RTX_MAX: crate::time::Duration = crate::time::Duration::from_secs(60);

/// Bytes a subflow may hold queued beyond its congestion window when several subflows
/// share the data (see `MptcpConnection::subflow_room`): one DSS mapping's worth. Measured
/// on `two-paths` (64 MiB): 32 KiB gives 133.4 Mbit/s, 64 KiB 133.7, 96 KiB 132.1.
pub const SEND_AHEAD: u64 = 64 * 1024;

/// An MPTCP connection. See the [module docs](self).
#[derive(Debug)]
pub struct MptcpConnection {
    cfg: MptcpConfig,
    role: Role,
    hs: MpCapableHandshake,
    neg: Option<Negotiated>,
    tx_space: Option<DsnSpace>,
    rx_space: Option<DsnSpace>,
    subflows: Vec<Subflow>,
    send: DataSend,
    recv: DataRecv,
    fallback: bool,
    /// MP_FAIL to put on every segment until the peer answers (DSN of the failed mapping,
    /// or for an echo our receive position).
    mp_fail_tx: Option<u64>,
    /// The peer sent MP_FAIL: the next data segment carries the infinite mapping.
    infinite_tx_pending: bool,
    /// The pending MP_FAIL was put on a segment at least once (counted).
    mp_fail_emitted: bool,
    /// SYNs (first and retransmissions) polled so far.
    syns_sent: u32,
    /// Client: an MP_CAPABLE with both keys (third ACK or first data) went out.
    mpc_ack_sent: bool,
    /// A DSS from the peer was accepted (MPTCP is running in both directions).
    peer_dss_seen: bool,
    error: Option<MptcpError>,
    counters: MptcpCounters,
    reported: Reported,
    /// The application aborted: resets carry MP_FASTCLOSE.
    fastclose: bool,
    /// The peer closed the connection with MP_FASTCLOSE (on a RST or an ACK).
    peer_fastclose: bool,
    /// Data ranges of closed or stale subflows still to be sent again on another subflow.
    reinject: Vec<Reinject>,
    /// The packet scheduler.
    sched: Box<dyn Scheduler>,
    /// Scratch space of the scheduling rounds (kept to avoid allocating per packet).
    views: Vec<SubflowView>,
    assignments: Vec<Assignment>,
    /// Address signalling state (`addr.rs`).
    addr: addr::AddrState,
    /// Option bytes the segment being built may carry (its payload and options fit the
    /// MSS): set by `poll_segment` for `add_options`.
    opt_limit: usize,
    /// The data-level retransmission timer: when it fires with the DATA_ACK still at
    /// `rtx.una`, the first unacknowledged bytes go again on another subflow.
    rtx: DataRtx,
    /// When both DATA_FINs were acknowledged (the subflows' close timeout runs from there).
    data_closed_at: Option<Instant>,
    /// The right edge of the connection-level receive window advertised so far (a data
    /// offset; Linux's `rcv_wnd_sent`): it never moves left (see `rwnd.rs`).
    rcv_wnd_sent: u64,
    /// The most the connection-level window reaches beyond the DATA_ACK (the endpoint's
    /// share of its receive budget; `None`: the buffer's free space alone).
    window_clamp: Option<u64>,
}

/// State of the data-level retransmission timer (see `MptcpConnection::data_rtx`).
#[derive(Debug, Clone, Copy, Default)]
struct DataRtx {
    at: Option<Instant>,
    /// The DATA_ACK when the timer was armed.
    una: u64,
    /// Expiries in a row without progress (the timeout doubles each time).
    backoff: u32,
}

fn find_mpc(repr: &TcpRepr) -> Option<&MpCapable> {
    repr.options.mptcp.iter().find_map(|o| match o {
        MptcpOption::MpCapable(m) => Some(m),
        _ => None,
    })
}

fn find_dss(repr: &TcpRepr) -> Option<&Dss> {
    repr.options.mptcp.iter().find_map(|o| match o {
        MptcpOption::Dss(d) => Some(d),
        _ => None,
    })
}

impl MptcpConnection {
    fn new(cfg: &MptcpConfig, role: Role, hs: MpCapableHandshake, tcb: Tcb) -> Self {
        MptcpConnection {
            cfg: cfg.clone(),
            role,
            hs,
            neg: None,
            tx_space: None,
            rx_space: None,
            subflows: vec![Subflow::new(tcb, 0, 0, false, None)],
            reinject: Vec::new(),
            sched: cfg.scheduler.build(),
            views: Vec::new(),
            assignments: Vec::new(),

            send: DataSend::new(cfg.send_buffer.max(1), 0),
            recv: DataRecv::new(cfg.recv_buffer.max(MIN_RECV_BUFFER)),
            fallback: false,
            mp_fail_tx: None,
            infinite_tx_pending: false,
            mp_fail_emitted: false,
            syns_sent: 0,
            mpc_ack_sent: false,
            peer_dss_seen: false,
            error: None,
            counters: MptcpCounters::default(),
            reported: Reported::default(),
            fastclose: false,
            peer_fastclose: false,
            addr: addr::AddrState::default(),
            opt_limit: MAX_OPTION_SPACE,
            rtx: DataRtx::default(),
            data_closed_at: None,
            rcv_wnd_sent: 0,
            window_clamp: None,
        }
    }

    /// An active open: the first segment polled is the SYN with MP_CAPABLE. `local_key`
    /// comes from [`crate::crypto::generate_key`] (unique token: the endpoint's job).
    pub fn connect(cfg: &MptcpConfig, params: TcbParams, local_key: u64) -> Self {
        let mut tcb = Tcb::connect(&cfg.tcp, params);
        tcb.set_reserved_option_len(DSS_OPTION_SPACE);
        let hs = MpCapableHandshake::client(local_key, cfg.checksum);
        let mut c = MptcpConnection::new(cfg, Role::Client, hs, tcb);
        c.counters.MPCapableSYNTX = 1;
        c
    }

    /// A passive open from a received SYN. Without a usable MP_CAPABLE on the SYN the
    /// connection is plain TCP from the start. `None` when `syn` is not a SYN.
    pub fn accept(
        cfg: &MptcpConfig,
        params: TcbParams,
        now: Instant,
        syn: &TcpRepr,
        local_key: u64,
    ) -> Option<Self> {
        let mut tcb = Tcb::accept(&cfg.tcp, params, now, syn)?;
        match MpCapableHandshake::server(local_key, cfg.checksum, find_mpc(syn)) {
            Ok(hs) => {
                tcb.set_reserved_option_len(DSS_OPTION_SPACE);
                let mut c = MptcpConnection::new(cfg, Role::Server, hs, tcb);
                c.counters.MPCapableSYNRX = 1;
                Some(c)
            }
            Err(reason) => {
                let hs = MpCapableHandshake::plain(local_key, reason);
                let mut c = MptcpConnection::new(cfg, Role::Server, hs, tcb);
                c.enter_fallback();
                Some(c)
            }
        }
    }

    //= rfc8684#3.2
    //= A new subflow joins an established MPTCP connection with MP_JOIN on its SYN: the
    //   peer's token, our random nonce, our address id and the backup bit.
    /// Client side of MP_JOIN: adds a subflow whose first polled segment is an MP_JOIN SYN.
    /// The subflow carries data once the peer acknowledged the third ACK.
    pub fn add_subflow(
        &mut self,
        params: TcbParams,
        join: JoinParams,
    ) -> Result<SubflowId, JoinError> {
        if self.neg.is_none() || self.fallback {
            return Err(JoinError::NotMptcp);
        }
        if self.live_joins() >= self.cfg.max_subflows {
            return Err(JoinError::Limit);
        }
        let mut tcb = Tcb::connect(&self.cfg.tcp, params);
        tcb.set_reserved_option_len(DSS_OPTION_SPACE);
        let j = Join {
            state: JoinState::SynSent,
            local_nonce: join.nonce,
            remote_nonce: 0,
        };
        self.subflows.push(Subflow::new(
            tcb,
            join.local_id,
            join.remote_id,
            join.backup,
            Some(j),
        ));
        self.counters.MPJoinSynTx += 1;
        Ok(self.subflows.len() - 1)
    }

    //= rfc8684#3.2
    //= The responder of MP_JOIN answers with the leftmost 64 bits of its HMAC and its own
    //   nonce; the subflow is usable once the initiator's 160-bit HMAC on the third ACK
    //   verifies.
    /// Server side of MP_JOIN: accepts a received MP_JOIN SYN carrying our token.
    /// `local_id` is our address id of the address the SYN arrived on, `nonce` our random
    /// nonce.
    pub fn accept_join(
        &mut self,
        now: Instant,
        params: TcbParams,
        syn: &TcpRepr,
        local_id: u8,
        nonce: u32,
        local_backup: bool,
    ) -> Result<SubflowId, JoinError> {
        let Some((peer_backup, addr_id, token, remote_nonce)) = find_join_syn(syn) else {
            return Err(JoinError::NotJoin);
        };
        if token != self.local_token() || syn.flags.ack() {
            return Err(JoinError::NotJoin);
        }
        self.counters.MPJoinSynRx += 1;
        if self.neg.is_none() || self.fallback {
            return Err(JoinError::NotMptcp);
        }
        if self.live_joins() >= self.cfg.max_subflows {
            return Err(JoinError::Limit);
        }
        let mut tcb = Tcb::accept(&self.cfg.tcp, params, now, syn).ok_or(JoinError::NotJoin)?;
        tcb.set_reserved_option_len(DSS_OPTION_SPACE);
        let j = Join {
            state: JoinState::SynReceived,
            local_nonce: nonce,
            remote_nonce,
        };
        //= rfc8684#3.2
        //= The B bit of the SYN asks the responder to treat the subflow as a backup; the
        //   responder's own wish goes in its SYN/ACK. Either makes it one here.
        let backup = peer_backup || local_backup;
        self.subflows
            .push(Subflow::new(tcb, local_id, addr_id, backup, Some(j)));
        Ok(self.subflows.len() - 1)
    }

    /// Joined subflows still open.
    fn live_joins(&self) -> usize {
        self.subflows
            .iter()
            .filter(|s| s.join.is_some() && !s.dead && s.tcb.state() != TcpState::Closed)
            .count()
    }

    // ------------------------------------------------------------------ timers

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.subflows
            .iter()
            .filter_map(|s| s.tcb.poll_timeout())
            .chain(self.addr_timeout())
            .chain(self.rtx.at)
            .chain(self.close_deadline())
            .min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.close_deadline().is_some_and(|t| t <= now) {
            for s in &mut self.subflows {
                if !matches!(s.tcb.state(), TcpState::Closed | TcpState::TimeWait) {
                    s.tcb.abort();
                }
            }
        }
        if self.addr_timeout().is_some_and(|t| t <= now) {
            self.addr_handle_timeout(now);
        }
        for s in &mut self.subflows {
            if s.tcb.poll_timeout().is_some_and(|t| t <= now) {
                s.tcb.handle_timeout(now);
            }
        }
        if self.rtx.at.is_some_and(|t| t <= now) {
            self.data_rtx_fired(now);
        }
        self.arm_data_rtx(now);
        self.note_data_closed(now);
    }

    // ------------------------------------------------------------------ input

    fn enter_fallback(&mut self) {
        if self.fallback {
            return;
        }
        self.fallback = true;
        // Nothing MPTCP is sent any more, an MP_FAIL echo not sent yet included.
        self.mp_fail_tx = None;
        for s in &mut self.subflows {
            s.tcb.set_reserved_option_len(0);
            s.reserved = 0;
            // Each subflow's TCP window is its own again.
            s.tcb.set_shared_window(None);
            // Every later subflow byte is the next data byte (after any mapping still held:
            // see `RxMap::set_infinite`).
            s.rx.set_infinite(s.tcb.recv_offset(), self.recv.next_expected());
        }
        // A subflow closed before is the DATA_FIN now, and what the subflows acknowledged
        // before (a FIN acknowledged while MPTCP still ran) counts at the data level.
        if self.send.fin_ready() && self.subflows.iter().any(|s| s.fin_closed) {
            self.send.mark_fin_sent();
        }
        for id in 0..self.subflows.len() {
            self.fallback_acks(id);
        }
    }

    fn on_negotiated(&mut self, n: Negotiated) {
        self.neg = Some(n);
        self.tx_space = Some(DsnSpace::from_idsn(n.local_idsn));
        self.rx_space = Some(DsnSpace::from_idsn(n.remote_idsn));
        if let Some(s) = self.subflows.first() {
            self.send.open_window(s.tcb.send_window());
        }
    }

    fn fail_subflow(&mut self, id: SubflowId, err: MptcpError) {
        if self.error.is_none() {
            self.error = Some(err);
        }
        if let Some(s) = self.subflows.get_mut(id) {
            //= rfc8684#3.6
            //= The reset carries MP_TCPRST with the reason: a DSS checksum failure is middlebox
            //   interference, any other mapping or data-level error is MPTCP-specific.
            s.rst_reason = Some(match err {
                MptcpError::Checksum { .. } => rst_reason::MIDDLEBOX_INTERFERENCE,
                _ => rst_reason::MPTCP_SPECIFIC,
            });
            s.tcb.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::segment_padding;

    #[test]
    fn padding_ends_the_last_mapping_on_a_segment_boundary() {
        let (first, next) = (1420, 1448);
        let max = first + 44 * next;
        // A new mapping of two segments' worth of window: 1420 + 1448 + 28 would leave a
        // 28-byte segment; padded to 1420 + 2 * 1448.
        assert_eq!(segment_padding(0, 2896, max, first, next), 1420);
        // Already whole: nothing to add.
        assert_eq!(segment_padding(0, first, max, first, next), 0);
        assert_eq!(segment_padding(0, first + 3 * next, max, first, next), 0);
        // Less than the first segment: padded to it.
        assert_eq!(segment_padding(0, 100, max, first, next), first - 100);
        // Behind an open mapping of one full first segment, 1000 more bytes need 448.
        assert_eq!(segment_padding(first, 1000, max, first, next), 448);
        // A run split at the longest mapping: only the last piece counts.
        assert_eq!(segment_padding(0, max, max, first, next), 0);
        assert_eq!(segment_padding(0, max + 28, max, first, next), first - 28);
        // 64 KiB from scratch: one full mapping and a 404-byte one, padded to 1420.
        assert_eq!(
            segment_padding(0, 65536, max, first, next),
            first - (65536 - max)
        );
    }
}
