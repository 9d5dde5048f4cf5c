//! The client side of the control socket (`braid endpoint|limits|monitor|stat|counters`).

use super::server::line;
use super::*;

/// A connection to an instance's control socket.
#[derive(Debug)]
pub struct CtlClient {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl CtlClient {
    /// Connects to the socket at `path`.
    pub fn connect(path: &Path) -> anyhow::Result<CtlClient> {
        let stream = UnixStream::connect(path).map_err(|e| {
            anyhow::anyhow!(
                "cannot reach the braid instance at {}: {e} (is it running with --ctl {}?)",
                path.display(),
                path.display()
            )
        })?;
        let writer = stream.try_clone()?;
        Ok(CtlClient {
            reader: BufReader::new(stream),
            writer,
        })
    }

    /// Sends a request and waits for its response.
    pub fn request(&mut self, req: &Request) -> anyhow::Result<Response> {
        writeln!(self.writer, "{}", line(req))?;
        self.writer.flush()?;
        self.read_line()
    }

    fn read_line<T: for<'de> Deserialize<'de>>(&mut self) -> anyhow::Result<T> {
        let mut s = String::new();
        let n = (&mut self.reader)
            .take(MAX_PENDING as u64)
            .read_line(&mut s)?;
        if n == 0 {
            anyhow::bail!("the braid instance closed the control connection");
        }
        serde_json::from_str(s.trim())
            .map_err(|e| anyhow::anyhow!("bad answer from the braid instance: {e}"))
    }

    /// After a successful [`Request::Monitor`]: the next event (blocks).
    pub fn next_event(&mut self) -> anyhow::Result<MonitorEvent> {
        self.read_line()
    }
}
