//! The reproducible pseudo-random byte stream that `--send N` sends, and a running SHA-256 of
//! what passes, so both ends can prove integrity.

use sha2::{Digest, Sha256};

/// An endless, reproducible pseudo-random byte stream (xorshift64* over 8-byte words), cheap
/// enough to generate at line rate. Position `i` always holds the same byte.
#[derive(Debug, Clone)]
pub struct PatternStream {
    state: u64,
    word: [u8; 8],
    used: usize,
}

impl PatternStream {
    /// The stream every braid sender uses unless told otherwise.
    pub fn new() -> Self {
        Self::with_seed(0x6272_6169_645f_7631) // "braid_v1"
    }

    pub fn with_seed(seed: u64) -> Self {
        PatternStream {
            state: seed | 1,
            word: [0; 8],
            used: 8,
        }
    }

    /// Fill `buf` with the next bytes of the stream.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for b in buf.iter_mut() {
            if self.used == 8 {
                self.state ^= self.state >> 12;
                self.state ^= self.state << 25;
                self.state ^= self.state >> 27;
                self.word = self.state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
                self.used = 0;
            }
            *b = self.word[self.used];
            self.used += 1;
        }
    }
}

impl Default for PatternStream {
    fn default() -> Self {
        Self::new()
    }
}

/// Counts bytes and hashes them.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    hasher: Sha256,
    bytes: u64,
}

impl Tally {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, data: &[u8]) {
        self.hasher.update(data);
        self.bytes += data.len() as u64;
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The SHA-256 so far, lowercase hex.
    pub fn hex(&self) -> String {
        let digest = self.hasher.clone().finalize();
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_is_reproducible_across_chunkings() {
        let mut a = PatternStream::new();
        let mut whole = vec![0u8; 1000];
        a.fill(&mut whole);
        let mut b = PatternStream::new();
        let mut parts = vec![0u8; 1000];
        for chunk in parts.chunks_mut(7) {
            b.fill(chunk);
        }
        assert_eq!(whole, parts);
        assert_ne!(whole[..8], whole[8..16]);
    }

    #[test]
    fn tally_hashes() {
        let mut t = Tally::new();
        t.update(b"abc");
        assert_eq!(t.bytes(), 3);
        assert_eq!(
            t.hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
