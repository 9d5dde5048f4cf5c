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
        // The rest of the current word, then whole words, then the start of the next one.
        let head = (8 - self.used).min(buf.len());
        let (first, rest) = buf.split_at_mut(head);
        first.copy_from_slice(&self.word[self.used..self.used + head]);
        self.used += head;
        let mut words = rest.chunks_exact_mut(8);
        for w in &mut words {
            self.next_word();
            w.copy_from_slice(&self.word);
        }
        let tail = words.into_remainder();
        if !tail.is_empty() {
            self.next_word();
            tail.copy_from_slice(&self.word[..tail.len()]);
            self.used = tail.len();
        }
    }

    fn next_word(&mut self) {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.word = self.state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
        self.used = 8;
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

    /// The stream as first written: one byte at a time.
    fn bytewise(n: usize) -> Vec<u8> {
        let mut state: u64 = 0x6272_6169_645f_7631 | 1;
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            for b in state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes() {
                out.push(b);
            }
        }
        out.truncate(n);
        out
    }

    #[test]
    fn whole_words_give_the_same_bytes_at_every_chunking() {
        let want = bytewise(5000);
        for step in [1, 3, 7, 8, 9, 16, 1000, 4999] {
            let mut a = PatternStream::new();
            let mut got = vec![0u8; 5000];
            for chunk in got.chunks_mut(step) {
                a.fill(chunk);
            }
            assert_eq!(got, want, "chunks of {step}");
        }
    }

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
