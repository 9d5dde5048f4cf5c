//! A classic-pcap writer for raw IP packets.
//!
//! The file format is libpcap's original one: a 24-byte global header (magic `0xa1b2c3d4`
//! written little-endian, version 2.4, microsecond timestamps) followed by one 16-byte record
//! header plus the captured bytes per packet. The link type is `LINKTYPE_RAW` (101): every
//! record is a bare IPv4 or IPv6 packet, told apart by its version nibble, so Wireshark and
//! tshark decode both without an Ethernet header.

use std::io::{self, BufWriter, Write};

use braid_proto::time::Instant;

/// `LINKTYPE_RAW`: raw IPv4 or IPv6 packets.
pub const LINKTYPE_RAW: u32 = 101;

/// The snapshot length used when none is given.
pub const DEFAULT_SNAPLEN: u32 = 65_535;

/// Writes packets into a classic pcap stream with `LINKTYPE_RAW`.
///
/// Output is buffered; call [`PcapWriter::finish`] to flush it and learn about any write error
/// (dropping the writer flushes too, but silently). The first I/O error is remembered: later
/// packets are not written and `finish` returns that error.
pub struct PcapWriter {
    out: BufWriter<Box<dyn Write>>,
    snaplen: u32,
    packets: u64,
    error: Option<io::Error>,
}

impl PcapWriter {
    /// Starts a capture with the default snapshot length (65535), writing the file header.
    pub fn new(out: impl Write + 'static) -> io::Result<Self> {
        Self::with_snaplen(out, DEFAULT_SNAPLEN)
    }

    /// Starts a capture that keeps at most `snaplen` bytes of each packet (0 means the
    /// default), writing the file header.
    pub fn with_snaplen(out: impl Write + 'static, snaplen: u32) -> io::Result<Self> {
        let snaplen = if snaplen == 0 {
            DEFAULT_SNAPLEN
        } else {
            snaplen
        };
        let mut out = BufWriter::new(Box::new(out) as Box<dyn Write>);
        let mut header = [0u8; 24];
        header[0..4].copy_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        header[4..6].copy_from_slice(&2u16.to_le_bytes());
        header[6..8].copy_from_slice(&4u16.to_le_bytes());
        // thiszone (8..12) and sigfigs (12..16) stay zero.
        header[16..20].copy_from_slice(&snaplen.to_le_bytes());
        header[20..24].copy_from_slice(&LINKTYPE_RAW.to_le_bytes());
        out.write_all(&header)?;
        Ok(PcapWriter {
            out,
            snaplen,
            packets: 0,
            error: None,
        })
    }

    /// The snapshot length written in the header.
    pub fn snaplen(&self) -> u32 {
        self.snaplen
    }

    /// How many packet records were written.
    pub fn packets_written(&self) -> u64 {
        self.packets
    }

    /// Appends one packet captured at simulated time `ts`.
    pub fn write_packet(&mut self, ts: Instant, packet: &[u8]) -> io::Result<()> {
        if let Some(e) = &self.error {
            return Err(io::Error::new(e.kind(), e.to_string()));
        }
        let result = self.write_record(ts, packet);
        if let Err(e) = &result {
            self.error = Some(io::Error::new(e.kind(), e.to_string()));
        }
        result
    }

    fn write_record(&mut self, ts: Instant, packet: &[u8]) -> io::Result<()> {
        let micros = ts.as_micros();
        let secs = u32::try_from(micros / 1_000_000).unwrap_or(u32::MAX);
        let usecs = (micros % 1_000_000) as u32;
        let orig_len = u32::try_from(packet.len()).unwrap_or(u32::MAX);
        let incl_len = orig_len.min(self.snaplen);
        let mut rec = [0u8; 16];
        rec[0..4].copy_from_slice(&secs.to_le_bytes());
        rec[4..8].copy_from_slice(&usecs.to_le_bytes());
        rec[8..12].copy_from_slice(&incl_len.to_le_bytes());
        rec[12..16].copy_from_slice(&orig_len.to_le_bytes());
        self.out.write_all(&rec)?;
        let keep = packet.get(..incl_len as usize).unwrap_or(packet);
        self.out.write_all(keep)?;
        self.packets += 1;
        Ok(())
    }

    /// Records a packet, keeping an error for [`PcapWriter::finish`] instead of returning it.
    pub(crate) fn record(&mut self, ts: Instant, packet: &[u8]) {
        // The error is kept in `self.error` and reported by `finish`.
        let _ = self.write_packet(ts, packet);
    }

    /// The first write error, if any happened.
    pub fn error(&self) -> Option<&io::Error> {
        self.error.as_ref()
    }

    /// Flushes the output; returns the first error met while writing, if any.
    pub fn finish(mut self) -> io::Result<()> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.out.flush()
    }
}

impl core::fmt::Debug for PcapWriter {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PcapWriter")
            .field("snaplen", &self.snaplen)
            .field("packets", &self.packets)
            .field("error", &self.error)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    #[derive(Clone, Default)]
    struct Shared(Rc<RefCell<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.borrow_mut().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    struct Failing;
    impl Write for Failing {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::other("disk full"))
        }
        fn flush(&mut self) -> io::Result<()> {
            Err(io::Error::other("disk full"))
        }
    }

    #[test]
    fn header_and_records_are_laid_out_exactly() {
        let buf = Shared::default();
        let mut w = PcapWriter::with_snaplen(buf.clone(), 4).unwrap();
        w.write_packet(Instant::from_micros(3_000_007), &[0x45, 1, 2, 3, 4, 5])
            .unwrap();
        assert_eq!(w.packets_written(), 1);
        w.finish().unwrap();
        let b = buf.0.borrow();
        assert_eq!(
            &b[..24],
            &[
                0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 101, 0, 0,
                0
            ]
        );
        // ts_sec 3, ts_usec 7, incl_len 4 (snaplen), orig_len 6, then 4 bytes.
        assert_eq!(
            &b[24..],
            &[3, 0, 0, 0, 7, 0, 0, 0, 4, 0, 0, 0, 6, 0, 0, 0, 0x45, 1, 2, 3]
        );
    }

    #[test]
    fn zero_snaplen_means_default() {
        let w = PcapWriter::with_snaplen(Shared::default(), 0).unwrap();
        assert_eq!(w.snaplen(), DEFAULT_SNAPLEN);
    }

    #[test]
    fn write_errors_are_kept_and_reported() {
        // The header fits in the buffer, so creation succeeds; the flush fails.
        let mut w = PcapWriter::new(Failing).unwrap();
        let big = vec![0x45u8; 20_000];
        assert!(w.write_packet(Instant::ZERO, &big).is_err());
        assert!(w.error().is_some());
        assert!(w.write_packet(Instant::ZERO, &[0x45]).is_err());
        assert_eq!(w.packets_written(), 0);
        assert!(w.finish().is_err());
    }
}
