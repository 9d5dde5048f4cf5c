//! Waiting for one descriptor to become readable, for the device and netlink code that
//! blocks in a thread of its own (a TUN device's watchdog, the link watch).

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

/// Waits until `fd` is readable or `timeout` passed (at least 1 ms); true when readable. An
/// interrupted wait counts as not readable.
pub(crate) fn wait_readable(fd: RawFd, timeout: Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = libc::c_int::try_from(timeout.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
    // SAFETY: `pfd` is one valid, initialised `pollfd` that lives across the call, and the
    // count passed is 1; the caller keeps the descriptor open across the call.
    let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(false);
        }
        return Err(e);
    }
    Ok(rc > 0)
}
