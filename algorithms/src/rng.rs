//! A small seeded generator (splitmix64) for everything the tasks and trainers draw: the same seed
//! gives the same prompts, corpora, labels and batches on every machine.

/// splitmix64: 64 bits of state, good statistical quality, trivially reproducible.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// An independent stream derived from this seed and a label, so that adding draws to one
    /// stream (say, the corpus) does not shift another (the held-out split).
    pub fn derived(seed: u64, stream: u64) -> Self {
        let mut base = Rng::new(seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03));
        Rng(base.next_u64())
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p` (clamped to [0, 1]).
    pub fn bernoulli(&mut self, p: f64) -> bool {
        self.uniform() < p
    }

    /// Uniform integer in [0, n); 0 when `n` is 0.
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        // Multiply-shift maps 64 random bits onto [0, n) with negligible bias for small n.
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// A standard normal sample (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(f64::MIN_POSITIVE);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// One element of a non-empty slice.
    pub fn choose<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// Fisher–Yates shuffle in place.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

/// Batches of indices into `0..len`, drawn in shuffled epochs: each epoch visits every index once,
/// and a batch that runs past the end of an epoch continues into a freshly shuffled one.
#[derive(Debug, Clone)]
pub struct Epochs {
    rng: Rng,
    len: usize,
    order: Vec<usize>,
}

impl Epochs {
    pub fn new(len: usize, rng: Rng) -> Self {
        Epochs { rng, len, order: Vec::new() }
    }

    /// The next `size` indices (none when `len` is 0).
    pub fn next_batch(&mut self, size: usize) -> Vec<usize> {
        let mut batch = Vec::with_capacity(size);
        while batch.len() < size && self.len > 0 {
            if self.order.is_empty() {
                self.order = (0..self.len).collect();
                self.rng.shuffle(&mut self.order);
            }
            let take = (size - batch.len()).min(self.order.len());
            batch.extend(self.order.drain(self.order.len() - take..));
        }
        batch
    }
}
