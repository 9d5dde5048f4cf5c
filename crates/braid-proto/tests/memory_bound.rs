//! Issue 15's many-connection case: 10,000 concurrent MPTCP connections with two subflows
//! each between two endpoints in one process, every one established with both subflows at
//! both ends, then 100 bytes each way on every one, all read, and nothing left in flight.
//! (What they weigh is the benchmark `memory`'s job: `cargo bench -p braid-proto --bench
//! memory`.)

#[path = "../benches/support/many_pair.rs"]
mod many_pair;

use braid_proto::EndpointConfig;
use many_pair::{Kind, ManyPair, Side};

const CONNECTIONS: usize = 10_000;

#[test]
fn ten_thousand_two_subflow_connections_open_exchange_and_go_idle() {
    let mut pair = ManyPair::new(Kind::Mptcp2, EndpointConfig::default(), CONNECTIONS, |_| {});
    pair.open(CONNECTIONS, 500).expect("open");
    assert_eq!(pair.clients.len(), CONNECTIONS);
    assert_eq!(pair.servers.len(), CONNECTIONS);
    for (side, conns) in [(Side::Client, &pair.clients), (Side::Server, &pair.servers)] {
        let not_ready = conns.iter().filter(|&&c| !pair.is_ready(side, c)).count();
        assert_eq!(
            not_ready, 0,
            "{side:?}: connections without both subflows established"
        );
    }
    pair.exchange(100).expect("exchange");
    pair.settle().expect("settle");
    pair.check_idle().expect("idle");
    assert_eq!(pair.a.connection_count(), CONNECTIONS);
    assert_eq!(pair.b.connection_count(), CONNECTIONS);
    // Every subflow has its own 4-tuple: 20,000 per endpoint, none refused.
    assert_eq!(pair.a.stats().join_refused + pair.b.stats().join_refused, 0);
    assert_eq!(pair.b.stats().syn_dropped, 0);
}
