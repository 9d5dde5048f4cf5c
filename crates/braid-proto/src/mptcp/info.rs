//! What a connection reports about itself: its MPTcpExt counters and its snapshot after
//! the kernel's MPTCP_INFO and MPTCP_FULL_INFO.

use super::*;

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
