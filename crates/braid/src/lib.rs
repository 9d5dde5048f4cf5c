//! braid: the runtime and tools around the sans-IO engine `braid-proto`: the TUN driver, the
//! simulator glue, and the commands of the `braid` binary.

pub mod cmd;
pub mod ctl;
pub mod health;
pub mod linkwatch;
pub mod report;
pub mod runtime;
pub use braid_sim::stream;
pub mod tun;
