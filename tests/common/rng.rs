//! The tests' pseudo-random numbers: xorshift64, repeatable from a seed (never zero).

pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform enough below `n` (at least 1) for a test's choices.
    #[allow(dead_code)] // not every test that includes this module draws below a bound
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
