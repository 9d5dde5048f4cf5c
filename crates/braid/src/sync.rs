//! Poison-tolerant locking, for the driver's I/O threads and the state they share with the
//! streams and application modes.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

/// Locks `m`, taking the data of a poisoned lock as it is: the I/O threads' queues hold
/// packets and buffers whose every state is valid, the endpoint's state is complete after
/// every call, and a panic elsewhere must not stop the driver, its watchdogs and writers
/// from draining them.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Waits on `cv` with `guard`, as [`lock`] takes a poisoned lock.
pub(crate) fn wait<'a, T>(cv: &Condvar, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
    cv.wait(guard).unwrap_or_else(PoisonError::into_inner)
}
