//! Per-launch counters: instructions by class, global-memory traffic and coalescing (32-byte
//! sectors per warp request), shared-memory bank conflicts, and barriers.

use super::program::{Class, CLASS_COUNT};

/// What one launch did. All instruction counts are per warp instruction unless named `thread_`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Warp instructions issued per [`Class`] (index with `Class as usize`).
    pub by_class: [u64; CLASS_COUNT],
    /// Lanes active at each issued instruction, summed.
    pub thread_instructions: u64,
    /// Floating-point operations on the CUDA cores by lanes that executed: 2 per `fma`, 1 per
    /// `add`/`sub`/`mul`/`min`/`max`/`div`; conversions and special functions count none. What a
    /// roofline estimate's compute side needs.
    pub float_ops: u64,
    /// Floating-point operations on the tensor cores: 2·16·8·16 per warp `mma.sync` m16n8k16.
    pub tensor_ops: u64,
    /// Warp-level global load requests (one per `ld.global` executed by a warp).
    pub global_load_requests: u64,
    pub global_store_requests: u64,
    /// Bytes requested by the active lanes.
    pub global_load_bytes: u64,
    pub global_store_bytes: u64,
    /// Distinct 32-byte sectors touched, summed over requests; `bytes / (32 * sectors)` is the
    /// coalescing efficiency.
    pub global_load_sectors: u64,
    pub global_store_sectors: u64,
    /// Per request, the requested bytes capped at the sectors' bytes (lanes reading one address
    /// together count once): the numerator of [`Counters::global_coalescing`].
    pub global_useful_bytes: u64,
    pub shared_load_requests: u64,
    pub shared_store_requests: u64,
    /// Shared-memory wavefronts; each request needs at least one, more with bank conflicts.
    pub shared_wavefronts: u64,
    /// Atomic and reduction requests (global and shared).
    pub atomic_requests: u64,
    /// Block-wide barriers completed (once per barrier per block).
    pub barriers: u64,
}

impl Counters {
    /// Adds `other`'s counts to these (totals over several launches).
    pub fn accumulate(&mut self, other: &Counters) {
        for (a, b) in self.by_class.iter_mut().zip(&other.by_class) {
            *a += b;
        }
        self.thread_instructions += other.thread_instructions;
        self.float_ops += other.float_ops;
        self.tensor_ops += other.tensor_ops;
        self.global_load_requests += other.global_load_requests;
        self.global_store_requests += other.global_store_requests;
        self.global_load_bytes += other.global_load_bytes;
        self.global_store_bytes += other.global_store_bytes;
        self.global_load_sectors += other.global_load_sectors;
        self.global_store_sectors += other.global_store_sectors;
        self.global_useful_bytes += other.global_useful_bytes;
        self.shared_load_requests += other.shared_load_requests;
        self.shared_store_requests += other.shared_store_requests;
        self.shared_wavefronts += other.shared_wavefronts;
        self.atomic_requests += other.atomic_requests;
        self.barriers += other.barriers;
    }

    /// Useful global bytes over the bytes of the 32-byte sectors fetched to serve them
    /// (1.0 = perfectly coalesced); 1.0 when nothing was requested.
    pub fn global_coalescing(&self) -> f64 {
        let sectors = self.global_load_sectors + self.global_store_sectors;
        if sectors == 0 {
            return 1.0;
        }
        self.global_useful_bytes as f64 / (32 * sectors) as f64
    }

    pub fn class(&self, class: Class) -> u64 {
        self.by_class[class as usize]
    }

    /// Extra shared-memory wavefronts caused by bank conflicts.
    pub fn shared_bank_conflicts(&self) -> u64 {
        self.shared_wavefronts - self.shared_load_requests - self.shared_store_requests
    }

