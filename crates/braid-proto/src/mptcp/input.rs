//! A connection's input: segments of its subflows (handshakes, joins, DSS mappings,
//! DATA_ACK, DATA_FIN, fallback) and the data they carry, pulled into the data level.

use super::*;

impl MptcpConnection {
    /// Processes one received segment of subflow `id` (decoded header and payload).
    pub fn handle_segment(&mut self, now: Instant, id: SubflowId, repr: &TcpRepr, payload: &[u8]) {
        self.take_segment(now, id, repr, payload);
        // What it acknowledged (at either level) may free sent bytes.
        self.release_sent();
        self.note_data_closed(now);
    }

    fn take_segment(&mut self, now: Instant, id: SubflowId, repr: &TcpRepr, payload: &[u8]) {
        let Some(s) = self.subflows.get_mut(id) else {
            return;
        };
        let before = s.tcb.state();
        //= rfc8684#3.2
        //= The third ACK of a join carries the initiator's HMAC, and only it completes
        //  the handshake. A segment without MP_JOIN that comes before it (reordered: Linux
        //  sends its DATA_FIN on every subflow, a join's not yet acknowledged one too) is
        //  not taken for it, which would fail the join: it is dropped, the third ACK
        //  follows (and Linux sends the DATA_FIN again).
        if before == TcpState::SynReceived
            && s.join.is_some_and(|j| j.state == JoinState::SynReceived)
            && !repr.flags.syn()
            && !repr.flags.rst()
            && !repr
                .options
                .mptcp
                .iter()
                .any(|o| matches!(o, MptcpOption::MpJoinAck { .. }))
        {
            return;
        }
        let seg_map = find_dss(repr).and_then(|d| d.mapping.map(|m| (m, d.data_fin)));
        let out = if let Some(rx_space) = self.rx_space.filter(|_| {
            !self.fallback
                && !payload.is_empty()
                && !self.neg.is_some_and(|n| n.checksum)
                && s.join.is_none_or(|j| j.state == JoinState::Established)
                && !seg_map.is_some_and(|(m, _)| m.is_infinite())
        }) {
            //= rfc8684#3.3.1
            //= In-order bytes that a mapping (without checksum) already places in the data
            //  stream go straight into the data-level buffer, as `pull` would move them a
            //  moment later: one copy fewer. The segment's own mapping is added after it, as
            //  for every other segment; an infinite mapping (fallback) takes the old way.
            let seg = seg_map.and_then(|(m, fin)| {
                let (sub, data) = (s.tcb.recv_offset(), self.recv.next_expected());
                RxMap::decode(&rx_space, &m, fin, sub, data).ok()
            });
            let (rx, recv, counters) = (&s.rx, &mut self.recv, &mut self.counters);
            let mut place = |sub: u64, bytes: &[u8]| {
                let len = bytes.len() as u64;
                match rx.place(sub, len, seg.as_ref()) {
                    Some(data) if data + len <= recv.right_edge() => {
                        to_data_level(recv, counters, data, Payload::from(bytes));
                        true
                    }
                    _ => false,
                }
            };
            s.tcb
                .handle_segment_into(now, repr, payload, Some(&mut place))
        } else {
            s.tcb.handle_segment(now, repr, payload)
        };
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
                                let rel = crate::mptcp::dsn::expand_32(
                                    m.subflow_seq,
                                    here.wrapping_add(1),
                                );
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
    pub(super) fn join_input(
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

    pub(super) fn apply_mapping(
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

    pub(super) fn after_input(&mut self, id: SubflowId) {
        self.pull(id);
        // In-order bytes mostly pass the subflow's buffer by: one that held some (a hole
        // filled, a mapping arrived) is freed once they moved on.
        if let Some(s) = self.subflows.get_mut(id) {
            s.tcb.release_recv_if_drained();
        }
        if self.fallback {
            self.fallback_acks(id);
        }
    }

    /// In fallback the subflow's acknowledgments are the data-level ones, and its FIN the
    /// DATA_FIN.
    pub(super) fn fallback_acks(&mut self, id: SubflowId) {
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
    pub(super) fn pull(&mut self, id: SubflowId) {
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
            // The bytes go straight from the subflow's ring into the data-level one.
            let n = s.tcb.peek(take as usize).len();
            if n == 0 {
                break;
            }
            if let Some(m) = mapping.filter(|_| checksum) {
                if !RxMap::verify(&m, s.tcb.peek(n)) {
                    self.counters.DataCsumErr += 1;
                    if self.subflows.len() > 1 {
                        //= rfc8684#3.7
                        //= With more than one subflow, a checksum failure resets the affected
                        //   subflow and the RST carries MP_FAIL with the failed mapping's DSN;
                        //   the data is discarded (never delivered) and the sender reinjects
                        //   it on another subflow (Linux: MPTCP_RST_EMIDDLEBOX + MP_FAIL).
                        if let Some(s) = self.subflows.get_mut(id) {
                            s.rst_mp_fail = Some(m.dsn);
                            s.tcb.consume(n);
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
            let Some(s) = self.subflows.get_mut(id) else {
                return;
            };
            to_data_level(&mut self.recv, &mut self.counters, data, s.tcb.peek(n));
            s.tcb.consume(n);
        }
    }
}

/// Puts subflow bytes into the data-level buffer at data offset `data`, counted as a
/// duplicate (Linux's `DuplicateData`) when every one of them had arrived before: what
/// `pull` moves from a subflow's buffer and what passes that buffer by alike.
fn to_data_level(recv: &mut DataRecv, counters: &mut MptcpCounters, data: u64, bytes: Payload<'_>) {
    if data + bytes.len() as u64 <= recv.next_expected() {
        counters.DuplicateData += 1;
    }
    recv.insert_parts(data, bytes);
}
