//! A small, fast, fixed-key hasher for the health book's target index.
//!
//! The book is looked up once per report (≥ 200,000/s) and once per target
//! per decision; SipHash was a visible share of both. Keys are target ids the
//! controller itself configured (reports for unknown targets are rejected at
//! ingest), so resistance to chosen-key flooding is not needed, and a fixed
//! key keeps behaviour identical across runs.

use std::hash::{BuildHasherDefault, Hasher};

/// The book's `BuildHasher`.
pub(crate) type FastHash = BuildHasherDefault<FastHasher>;

/// Multiply–rotate over 8-byte words (the FxHash scheme) with a final mix,
/// so the high bits hashbrown uses for its control bytes are well spread.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FastHasher {
    hash: u64,
}

const K: u64 = 0x9e37_79b9_7f4a_7c15;

impl FastHasher {
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(K);
    }
}

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 59));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        // murmur3's fmix64.
        let mut h = self.hash;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::hash::BuildHasher;

    use super::FastHash;

    #[test]
    fn distinct_ids_spread_over_the_high_bits() {
        let build = FastHash::default();
        let tops: HashSet<u64> = (0..1000)
            .map(|i| build.hash_one(format!("svc:svc-{i:04}@us-east")) >> 57)
            .collect();
        assert!(tops.len() > 100, "{}", tops.len());
        assert_ne!(build.hash_one("svc:a@b"), build.hash_one("svc:a@c"));
    }
}
