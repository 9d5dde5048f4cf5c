//! Locking shared by the driver's I/O threads.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `m`, taking the data of a poisoned lock as it is: the I/O threads' queues hold
/// packets and buffers whose every state is valid, and a panic elsewhere must not stop the
/// driver, its watchdogs and writers from draining them.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
