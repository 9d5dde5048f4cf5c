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

use crate::crypto::{dss_checksum, join_ack_hmac, join_synack_hmac};
use crate::error::ConnectionError;
use crate::tcp::{Tcb, TcbParams, TcpConfig, TcpState};
use crate::time::Instant;
use crate::wire::mptcp::{rst_reason, Dss, DssMapping, MpCapable, MptcpOption};
use crate::wire::TcpRepr;

use super::dsn::DsnSpace;
use super::handshake::{ack_option_counts, HandshakeState, MpCapableHandshake, Negotiated};
use super::mapping::{tx_mapping, tx_mapping_of, MappingError, RxMap, RxStep, TxMap, TxSegment};
use super::recv::{DataRecv, RecvError};
use super::send::DataSend;
use crate::sched::{Assignment, Reinject, SchedInput, Scheduler, SubflowView};

#[path = "addr.rs"]
mod addr;
#[path = "data_rtx.rs"]
mod data_rtx;
#[path = "rwnd.rs"]
mod rwnd;
pub use addr::{AddrError, AnnouncedAddr, ConnPmEvent, PeerAddr};

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

/// Counters under the Linux kernel's MPTcpExt MIB names (the ones this layer can see).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(non_snake_case)]
pub struct MptcpCounters {
    pub MPCapableSYNRX: u64,
    pub MPCapableSYNTX: u64,
    pub MPCapableSYNACKRX: u64,
    pub MPCapableACKRX: u64,
    pub MPCapableFallbackACK: u64,
    pub MPCapableFallbackSYNACK: u64,
    pub DSSNotMatching: u64,
    pub DataCsumErr: u64,
    pub InfiniteMapRx: u64,
    pub DuplicateData: u64,
    /// Fallbacks because the MPTCP options vanished after the handshake: in-order data
    /// without a mapping, or a segment without DSS (braid's own counter; Linux shows these
    /// only as the fallback itself).
    pub NoDSSFallback: u64,
    /// SYNs sent without MP_CAPABLE after `syn_retrans_before_tcp_fallback` retransmissions.
    pub MPCapableSYNTXDrop: u64,
    pub MPRstTx: u64,
    pub MPFailTx: u64,
    pub MPFailRx: u64,
    pub InfiniteMapTx: u64,
    pub MPFastcloseTx: u64,
    pub MPFastcloseRx: u64,
    pub MPJoinSynRx: u64,
    pub MPJoinSynAckRx: u64,
    pub MPJoinSynAckHMacFailure: u64,
    pub MPJoinAckRx: u64,
    pub MPJoinAckHMacFailure: u64,
    pub MPJoinSynTx: u64,
    pub MPJoinNoTokenFound: u64,
    /// Subflows found stale (no progress after an RTO) and their data reinjected.
    pub SubflowStale: u64,
    /// Stale subflows that made progress again.
    pub SubflowRecover: u64,
    /// ADD_ADDRs received with a valid HMAC (retransmissions included).
    pub AddAddr: u64,
    /// ADD_ADDRs sent (retransmissions included).
    pub AddAddrTx: u64,
    /// ADD_ADDR echoes received.
    pub EchoAdd: u64,
    /// ADD_ADDR echoes sent.
    pub EchoAddTx: u64,
    /// ADD_ADDRs dropped (wrong or missing HMAC).
    pub AddAddrDrop: u64,
    /// Address ids removed by a received REMOVE_ADDR.
    pub RmAddr: u64,
    /// REMOVE_ADDR options sent.
    pub RmAddrTx: u64,
    /// Subflows closed because their address was removed or the path manager asked.
    pub RmSubflow: u64,
    pub MPPrioRx: u64,
    pub MPPrioTx: u64,
    /// Data-level retransmissions: bytes not DATA_ACKed for a retransmission timeout sent
    /// again on another subflow (Linux's `MPTCPRetrans`).
    pub MPTCPRetrans: u64,
}

impl MptcpCounters {
    /// Every counter with its MIB name, for reports.
    pub fn entries(&self) -> [(&'static str, u64); 38] {
        [
            ("MPCapableSYNRX", self.MPCapableSYNRX),
            ("MPCapableSYNTX", self.MPCapableSYNTX),
            ("MPCapableSYNACKRX", self.MPCapableSYNACKRX),
            ("MPCapableACKRX", self.MPCapableACKRX),
            ("MPCapableFallbackACK", self.MPCapableFallbackACK),
            ("MPCapableFallbackSYNACK", self.MPCapableFallbackSYNACK),
            ("DSSNotMatching", self.DSSNotMatching),
            ("DataCsumErr", self.DataCsumErr),
            ("InfiniteMapRx", self.InfiniteMapRx),
            ("DuplicateData", self.DuplicateData),
            ("NoDSSFallback", self.NoDSSFallback),
            ("MPCapableSYNTXDrop", self.MPCapableSYNTXDrop),
            ("MPRstTx", self.MPRstTx),
            ("MPFailTx", self.MPFailTx),
            ("MPFailRx", self.MPFailRx),
            ("InfiniteMapTx", self.InfiniteMapTx),
            ("MPFastcloseTx", self.MPFastcloseTx),
            ("MPFastcloseRx", self.MPFastcloseRx),
            ("MPJoinSynRx", self.MPJoinSynRx),
            ("MPJoinSynAckRx", self.MPJoinSynAckRx),
            ("MPJoinSynAckHMacFailure", self.MPJoinSynAckHMacFailure),
            ("MPJoinAckRx", self.MPJoinAckRx),
            ("MPJoinAckHMacFailure", self.MPJoinAckHMacFailure),
            ("MPJoinSynTx", self.MPJoinSynTx),
            ("MPJoinNoTokenFound", self.MPJoinNoTokenFound),
            ("SubflowStale", self.SubflowStale),
            ("SubflowRecover", self.SubflowRecover),
            ("AddAddr", self.AddAddr),
            ("AddAddrTx", self.AddAddrTx),
            ("EchoAdd", self.EchoAdd),
            ("EchoAddTx", self.EchoAddTx),
            ("AddAddrDrop", self.AddAddrDrop),
            ("RmAddr", self.RmAddr),
            ("RmAddrTx", self.RmAddrTx),
            ("RmSubflow", self.RmSubflow),
            ("MPPrioRx", self.MPPrioRx),
            ("MPPrioTx", self.MPPrioTx),
            ("MPTCPRetrans", self.MPTCPRetrans),
        ]
    }

    /// Adds `other` field by field.
    pub fn add(&mut self, o: &MptcpCounters) {
        self.MPCapableSYNRX += o.MPCapableSYNRX;
        self.MPCapableSYNTX += o.MPCapableSYNTX;
        self.MPCapableSYNACKRX += o.MPCapableSYNACKRX;
        self.MPCapableACKRX += o.MPCapableACKRX;
        self.MPCapableFallbackACK += o.MPCapableFallbackACK;
        self.MPCapableFallbackSYNACK += o.MPCapableFallbackSYNACK;
        self.DSSNotMatching += o.DSSNotMatching;
        self.DataCsumErr += o.DataCsumErr;
        self.InfiniteMapRx += o.InfiniteMapRx;
        self.DuplicateData += o.DuplicateData;
        self.NoDSSFallback += o.NoDSSFallback;
        self.MPCapableSYNTXDrop += o.MPCapableSYNTXDrop;
        self.MPRstTx += o.MPRstTx;
        self.MPFailTx += o.MPFailTx;
        self.MPFailRx += o.MPFailRx;
        self.InfiniteMapTx += o.InfiniteMapTx;
        self.MPFastcloseTx += o.MPFastcloseTx;
        self.MPFastcloseRx += o.MPFastcloseRx;
        self.MPJoinSynRx += o.MPJoinSynRx;
        self.MPJoinSynAckRx += o.MPJoinSynAckRx;
        self.MPJoinSynAckHMacFailure += o.MPJoinSynAckHMacFailure;
        self.MPJoinAckRx += o.MPJoinAckRx;
        self.MPJoinAckHMacFailure += o.MPJoinAckHMacFailure;
        self.MPJoinSynTx += o.MPJoinSynTx;
        self.MPJoinNoTokenFound += o.MPJoinNoTokenFound;
        self.SubflowStale += o.SubflowStale;
        self.SubflowRecover += o.SubflowRecover;
        self.AddAddr += o.AddAddr;
        self.AddAddrTx += o.AddAddrTx;
        self.EchoAdd += o.EchoAdd;
        self.EchoAddTx += o.EchoAddTx;
        self.AddAddrDrop += o.AddAddrDrop;
        self.RmAddr += o.RmAddr;
        self.RmAddrTx += o.RmAddrTx;
        self.RmSubflow += o.RmSubflow;
        self.MPPrioRx += o.MPPrioRx;
        self.MPPrioTx += o.MPPrioTx;
        self.MPTCPRetrans += o.MPTCPRetrans;
    }
}

/// A snapshot of the connection, after the kernel's `struct mptcp_info` (MPTCP_INFO):
/// the same quantities under the same names, without the `mptcpi_` prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MptcpInfo {
    /// Subflows beyond the initial one (the kernel counts additional subflows).
    pub subflows: u8,
    /// Subflows ever created, the initial one included.
    pub subflows_total: u8,
    /// `MPTCP_INFO_FLAG_FALLBACK` (1) and `MPTCP_INFO_FLAG_REMOTE_KEY_RECEIVED` (2).
    pub flags: u32,
    /// Our token.
    pub token: u32,
    /// DSN of the next byte the application writes (the end of the send buffer).
    pub write_seq: u64,
    /// DSN of the first byte not DATA_ACKed by the peer.
    pub snd_una: u64,
    /// DSN of the next byte expected from the peer (our DATA_ACK).
    pub rcv_nxt: u64,
    /// DSS checksums in use.
    pub csum_enabled: bool,
    /// Retransmitted segments, all subflows.
    pub retransmits: u64,
    /// Data bytes handed to subflows at least once.
    pub bytes_sent: u64,
    /// Data bytes DATA_ACKed by the peer.
    pub bytes_acked: u64,
    /// Data bytes received in order.
    pub bytes_received: u64,
}

