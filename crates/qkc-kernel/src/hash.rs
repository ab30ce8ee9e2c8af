//! A stable 128-bit hash (FNV-1a) for specialization keys. Unlike `std`'s `DefaultHasher` it is
//! the same on every run, machine and Rust version, so keys can name files in a compile cache.

/// FNV-1a, 128-bit.
#[derive(Clone, Debug)]
pub struct StableHasher(u128);

const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
const PRIME: u128 = 0x0000000001000000000000000000013B;

impl Default for StableHasher {
    fn default() -> Self {
        StableHasher(OFFSET)
    }
}

impl StableHasher {
    /// A fresh hasher.
    pub fn new() -> Self {
        Self::default()
    }
    /// Feed bytes.
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        for &x in b {
            self.0 ^= u128::from(x);
            self.0 = self.0.wrapping_mul(PRIME);
        }
        self
    }
    /// Feed a string as a length-prefixed field, so `("ab","c")` and `("a","bc")` differ.
    pub fn field(&mut self, s: &str) -> &mut Self {
        self.bytes(&(s.len() as u64).to_le_bytes()).bytes(s.as_bytes())
    }
    /// The hash.
    pub fn finish(&self) -> u128 {
        self.0
    }
}
