//! Peak host memory of the fused log-prob forward: for B=4, T=512, V=131072 (1 GiB of f32 logits)
//! it may allocate at most a tenth of the logits' size plus 64 bytes per row, which rules out any
//! `[N, V]` intermediate (a softmax, an f32 copy of bf16 logits). A counting global allocator
//! tracks the bytes live and their peak; this binary holds one test so that nothing else
//! allocates while it measures.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use runtime::{Backend, Cpu, DType, Tensor};

/// The system allocator, counting live bytes and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(bytes: usize) {
    let now = LIVE.fetch_add(bytes, Ordering::SeqCst) + bytes;
    PEAK.fetch_max(now, Ordering::SeqCst);
}

fn shrank(bytes: usize) {
    LIVE.fetch_sub(bytes, Ordering::SeqCst);
}

// SAFETY: every call forwards to `System` with the caller's arguments unchanged, so `System`'s
// guarantees hold; the counters only observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is; the caller upholds `alloc`'s contract.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is; the caller upholds `alloc_zeroed`'s contract.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is; `ptr` came from this allocator, which is `System`.
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as is; `ptr` came from this allocator, which is `System`.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            // Counted as if old and new blocks coexisted, the worst case of a moving realloc.
            grew(new_size);
            shrank(layout.size());
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Logits `[N, V]` of `dtype` from a cheap deterministic pattern in [-4, 4); the host copy is
/// freed before returning.
fn logits(backend: &Cpu, n: usize, v: usize, dtype: DType) -> Tensor<Cpu> {
    let host: Vec<f32> = (0..n * v)
        .map(|i| ((i as u32).wrapping_mul(2_654_435_761) >> 8) as f32 / (1u32 << 24) as f32 * 8.0 - 4.0)
        .collect();
    backend.upload_f32(&[n, v], &host, dtype).unwrap()
}

#[test]
fn logprob_forward_allocates_no_n_by_v_intermediate() {
    let backend = Cpu::new();
    let (b, t, v) = (4, 512, 131_072);
    let n = b * t;
    let targets: Vec<u32> = (0..n as u32).map(|i| i.wrapping_mul(7919) % v as u32).collect();
    let targets = backend.upload_u32(&[n], &targets).unwrap();

    // Start rayon's pool and its buffers before measuring: they are not the op's.
    let small = logits(&backend, 8, 100, DType::F32);
    let small_targets = backend.upload_u32(&[8], &[0; 8]).unwrap();
    backend.logprob_fwd(&small, &small_targets, 1.0).unwrap();

    for dtype in [DType::F32, DType::BF16] {
        let z = logits(&backend, n, v, dtype);
        let logits_bytes = z.size_in_bytes();
        let live_before = LIVE.load(Ordering::SeqCst);
        PEAK.store(live_before, Ordering::SeqCst);
        let out = backend.logprob_fwd(&z, &targets, 1.0).unwrap();
        let extra = PEAK.load(Ordering::SeqCst) - live_before;
        let budget = logits_bytes / 10 + 64 * n;
        println!(
            "logprob_fwd {dtype} N={n} V={v}: logits {logits_bytes} bytes, peak extra {extra} bytes \
             ({:.2e} of the logits, {:.1} bytes per row); budget {budget}",
            extra as f64 / logits_bytes as f64,
            extra as f64 / n as f64,
        );
        assert!(extra <= budget, "{dtype}: the forward allocated {extra} bytes, budget {budget}");

        // The op did its work: log-probs of a 131072-way softmax over values in [-4, 4).
        let logprob = backend.download_f32(&out.logprob).unwrap();
        let entropy = backend.download_f32(&out.entropy).unwrap();
        assert!(logprob.iter().all(|&x| x < 0.0 && x > -30.0), "{dtype}: implausible log-probs");
        assert!(entropy.iter().all(|&h| h > 0.0 && h <= (v as f32).ln() + 1e-3), "{dtype}: implausible entropy");
    }
}
