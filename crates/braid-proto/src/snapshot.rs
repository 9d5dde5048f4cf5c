//! One picture of a connection and its subflows, for every consumer (`braid stat`, the
//! runtime's reports, the simulator): [`Endpoint::snapshot`](crate::Endpoint::snapshot)
//! while the handle is valid, and the last one in
//! [`Event::Closed`](crate::Event::Closed) after it no longer is.

use core::net::SocketAddr;

use crate::mptcp::{MptcpConnection, MptcpCounters};
use crate::tcp::{Tcb, TcpState};
use crate::time::Duration;

/// A connection at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnSnapshot {
    /// The connection's own (initial) addresses.
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// The state of the TCB carrying the connection: the TCP connection itself, or the
    /// initial subflow (once it closed, the first subflow still open).
    pub state: TcpState,
    /// Runs MPTCP now: negotiated and not fallen back.
    pub mptcp: bool,
    /// Opened or accepted as MPTCP (MP_CAPABLE sent or received), whatever came of it.
    pub mptcp_requested: bool,
    /// Was MPTCP and fell back to plain TCP (RFC 8684 §3.7).
    pub fallback: bool,
    /// DSS checksums are in use (negotiated, not fallen back).
    pub checksum: bool,
    /// Our MPTCP token while the connection runs MPTCP.
    pub local_token: Option<u32>,
    /// The peer set C in MP_CAPABLE: no subflows towards its initial address and port.
    pub remote_denies_join: bool,
    /// Smoothed RTT of the TCB carrying the connection, once measured.
    pub rtt: Option<Duration>,
    /// Application bytes (for MPTCP: data-level bytes) sent at least once, acknowledged,
    /// and received in order.
    pub bytes_sent: u64,
    pub bytes_acked: u64,
    pub bytes_received: u64,
    /// Segments retransmitted (for MPTCP: on every subflow).
    pub retransmits: u64,
    /// This connection's own MPTCP counters (zero for plain TCP).
    pub counters: MptcpCounters,
    /// The paths the bytes use, by subflow id: every subflow of an MPTCP connection (closed
    /// ones included, see [`SubflowSnapshot::open`]; after a fallback the one left); for
    /// plain TCP one entry, the connection's own TCB (id 0).
    pub subflows: Vec<SubflowSnapshot>,
}

/// One subflow (or a plain TCP connection's TCB) at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubflowSnapshot {
    /// The subflow's id within its connection (0: the initial subflow).
    pub id: usize,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// MPTCP address ids (local, remote): 0 for the initial subflow and plain TCP.
    pub local_id: u8,
    pub remote_id: u8,
    /// The backup flag (ours from MP_JOIN or MP_PRIO, or the peer's request).
    pub backup: bool,
    pub state: TcpState,
    /// Still open: neither CLOSED nor TIME-WAIT.
    pub open: bool,
    /// No progress since an RTO: it gets no new data, its data was reinjected elsewhere.
    pub stale: bool,
    /// Smoothed RTT, once measured.
    pub rtt: Option<Duration>,
    /// Current retransmission timeout (with backoff).
    pub rto: Duration,
    pub cwnd: usize,
    /// `usize::MAX` before the first loss.
    pub ssthresh: usize,
    /// Send MSS (before options).
    pub mss: usize,
    /// Subflow-level bytes sent at least once (reinjections included), acknowledged, and
    /// received in order.
    pub bytes_sent: u64,
    pub bytes_acked: u64,
    pub bytes_received: u64,
    /// Segments retransmitted, retransmission timeouts, fast recoveries entered, and fast
    /// recoveries undone as spurious.
    pub retransmits: u64,
    pub timeouts: u64,
    pub recoveries: u64,
    pub spurious_recoveries: u64,
}

impl SubflowSnapshot {
    /// The TCB's figures; ids 0, no backup, not stale.
    pub(crate) fn of(id: usize, local: SocketAddr, remote: SocketAddr, t: &Tcb) -> Self {
        let state = t.state();
        SubflowSnapshot {
            id,
            local,
            remote,
            local_id: 0,
            remote_id: 0,
            backup: false,
            state,
            open: !matches!(state, TcpState::Closed | TcpState::TimeWait),
            stale: false,
            rtt: t.rtt(),
            rto: t.rto(),
            cwnd: t.cwnd(),
            ssthresh: t.ssthresh(),
            mss: t.mss(),
            bytes_sent: t.bytes_sent(),
            bytes_acked: t.bytes_acked(),
            bytes_received: t.bytes_received(),
            retransmits: t.retransmits(),
            timeouts: t.timeouts(),
            recoveries: t.recoveries(),
            spurious_recoveries: t.spurious_recoveries(),
        }
    }

    /// Every subflow of `m`, with its addresses from `paths` (by subflow id).
    pub(crate) fn all_of(
        m: &MptcpConnection,
        paths: &[(SocketAddr, SocketAddr)],
    ) -> Vec<SubflowSnapshot> {
        m.subflow_infos()
            .iter()
            .filter_map(|i| {
                let t = m.subflow(i.id)?;
                let &(local, remote) = paths.get(i.id)?;
                Some(SubflowSnapshot {
                    local_id: i.local_id,
                    remote_id: i.remote_id,
                    backup: i.backup,
                    stale: i.stale,
                    ..SubflowSnapshot::of(i.id, local, remote, t)
                })
            })
            .collect()
    }
}
