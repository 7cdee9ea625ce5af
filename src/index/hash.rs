//! A fast keyed hash for stream names. Rebuilding the stream index hashes one name per event,
//! and std's SipHash cost more than the checksum there; this folded-multiply hash is several
//! times cheaper. Its key is drawn per process from std's `RandomState`, so colliding names
//! cannot be precomputed offline, though it makes no cryptographic promise (as with foldhash
//! or ahash, which we would otherwise depend on).

use std::hash::{BuildHasher, Hasher, RandomState};

const MUL: u64 = 0x9E37_79B9_7F4A_7C15;
const MUL2: u64 = 0xD6E8_FEB8_6659_FD93;

fn fold_mul(a: u64, b: u64) -> u64 {
    let r = u128::from(a) * u128::from(b);
    (r as u64) ^ ((r >> 64) as u64)
}

/// Builds [`NameHasher`]s sharing one random key.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NameHash {
    key: u64,
}

impl Default for NameHash {
    fn default() -> Self {
        NameHash { key: RandomState::new().hash_one(0x61_6e6e_616cu64) | 1 }
    }
}

impl BuildHasher for NameHash {
    type Hasher = NameHasher;

    fn build_hasher(&self) -> NameHasher {
        NameHasher { state: self.key }
    }
}

/// Hashes bytes eight at a time with a folded 128-bit multiply.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NameHasher {
    state: u64,
}

impl Hasher for NameHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let word = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
            self.state = fold_mul(self.state ^ word, MUL);
        }
        let rest = chunks.remainder();
        let mut tail = [0u8; 8];
        tail[..rest.len()].copy_from_slice(rest);
        let word = u64::from_le_bytes(tail) ^ ((bytes.len() as u64) << 56);
        self.state = fold_mul(self.state ^ word, MUL2);
    }

    fn write_u8(&mut self, byte: u8) {
        self.state = fold_mul(self.state ^ u64::from(byte), MUL);
    }

    fn finish(&self) -> u64 {
        self.state
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn distinct_names_rarely_collide_and_equal_names_agree() {
        let build = NameHash::default();
        let hashes: HashSet<u64> =
            (0..100_000).map(|i| build.hash_one(format!("account-{i}"))).collect();
        assert_eq!(hashes.len(), 100_000);
        assert_eq!(build.hash_one("order-7"), build.hash_one(String::from("order-7")));
        assert_ne!(build.hash_one("ab"), build.hash_one("ab\0"));
    }
}
