//! Emulated global memory: a sorted set of allocations at distinct addresses with unmapped gaps
//! between them, so any access that leaves its allocation is caught instead of landing in a
//! neighbour.

use super::error::EmuError;
use super::types::DEVICE_HEAP_BASE;

/// Unmapped bytes left after every allocation (beyond the 256-byte alignment).
const GUARD_BYTES: u64 = 256;

/// An address in emulated device memory. Pointer arithmetic is plain `u64` arithmetic:
/// `DevicePtr(p.0 + 16)` points 16 bytes into an allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DevicePtr(pub u64);

impl DevicePtr {
    /// The pointer `bytes` further on.
    pub fn offset(self, bytes: u64) -> DevicePtr {
        DevicePtr(self.0 + bytes)
    }
}

pub(crate) struct Allocation {
    pub base: u64,
    pub data: Vec<u8>,
}

pub(crate) struct GlobalMemory {
    /// Sorted by `base`.
    allocs: Vec<Allocation>,
    next_base: u64,
    /// Index of the allocation hit last; most warp requests stay in one allocation.
    last: usize,
    /// Bytes of the live allocations, and their high-water mark since the last reset.
    live: usize,
    peak: usize,
}

impl GlobalMemory {
    pub fn new() -> Self {
        GlobalMemory {
            allocs: Vec::new(),
            next_base: DEVICE_HEAP_BASE,
            last: 0,
            live: 0,
            peak: 0,
        }
    }

    pub fn alloc(&mut self, bytes: usize) -> u64 {
        let base = self.next_base;
        self.next_base = (base + bytes.max(1) as u64).next_multiple_of(256) + GUARD_BYTES;
        self.insert(Allocation {
            base,
            data: vec![0; bytes],
        });
        base
    }

    /// Maps `data` at a fixed address (module-level variables).
    pub fn map_at(&mut self, base: u64, data: Vec<u8>) {
        self.insert(Allocation { base, data });
    }

    fn insert(&mut self, a: Allocation) {
        let at = self.allocs.partition_point(|x| x.base < a.base);
        self.live += a.data.len();
        self.peak = self.peak.max(self.live);
        self.allocs.insert(at, a);
    }

    pub fn free(&mut self, base: u64) -> Result<(), EmuError> {
        let at = self.allocs.partition_point(|x| x.base < base);
        if self.allocs.get(at).is_some_and(|a| a.base == base) {
            self.live -= self.allocs.remove(at).data.len();
            self.last = 0;
            Ok(())
        } else {
            Err(EmuError::Memory {
                msg: format!("free of {base:#x}, which is not the start of a live allocation"),
            })
        }
    }

    /// The allocation index and offset of `[addr, addr + len)` if it lies inside one allocation.
    #[inline]
    pub fn find(&mut self, addr: u64, len: usize) -> Option<(usize, usize)> {
        let end = addr.checked_add(len as u64)?;
        if let Some(a) = self.allocs.get(self.last) {
            if addr >= a.base && end <= a.base + a.data.len() as u64 {
                return Some((self.last, (addr - a.base) as usize));
            }
        }
        let found = self.lookup(addr, len)?;
        self.last = found.0;
        Some(found)
    }

    /// [`GlobalMemory::find`] without the last-hit cache.
    fn lookup(&self, addr: u64, len: usize) -> Option<(usize, usize)> {
        let end = addr.checked_add(len as u64)?;
        let at = self
            .allocs
            .partition_point(|x| x.base <= addr)
            .checked_sub(1)?;
        let a = &self.allocs[at];
        (end <= a.base + a.data.len() as u64).then(|| (at, (addr - a.base) as usize))
    }

    #[inline]
    pub fn bytes_mut(&mut self, index: usize, offset: usize, len: usize) -> &mut [u8] {
        &mut self.allocs[index].data[offset..offset + len]
    }