impl MptcpInfo {
    pub const FLAG_FALLBACK: u32 = 1;
    pub const FLAG_REMOTE_KEY_RECEIVED: u32 = 2;
}

/// One subflow in a snapshot, after the kernel's MPTCP_FULL_INFO (`struct
/// mptcp_subflow_info` with the subflow's `tcp_info`): ids, flags and TCP state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubflowInfo {
    /// The subflow's index in its connection.
    pub id: SubflowId,
    /// Our and the peer's address ids (0 for the initial subflow's addresses).
    pub local_id: u8,
    pub remote_id: u8,
    /// The backup flag (ours from MP_JOIN or MP_PRIO, or the peer's request).
    pub backup: bool,
    /// The MP_JOIN handshake is over (always for the initial subflow).
    pub established: bool,
    /// No progress since an RTO: no new data, its data reinjected elsewhere.
    pub stale: bool,
    /// Times found stale.
    pub stale_count: u32,
    /// Closed or reset; its data was reinjected.
    pub closed: bool,
    pub state: TcpState,
    pub cwnd: usize,
    pub srtt: Option<crate::time::Duration>,
    pub rto: crate::time::Duration,
    pub mss: usize,
    /// Subflow bytes sent at least once, acknowledged, received in order.
    pub bytes_sent: u64,
    pub bytes_acked: u64,
    pub bytes_received: u64,
    pub retransmits: u64,
    /// Bytes held by the subflow (sent and unacknowledged, or written and unsent).
    pub queued: usize,
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
    fn new(tcb: Tcb, local_id: u8, remote_id: u8, backup: bool, join: Option<Join>) -> Subflow {
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

    /// True when subflow `id` finished its MP_JOIN handshake (always for the initial one).
    pub fn is_subflow_established(&self, id: SubflowId) -> bool {
        self.subflows.get(id).is_some_and(Subflow::usable)
    }

    /// Number of subflows ever created, the initial one included.
    pub fn subflow_count(&self) -> usize {
        self.subflows.len()
    }

    // ------------------------------------------------------------------ getters

    pub fn role(&self) -> Role {
        self.role
    }

    /// Replaces the packet scheduler (takes effect at the next scheduling round; data already
    /// handed to a subflow stays there).
    pub fn set_scheduler(&mut self, sched: Box<dyn Scheduler>) {
        self.sched = sched;
    }

    /// The packet scheduler's name.
    pub fn scheduler_name(&self) -> &'static str {
        self.sched.name()
    }

    /// True while MPTCP is in use (the handshake succeeded and no fallback happened).
    pub fn is_mptcp(&self) -> bool {
        !self.fallback && self.neg.is_some()
    }

    /// True when the connection fell back to plain TCP.
    pub fn is_fallback(&self) -> bool {
        self.fallback
    }

    /// Our token (from our key): what the endpoint files the connection under. On a
    /// collision it draws another key with [`MpCapableHandshake::redraw_key`] through
    /// [`MptcpConnection::handshake_mut`] before the first poll.
    pub fn local_token(&self) -> u32 {
        crate::crypto::key_token(self.hs.local_key())
    }

    /// The keys, tokens and IDSNs once both keys are known.
    pub fn negotiated(&self) -> Option<Negotiated> {
        self.neg
    }

    /// Whether the peer set C on its MP_CAPABLE SYN or SYN/ACK (RFC 8684 §3.1): no subflow
    /// may be opened towards its initial address and port.
    pub fn peer_denies_initial_join(&self) -> bool {
        self.hs.peer_denies_initial_join()
    }

    /// The MP_CAPABLE state machine (e.g. for [`MpCapableHandshake::redraw_key`] by the
    /// endpoint on a token collision, before the first poll).
    pub fn handshake_mut(&mut self) -> &mut MpCapableHandshake {
        &mut self.hs
    }

    /// True when the peer closed the connection with MP_FASTCLOSE (RFC 8684 §3.5): the
    /// connection then ends with [`ConnectionError::FastClosed`].
    pub fn is_fast_closed_by_peer(&self) -> bool {
        self.peer_fastclose
    }

    /// The first error seen: one that ended a subflow, or a DSS checksum failure that made
    /// the connection fall back (see [`MptcpCounters::MPFailTx`]).
    pub fn error(&self) -> Option<MptcpError> {
        self.error
    }

    pub fn counters(&self) -> MptcpCounters {
        self.counters
    }

    /// The TCB of a subflow.
    pub fn subflow(&self, id: SubflowId) -> Option<&Tcb> {
        self.subflows.get(id).map(|s| &s.tcb)
    }

    /// Data ranges handed to a subflow and not yet acknowledged by it (what a scheduler
    /// would reinject elsewhere), clipped to what the connection has not DATA_ACKed.
    pub fn unacked_on(&self, id: SubflowId) -> Vec<core::ops::Range<u64>> {
        let una = self.send.una();
        self.subflows.get(id).map_or_else(Vec::new, |s| {
            s.tx.data_ranges_from(s.tcb.snd_una_offset())
                .filter(|r| r.end > una)
                .map(|r| r.start.max(una)..r.end)
                .collect()
        })
    }

    /// The data-level send state (data_una, data_nxt, the peer's window, unacked ranges).
    pub fn data_send(&self) -> &DataSend {
        &self.send
    }

    /// Address ids (local, remote) and backup flag of a subflow.
    pub fn subflow_info(&self, id: SubflowId) -> Option<(u8, u8, bool)> {
        self.subflows
            .get(id)
            .map(|s| (s.local_id, s.remote_id, s.backup))
    }

    /// True once the DATA_FIN was reached and every byte read (EOF).
    pub fn is_read_finished(&self) -> bool {
        self.recv.is_finished()
    }

    /// True when our DATA_FIN was acknowledged.
    pub fn is_write_finished(&self) -> bool {
        self.send.fin_acked()
    }

    /// True when every subflow is closed (or in TIME-WAIT).
    pub fn is_closed(&self) -> bool {
        self.subflows
            .iter()
            .all(|s| matches!(s.tcb.state(), TcpState::Closed | TcpState::TimeWait))
    }

    /// Bytes readable now.
    pub fn readable(&self) -> usize {
        self.recv.readable()
    }

    /// Space for [`MptcpConnection::write`].
    pub fn send_capacity(&self) -> usize {
        self.send.capacity()
    }

    // ------------------------------------------------------------------ application side

    /// Queues bytes at the data level; returns how many were taken.
    pub fn write(&mut self, data: &[u8]) -> usize {
        let dead = self
            .subflows
            .iter()
            .all(|s| s.tcb.state() == TcpState::Closed && s.tcb.error().is_some());
        if dead || (self.error.is_some() && self.is_closed()) {
            return 0;
        }
        let n = self.send.write(data);
        if n < data.len() {
            self.reported.want_writable = true;
        }
        n
    }

    /// Every subflow, the MPTCP_FULL_INFO-style view (closed ones included, flagged).
    pub fn subflow_infos(&self) -> Vec<SubflowInfo> {
        self.subflows
            .iter()
            .enumerate()
            .map(|(id, s)| SubflowInfo {
                id,
                local_id: s.local_id,
                remote_id: s.remote_id,
                backup: s.backup,
                established: s.join.is_none_or(|j| j.state == JoinState::Established),
                stale: s.stale,
                stale_count: s.stale_count,
                closed: s.dead || s.tcb.state() == TcpState::Closed,
                state: s.tcb.state(),
                cwnd: s.tcb.cwnd(),
                srtt: s.tcb.rtt(),
                rto: s.tcb.rto(),
                mss: s.tcb.effective_mss(),
                bytes_sent: s.tcb.bytes_sent(),
                bytes_acked: s.tcb.bytes_acked(),
                bytes_received: s.tcb.bytes_received(),
                retransmits: s.tcb.retransmits(),
                queued: s.tcb.send_queued(),
            })
            .collect()
    }

    /// The MPTCP_INFO-style snapshot of the connection.
    pub fn info(&self) -> MptcpInfo {
        let n = self.subflows.len();
        let mut flags = 0;
        if self.fallback {
            flags |= MptcpInfo::FLAG_FALLBACK;
        }
        if self.neg.is_some() {
            flags |= MptcpInfo::FLAG_REMOTE_KEY_RECEIVED;
        }
        let dsn_tx = |off: u64| self.tx_space.map_or(0, |sp| sp.dsn(off));
        MptcpInfo {
            subflows: u8::try_from(n.saturating_sub(1)).unwrap_or(u8::MAX),
            subflows_total: u8::try_from(n).unwrap_or(u8::MAX),
            flags,
            token: self.local_token(),
            write_seq: dsn_tx(self.send.end()),
            snd_una: dsn_tx(self.send.una()),
            rcv_nxt: self.rx_space.map_or(0, |sp| sp.dsn(self.recv.data_ack())),
            csum_enabled: self.neg.is_some_and(|n| n.checksum) && !self.fallback,
            retransmits: self.subflows.iter().map(|s| s.tcb.retransmits()).sum(),
            bytes_sent: self.send.nxt(),
            bytes_acked: self.send.una().min(self.send.end()),
            bytes_received: self.recv.next_expected(),
        }
    }

    /// Events since the last call (derived from the state, so none is lost or repeated).
    pub fn take_events(&mut self) -> ConnEvents {
        self.pm_sync();
        let mut ev = ConnEvents::default();
        let synced = self
            .subflows
            .first()
            .is_some_and(|s| s.tcb.state().is_synchronized());
        if !self.reported.established && synced && (self.neg.is_some() || self.fallback) {
            self.reported.established = true;
            ev.established = true;
        }
        let ack = self.recv.data_ack();
        if ack != self.reported.data_ack {
            self.reported.data_ack = ack;
            ev.readable = true;
        }
        if self.reported.want_writable && self.send.wakes_writer() {
            self.reported.want_writable = false;
            ev.writable = true;
        }
        if !self.reported.closed && self.is_closed() {
            self.reported.closed = true;
            ev.closed = true;
        }
        for s in &mut self.subflows {
            s.tcb.take_events();
        }
        ev
    }

    /// Reads in-order data-level bytes.
    pub fn read(&mut self, buf: &mut [u8]) -> usize {
        let n = self.recv.read(buf);
        for id in 0..self.subflows.len() {
            self.pull(id);
        }
        if n > 0 {
            self.window_update();
        }
        n
    }

    /// Closes the sending direction: the DATA_FIN follows the data written.
    pub fn close(&mut self) {
        self.send.close();
        if self.neg.is_none() && !self.fallback {
            // Still in the handshake: closing before keys is closing the subflow.
            if self.send.end() == 0 {
                for s in &mut self.subflows {
                    s.tcb.close();
                    s.fin_closed = true;
                }
            }
        }
    }

    /// Aborts the connection: every subflow is reset at once, the resets carrying
    /// MP_FASTCLOSE with the peer's key while MPTCP is in use.
    pub fn abort(&mut self) {
        self.fast_close(ConnectionError::Aborted);
    }

    //= rfc8684#3.5
    //= MP_FASTCLOSE on a RST on every subflow closes the whole connection at once
    //   (option B of §3.5, as Linux does).
    /// Resets every subflow, the resets carrying MP_FASTCLOSE while MPTCP is in use; each
    /// subflow closes with `error`.
    fn fast_close(&mut self, error: ConnectionError) {
        self.fastclose = true;
        for s in &mut self.subflows {
            s.tcb.abort_with(error);
        }
    }

    /// True while any subflow has a reset still to send.
    pub fn has_pending_output(&self) -> bool {
        self.subflows.iter().any(|s| s.tcb.has_pending_output())
    }

    // ------------------------------------------------------------------ timers

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.subflows
            .iter()
            .filter_map(|s| s.tcb.poll_timeout())
            .chain(self.addr_timeout())
            .chain(self.rtx.at)
            .min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
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

    /// Processes one received segment of subflow `id` (decoded header and payload).
    pub fn handle_segment(&mut self, now: Instant, id: SubflowId, repr: &TcpRepr, payload: &[u8]) {
        let Some(s) = self.subflows.get_mut(id) else {
            return;
        };
        let before = s.tcb.state();
        let out = s.tcb.handle_segment(now, repr, payload);
        let after = s.tcb.state();
        //= rfc8684#3.5
        //= A RST with MP_FASTCLOSE carrying our key ends the connection at once (counted
        //  when the RST was accepted).
        let key = self.hs.local_key();
        let fastclose = !self.fallback
            && repr.options.mptcp.iter().any(
                |o| matches!(o, MptcpOption::MpFastclose { receiver_key } if *receiver_key == key),
            );
        if fastclose && repr.flags.rst() && before != after && after == TcpState::Closed {
            self.counters.MPFastcloseRx += 1;
            self.peer_fastclose = true;
        }
        //= rfc8684#3.5.1
        //= MP_FASTCLOSE with our key on an acceptable ACK (not a RST): answer with a RST on
        //   every subflow and close the whole connection as reset by the peer.
        if fastclose && !repr.flags.rst() && out.accepted && after != TcpState::Closed {
            self.counters.MPFastcloseRx += 1;
            self.peer_fastclose = true;
            self.fast_close(ConnectionError::FastClosed);
            return;
        }

        if let Some(j) = s.join.filter(|j| j.state != JoinState::Established) {
            if !self.join_input(id, j, before, after, out.accepted, repr) {
                return;
            }
        }
        if self.fallback {
            self.after_input(id);
            return;
        }
        let mpc = find_mpc(repr).copied();
        let dss = find_dss(repr).copied();

        // The handshake (of the initial subflow).
        match self.hs.state() {
            _ if id != 0 => {}
            HandshakeState::ClientSynSent
                if before == TcpState::SynSent && after.is_synchronized() =>
            {
                match self.hs.on_syn_ack(mpc.as_ref()) {
                    Ok(n) => {
                        self.counters.MPCapableSYNACKRX += 1;
                        self.on_negotiated(n);
                    }
                    Err(_) => {
                        self.counters.MPCapableFallbackSYNACK += 1;
                        self.enter_fallback();
                    }
                }
            }
            HandshakeState::ServerSynReceived if out.accepted && !repr.flags.syn() => {
                if mpc.is_some() {
                    match self.hs.on_ack(mpc.as_ref(), !payload.is_empty()) {
                        Ok(Some(n)) => {
                            self.counters.MPCapableACKRX += 1;
                            self.on_negotiated(n);
                            //= rfc8684#3.1
                            //= The initiator is sure MPTCP runs once it sees a DSS: answer
                            //   the third ACK with a DATA_ACK at once, so an idle client
                            //   stops repeating MP_CAPABLE and can signal addresses.
                            if let Some(s) = self.subflows.first_mut() {
                                s.tcb.request_ack();
                            }
                        }
                        Ok(None) => {}
                        Err(_) => {
                            self.counters.MPCapableFallbackACK += 1;
                            self.enter_fallback();
                        }
                    }
                } else if !repr.flags.rst() {
                    self.counters.MPCapableFallbackACK += 1;
                    self.hs.on_missing_option();
                    self.enter_fallback();
                }
            }
            //= rfc8684#3.7
            //= Until the initiator sees a DSS from the listener it may still fall back: a
            //   segment with no MPTCP option at all shows the options are not getting
            //   through (Linux: check_fully_established; an ADD_ADDR-only ACK is MPTCP).
            HandshakeState::ClientUnconfirmed
                if out.accepted
                    && !repr.flags.syn()
                    && !repr.flags.rst()
                    && repr.options.mptcp.is_empty() =>
            {
                self.counters.MPCapableFallbackACK += 1;
                self.enter_fallback();
            }
            _ => {}
        }
        //= rfc8684#3.7
        //= Once MPTCP runs, every pure ACK of the peer carries a DSS (Linux and braid always
        //   add the DATA_ACK); one without any MPTCP option means the options are being
        //   stripped, and the only subflow falls back (its data then maps one-to-one). A data
        //   segment may lack the DSS inside a mapping that covers several segments: in-order
        //   data that no mapping covers is the sign there (see `pull`). Once both FINs are
        //   out, the peer's TCP may answer from TIME-WAIT, where Linux adds no MPTCP option:
        //   not a sign (nothing is left to map either). A half-closed peer still sends DSS.
        let both_closed = self.subflows.get(id).is_some_and(|s| {
            matches!(
                s.tcb.state(),
                TcpState::LastAck | TcpState::Closing | TcpState::TimeWait | TcpState::Closed
            )
        });
        if !self.fallback
            && out.accepted
            && self.peer_dss_seen
            && !both_closed
            && self.subflows.len() == 1
            && payload.is_empty()
            && !repr.flags.syn()
            && !repr.flags.rst()
            && !repr.flags.fin()
            && repr.options.mptcp.is_empty()
        {
            self.counters.NoDSSFallback += 1;
            self.enter_fallback();
        }
        if self.fallback || !out.accepted {
            self.after_input(id);
            return;
        }
        let (Some(tx_space), Some(rx_space)) = (self.tx_space, self.rx_space) else {
            self.after_input(id);
            return;
        };

        // MP_CAPABLE with data (form 4): the implicit mapping DSN = IDSN + 1, subflow seq 1.
        if let Some(m) = mpc.filter(|m| m.data_len.is_some() && ack_option_counts(m, true)) {
            if self.role == Role::Server {
                let wire = crate::wire::mptcp::DssMapping {
                    dsn: rx_space.dsn(0),
                    dsn_64: true,
                    subflow_seq: 1,
                    data_len: m.data_len.unwrap_or(0),
                    checksum: m.checksum,
                };
                if !wire.is_infinite() {
                    self.apply_mapping(id, &rx_space, &wire, false);
                }
            }
        }

        //= rfc8684#3.7
        //= MP_FAIL received: answer with MP_FAIL and send an infinite mapping on the next data
        //   segment, then fall back (Linux echoes its own receive position).
        let mp_fail = repr
            .options
            .mptcp
            .iter()
            .any(|o| matches!(o, MptcpOption::MpFail { .. }));
        if mp_fail && self.subflows.len() == 1 && !self.infinite_tx_pending {
            self.counters.MPFailRx += 1;
            self.infinite_tx_pending = true;
            if self.mp_fail_tx.is_none() {
                self.mp_fail_tx = Some(rx_space.dsn(self.recv.data_ack()));
                self.mp_fail_emitted = false;
            }
        }

        self.addr_input(id, repr);
        if let Some(d) = dss {
            self.peer_dss_seen = true;
            if self.role == Role::Client {
                self.hs.on_peer_dss();
            }
            //= rfc8684#3.3.2
            //= A DATA_ACK (32 or 64 bits) acknowledges data at the connection level.
            if let Some(ack) = d.data_ack {
                if let Some(off) = tx_space.offset(ack, d.data_ack_64, self.send.una()) {
                    let shift = self.subflows.get(id).map_or(0, |s| s.tcb.window_scales().1);
                    let wnd = u64::from(repr.window) << shift;
                    self.send.on_data_ack(off, wnd);
                }
            }
            if let Some(m) = d.mapping {
                if m.is_infinite() {
                    self.counters.InfiniteMapRx += 1;
                    if let Some(off) = rx_space.offset(m.dsn, m.dsn_64, self.recv.next_expected()) {
                        if let Some(s) = self.subflows.get_mut(id) {
                            // The mapping starts at its subflow sequence number (Linux sends
                            // the segment's own); 0 means "from this segment's payload".
                            let here = s.tcb.recv_offset();
                            let at = if m.subflow_seq != 0 {
                                let rel =
                                    super::dsn::expand_32(m.subflow_seq, here.wrapping_add(1));
                                let at = rel.wrapping_sub(1);
                                // Only the bytes not delivered yet can be remapped.
                                if at < here || at - here > u64::from(u32::MAX >> 1) {
                                    here
                                } else {
                                    at
                                }
                            } else if !out.data.is_empty() {
                                out.data.start
                            } else {
                                s.tcb.recv_offset()
                            };
                            s.rx.set_infinite(at, off);
                        }
                    }
                    self.mp_fail_tx = None;
                    self.enter_fallback();
                } else {
                    self.apply_mapping(id, &rx_space, &m, d.data_fin);
                }
            }
        }
        self.after_input(id);
    }

    /// The MP_JOIN handshake of subflow `id` (in state `j`); true once data may flow on it
    /// and the rest of the segment is to be processed.
    fn join_input(
        &mut self,
        id: SubflowId,
        mut j: Join,
        before: TcpState,
        after: TcpState,
        accepted: bool,
        repr: &TcpRepr,
    ) -> bool {
        let Some(n) = self.neg else {
            return false;
        };
        let mut auth_failed = false;
        match j.state {
            JoinState::SynSent if before == TcpState::SynSent && after.is_synchronized() => {
                let synack = repr.options.mptcp.iter().find_map(|o| match *o {
                    MptcpOption::MpJoinSynAck {
                        backup,
                        addr_id,
                        hmac,
                        nonce,
                    } => Some((backup, addr_id, hmac, nonce)),
                    _ => None,
                });
                //= rfc8684#3.2
                //= The initiator verifies the SYN/ACK's truncated HMAC; a SYN/ACK without a
                //   valid one gets a reset (a join never falls back).
                match synack {
                    Some((peer_backup, addr_id, hmac, nonce))
                        if hmac
                            == join_synack_hmac(
                                n.local_key,
                                n.remote_key,
                                j.local_nonce,
                                nonce,
                            ) =>
                    {
                        self.counters.MPJoinSynAckRx += 1;
                        j.remote_nonce = nonce;
                        j.state = JoinState::AckSent;
                        if let Some(s) = self.subflows.get_mut(id) {
                            s.remote_id = addr_id;
                            //= rfc8684#3.2
                            //= The responder's B bit asks us to treat the subflow as a
                            //   backup too.
                            s.backup |= peer_backup;
                        }
                    }
                    _ => {
                        self.counters.MPJoinSynAckHMacFailure += 1;
                        auth_failed = true;
                    }
                }
            }
            JoinState::SynReceived
                if before == TcpState::SynReceived
                    && after.is_synchronized()
                    && !repr.flags.syn()
                    && !repr.flags.rst() =>
            {
                let hmac = repr.options.mptcp.iter().find_map(|o| match *o {
                    MptcpOption::MpJoinAck { hmac } => Some(hmac),
                    _ => None,
                });
                //= rfc8684#3.2
                //= The responder verifies the third ACK's 160-bit HMAC before the subflow is
                //   used; a missing or wrong one resets the subflow.
                let want = join_ack_hmac(n.remote_key, n.local_key, j.remote_nonce, j.local_nonce);
                if hmac == Some(want) {
                    self.counters.MPJoinAckRx += 1;
                    j.state = JoinState::Established;
                    // The fourth ACK: tells the initiator its third ACK arrived.
                    if let Some(s) = self.subflows.get_mut(id) {
                        s.tcb.request_ack();
                    }
                } else {
                    self.counters.MPJoinAckHMacFailure += 1;
                    auth_failed = true;
                }
            }
            //= rfc8684#3.2
            //= The initiator sends data only once the responder acknowledged the third ACK:
            //   any segment of the responder with a DSS after it shows that.
            JoinState::AckSent
                if accepted
                    && !repr.flags.syn()
                    && !repr.flags.rst()
                    && find_dss(repr).is_some() =>
            {
                j.state = JoinState::Established;
            }
            _ => {}
        }
        let Some(s) = self.subflows.get_mut(id) else {
            return false;
        };
        if auth_failed {
            //= rfc8684#3.6
            //= The reset of a refused join carries MP_TCPRST (MPTCP-specific error, as Linux).
            s.rst_reason = Some(rst_reason::MPTCP_SPECIFIC);
            s.tcb.abort();
            return false;
        }
        s.join = Some(j);
        j.state == JoinState::Established
    }

    fn apply_mapping(
        &mut self,
        id: SubflowId,
        rx_space: &DsnSpace,
        wire: &crate::wire::mptcp::DssMapping,
        data_fin: bool,
    ) {
        let Some(s) = self.subflows.get_mut(id) else {
            return;
        };
        let consumed = s.tcb.recv_offset();
        let max_len = self.cfg.tcp.recv_buffer as u64;
        let res = RxMap::decode(
            rx_space,
            wire,
            data_fin,
            consumed,
            self.recv.next_expected(),
        )
        .and_then(|m| s.rx.add(m, consumed, max_len).map(|()| m));
        match res {
            Ok(m) => {
                if m.fin {
                    if let Err(e) = self.recv.set_fin(m.data + m.len) {
                        self.fail_subflow(id, MptcpError::Recv(e));
                    } else {
                        //= rfc8684#3.3.3
                        //= A DATA_FIN is acknowledged with a DATA_ACK. Linux sends it on a
                        //   pure ACK when it has no data, which TCP alone would not answer,
                        //   and retransmits it until acknowledged: answer every copy.
                        s.tcb.request_ack();
                    }
                }
            }
            Err(error) => {
                if error == MappingError::NotMatching {
                    self.counters.DSSNotMatching += 1;
                }
                self.fail_subflow(id, MptcpError::Mapping { subflow: id, error });
            }
        }
    }

    fn after_input(&mut self, id: SubflowId) {
        self.pull(id);
        if self.fallback {
            self.fallback_acks(id);
        }
    }

    /// In fallback the subflow's acknowledgments are the data-level ones, and its FIN the
    /// DATA_FIN.
    fn fallback_acks(&mut self, id: SubflowId) {
        let Some(s) = self.subflows.get(id) else {
            return;
        };
        let una = s.tcb.snd_una_offset();
        let data = if una >= s.written {
            Some(self.send.nxt())
        } else {
            s.tx.lookup(una, 1).map(|(d, _)| d)
        };
        let fin_acked = s.fin_closed && s.tcb.state() != TcpState::FinWait1 && {
            matches!(
                s.tcb.state(),
                TcpState::FinWait2 | TcpState::TimeWait | TcpState::Closed
            )
        };
        let read_finished = s.tcb.is_read_finished();
        if let Some(d) = data {
            self.send.on_data_ack(d, u64::MAX >> 2);
            if fin_acked && self.send.fin_sent() {
                self.send.on_data_ack(d + 1, 0);
            }
        }
        if read_finished {
            let at = self.recv.next_expected();
            if let Err(e) = self.recv.set_fin(at) {
                self.fail_subflow(id, MptcpError::Recv(e));
            }
        }
    }

    /// Moves mapped, in-order subflow data into the data-level buffer as room allows.
    fn pull(&mut self, id: SubflowId) {
        let checksum = self.neg.is_some_and(|n| n.checksum) && !self.fallback;
        loop {
            let Some(s) = self.subflows.get_mut(id) else {
                return;
            };
            let sub = s.tcb.recv_offset();
            let readable = s.tcb.readable() as u64;
            let step = s.rx.step(sub, readable);
            if step == RxStep::Unmapped && readable > 0 && !self.fallback {
                //= rfc8684#3.7
                //= In-order data without a DSS mapping means a middlebox dropped the options:
                //   with a single subflow the connection falls back to plain TCP (Linux:
                //   MAPPING_NODSS with infinite fallback allowed), the data being the next
                //   data-level bytes.
                if self.subflows.len() == 1 {
                    self.counters.NoDSSFallback += 1;
                    self.enter_fallback();
                    continue;
                }
                break;
            }
            let RxStep::Deliver { data, len, mapping } = step else {
                break;
            };
            let right = self.recv.right_edge();
            let take = if mapping.is_some() {
                if data + len > right {
                    break;
                }
                len
            } else {
                len.min(right.saturating_sub(data)).min(PULL_CHUNK as u64)
            };
            if take == 0 {
                break;
            }
            let mut buf = vec![0u8; take as usize];
            let n = s.tcb.read(&mut buf);
            buf.truncate(n);
            if n == 0 {
                break;
            }
            if let Some(m) = mapping.filter(|_| checksum) {
                if !RxMap::verify(&m, &buf) {
                    self.counters.DataCsumErr += 1;
                    if self.subflows.len() > 1 {
                        //= rfc8684#3.7
                        //= With more than one subflow, a checksum failure resets the affected
                        //   subflow and the RST carries MP_FAIL with the failed mapping's DSN;
                        //   the data is discarded (never delivered) and the sender reinjects
                        //   it on another subflow (Linux: MPTCP_RST_EMIDDLEBOX + MP_FAIL).
                        if let Some(s) = self.subflows.get_mut(id) {
                            s.rst_mp_fail = Some(m.dsn);
                        }
                        self.fail_subflow(
                            id,
                            MptcpError::Checksum {
                                subflow: id,
                                dsn: m.dsn,
                            },
                        );
                        return;
                    }
                    //= rfc8684#3.7
                    //= On the only subflow, the receiver sends MP_FAIL with the DSN of the
                    //   failed mapping and the sender answers with an infinite mapping: the
                    //   connection continues as plain TCP. Like Linux, the data (already
                    //   acknowledged by the subflow) is delivered.
                    if self.mp_fail_tx.is_none() && !self.infinite_tx_pending {
                        self.mp_fail_tx = Some(m.dsn);
                        self.mp_fail_emitted = false;
                    }
                    if self.error.is_none() {
                        self.error = Some(MptcpError::Checksum {
                            subflow: id,
                            dsn: m.dsn,
                        });
                    }
                }
            }
            if data + (n as u64) <= self.recv.next_expected() {
                self.counters.DuplicateData += 1;
            }
            self.recv.insert(data, &buf);
        }
    }

    // ------------------------------------------------------------------ output

    /// Data ranges handed to subflow `s` and not yet DATA_ACKed, as reinjection candidates.
    fn stuck_on(s: &Subflow, id: SubflowId, una: u64, from_sub: u64) -> Vec<Reinject> {
        s.tx.data_ranges_from(from_sub)
            .filter(|r| r.end > una)
            .map(|r| Reinject {
                range: r.start.max(una)..r.end,
                from: id,
            })
            .collect()
    }

    /// Marks closed subflows dead and stale subflows stale, queueing their data not yet
    /// DATA_ACKed for reinjection on the others; a stale subflow that makes progress again
    /// recovers.
    fn reap(&mut self) {
        let una = self.send.una();
        let usable = self.subflows.iter().filter(|s| s.usable()).count();
        for id in 0..self.subflows.len() {
            let Some(s) = self.subflows.get_mut(id) else {
                continue;
            };
            if !s.dead && s.tcb.state() == TcpState::Closed {
                s.dead = true;
                //= rfc8684#3.3.6
                //= Data sent on a subflow that fails and not yet DATA_ACKed is sent again on
                //   another subflow (the DATA_ACK, not the subflow ACK, proves delivery).
                let stuck = Self::stuck_on(s, id, una, 0);
                self.reinject.extend(stuck);
                continue;
            }
            if s.dead || !s.usable() || self.fallback {
                continue;
            }
            //= rfc8684#3.3.6
            //= A subflow that stalled (an RTO without an acknowledgment since, or unanswered
            //   zero-window probes with data waiting) is stale: it gets no new data and what
            //   it holds beyond the DATA_ACK is reinjected on the others, so a dead path costs
            //   about one RTO (Linux: mptcp_subflow_get_retrans and the stale subflow logic
            //   of the in-kernel path manager).
            let stale = s.tcb.is_stalled();
            if stale && !s.stale && usable > 1 {
                s.stale = true;
                s.stale_count += 1;
                self.counters.SubflowStale += 1;
                // Everything it carried that is not DATA_ACKed, also what its peer
                // acknowledged there: a peer may hold such bytes in the subflow without
                // having delivered them (Linux does when its receive buffer is full), and
                // with the path dead they would never come out.
                let stuck = Self::stuck_on(s, id, una, 0);
                self.reinject.extend(stuck);
            } else if !stale && s.stale {
                s.stale = false;
                self.counters.SubflowRecover += 1;
            }
        }
        self.reinject.retain_mut(|r| {
            r.range.start = r.range.start.max(una);
            r.range.start < r.range.end
        });
        //= rfc8684#3.3.3
        //= Once the DATA_FIN is acknowledged every byte is delivered: a stale subflow, which
        //   cannot complete its FIN exchange, is reset rather than left to time out (Linux
        //   resets the subflows that linger after the MPTCP-level close).
        if self.send.fin_acked() {
            for s in &mut self.subflows {
                if s.stale && !s.dead && s.tcb.state() != TcpState::Closed {
                    s.tcb.abort();
                }
            }
        }
    }

    /// A subflow that may carry data now.
    fn open_for_data(s: &Subflow) -> bool {
        s.usable() && !s.fin_closed
    }

    /// Hands data-level bytes to the subflows as the scheduler decides: rounds of
    /// [`Scheduler::schedule`] until it assigns nothing (bounded). With more than one
    /// usable subflow each subflow's queue is capped at its congestion window, so data is
    /// committed to a path only about one round trip ahead (less head-of-line blocking,
    /// and reinjections wait behind at most that).
    fn schedule(&mut self) {
        if self.neg.is_none() && !self.fallback {
            return;
        }
        let usable = self
            .subflows
            .iter()
            .filter(|s| Self::open_for_data(s))
            .count();
        let multi = usable > 1;
        let cont = self.continuation_option_space().unwrap_or(DSS_OPTION_SPACE);
        for _ in 0..MAX_SCHED_ROUNDS {
            let window_new = self.send.unsent().min(self.send.window_left());
            if window_new == 0 && self.reinject.is_empty() {
                break;
            }
            self.views.clear();
            for (id, s) in self.subflows.iter().enumerate() {
                let open = Self::open_for_data(s) && !s.dead;
                let mut v =
                    SubflowView::from_tcb(id, &s.tcb, open, s.backup, s.stale, s.stale_count);
                if multi {
                    v.send_space = v.send_space.min(Self::subflow_room(&s.tcb, &v, cont));
                    v.mss = data_mss(&s.tcb, DSS_OPTION_SPACE);
                }
                self.views.push(v);
            }
            let nxt = self.send.nxt();
            let input = SchedInput {
                subflows: &self.views,
                new_data: nxt..nxt + window_new,
                reinject: &self.reinject,
                send_window: self.send.right_edge().saturating_sub(self.send.una()),
                stream_end: self.send.fin(),
            };
            self.assignments.clear();
            self.sched.schedule(&input, &mut self.assignments);
            if self.assignments.is_empty() {
                break;
            }
            let mut progress = false;
            let assignments = core::mem::take(&mut self.assignments);
            for a in &assignments {
                progress |= self.apply(a);
            }
            self.assignments = assignments;
            if !progress {
                break;
            }
        }
        self.window_probe();
    }

    /// How much new data subflow `v` may take now when several subflows share the data:
    /// enough to keep its congestion window full plus at most [`SEND_AHEAD`] bytes queued
    /// behind it, handed over only once that queue has run down to half, so that each
    /// assignment is one long DSS mapping (most of whose segments carry no DSS) rather than
    /// the two segments an ACK frees. Rounded to whole segments (a mapping's first one
    /// carries the DSS, the others `cont` option bytes), as a run never shares a segment
    /// with the next one and a remainder would go as a short segment.
    fn subflow_room(tcb: &Tcb, v: &SubflowView, cont: usize) -> u64 {
        // What the subflow still has to get across: its unsent bytes and those in the
        // network. SACKed bytes do not count: during loss recovery the cumulative ACK
        // stands still for a round trip, and counting them would starve the subflow while
        // its path has room.
        let queued = v.queued_bytes.saturating_sub(v.in_flight) + tcb.pipe();
        // In slow start the window doubles every round trip: the subflow holds up to twice
        // its window and takes data whenever it has room (holding it back until half a
        // mapping drained would slow the ramp).
        let slow_start = tcb.cwnd() < tcb.ssthresh();
        let extra = if slow_start {
            v.cwnd.max(SEND_AHEAD)
        } else {
            SEND_AHEAD
        };
        let room = (v.cwnd + extra).saturating_sub(queued);
        if queued > 0 && room < SEND_AHEAD / 2 && !slow_start {
            return 0;
        }
        let first = data_mss(tcb, DSS_OPTION_SPACE);
        let next = data_mss(tcb, cont);
        let room = room.min(super::mapping::MAX_MAPPING_LEN);
        if room < first {
            return if queued == 0 { first } else { 0 };
        }
        first + (room - first) / next * next
    }

    /// Writes one assignment into its subflow; true when bytes were taken.
    fn apply(&mut self, a: &Assignment) -> bool {
        if a.range.is_empty() || (!a.reinjection && a.range.start != self.send.nxt()) {
            return false;
        }
        let cont = self.continuation_option_space().unwrap_or(DSS_OPTION_SPACE);
        let Some(s) = self.subflows.get_mut(a.subflow) else {
            return false;
        };
        if !Self::open_for_data(s) || s.dead {
            return false;
        }
        if a.reinjection && Self::holds_unacked(s, &a.range) {
            return false;
        }
        let max_len = mapping_len(&s.tcb, cont);
        let mut range = a.range.clone();
        if !a.reinjection {
            // With more data waiting behind it, a run that would end in a short segment
            // is padded to whole segments, within the subflow's send space: a short
            // segment costs a packet for a few bytes, and an odd one holds the peer's ACK
            // for its delayed-ACK timer. The padding is less than one segment, which
            // waits in the subflow until its window opens.
            let waiting = self.send.unsent().min(self.send.window_left());
            let space = self.views.get(a.subflow).map_or(0, |v| v.send_space);
            let limit = waiting.min(space);
            if a.len() < limit {
                let open = s.tx.open_len(s.written, range.start);
                let first = data_mss(&s.tcb, DSS_OPTION_SPACE);
                let next = data_mss(&s.tcb, cont);
                let pad = segment_padding(open, a.len(), max_len, first, next);
                range.end = (range.end + pad).min(range.start + limit);
            }
        }
        if !s.tx.has_room(range.end - range.start, max_len) {
            return false;
        }
        let bytes = self.send.slice(range.clone());
        if bytes.is_empty() {
            return false;
        }
        let n = s.tcb.write(bytes) as u64;
        if n == 0 {
            return false;
        }
        // One DSS maps one contiguous run, and no segment straddles two mappings.
        let Subflow { tcb, tx, .. } = s;
        tx.record(s.written, range.start, n, max_len, |at| {
            tcb.mark_segment_boundary(at)
        });
        s.written += n;
        let taken = range.start..range.start + n;
        if a.reinjection {
            self.reinject_taken(&taken);
        } else {
            self.send.next_range(n as usize, false);
        }
        true
    }

    /// Removes `taken` from the reinjection queue.
    fn reinject_taken(&mut self, taken: &core::ops::Range<u64>) {
        let mut rest = Vec::new();
        self.reinject.retain_mut(|r| {
            if r.range.end <= taken.start || r.range.start >= taken.end {
                return true;
            }
            if r.range.end > taken.end {
                rest.push(Reinject {
                    range: taken.end..r.range.end,
                    from: r.from,
                });
            }
            r.range.end = taken.start;
            r.range.start < r.range.end
        });
        self.reinject.extend(rest);
        self.reinject.sort_by_key(|r| r.range.start);
    }

    //= rfc8684#3.3.4
    //= A zero data-level window is probed like TCP's: one MSS beyond the window on an idle
    //   subflow, so the window update is not missed.
    fn window_probe(&mut self) {
        if self.send.unsent() == 0 || self.send.window_left() > 0 || !self.reinject.is_empty() {
            return;
        }
        let cont = self.continuation_option_space().unwrap_or(DSS_OPTION_SPACE);
        // Only with nothing outstanding at the data level: a DATA_ACK still due reopens the
        // window, and probe bytes sent beyond it while another subflow carries data are
        // dropped by the peer (Linux counts NoDSSInWindow) and never sent again.
        if self.send.una() != self.send.nxt() {
            return;
        }
        if self
            .subflows
            .iter()
            .any(|s| Self::open_for_data(s) && s.tcb.send_queued() > 0)
        {
            return;
        }
        let nonbackup = self
            .subflows
            .iter()
            .any(|s| Self::open_for_data(s) && !s.backup && !s.stale);
        let Some(s) = self
            .subflows
            .iter_mut()
            .find(|s| Self::open_for_data(s) && !s.stale && s.backup != nonbackup)
        else {
            return;
        };
        let mss = s.tcb.effective_mss().max(1);
        let max_len = mapping_len(&s.tcb, cont);
        if s.tcb.send_capacity() == 0 || !s.tx.has_room(mss as u64, max_len) {
            return;
        }
        let Some(r) = self.send.next_range(mss, true) else {
            return;
        };
        let bytes = self.send.slice(r.clone());
        let n = s.tcb.write(bytes) as u64;
        let Subflow { tcb, tx, .. } = s;
        tx.record(s.written, r.start, n, max_len, |at| {
            tcb.mark_segment_boundary(at)
        });
        s.written += n;
        if r.start + n < r.end {
            self.send.unsend(r.start + n);
        }
    }

    /// The next segment to send: subflow, header (with MPTCP options) and payload.
    pub fn poll_segment(&mut self, now: Instant) -> Option<(SubflowId, TcpRepr, Vec<u8>)> {
        self.reap();
        self.arm_data_rtx(now);
        self.schedule();
        self.close_subflows();
        let cont = self.continuation_option_space();
        for id in 0..self.subflows.len() {
            self.share_window(id);
            self.raise_send_window(now, id);
            let s = self.subflows.get_mut(id)?;
            // Data segments need the full DSS; pure ACKs only a DATA_ACK, and the space
            // they save goes to SACK blocks (the TCB sizes payload and SACK by the
            // reservation; switching keeps the congestion window in bytes).
            if !self.fallback {
                let want = if s.tcb.send_queued() > 0 {
                    DSS_OPTION_SPACE
                } else {
                    ACK_OPTION_SPACE
                };
                if want != s.reserved {
                    s.tcb.set_reserved_option_len(want);
                    s.reserved = want;
                }
            }
            // New data continuing a mapping already on the wire needs no DSS of its own
            // (a DATA_ACK only when data also flows the other way); everything else keeps
            // the full reservation.
            let seg = if self.fallback || cont.is_none() {
                s.tcb.poll_segment(now)
            } else {
                let cont = cont.unwrap_or(DSS_OPTION_SPACE);
                let Subflow { tcb, tx, .. } = &mut *s;
                let mut reserve = |off: u64| match tx.classify(off) {
                    TxSegment::Continuation => cont,
                    TxSegment::Start => DSS_OPTION_SPACE,
                };
                tcb.poll_segment_with(now, Some(&mut reserve))
            };
            let Some(mut seg) = seg else {
                continue;
            };
            self.window_advertised(&seg.repr);
            let s = self.subflows.get_mut(id)?;
            let payload = s.tcb.payload(&seg).to_vec();
            s.tx.trim(s.tcb.snd_una_offset().min(seg.data.start), self.send.una());
            self.opt_limit = if payload.is_empty() {
                MAX_OPTION_SPACE
            } else {
                MAX_OPTION_SPACE.min(s.tcb.mss().saturating_sub(payload.len()))
            };
            let start = seg.data.start;
            if seg.probe {
                self.probe_options(id, &mut seg.repr);
            } else {
                self.add_options(id, &mut seg.repr, start, &payload);
            }
            // A segment without payload may carry more than the ACK reservation (a
            // DATA_FIN mapping, MP_CAPABLE): SACK blocks give way, the MPTCP option stays.
            while seg.repr.options.padded_len() > self.opt_limit
                && seg.repr.options.sack_blocks.pop().is_some()
            {}
            return Some((id, seg.repr, payload));
        }
        None
    }

    /// Option bytes a new segment that continues a mapping reserves, or `None` while every
    /// segment must carry its own MPTCP option (the MP_CAPABLE repeats of an unconfirmed
    /// client, a pending MP_FAIL or infinite mapping). A DATA_ACK goes on such segments once
    /// data flows towards us too: without data from the peer there is nothing to
    /// acknowledge, and its pure ACKs carry the DATA_ACK anyway.
    fn continuation_option_space(&self) -> Option<usize> {
        if self.hs.state() == HandshakeState::ClientUnconfirmed
            || self.mp_fail_tx.is_some()
            || self.infinite_tx_pending
        {
            return None;
        }
        // Until the peer's DSS shows it runs MPTCP in both directions, every segment carries
        // at least a DATA_ACK: an unconfirmed client takes a segment with no MPTCP option at
        // all for a middlebox stripping them.
        Some(if self.recv.next_expected() > 0 || !self.peer_dss_seen {
            ACK_OPTION_SPACE
        } else {
            0
        })
    }

    fn add_options(&mut self, id: SubflowId, repr: &mut TcpRepr, sub: u64, payload: &[u8]) {
        if repr.flags.rst() {
            if self.fastclose && !self.fallback {
                if let Some(n) = self.neg {
                    repr.options.mptcp.push(MptcpOption::MpFastclose {
                        receiver_key: n.remote_key,
                    });
                    self.counters.MPFastcloseTx += 1;
                    return;
                }
            }
            if let Some(reason) = self.subflows.get_mut(id).and_then(|s| s.rst_reason.take()) {
                if !self.fallback {
                    repr.options
                        .mptcp
                        .push(MptcpOption::MpTcpRst { flags: 0, reason });
                    self.counters.MPRstTx += 1;
                }
            }
            if let Some(dsn) = self.subflows.get_mut(id).and_then(|s| s.rst_mp_fail.take()) {
                if !self.fallback {
                    repr.options.mptcp.push(MptcpOption::MpFail { dsn });
                    self.counters.MPFailTx += 1;
                }
            }
            return;
        }
        if self.fallback {
            return;
        }
        if let Some(j) = self.subflows.get(id).and_then(|s| s.join.map(|j| (s, j))) {
            let (s, j) = j;
            let Some(n) = self.neg else {
                return;
            };
            let opt = match (j.state, repr.flags.syn(), repr.flags.ack()) {
                (_, true, false) => Some(MptcpOption::MpJoinSyn {
                    backup: s.backup,
                    addr_id: s.local_id,
                    token: n.remote_token,
                    nonce: j.local_nonce,
                }),
                (_, true, true) => Some(MptcpOption::MpJoinSynAck {
                    backup: s.backup,
                    addr_id: s.local_id,
                    hmac: join_synack_hmac(
                        n.remote_key,
                        n.local_key,
                        j.remote_nonce,
                        j.local_nonce,
                    ),
                    nonce: j.local_nonce,
                }),
                //= rfc8684#3.2
                //= The third ACK (and its repeats until the responder acknowledges it)
                //   carries the 160-bit HMAC.
                (JoinState::AckSent, false, _) => Some(MptcpOption::MpJoinAck {
                    hmac: join_ack_hmac(n.local_key, n.remote_key, j.local_nonce, j.remote_nonce),
                }),
                (JoinState::Established, false, _) => None,
                _ => return,
            };
            if let Some(o) = opt {
                repr.options.mptcp.push(o);
                return;
            }
        }
        if repr.flags.syn() {
            let opt = if repr.flags.ack() {
                self.hs.syn_ack_option()
            } else {
                self.syns_sent += 1;
                if self.syns_sent > self.cfg.syn_retrans_before_tcp_fallback.saturating_add(1) {
                    // Linux: after this many MP_CAPABLE SYN retransmissions, plain SYNs (a
                    // SYN/ACK without MP_CAPABLE then falls back as usual).
                    self.counters.MPCapableSYNTXDrop += 1;
                    return;
                }
                self.hs.syn_option()
            };
            repr.options.mptcp.push(MptcpOption::MpCapable(opt));
            return;
        }
        let (Some(tx_space), Some(rx_space)) = (self.tx_space, self.rx_space) else {
            return;
        };
        let checksum = self.neg.is_some_and(|n| n.checksum);

        // The client repeats MP_CAPABLE until the server's first DSS.
        if id == 0 && self.hs.state() == HandshakeState::ClientUnconfirmed {
            if payload.is_empty() {
                if !self.data_fin_instead_of_mpc() {
                    if let Some(o) = self.hs.ack_option() {
                        repr.options.mptcp.push(MptcpOption::MpCapable(o));
                        self.mpc_ack_sent = true;
                        return;
                    }
                }
            } else if sub == 0 && payload.len() <= usize::from(u16::MAX) {
                let len = payload.len() as u16;
                let sum = checksum.then(|| dss_checksum(tx_space.dsn(0), 1, len, payload));
                if let Some(o) = self.hs.data_option(len, sum) {
                    repr.options.mptcp.push(MptcpOption::MpCapable(o));
                    self.mpc_ack_sent = true;
                    // That option maps exactly this segment: later bytes start a new
                    // mapping, and a retransmission once the handshake is confirmed
                    // carries the same mapping as a DSS.
                    let wire = tx_mapping_of(&tx_space, 0, 0, u64::from(len), false, {
                        checksum.then_some(payload)
                    });
                    if let Some(s) = self.subflows.get_mut(id) {
                        if let Some(at) = s.tx.seal_exact(0, u64::from(len), wire) {
                            s.tcb.mark_segment_boundary(at);
                        }
                    }
                    return;
                }
            }
        }

        let cont = self.continuation_option_space();
        let Some(s) = self.subflows.get_mut(id) else {
            return;
        };
        let mut dss = Dss {
            data_ack: Some(rx_space.dsn(self.recv.data_ack())),
            data_ack_64: true,
            mapping: None,
            data_fin: false,
        };
        let fin = self.send.fin();
        if !payload.is_empty() {
            // A retransmission that continues a mapping needs no DSS either: TCP delivers in
            // order, so the mapping's first segment (which carries it, first sent or again)
            // reaches the receiver before these bytes do.
            let continuation = cont.is_some() && s.tx.classify(sub) == TxSegment::Continuation;
            if continuation {
                //= rfc8684#3.3.1
                //= A mapping may cover the data of several segments: the segments after
                //   its first carry no mapping (the first and every retransmission do).
                if cont == Some(0) {
                    // No room for anything else either: a signal waiting for this subflow
                    // (MP_PRIO, an address) goes on the pure ACK that follows the data.
                    if s.prio_tx.is_some() || self.addr.has_pending() {
                        s.tcb.request_ack();
                    }
                    return;
                }
            } else {
                let fin_ready = self.send.fin_ready();
                let send = &self.send;
                let tcb = &s.tcb;
                let make = |msub: u64, data: u64, len: u64| {
                    let with_fin = fin == Some(data + len) && fin_ready;
                    // The checksum covers the whole mapping: its bytes are still in the
                    // subflow's send buffer (none of them was acknowledged there yet).
                    let bytes = checksum.then(|| {
                        let b = tcb.send_slice(msub..msub + len);
                        if b.len() as u64 == len {
                            b
                        } else {
                            send.slice(data..data + len)
                        }
                    });
                    (
                        tx_mapping_of(&tx_space, msub, data, len, with_fin, bytes),
                        with_fin,
                    )
                };
                if let Some((m, with_fin)) = s.tx.seal(sub, make) {
                    dss.mapping = Some(m);
                    dss.data_fin = with_fin;
                }
            }
        } else if let Some(f) = fin.filter(|_| self.send.fin_ready() && !self.send.fin_acked()) {
            //= rfc8684#3.3.3
            //= A DATA_FIN without data: subflow sequence number 0, data-level length 1.
            dss.mapping = Some(tx_mapping(&tx_space, sub, f, &[], true, checksum));
            dss.data_fin = true;
        }
        let mut go_fallback = false;
        if self.infinite_tx_pending && !payload.is_empty() {
            if let Some((data, _)) = s.tx.lookup(sub, 1) {
                //= rfc8684#3.7
                //= The infinite mapping: data-level length 0 (checksum 0), from the DSN of
                //   this segment's first byte on, the subflow carries the data stream as is.
                let mut m = DssMapping::infinite(tx_space.dsn(data), checksum);
                m.subflow_seq = super::mapping::relative_seq(sub);
                dss.mapping = Some(m);
                dss.data_fin = false;
                self.counters.InfiniteMapTx += 1;
                go_fallback = true;
            }
        }
        if dss.data_fin {
            self.send.mark_fin_sent();
        }
        repr.options.mptcp.push(MptcpOption::Dss(dss));
        if let Some(dsn) = self.mp_fail_tx {
            // MP_FAIL goes where it fits (pure ACKs: DATA_ACK + MP_FAIL + timestamps); SACK
            // blocks give way to it.
            let mut without_sack = repr.options.clone();
            without_sack.sack_blocks.clear();
            if without_sack.padded_len() + MP_FAIL_LEN <= MAX_OPTION_SPACE {
                repr.options.mptcp.push(MptcpOption::MpFail { dsn });
                if !self.mp_fail_emitted {
                    self.mp_fail_emitted = true;
                    self.counters.MPFailTx += 1;
                }
                if self.infinite_tx_pending {
                    // The echo goes once, before the infinite mapping.
                    self.mp_fail_tx = None;
                }
            }
        }
        if !go_fallback {
            self.addr_options(id, repr, payload);
        }
        if go_fallback {
            self.infinite_tx_pending = false;
            self.enter_fallback();
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
