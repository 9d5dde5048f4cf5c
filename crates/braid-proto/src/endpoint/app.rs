//! What the application asks of the endpoint: events, reading, writing, closing, and
//! snapshots of its connections.

use super::*;

impl Endpoint {
    /// The next application event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    pub(super) fn conn_mut(&mut self, conn: ConnectionHandle) -> Result<&mut Conn, Error> {
        match self.conns.get_mut(conn.0).and_then(Option::as_mut) {
            Some(c) if c.known && !c.closed_reported => Ok(c),
            _ => Err(Error::UnknownConnection),
        }
    }

    /// Reads received bytes. `Ok(0)`: the peer closed its direction (EOF).
    pub fn read(&mut self, conn: ConnectionHandle, buf: &mut [u8]) -> Result<usize, Error> {
        let c = self.conn_mut(conn)?;
        let n = c.proto.read(buf);
        let res = if n > 0 || buf.is_empty() {
            Ok(n)
        } else if c.proto.is_read_finished() {
            Ok(0)
        } else if let Some(e) = c.proto.error() {
            Err(Error::Closed(e))
        } else if c.proto.is_done() {
            Ok(0)
        } else {
            Err(Error::WouldBlock)
        };
        self.sync(conn.0);
        res
    }

    /// Queues bytes for sending. `Err(WouldBlock)`: the send buffer is full.
    pub fn write(&mut self, conn: ConnectionHandle, data: &[u8]) -> Result<usize, Error> {
        let c = self.conn_mut(conn)?;
        if let Some(e) = c.proto.error() {
            return Err(Error::Closed(e));
        }
        if c.app_closed
            || !matches!(
                c.proto.state(),
                TcpState::SynSent
                    | TcpState::SynReceived
                    | TcpState::Established
                    | TcpState::CloseWait
            )
        {
            return Err(Error::InvalidState);
        }
        if data.is_empty() {
            return Ok(0);
        }
        match c.proto.write(data) {
            0 => Err(Error::WouldBlock),
            n => {
                self.touch(conn.0);
                Ok(n)
            }
        }
    }

    /// Closes the sending direction (FIN after the queued data).
    pub fn close(&mut self, conn: ConnectionHandle) -> Result<(), Error> {
        let c = self.conn_mut(conn)?;
        c.app_closed = true;
        c.proto.close();
        self.sync(conn.0);
        Ok(())
    }

    /// Resets the connection now.
    pub fn abort(&mut self, conn: ConnectionHandle) -> Result<(), Error> {
        let c = self.conn_mut(conn)?;
        c.proto.abort();
        self.sync(conn.0);
        Ok(())
    }

    /// A snapshot of a connection, while its handle is valid.
    pub fn conn_info(&self, conn: ConnectionHandle) -> Option<ConnInfo> {
        let c = self.conns.get(conn.0)?.as_ref()?;
        if !c.known || c.closed_reported {
            return None;
        }
        let t = c.proto.tcb()?;
        let mut info = ConnInfo {
            local: c.local,
            remote: c.remote,
            state: t.state(),
            rtt: t.rtt(),
            rto: t.rto(),
            cwnd: t.cwnd(),
            ssthresh: t.ssthresh(),
            bytes_sent: t.bytes_sent(),
            bytes_acked: t.bytes_acked(),
            bytes_received: t.bytes_received(),
            retransmits: t.retransmits(),
            mss: t.mss(),
        };
        if let Some(m) = c.proto.mptcp() {
            // Application bytes are data-level bytes.
            let i = m.info();
            info.bytes_sent = i.bytes_sent;
            info.bytes_acked = i.bytes_acked;
            info.bytes_received = i.bytes_received;
            info.retransmits = i.retransmits;
        }
        Some(info)
    }

    /// The picture of a connection and its subflows, while its handle is valid (the last
    /// one comes with [`Event::Closed`]).
    pub fn snapshot(&self, conn: ConnectionHandle) -> Option<ConnSnapshot> {
        let c = self.conns.get(conn.0)?.as_ref()?;
        if !c.known || c.closed_reported {
            return None;
        }
        Some(c.snapshot())
    }

    /// The (local, remote) addresses of a connection's subflows by subflow id (the first is
    /// the connection's own), while its handle is valid.
    pub fn subflow_addrs(&self, conn: ConnectionHandle) -> Option<&[(SocketAddr, SocketAddr)]> {
        let c = self.conns.get(conn.0)?.as_ref()?;
        (c.known && !c.closed_reported).then_some(c.paths.as_slice())
    }

    /// The TCB of a connection (read only; for an MPTCP connection the initial subflow, or
    /// once it closed the first subflow still open), for diagnostics and tests.
    pub fn tcb(&self, conn: ConnectionHandle) -> Option<&Tcb> {
        self.conns.get(conn.0)?.as_ref()?.proto.tcb()
    }

    /// The MPTCP connection behind a handle (read only), `None` for plain TCP.
    pub fn mptcp_connection(&self, conn: ConnectionHandle) -> Option<&MptcpConnection> {
        self.conns.get(conn.0)?.as_ref()?.proto.mptcp()
    }

    /// True when the connection runs MPTCP: negotiated and not fallen back. False for plain
    /// TCP, during the handshake, after a fallback, and for unknown handles.
    pub fn is_mptcp(&self, conn: ConnectionHandle) -> bool {
        self.mptcp_connection(conn)
            .is_some_and(MptcpConnection::is_mptcp)
    }

    /// MPTCP counters under the kernel's MIB names, summed over every MPTCP connection this
    /// endpoint has had (live and freed), plus the endpoint's own MP_TCPRST replies.
    pub fn counters(&self) -> MptcpCounters {
        let mut sum = self.retired;
        for m in self.conns.iter().flatten().filter_map(|c| c.proto.mptcp()) {
            sum.add(&m.counters());
        }
        sum.MPRstTx += self.mp_rst_tx;
        sum.MPJoinNoTokenFound += self.join_no_token;
        sum
    }

    /// Number of connection slots in use (including TIME-WAIT).
    pub fn connection_count(&self) -> usize {
        self.by_tuple.len()
    }

    /// Handles of every connection held (established, closing or in TIME-WAIT).
    pub fn connections(&self) -> impl Iterator<Item = ConnectionHandle> + '_ {
        self.conns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.is_some())
            .map(|(i, _)| ConnectionHandle(i))
    }
}