    /// The base address and bytes of allocation `index` (from [`GlobalMemory::find`]).
    #[inline]
    pub fn allocation(&mut self, index: usize) -> (u64, &mut [u8]) {
        let a = &mut self.allocs[index];
        (a.base, &mut a.data)
    }

    /// Explains why `[addr, addr + len)` is not accessible, naming the nearest allocation.
    pub fn describe_fault(&self, addr: u64, len: usize) -> String {
        let at = self.allocs.partition_point(|x| x.base <= addr);
        let before = at.checked_sub(1).map(|i| &self.allocs[i]);
        let after = self.allocs.get(at);
        let mut msg = format!("out-of-bounds global access of {len} bytes at {addr:#x}");
        match (before, after) {
            (Some(b), _) if addr < b.base + b.data.len() as u64 => msg.push_str(&format!(
                ": runs {} bytes past the end of the {}-byte allocation at {:#x}",
                addr + len as u64 - (b.base + b.data.len() as u64),
                b.data.len(),
                b.base
            )),
            (Some(b), _) if addr - (b.base + b.data.len() as u64) < 1 << 20 => {
                msg.push_str(&format!(
                    ": {} bytes past the end of the {}-byte allocation at {:#x}",
                    addr - (b.base + b.data.len() as u64),
                    b.data.len(),
                    b.base
                ))
            }
            (_, Some(a)) if a.base - addr < 1 << 20 => msg.push_str(&format!(
                ": {} bytes before the {}-byte allocation at {:#x}",
                a.base - addr,
                a.data.len(),
                a.base
            )),
            _ => msg.push_str(": not in any allocation"),
        }
        msg
    }

    pub fn host_write(&mut self, addr: u64, bytes: &[u8]) -> Result<(), EmuError> {
        match self.find(addr, bytes.len()) {
            Some((i, off)) => {
                self.bytes_mut(i, off, bytes.len()).copy_from_slice(bytes);
                Ok(())
            }
            None => Err(EmuError::Memory {
                msg: format!("host write: {}", self.describe_fault(addr, bytes.len())),
            }),
        }
    }

    pub fn host_read(&self, addr: u64, len: usize) -> Result<Vec<u8>, EmuError> {
        match self.lookup(addr, len) {
            Some((i, off)) => Ok(self.allocs[i].data[off..off + len].to_vec()),
            None => Err(EmuError::Memory {
                msg: format!("host read: {}", self.describe_fault(addr, len)),
            }),
        }
    }

    /// Bytes currently allocated.
    pub fn allocated_bytes(&self) -> usize {
        self.live
    }

    /// The most bytes allocated at once since the last [`GlobalMemory::reset_peak`].
    pub fn peak_bytes(&self) -> usize {
        self.peak
    }

    pub fn reset_peak(&mut self) {
        self.peak = self.live;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocations_are_aligned_and_separated() {
        let mut m = GlobalMemory::new();
        let a = m.alloc(10);
        let b = m.alloc(300);
        assert_eq!(a % 256, 0);
        assert_eq!(b % 256, 0);
        assert!(b >= a + 256 + GUARD_BYTES);
        assert!(m.find(a + 8, 2).is_some());
        assert!(m.find(a + 8, 4).is_none());
        assert!(m
            .describe_fault(a + 8, 4)
            .contains("runs 2 bytes past the end of the 10-byte allocation"));
        assert!(m.find(b + 296, 4).is_some());
        m.free(a).unwrap();
        assert!(m.find(a, 1).is_none());
        assert!(m.free(a).is_err());
    }

    #[test]
    fn peak_remembers_freed_allocations_until_reset() {
        let mut m = GlobalMemory::new();
        let a = m.alloc(100);
        let b = m.alloc(50);
        m.free(b).unwrap();
        assert_eq!((m.allocated_bytes(), m.peak_bytes()), (100, 150));
        m.reset_peak();
        assert_eq!(m.peak_bytes(), 100);
        m.free(a).unwrap();
        m.alloc(30);
        assert_eq!((m.allocated_bytes(), m.peak_bytes()), (30, 100));
    }
}
