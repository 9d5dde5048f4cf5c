//! braid: the runtime and tools around the sans-IO engine `braid-proto`: the TUN driver, the
//! simulator glue, and the commands of the `braid` binary.

pub mod api;
pub mod app;
pub mod blocking;
pub mod cmd;
pub mod ctl;
mod fdpoll;
pub mod health;
pub mod linkwatch;
pub mod proxy;
pub mod report;
mod sync;
pub use braid_sim::stream;
pub mod tun;

pub use api::{
    Builder, Endpoint, MptcpListener, MptcpStream, OwnedReadHalf, OwnedWriteHalf, PacketDevice,
    PathInfo, ReadHalf, StreamControl, WriteHalf,
};
