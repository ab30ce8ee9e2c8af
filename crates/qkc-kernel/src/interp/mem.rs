//! The interpreter's memory: one byte buffer per kernel argument (global), per block allocation
//! (shared) and per thread allocation (local). Every access is checked: bounds, alignment,
//! reads of bytes never written, and write conflicts that would be data races on a real machine.
//!
//! A race is two different threads writing the same byte of global or shared memory with no
//! barrier between them (or from different blocks), or a thread reading a byte of shared memory
//! that another thread wrote since the last barrier.

use crate::interp::lanes::LResult;
use crate::types::MemSpace;

/// A pointer: buffer index and byte offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ptr {
    pub buf: u32,
    pub off: i64,
}

/// Who wrote a byte last: (block, thread, barrier phase); `block == u32::MAX` means nobody.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Writer {
    block: u32,
    thread: u32,
    phase: u32,
}

const NOBODY: Writer = Writer { block: u32::MAX, thread: 0, phase: 0 };

pub(crate) struct Buf {
    pub space: MemSpace,
    pub data: Vec<u8>,
    init: Vec<bool>,
    writers: Vec<Writer>,
    pub name: String,
}

/// Who is accessing memory.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Who {
    pub block: u32,
    pub thread: u32,
    pub phase: u32,
}

#[derive(Default)]
pub(crate) struct Memory {
    pub bufs: Vec<Buf>,
    pub loaded: u64,
    pub stored: u64,
}

impl Memory {
    /// A buffer; `init` says whether its bytes count as written.
    pub fn alloc(&mut self, space: MemSpace, data: Vec<u8>, init: bool, name: String) -> u32 {
        let n = data.len();
        let track = space != MemSpace::Local;
        self.bufs.push(Buf {
            space,
            data,
            init: vec![init; n],
            writers: if track { vec![NOBODY; n] } else { Vec::new() },
            name,
        });
        (self.bufs.len() - 1) as u32
    }

    fn range(&self, p: Ptr, size: u32, align: u32) -> LResult<(usize, usize)> {
        let b = self.bufs.get(p.buf as usize).ok_or("dangling pointer")?;
        let end = p.off.checked_add(i64::from(size)).ok_or("address overflow")?;
        if p.off < 0 || end > b.data.len() as i64 {
            return Err(format!(
                "out of bounds: bytes {}..{end} of {} buffer `{}` ({} bytes)",
                p.off,
                b.space,
                b.name,
                b.data.len()
            ));
        }
        if p.off % i64::from(align.max(1)) != 0 {
            return Err(format!(
                "misaligned: byte offset {} in `{}` is not a multiple of align {align}",
                p.off, b.name
            ));
        }
        Ok((p.off as usize, end as usize))
    }

    /// Read `size` bytes.
    pub fn read(&mut self, p: Ptr, size: u32, align: u32, who: Who) -> LResult<Vec<u8>> {
        let (lo, hi) = self.range(p, size, align)?;
        let b = &self.bufs[p.buf as usize];
        if let Some(j) = (lo..hi).find(|&j| !b.init[j]) {
            return Err(format!("read of uninitialized byte {j} of {} buffer `{}`", b.space, b.name));
        }
        if b.space == MemSpace::Shared {
            for j in lo..hi {
                let w = b.writers[j];
                if w != NOBODY && w.thread != who.thread && w.phase == who.phase {
                    return Err(format!(
                        "race: thread {} reads byte {j} of shared `{}` that thread {} wrote with no barrier between",
                        who.thread, b.name, w.thread
                    ));
                }
            }
        }
        self.loaded += u64::from(size);
        Ok(b.data[lo..hi].to_vec())
    }

    /// Write bytes; `atomic` writes are exempt from race tracking.
    pub fn write(&mut self, p: Ptr, bytes: &[u8], align: u32, who: Who, atomic: bool) -> LResult<()> {
        let (lo, hi) = self.range(p, bytes.len() as u32, align)?;
        let b = &mut self.bufs[p.buf as usize];
        if !b.writers.is_empty() && !atomic {
            for j in lo..hi {
                let w = b.writers[j];
                let conflict =
                    w != NOBODY && (w.block != who.block || (w.thread != who.thread && w.phase == who.phase));
                if conflict {
                    return Err(format!(
                        "race: byte {j} of {} buffer `{}` written by block {} thread {} and by block {} thread {}",
                        b.space, b.name, w.block, w.thread, who.block, who.thread
                    ));
                }
                b.writers[j] = Writer { block: who.block, thread: who.thread, phase: who.phase };
            }
        }
        b.data[lo..hi].copy_from_slice(bytes);
        b.init[lo..hi].fill(true);
        self.stored += bytes.len() as u64;
        Ok(())
    }
}
