//! The SOCKS5 side of `braid proxy server --socks5` (RFC 1928, with RFC 1929's
//! username/password): the protocol itself is `fast-socks5`'s; this module decides what to
//! accept, opens the upstream connection (an ordinary kernel TCP socket) and answers with
//! the reply code that says what happened.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use fast_socks5::server::{Socks5ServerProtocol, SocksServerError};
use fast_socks5::util::target_addr::TargetAddr;
use fast_socks5::{ReplyError, Socks5Command};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// Who may use the server.
#[derive(Debug, Clone, Default)]
pub enum Auth {
    /// Anyone: the "no authentication required" method.
    #[default]
    Open,
    /// Only these users, with their passwords: the username/password method.
    Users(HashMap<String, String>),
}

impl Auth {
    /// The users of a file: one `user:password` per line; blank lines and lines starting
    /// with `#` are skipped. A user given twice, an empty name or password is refused.
    pub fn from_file(path: &Path) -> io::Result<Auth> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot read {}: {e}", path.display()))
        })?;
        Auth::parse(&text).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        })
    }

    /// [`Auth::from_file`]'s work on the text.
    pub fn parse(text: &str) -> Result<Auth, String> {
        let mut users = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            let n = i + 1;
            let (user, pass) = line
                .split_once(':')
                .ok_or_else(|| format!("line {n}: expected user:password"))?;
            // RFC 1929: each is 1 to 255 bytes.
            if user.is_empty() || user.len() > 255 || pass.is_empty() || pass.len() > 255 {
                return Err(format!(
                    "line {n}: a user name and a password are 1 to 255 bytes each"
                ));
            }
            if users.insert(user.to_string(), pass.to_string()).is_some() {
                return Err(format!("line {n}: user {user:?} given twice"));
            }
        }
        if users.is_empty() {
            return Err("no user (one user:password per line)".into());
        }
        Ok(Auth::Users(users))
    }
}

/// A SOCKS5 request that was not carried out (the client was told, where the protocol has a
/// way to tell it).
#[derive(Debug, thiserror::Error)]
pub enum Socks5Failure {
    /// The client's handshake failed (bad version, no common method, wrong password, EOF).
    #[error("SOCKS5 handshake: {0}")]
    Handshake(String),
    /// The request could not be carried out; the reply said so.
    #[error("SOCKS5 request for {target}: {why} (replied {reply:?})")]
    Refused {
        target: String,
        why: String,
        reply: ReplyError,
    },
}

/// The reply code of an upstream connection that failed.
pub fn reply_of(e: &io::Error) -> ReplyError {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => ReplyError::ConnectionRefused,
        io::ErrorKind::TimedOut => ReplyError::TtlExpired,
        io::ErrorKind::NetworkUnreachable => ReplyError::NetworkUnreachable,
        io::ErrorKind::HostUnreachable => ReplyError::HostUnreachable,
        io::ErrorKind::PermissionDenied => ReplyError::ConnectionNotAllowed,
        _ => ReplyError::GeneralFailure,
    }
}

/// Serves one SOCKS5 client on `stream`: authentication, then a CONNECT to the target
/// (names resolved here), then the reply. On success: the client's stream (ready to be
/// relayed), the upstream connection, and the target as the client gave it.
pub async fn serve<T>(
    stream: T,
    auth: &Auth,
    connect_timeout: Duration,
) -> Result<(T, TcpStream, String), Socks5Failure>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let handshake = |e: SocksServerError| Socks5Failure::Handshake(e.to_string());
    let proto = match auth {
        Auth::Open => Socks5ServerProtocol::accept_no_auth(stream)
            .await
            .map_err(handshake)?,
        Auth::Users(users) => {
            Socks5ServerProtocol::accept_password_auth(stream, |user, pass| {
                users.get(&user).is_some_and(|p| *p == pass)
            })
            .await
            .map_err(handshake)?
            .0
        }
    };
    let (proto, cmd, target) = proto.read_command().await.map_err(handshake)?;
    let target_text = target.to_string();
    let refuse = |why: String, reply: ReplyError| Socks5Failure::Refused {
        target: target_text.clone(),
        why,
        reply,
    };
    if cmd != Socks5Command::TCPConnect {
        let reply = ReplyError::CommandNotSupported;
        let _ = proto.reply_error(&reply).await;
        return Err(refuse(format!("{cmd:?} is not supported"), reply));
    }
    let addrs: Vec<SocketAddr> = match &target {
        TargetAddr::Ip(a) => vec![*a],
        TargetAddr::Domain(host, port) => {
            match tokio::net::lookup_host((host.as_str(), *port)).await {
                Ok(a) => a.collect(),
                Err(e) => {
                    let reply = ReplyError::HostUnreachable;
                    let _ = proto.reply_error(&reply).await;
                    return Err(refuse(format!("cannot resolve {host}: {e}"), reply));
                }
            }
        }
    };
    match connect_any(&addrs, connect_timeout).await {
        Ok(upstream) => {
            let bound = upstream
                .local_addr()
                .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
            let _ = upstream.set_nodelay(true);
            let stream = proto
                .reply_success(bound)
                .await
                .map_err(|e| Socks5Failure::Handshake(e.to_string()))?;
            Ok((stream, upstream, target_text))
        }
        Err(e) => {
            let reply = reply_of(&e);
            let _ = proto.reply_error(&reply).await;
            Err(refuse(e.to_string(), reply))
        }
    }
}

