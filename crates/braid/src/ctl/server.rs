//! The control socket's server: accepts clients, reads their JSON-line requests, answers them
//! through a [`CtlHandler`], and streams events to monitors; every buffer bounded.

use super::*;

/// What answers the requests: the running instance.
pub trait CtlHandler {
    /// Answers one request (never [`Request::Monitor`], which the server handles).
    fn handle(&mut self, req: Request) -> Response;
}

#[derive(Debug)]
struct Client {
    stream: ClientStream,
    inbuf: Vec<u8>,
    outbuf: Vec<u8>,
    monitor: bool,
    closing: bool,
}

/// The control socket of a running instance. See the [module docs](self).
#[derive(Debug)]
pub struct CtlServer {
    listener: Listener,
    path: PathBuf,
    /// Device and inode of the socket file this server created: on drop the path is removed
    /// only while it still names that file.
    file_id: (u64, u64),
    clients: Vec<Client>,
    /// Listeners open now: their `LISTENER_CREATED` is replayed to every new monitor.
    listeners: Vec<MonitorEvent>,
}

/// A client's socket, registered with the tokio reactor; `Read`/`Write` never block (a
/// socket that is not ready gives `WouldBlock`).
#[derive(Debug)]
struct ClientStream(tokio::net::UnixStream);

impl Read for ClientStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
}

impl Write for ClientStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The listening socket: bound at once, registered with the reactor at the first poll
/// (binding happens before any runtime exists).
#[derive(Debug)]
enum Listener {
    Bound(UnixListener),
    Registered(tokio::net::UnixListener),
    /// The reactor refused it (no client can come).
    Failed,
}

/// Why the control socket could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error("control socket {path}: {what}: {source}")]
    Io {
        path: PathBuf,
        what: &'static str,
        source: io::Error,
    },
    #[error("control socket {0}: a braid instance (or another program) is listening there")]
    InUse(PathBuf),
    /// Something other than a socket is at the path: never replaced.
    #[error(
        "control socket {path}: {kind} is in the way (braid replaces only a stale socket); \
         remove it or choose another path"
    )]
    NotASocket { path: PathBuf, kind: &'static str },
}

