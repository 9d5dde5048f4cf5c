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
pub use braid_sim::stream;
pub mod tun;

pub use api::{
    Builder, Endpoint, MptcpListener, MptcpStream, OwnedReadHalf, OwnedWriteHalf, PathInfo,
    ReadHalf, StreamControl, WriteHalf,
};

/// Locks `m`, taking the data of a poisoned lock as it is: the I/O threads' queues hold
/// packets and buffers whose every state is valid, and a panic elsewhere must not stop the
/// driver, its watchdogs and writers from draining them.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