/// A kernel TCP connection to the first of `addrs` that answers within `timeout` each.
pub async fn connect_any(addrs: &[SocketAddr], timeout: Duration) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address to connect to");
    for a in addrs {
        match tokio::time::timeout(timeout, TcpStream::connect(a)).await {
            Ok(Ok(s)) => return Ok(s),
            Ok(Err(e)) => last = io::Error::new(e.kind(), format!("{a}: {e}")),
            Err(_) => {
                last = io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("{a}: no answer within {:.1} s", timeout.as_secs_f64()),
                )
            }
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn user_files_parse_and_mistakes_are_named_by_line() {
        let Auth::Users(u) = Auth::parse("# users\nalice:s3cret\n\nbob:pa:ss\r\n").unwrap() else {
            panic!("users");
        };
        assert_eq!(u.get("alice").map(String::as_str), Some("s3cret"));
        assert_eq!(u.get("bob").map(String::as_str), Some("pa:ss"));
        for (text, want) in [
            ("alice", "line 1: expected user:password"),
            (
                "a:b\n:x",
                "line 2: a user name and a password are 1 to 255 bytes each",
            ),
            ("a:", "line 1: a user name and a password"),
            ("a:b\na:c", "line 2: user \"a\" given twice"),
            ("# nobody\n", "no user"),
        ] {
            let e = Auth::parse(text).unwrap_err();
            assert!(e.starts_with(want), "{text:?}: {e}");
        }
    }

    /// A SOCKS5 client's bytes through [`serve`] over an in-memory pipe; what the client
    /// reads back.
    async fn exchange(auth: Auth, client_bytes: Vec<u8>) -> (Vec<u8>, Result<String, String>) {
        let (mut client, server) = tokio::io::duplex(4096);
        let task = tokio::spawn(async move {
            serve(server, &auth, Duration::from_secs(2))
                .await
                .map(|(_, _, t)| t)
                .map_err(|e| e.to_string())
        });
        client.write_all(&client_bytes).await.unwrap();
        let res = task.await.unwrap();
        drop(client.shutdown().await);
        let mut back = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(2), client.read_to_end(&mut back)).await;
        (back, res)
    }

    #[tokio::test]
    async fn a_refused_upstream_is_reply_5_and_a_bind_is_reply_7() {
        // A port nobody listens on: bound, then closed.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut req = vec![5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1];
        req.extend_from_slice(&port.to_be_bytes());
        let (back, res) = exchange(Auth::Open, req).await;
        assert_eq!(&back[..2], &[5, 0], "no authentication chosen");
        assert_eq!(&back[2..4], &[5, 5], "connection refused");
        assert!(res.unwrap_err().contains("ConnectionRefused"));

        let mut bind = vec![5, 1, 0, 5, 2, 0, 1, 127, 0, 0, 1];
        bind.extend_from_slice(&port.to_be_bytes());
        let (back, _) = exchange(Auth::Open, bind).await;
        assert_eq!(&back[2..4], &[5, 7], "command not supported");
    }

    #[tokio::test]
    async fn users_need_their_password() {
        let auth = Auth::parse("alice:s3cret").unwrap();
        // Offers only "no authentication": no acceptable method.
        let (back, res) = exchange(auth.clone(), vec![5, 1, 0]).await;
        assert_eq!(back, [5, 0xff]);
        assert!(res.is_err());
        // The wrong password: refused (status not 0).
        let mut wrong = vec![5, 1, 2, 1, 5];
        wrong.extend_from_slice(b"alice");
        wrong.push(5);
        wrong.extend_from_slice(b"wrong");
        let (back, res) = exchange(auth.clone(), wrong).await;
        assert_eq!(&back[..2], &[5, 2]);
        assert_eq!(back[2], 1);
        assert_ne!(back[3], 0);
        assert!(res.unwrap_err().contains("handshake"));
    }

    #[tokio::test]
    async fn a_domain_name_is_resolved_and_connected() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let accept = tokio::spawn(async move { l.accept().await.map(|_| ()) });
        let auth = Auth::parse("alice:s3cret").unwrap();
        let mut req = vec![5, 1, 2, 1, 5];
        req.extend_from_slice(b"alice");
        req.push(6);
        req.extend_from_slice(b"s3cret");
        req.extend_from_slice(&[5, 1, 0, 3, 9]);
        req.extend_from_slice(b"localhost");
        req.extend_from_slice(&port.to_be_bytes());
        let (back, res) = exchange(auth, req).await;
        assert_eq!(&back[..4], &[5, 2, 1, 0], "password method, accepted");
        assert_eq!(&back[4..6], &[5, 0], "succeeded");
        assert_eq!(res.unwrap(), format!("localhost:{port}"));
        accept.await.unwrap().unwrap();
    }
}
