//! A timer with the kernel's precision for the driver's near deadlines.
//!
//! tokio's timers tick once a millisecond, and a deadline is met at the first tick after
//! it: a loss probe or a reordering timer on a fast path, due a fraction of a millisecond
//! after it is set, would fire several round trips late (braid's sending at 5-10 % loss lost
//! half its goodput that way). The driver sleeps on tokio's timer towards a far deadline and
//! on this one (a Linux `timerfd` in tokio's reactor) for the last millisecond.

use std::io;
use std::os::fd::OwnedFd;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use rustix::time::{
    timerfd_create, timerfd_settime, Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags,
    Timespec,
};
use tokio::io::unix::AsyncFd;

/// A one-shot `CLOCK_MONOTONIC` timerfd, polled through tokio's reactor.
#[derive(Debug)]
pub(super) struct PreciseTimer {
    fd: AsyncFd<OwnedFd>,
    /// When it is set to fire, if it is.
    armed: Option<Instant>,
}

impl PreciseTimer {
    pub(super) fn new() -> io::Result<PreciseTimer> {
        let fd = timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )?;
        // SAFETY: the `OwnedFd` owns the timerfd, which stays open (and `as_raw_fd` returns
        // it) until the `AsyncFd` holding it is dropped.
        let fd = unsafe { AsyncFd::register(fd) }.map_err(io::Error::from)?;
        Ok(PreciseTimer { fd, armed: None })
    }

    /// Sets it to fire at `at` (now, if that passed), unless it is set for then already.
    pub(super) fn arm(&mut self, at: Instant) -> io::Result<()> {
        if self.armed == Some(at) {
            return Ok(());
        }
        // At least a nanosecond: a zero value would disarm it.
        let left = at
            .saturating_duration_since(Instant::now())
            .max(Duration::from_nanos(1));
        let spec = Itimerspec {
            it_interval: Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: Timespec {
                tv_sec: i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
                tv_nsec: i64::from(left.subsec_nanos()),
            },
        };
        timerfd_settime(&self.fd, TimerfdTimerFlags::empty(), &spec)?;
        self.armed = Some(at);
        Ok(())
    }

    /// Ready once the time it was set for has come (and then no longer set); pending
    /// otherwise, the task woken when it comes.
    pub(super) fn poll_fired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.armed.is_none() {
            return Poll::Pending;
        }
        loop {
            let mut guard = match self.fd.poll_read_ready(cx) {
                Poll::Ready(Ok(g)) => g,
                // The reactor failed: fall back to checking the clock.
                Poll::Ready(Err(_)) => return self.expired_by_clock(),
                Poll::Pending => return Poll::Pending,
            };
            let mut count = [0u8; 8];
            match rustix::io::read(guard.get_inner(), &mut count) {
                Ok(_) => {
                    self.armed = None;
                    return Poll::Ready(());
                }
                Err(rustix::io::Errno::AGAIN) => guard.clear_ready(),
                Err(_) => return self.expired_by_clock(),
            }
        }
    }

    fn expired_by_clock(&mut self) -> Poll<()> {
        match self.armed {
            Some(at) if at <= Instant::now() => {
                self.armed = None;
                Poll::Ready(())
            }
            _ => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn fires_at_the_time_it_was_set_for_not_at_the_next_millisecond_tick() {
        let mut t = PreciseTimer::new().expect("timerfd");
        for wait_us in [50u64, 200, 700] {
            let start = Instant::now();
            t.arm(start + Duration::from_micros(wait_us)).expect("arm");
            std::future::poll_fn(|cx| t.poll_fired(cx)).await;
            let took = start.elapsed();
            assert!(
                took >= Duration::from_micros(wait_us),
                "{took:?} < {wait_us} us"
            );
        }
        // A time that passed fires at once.
        t.arm(Instant::now()).expect("arm");
        std::future::poll_fn(|cx| t.poll_fired(cx)).await;
    }
}