impl CtlServer {
    /// Creates the socket at `path` with mode 0600. Only a stale socket (one nobody answers
    /// on) is replaced: a live socket, and a file of any other kind (regular file,
    /// directory, symbolic link, FIFO...), are errors and stay untouched.
    pub fn bind(path: &Path) -> Result<CtlServer, CtlError> {
        let io_err = |what| {
            let path = path.to_path_buf();
            move |source| CtlError::Io { path, what, source }
        };
        let found = inspect(path)?;
        // Bound inside a private directory, given mode 0600, then linked into place: nobody
        // can connect before the permissions are set.
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let dir = private_dir(&parent).map_err(io_err("creating a private directory"))?;
        let tmp = dir.join("ctl");
        let result = (|| {
            let listener = UnixListener::bind(&tmp).map_err(io_err("bind"))?;
            listener
                .set_nonblocking(true)
                .map_err(io_err("set_nonblocking"))?;
            fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600))
                .map_err(io_err("chmod 0600"))?;
            let id = file_id(&fs::symlink_metadata(&tmp).map_err(io_err("stat"))?);
            if let Found::StaleSocket(stale) = found {
                // Removed only if it is still the stale socket inspected above.
                match fs::symlink_metadata(path) {
                    Ok(m) if file_id(&m) == stale => {
                        fs::remove_file(path).map_err(io_err("removing the stale socket"))?
                    }
                    _ => {}
                }
            }
            // A link, unlike a rename, never replaces what may have appeared there since.
            fs::hard_link(&tmp, path).map_err(|e| {
                if e.kind() == io::ErrorKind::AlreadyExists {
                    match inspect(path) {
                        Err(refused) => refused,
                        Ok(_) => io_err("moving into place")(e),
                    }
                } else {
                    io_err("moving into place")(e)
                }
            })?;
            Ok((listener, id))
        })();
        let _ = fs::remove_file(&tmp);
        let _ = fs::remove_dir(&dir);
        let (listener, file_id) = result?;
        Ok(CtlServer {
            listener: Listener::Bound(listener),
            path: path.to_path_buf(),
            file_id,
            clients: Vec::new(),
            listeners: Vec::new(),
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Monitor clients connected.
    pub fn monitors(&self) -> usize {
        self.clients.iter().filter(|c| c.monitor).count()
    }

    /// Accepts clients, answers complete requests, flushes output. Never blocks; the task
    /// of `cx` is woken when a socket has more (call it from inside a tokio runtime).
    pub fn poll(&mut self, cx: &mut Context<'_>, handler: &mut dyn CtlHandler) {
        if let Listener::Bound(_) = self.listener {
            let bound = std::mem::replace(&mut self.listener, Listener::Failed);
            if let Listener::Bound(l) = bound {
                if let Ok(t) = tokio::net::UnixListener::from_std(l) {
                    self.listener = Listener::Registered(t);
                }
            }
        }
        if let Listener::Registered(l) = &self.listener {
            loop {
                match l.poll_accept(cx) {
                    Poll::Ready(Ok((stream, _))) => {
                        if self.clients.len() >= MAX_CLIENTS {
                            let msg = format!("{}\n", line(&Response::error("too many clients")));
                            let _ = stream.try_write(msg.as_bytes());
                            continue;
                        }
                        self.clients.push(Client {
                            stream: ClientStream(stream),
                            inbuf: Vec::new(),
                            outbuf: Vec::new(),
                            monitor: false,
                            closing: false,
                        });
                    }
                    Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Poll::Ready(Err(_)) | Poll::Pending => break,
                }
            }
        }
        for c in &mut self.clients {
            let was_monitor = c.monitor;
            read_requests(c, handler);
            if c.monitor && !was_monitor {
                for ev in &self.listeners {
                    c.outbuf.extend_from_slice(line(ev).as_bytes());
                    c.outbuf.push(b'\n');
                }
            }
            flush(c);
        }
        self.clients
            .retain(|c| !(c.closing && c.outbuf.is_empty()) && c.outbuf.len() <= MAX_PENDING);
        // Leave the waker with every socket; one that became ready meanwhile is served at
        // the next poll, which comes at once.
        let mut again = false;
        for c in &self.clients {
            if !c.closing {
                again |= c.stream.0.poll_read_ready(cx).is_ready();
            }
            if !c.outbuf.is_empty() {
                again |= c.stream.0.poll_write_ready(cx).is_ready();
            }
        }
        if again {
            cx.waker().wake_by_ref();
        }
    }

    /// Sends `ev` to every monitor client. A `LISTENER_CREATED` is also kept for monitors
    /// that come later, until its `LISTENER_CLOSED`.
    pub fn publish(&mut self, ev: &MonitorEvent) {
        match ev.kind.as_str() {
            "LISTENER_CREATED" => self.listeners.push(ev.clone()),
            "LISTENER_CLOSED" => self.listeners.retain(|l| l.local != ev.local),
            _ => {}
        }
        let l = line(ev);
        for c in self.clients.iter_mut().filter(|c| c.monitor && !c.closing) {
            c.outbuf.extend_from_slice(l.as_bytes());
            c.outbuf.push(b'\n');
            flush(c);
        }
        self.clients.retain(|c| c.outbuf.len() <= MAX_PENDING);
    }
}

impl Drop for CtlServer {
    /// Removes the socket file, only while the path still names the one this server created
    /// (someone may have replaced it since).
    fn drop(&mut self) {
        if fs::symlink_metadata(&self.path).is_ok_and(|m| file_id(&m) == self.file_id) {
            let _ = fs::remove_file(&self.path);
        }
    }
}

pub(super) fn line<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|e| {
        format!("{{\"ok\":false,\"error\":\"cannot encode the response: {e}\"}}")
    })
}

fn read_requests(c: &mut Client, handler: &mut dyn CtlHandler) {
    let mut buf = [0u8; 4096];
    loop {
        match c.stream.read(&mut buf) {
            Ok(0) => {
                c.closing = true;
                c.monitor = false;
                break;
            }
            Ok(n) => c.inbuf.extend_from_slice(buf.get(..n).unwrap_or_default()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(_) => {
                c.closing = true;
                break;
            }
        }
        if c.inbuf.len() > MAX_LINE && !c.inbuf.contains(&b'\n') {
            let r = Response::error(format!("request longer than {MAX_LINE} bytes"));
            c.outbuf.extend_from_slice(line(&r).as_bytes());
            c.outbuf.push(b'\n');
            c.inbuf.clear();
            c.closing = true;
            return;
        }
    }
    while let Some(pos) = c.inbuf.iter().position(|&b| b == b'\n') {
        let req: Vec<u8> = c.inbuf.drain(..=pos).collect();
        let text = String::from_utf8_lossy(&req);
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        let resp = match serde_json::from_str::<Request>(text) {
            Ok(Request::Monitor) => {
                c.monitor = true;
                Response::ok()
            }
            Ok(r) => handler.handle(r),
            Err(e) => Response::error(format!("bad request: {e}")),
        };
        c.outbuf.extend_from_slice(line(&resp).as_bytes());
        c.outbuf.push(b'\n');
    }
}

fn flush(c: &mut Client) {
    while !c.outbuf.is_empty() {
        match c.stream.write(&c.outbuf) {
            Ok(0) => {
                c.closing = true;
                c.outbuf.clear();
                return;
            }
            Ok(n) => {
                c.outbuf.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(_) => {
                c.closing = true;
                c.outbuf.clear();
                return;
            }
        }
    }
}

// ---------------------------------------------------------------------- the instance side
