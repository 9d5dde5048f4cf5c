//! The file at a control socket's path: what is there (only nothing or a stale socket may be
//! replaced), and the private directory the socket is bound in before it is linked into
//! place.

use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use super::CtlError;

/// What [`inspect`] found at a control socket's path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Found {
    Nothing,
    /// A socket nobody answers on (connect: ECONNREFUSED), with its device and inode.
    StaleSocket((u64, u64)),
}

/// The kind of a file, in words, for errors.
fn kind_of(ft: fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_symlink() {
        "a symbolic link"
    } else if ft.is_dir() {
        "a directory"
    } else if ft.is_file() {
        "a regular file"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else {
        "a file"
    }
}

pub(super) fn file_id(m: &fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (m.dev(), m.ino())
}

/// What is at `path` (not following a symbolic link): nothing, or a stale socket, which a
/// control socket may replace. Anything else is an error: a live socket ([`CtlError::InUse`]),
/// a socket braid cannot tell is stale, or a file of another kind
/// ([`CtlError::NotASocket`]). Reads only: nothing is created or removed.
pub(super) fn inspect(path: &Path) -> Result<Found, CtlError> {
    use std::os::unix::fs::FileTypeExt;
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Found::Nothing),
        Err(source) => {
            return Err(CtlError::Io {
                path: path.to_path_buf(),
                what: "stat",
                source,
            })
        }
    };
    let ft = meta.file_type();
    if !ft.is_socket() {
        return Err(CtlError::NotASocket {
            path: path.to_path_buf(),
            kind: kind_of(ft),
        });
    }
    match UnixStream::connect(path) {
        Ok(_) => Err(CtlError::InUse(path.to_path_buf())),
        Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
            Ok(Found::StaleSocket(file_id(&meta)))
        }
        // A datagram socket (EPROTOTYPE), one braid may not use (EACCES)...: not known to be
        // stale, so left alone.
        Err(source) => Err(CtlError::Io {
            path: path.to_path_buf(),
            what: "a socket is there and braid cannot tell whether it is stale (connect)",
            source,
        }),
    }
}

/// A fresh private (0700) directory beside `parent`'s entries, never one that existed.
pub(super) fn private_dir(parent: &Path) -> io::Result<PathBuf> {
    let pid = std::process::id();
    let mut last = io::Error::from(io::ErrorKind::AlreadyExists);
    for n in 0..64u32 {
        let dir = parent.join(format!(".braid-ctl-{pid}-{n}"));
        match fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixListener;

    use super::super::CtlServer;
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("braid-ctl-unit-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    /// The names in `dir`, sorted.
    fn listing(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn only_a_stale_socket_is_replaced_anything_else_is_left_alone() {
        let dir = temp_dir("kinds");
        let file = dir.join("file");
        fs::write(&file, "precious").expect("write");
        let subdir = dir.join("dir");
        fs::create_dir(&subdir).expect("mkdir");
        let link = dir.join("link");
        std::os::unix::fs::symlink(&file, &link).expect("symlink");
        let stale = dir.join("stale");
        drop(UnixListener::bind(&stale).expect("bind"));
        // A process another test forks meanwhile holds the listener until it execs.
        for _ in 0..2000 {
            match UnixStream::connect(&stale) {
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => break,
                _ => std::thread::sleep(std::time::Duration::from_millis(1)),
            }
        }
        let stale_link = dir.join("stale-link");
        std::os::unix::fs::symlink(&stale, &stale_link).expect("symlink");
        let fifo = dir.join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo");
        assert!(made.success());
        let live = dir.join("live");
        let listener = UnixListener::bind(&live).expect("bind");
        let before = listing(&dir);

        for (path, kind) in [
            (&file, "a regular file"),
            (&subdir, "a directory"),
            (&link, "a symbolic link"),
            (&stale_link, "a symbolic link"),
            (&fifo, "a FIFO"),
        ] {
            let e = CtlServer::bind(path).expect_err(kind);
            assert!(
                matches!(&e, CtlError::NotASocket { kind: k, .. } if *k == kind),
                "{kind}: {e}"
            );
            let msg = e.to_string();
            assert!(
                msg.starts_with("control socket ") && !msg.contains('\n'),
                "{msg}"
            );
        }
        assert!(matches!(CtlServer::bind(&live), Err(CtlError::InUse(_))));
        // Nothing changed: the same names, the file's content, the link's target, the live
        // socket still answering, no private directory left behind.
        assert_eq!(listing(&dir), before);
        assert_eq!(fs::read_to_string(&file).expect("read"), "precious");
        assert_eq!(fs::read_link(&link).expect("readlink"), file);
        assert!(UnixStream::connect(&live).is_ok());
        drop(listener);

        // A stale socket is replaced, and the new one removed on drop.
        let server = CtlServer::bind(&stale).expect("stale socket replaced");
        assert!(UnixStream::connect(&stale).is_ok());
        drop(server);
        assert!(fs::symlink_metadata(&stale).is_err());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn on_drop_only_the_socket_created_is_removed() {
        let dir = temp_dir("drop");
        let path = dir.join("ctl.sock");
        let server = CtlServer::bind(&path).expect("bind");
        // Someone replaces the socket with a file of their own while braid runs.
        fs::remove_file(&path).expect("rm");
        fs::write(&path, "theirs").expect("write");
        drop(server);
        assert_eq!(fs::read_to_string(&path).expect("still there"), "theirs");
        // And a socket that another instance bound at the path after ours went away.
        fs::remove_file(&path).expect("rm");
        let server = CtlServer::bind(&path).expect("bind");
        fs::remove_file(&path).expect("rm");
        let other = UnixListener::bind(&path).expect("bind");
        drop(server);
        assert!(UnixStream::connect(&path).is_ok(), "the other socket stays");
        drop(other);
        let _ = fs::remove_dir_all(&dir);
    }
}