    /// Records a global request by the lanes of `mask` at `addrs`, `bytes` each.
    pub(crate) fn global_request(&mut self, store: bool, mask: u32, addrs: &[u64; 32], bytes: u32) {
        // Accesses are naturally aligned and at most 16 bytes, so each touches one sector.
        // Runs of equal sectors count distinct sectors when addresses ascend (the usual case).
        let mut distinct = 0u64;
        let mut prev = None;
        let mut ascending = true;
        for (lane, &a) in addrs.iter().enumerate() {
            if mask >> lane & 1 != 0 {
                let sector = a >> 5;
                if prev != Some(sector) {
                    ascending &= prev.is_none_or(|p| p < sector);
                    distinct += 1;
                    prev = Some(sector);
                }
            }
        }
        if !ascending {
            let mut sectors = [0u64; 32];
            let mut n = 0;
            for (lane, &a) in addrs.iter().enumerate() {
                if mask >> lane & 1 != 0 {
                    sectors[n] = a >> 5;
                    n += 1;
                }
            }
            let sectors = &mut sectors[..n];
            sectors.sort_unstable();
            distinct = 1 + sectors.windows(2).filter(|w| w[0] != w[1]).count() as u64;
        }
        let total = mask.count_ones() as u64 * bytes as u64;
        self.global_useful_bytes += total.min(32 * distinct);
        if store {
            self.global_store_requests += 1;
            self.global_store_bytes += total;
            self.global_store_sectors += distinct;
        } else {
            self.global_load_requests += 1;
            self.global_load_bytes += total;
            self.global_load_sectors += distinct;
        }
    }

    /// Records a shared request. Lanes are served in phases of 128 bytes (32 lanes of 4 bytes,
    /// 16 of 8, 8 of 16); within a phase, each bank serves one distinct 4-byte word per
    /// wavefront (lanes reading the same word share it).
    pub(crate) fn shared_request(&mut self, store: bool, mask: u32, addrs: &[u64; 32], bytes: u32) {
        if store {
            self.shared_store_requests += 1;
        } else {
            self.shared_load_requests += 1;
        }
        let words_per_lane = (bytes / 4).max(1) as u64;
        let lanes_per_phase = (32 / words_per_lane) as usize;
        let mut wavefronts = 0u64;
        for phase in (0..32).step_by(lanes_per_phase) {
            // A phase covers at most 128 bytes: 32 words.
            let mut words = [0u64; 32];
            let mut n = 0;
            for (lane, &addr) in addrs.iter().enumerate().skip(phase).take(lanes_per_phase) {
                if mask >> lane & 1 != 0 {
                    for w in 0..words_per_lane {
                        words[n] = (addr >> 2) + w;
                        n += 1;
                    }
                }
            }
            if n == 0 {
                continue;
            }
            let words = &mut words[..n];
            words.sort_unstable();
            let mut per_bank = [0u64; 32];
            for (i, w) in words.iter().enumerate() {
                if i == 0 || words[i - 1] != *w {
                    per_bank[(w & 31) as usize] += 1;
                }
            }
            wavefronts += per_bank.iter().copied().max().unwrap_or(1).max(1);
        }
        self.shared_wavefronts += wavefronts.max(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coalescing_and_bank_conflicts() {
        let mut c = Counters::default();
        let contiguous: [u64; 32] = std::array::from_fn(|l| 0x1000 + 4 * l as u64);
        c.global_request(false, u32::MAX, &contiguous, 4);
        assert_eq!(c.global_load_sectors, 4);
        let strided: [u64; 32] = std::array::from_fn(|l| 0x1000 + 128 * l as u64);
        c.global_request(false, u32::MAX, &strided, 4);
        assert_eq!(c.global_load_sectors, 4 + 32);

        c.shared_request(false, u32::MAX, &contiguous, 4);
        assert_eq!(c.shared_wavefronts, 1);
        // Stride of 32 words: every lane hits bank 0 with a different word.
        c.shared_request(false, u32::MAX, &strided, 4);
        assert_eq!(c.shared_wavefronts, 1 + 32);
        let same: [u64; 32] = [0x40; 32];
        c.shared_request(false, u32::MAX, &same, 4);
        assert_eq!(c.shared_wavefronts, 1 + 32 + 1);
        assert_eq!(c.shared_bank_conflicts(), 31);
    }
}
