//! The client's connection attempt: given up at once on a signal, or after
//! `--connect-timeout`; a notice when its first SYN goes unanswered, with the state of the
//! path's device; and the warnings at start about paths that cannot carry packets. Notices
//! are one line each, on standard error unless a test takes them.

use std::io::Write;
use std::time::Duration;

use super::{App, Conn, Engine, RunState, Runtime, RuntimeError};
use crate::health;

/// The client's connection while it is still being opened (SYN sent, no SYN/ACK yet).
fn opening(st: &RunState) -> Option<&Conn> {
    if !matches!(st.app, App::Client { .. }) {
        return None;
    }
    st.conns.first().filter(|c| !c.established)
}

impl<E: Engine> Runtime<E> {
    /// A client gives up connecting after `d` (`--connect-timeout`). Without it, it tries
    /// for as long as the engine retransmits the SYN.
    pub fn with_connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = Some(d);
        self
    }

    /// Send the one-line notices (warnings, what a signal did) to `w` instead of standard
    /// error.
    pub fn with_notices(mut self, w: Box<dyn Write>) -> Self {
        self.notices = w;
        self
    }

    /// One line on the notice stream, `braid: ` first (the progress line cleared first).
    pub(super) fn notice(&mut self, line: &str) {
        if let Some(p) = &mut self.progress {
            p.clear();
        }
        let _ = writeln!(self.notices, "braid: {line}");
        let _ = self.notices.flush();
    }

    /// A warning for every path whose device cannot carry packets now.
    pub(super) fn warn_unusable_paths(&mut self) {
        let warnings: Vec<String> = self
            .paths
            .iter()
            .filter_map(|p| health::start_warning(p.device.name(), p.addr, p.device.state()))
            .collect();
        for w in warnings {
            self.notice(&w);
        }
    }

    /// On a signal: a client still connecting gives the attempt up (an error naming it);
    /// otherwise nothing happens here.
    pub(super) fn interrupt_connect(&mut self, st: &mut RunState) -> Result<(), RuntimeError> {
        let Some(remote) = opening(st).map(|c| c.remote) else {
            return Ok(());
        };
        st.interrupted = true;
        self.abort_all(st)?;
        Err(RuntimeError::InterruptedConnecting(remote))
    }

    /// Abort every connection and end the run (a second signal; a connect given up). In
    /// SYN-SENT the engine forgets the connection and sends nothing (RFC 9293 §3.10.7.1
    /// ABORT), and a SYN/ACK still on its way is answered with a reset; an established one
    /// is reset (with MP_FASTCLOSE under MPTCP).
    pub(super) fn abort_all(&mut self, st: &mut RunState) -> Result<(), RuntimeError> {
        for c in &mut st.conns {
            c.input_done = true;
            let _ = self.engine.abort(c.handle);
        }
        st.done = true;
        let now = self.now();
        self.flush(now)
    }

    /// While the client connects: give up once `--connect-timeout` passed; at the first SYN
    /// timeout, say that nothing answered and what the path's device looks like.
    pub(super) fn watch_connect(&mut self, st: &mut RunState) -> Result<(), RuntimeError> {
        let (Some((remote, local)), Some(started)) =
            (opening(st).map(|c| (c.remote, c.local.ip())), st.started)
        else {
            return Ok(());
        };
        let elapsed = started.elapsed();
        if let Some(after) = self.connect_timeout.filter(|t| elapsed >= *t) {
            self.abort_all(st)?;
            return Err(RuntimeError::ConnectTimedOut { remote, after });
        }
        let first = health::first_syn_timeout();
        if !st.syn_hinted && elapsed >= first {
            st.syn_hinted = true;
            let path = self
                .paths
                .iter()
                .find(|p| p.addr == local)
                .or(self.paths.first());
            if let Some(p) = path {
                let line = health::no_answer_notice(
                    remote,
                    p.device.name(),
                    p.addr,
                    p.device.state(),
                    first,
                );
                self.notice(&line);
            }
        }
        Ok(())
    }

    /// How long until [`Runtime::watch_connect`] has something to do (`None`: nothing to
    /// watch).
    pub(super) fn connect_wake(&self, st: &RunState) -> Option<Duration> {
        let (Some(_), Some(started)) = (opening(st), st.started) else {
            return None;
        };
        let hint = (!st.syn_hinted).then(health::first_syn_timeout);
        let at = match (hint, self.connect_timeout) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b)?,
        };
        Some(at.saturating_sub(started.elapsed()))
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::io;
    use std::os::fd::{AsRawFd, RawFd};
    use std::os::unix::net::UnixDatagram;
    use std::rc::Rc;
    use std::sync::mpsc;

    use super::super::app_tests::{client, runtime, Fake};
    use super::super::{PacketDevice, Path, Signals, Source};
    use super::*;
    use crate::health::DeviceState;
    use crate::linkwatch::LinkState;

    /// The notices, shared with the runtime; `on_line` runs on each line written (in the
    /// runtime's thread).
    #[derive(Clone)]
    struct Notices {
        text: Rc<RefCell<String>>,
        on_line: Rc<dyn Fn(&str)>,
    }

    impl Write for Notices {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            let s = String::from_utf8_lossy(b);
            self.text.borrow_mut().push_str(&s);
            for line in s.lines() {
                (self.on_line)(line);
            }
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn notices(on_line: impl Fn(&str) + 'static) -> Notices {
        Notices {
            text: Rc::new(RefCell::new(String::new())),
            on_line: Rc::new(on_line),
        }
    }

    /// Runs `f` on its own thread (signals are blocked and raised per thread) and returns
    /// what it returns, or panics after `limit`: without the fixes these runs never end.
    fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(limit)
            .unwrap_or_else(|_| panic!("the run did not end within {limit:?}"))
    }

    fn raise(sig: libc::c_int) {
        // SAFETY: the signal is blocked in this thread (a `Signals` lives): raising it only
        // makes it pending, for the runtime's signal descriptor.
        unsafe { libc::raise(sig) };
    }

    /// A connect that never completes (no SYN/ACK comes).
    fn unanswered() -> Fake {
        Fake {
            pending_connect: true,
            ..Fake::default()
        }
    }

    #[test]
    fn a_signal_while_connecting_gives_the_attempt_up_at_once() {
        let (result, aborted, text, took) = within(Duration::from_secs(10), || {
            let (rt, _peer) = runtime(unanswered());
            let n = notices(|_| {});
            let mut rt = rt
                .with_signals(Signals::install().unwrap())
                .with_notices(Box::new(n.clone()));
            raise(libc::SIGINT);
            let t = std::time::Instant::now();
            let r = rt.run(client(Source::Pattern(1000))).map(|o| o.status);
            let text = n.text.borrow().clone();
            (
                r.map_err(|e| e.to_string()),
                rt.engine().aborted,
                text,
                t.elapsed(),
            )
        });
        assert_eq!(
            result.unwrap_err(),
            "interrupted while connecting to 10.0.0.1:5000"
        );
        assert!(aborted, "the attempt is aborted in the engine");
        assert!(took < Duration::from_millis(500), "{took:?}");
        assert_eq!(text, "", "no notice: the error says it all");
    }

    #[test]
    fn the_first_signal_once_connected_closes_and_says_a_second_aborts() {
        // The peer takes 50 kB, then reads nothing more: the close cannot finish. A user who
        // reads the notice and presses ^C again aborts.
        let (result, closed, aborted, text) = within(Duration::from_secs(10), || {
            let fake = Fake {
                write_cap: 50_000,
                close_hangs: true,
                ..Fake::default()
            };
            let (rt, _peer) = runtime(fake);
            let n = notices(|line| {
                if line.contains("a second signal aborts") {
                    raise(libc::SIGTERM);
                }
            });
            let mut rt = rt
                .with_signals(Signals::install().unwrap())
                .with_notices(Box::new(n.clone()));
            raise(libc::SIGINT);
            let r = rt
                .run(client(Source::Pattern(10_000_000)))
                .map(|o| o.status);
            let e = rt.engine();
            let text = n.text.borrow().clone();
            (r.map_err(|e| e.to_string()), e.closed, e.aborted, text)
        });
        assert!(closed, "the first signal started the graceful close");
        assert_eq!(
            text,
            "braid: interrupted: closing gracefully once the peer takes the 48.8 KiB still \
             queued; a second signal aborts\n"
        );
        assert!(aborted, "the second signal aborts");
        assert_eq!(result.unwrap_err(), "aborted by a second signal (RST sent)");
    }

    #[test]
    fn connect_timeout_gives_up_with_its_reason() {
        let (result, aborted, took) = within(Duration::from_secs(10), || {
            let (rt, _peer) = runtime(unanswered());
            let mut rt = rt
                .with_connect_timeout(Duration::from_millis(300))
                .with_notices(Box::new(io::sink()));
            let t = std::time::Instant::now();
            let r = rt.run(client(Source::Pattern(1000))).map(|o| o.status);
            (
                r.map_err(|e| e.to_string()),
                rt.engine().aborted,
                t.elapsed(),
            )
        });
        assert_eq!(
            result.unwrap_err(),
            "connect to 10.0.0.1:5000 timed out after 0.3 s"
        );
        assert!(aborted);
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_secs(1),
            "{took:?}"
        );
    }

    /// A datagram device that says its link is down.
    struct Down(UnixDatagram);

    impl AsRawFd for Down {
        fn as_raw_fd(&self) -> RawFd {
            self.0.as_raw_fd()
        }
    }

    impl PacketDevice for Down {
        fn name(&self) -> &str {
            "braid9"
        }
        fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
            PacketDevice::recv(&self.0, buf)
        }
        fn send(&self, packet: &[u8]) -> io::Result<bool> {
            PacketDevice::send(&self.0, packet)
        }
        fn state(&self) -> DeviceState {
            DeviceState {
                link: Some(LinkState {
                    up: false,
                    running: false,
                }),
                created: true,
            }
        }
    }

    #[test]
    fn a_path_that_cannot_carry_packets_is_named_at_start_and_at_the_first_syn_timeout() {
        let (result, text) = within(Duration::from_secs(10), || {
            let (a, _b) = UnixDatagram::pair().unwrap();
            a.set_nonblocking(true).unwrap();
            let paths = vec![Path {
                device: Box::new(Down(a)),
                addr: "10.0.0.2".parse().unwrap(),
            }];
            let n = notices(|_| {});
            let mut rt = Runtime::new(unanswered(), paths)
                .unwrap()
                .with_connect_timeout(health::first_syn_timeout() + Duration::from_millis(300))
                .with_notices(Box::new(n.clone()));
            let r = rt.run(client(Source::Pattern(1000))).map(|o| o.status);
            let text = n.text.borrow().clone();
            (r.map_err(|e| e.to_string()), text)
        });
        assert_eq!(
            result.unwrap_err(),
            "connect to 10.0.0.1:5000 timed out after 1.3 s"
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].starts_with("braid: warning: path braid9=10.0.0.2: braid created braid9"),
            "{text}"
        );
        assert!(
            lines[1].starts_with(
                "braid: warning: no answer from 10.0.0.1:5000 after 1 s: braid created braid9"
            ) && lines[1].ends_with("; still trying"),
            "{text}"
        );
    }
}
