//! A fast keyed hash for the index's tables. A decision hashes the target and each of its
//! parents for each list, so SipHash (std's default, about 20 ns for a short name) was most of a
//! decision's cost; this folded multiply takes a few. The key is random per table: the names
//! come from the policy file, and nobody can choose names that collide without knowing it.

use std::hash::{BuildHasher, Hasher, RandomState};

#[derive(Clone, Copy, Debug)]
pub struct Key {
    k0: u64,
    k1: u64,
}

impl Default for Key {
    fn default() -> Key {
        let random = RandomState::new();
        Key {
            k0: random.hash_one(0x243f_6a88_85a3_08d3_u64),
            k1: random.hash_one(0x1319_8a2e_0370_7344_u64),
        }
    }
}

/// The high and low halves of the 128-bit product, xored: every input bit reaches every output
/// bit.
fn fold(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

impl Key {
    pub fn hash(&self, bytes: &[u8]) -> u64 {
        let mut state = self.k1 ^ bytes.len() as u64;
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let word = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
            state = fold(word ^ self.k0, state ^ self.k1);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            state = fold(u64::from_le_bytes(last) ^ self.k0, state ^ self.k1);
        }
        fold(state ^ self.k0, self.k1.rotate_left(32))
    }
}

impl BuildHasher for Key {
    type Hasher = KeyHasher;
    fn build_hasher(&self) -> KeyHasher {
        KeyHasher {
            key: *self,
            state: self.k0,
        }
    }
}

/// For std maps of small fixed-size keys (the address table's).
#[derive(Debug)]
pub struct KeyHasher {
    key: Key,
    state: u64,
}

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.state = fold(self.state ^ self.key.hash(bytes), self.key.k1);
    }
    fn write_u8(&mut self, n: u8) {
        self.write_u64(u64::from(n));
    }
    fn write_u64(&mut self, n: u64) {
        self.state = fold(self.state ^ n ^ self.key.k0, self.key.k1);
    }
    fn write_u128(&mut self, n: u128) {
        self.write_u64(n as u64);
        self.write_u64((n >> 64) as u64);
    }
    fn finish(&self) -> u64 {
        fold(self.state, self.key.k0)
    }
}
