//! `braid proxy`: ordinary TCP carried over MPTCP, for programs that know nothing of it
//! (link bonding, hybrid access).
//!
//! - The **client** ([`run_client`]) accepts TCP connections from local programs on a
//!   kernel socket and carries each one over its own braid MPTCP connection to the far
//!   proxy: a transparent pipe, so any protocol (a SOCKS5 handshake included) goes through.
//! - The **server** ([`run_server`]) accepts MPTCP connections and either forwards each one
//!   to a fixed upstream TCP service or serves SOCKS5 ([`socks5`]); upstream connections
//!   are kernel TCP sockets.
//!
//! Both relay each pair of streams with [`relay::relay`] (backpressure, half-close, resets
//! passed on, idle timeout), log one line per connection when it opens and when it ends
//! (`--json`: one JSON object per line on standard output instead), and shut down cleanly
//! on SIGINT/SIGTERM: no new connections, the live ones get [`GRACE`] to finish, then are
//! reset; a second signal resets them at once.

pub mod relay;
mod run;
pub mod socks5;

pub use run::{run_client, run_server, Far, ProxyOptions, GRACE};
