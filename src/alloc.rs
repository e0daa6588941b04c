//! The process's allocator: mimalloc, except on threads that asked for the
//! one heap all scripted VUs share.
//!
//! mimalloc is the faster allocator for the request path, which allocates
//! small buffers at a high rate on a few worker threads (see
//! `make bench-mock`). It keeps a heap per thread, though, as glibc keeps a
//! cache per thread, and every thread that allocates pays for those: ~100
//! KB a thread of mimalloc pages, up to ~200 KB of glibc's cached chunks.
//! A scripted run has a thread per VU (its JavaScript runtime cannot move),
//! mostly asleep in a request or `sleep()`; a thousand of them would hold
//! hundreds of MB of caches. Those threads mark themselves with
//! [`use_shared_here`] and allocate from one dlmalloc heap behind a lock:
//! no cache per thread, and a VU allocates little between two requests.
//! Their JavaScript runtimes allocate through it too (rquickjs's
//! `rust-alloc`).
//!
//! A block is freed by the heap that owns it, found by address: the shared
//! heap takes its memory from one reservation of address space ([`Region`],
//! made at its first use), so a block is its iff the block's address is in
//! that range. One load and a compare, exact, and no call into mimalloc's
//! internals: a buffer made on a VU thread and freed on a worker goes back
//! to the shared heap.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use dlmalloc::Dlmalloc;
use mimalloc::MiMalloc;

/// Where the shared heap's reservation starts (0: not made yet) and its
/// length.
static BASE: AtomicUsize = AtomicUsize::new(0);
static LEN: AtomicUsize = AtomicUsize::new(0);
/// How much of it dlmalloc has been given (touched only under the heap's
/// lock, from which dlmalloc asks for memory).
static USED: AtomicUsize = AtomicUsize::new(0);

/// The shared heap's system memory: pages of one reservation of address
/// space (PROT_NONE, no memory committed), made readable and writable as
/// dlmalloc asks for them, never given back (dlmalloc reuses what it frees).
struct Region;

impl Region {
    /// Reserve the range once: 64 GiB of addresses, or less where the
    /// process may not have that much (`ulimit -v`).
    fn base() -> Option<usize> {
        let b = BASE.load(Ordering::Acquire);
        if b != 0 {
            return Some(b);
        }
        let mut len = 64usize << 30;
        while len >= 256 << 20 {
            // SAFETY: a fresh anonymous mapping, no memory of ours touched.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_NONE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                    -1,
                    0,
                )
            };
            if p != libc::MAP_FAILED {
                LEN.store(len, Ordering::Release);
                BASE.store(p as usize, Ordering::Release);
                return Some(p as usize);
            }
            len /= 2;
        }
        None
    }
}

// SAFETY: the regions handed out are fresh, page-aligned, zeroed and not
// handed out twice.
unsafe impl dlmalloc::Allocator for Region {
    fn alloc(&self, size: usize) -> (*mut u8, usize, u32) {
        let none = (std::ptr::null_mut(), 0, 0);
        let Some(base) = Region::base() else {
            return none;
        };
        let size = size.next_multiple_of(self.page_size());
        let used = USED.load(Ordering::Relaxed);
        if used + size > LEN.load(Ordering::Acquire) {
            return none;
        }
        let p = (base + used) as *mut libc::c_void;
        // SAFETY: inside our own reservation.
        if unsafe { libc::mprotect(p, size, libc::PROT_READ | libc::PROT_WRITE) } != 0 {
            return none;
        }
        USED.store(used + size, Ordering::Relaxed);
        (p as *mut u8, size, 0)
    }

    fn remap(&self, _: *mut u8, _: usize, _: usize, _: bool) -> *mut u8 {
        std::ptr::null_mut()
    }

    fn free_part(&self, _: *mut u8, _: usize, _: usize) -> bool {
        false
    }

    fn free(&self, _: *mut u8, _: usize) -> bool {
        false
    }

    fn can_release_part(&self, _: u32) -> bool {
        false
    }

    fn allocates_zeros(&self) -> bool {
        true
    }

    fn page_size(&self) -> usize {
        4096
    }
}

/// Whether `ptr` is a block of the shared heap.
#[inline]
fn owned_by_shared(ptr: *mut u8) -> bool {
    let base = BASE.load(Ordering::Acquire);
    base != 0 && (ptr as usize).wrapping_sub(base) < LEN.load(Ordering::Relaxed)
}

thread_local! {
    /// True on a thread that allocates from the shared heap. A `const`
    /// thread-local with no destructor: reading it never allocates.
    static SHARED: Cell<bool> = const { Cell::new(false) };
}

/// The heap of marked threads.
static HEAP: Mutex<Dlmalloc<Region>> = Mutex::new(Dlmalloc::new_with_allocator(Region));

fn heap() -> MutexGuard<'static, Dlmalloc<Region>> {
    // Nothing panics while holding it; a poisoned lock is still sound.
    HEAP.lock().unwrap_or_else(|e| e.into_inner())
}

extern "C" {
    /// mimalloc's own: free what the calling thread's heap holds unused,
    /// and with `force`, purge what every thread gave back to the arenas.
    fn mi_collect(force: bool);
}

/// Give the memory the load freed back to the system now (at the end of a
/// run, before the work that follows it allocates: mimalloc would
/// otherwise keep freed pages until the threads that freed them allocate
/// again).
pub fn give_back() {
    // SAFETY: a call into the allocator linked in, valid on any thread.
    unsafe { mi_collect(true) }
}

/// From now on, this thread allocates from the heap shared by marked
/// threads.
pub fn use_shared_here() {
    SHARED.with(|s| s.set(true));
}

fn on_shared() -> bool {
    SHARED.with(Cell::get)
}

/// mimalloc, or the shared heap on threads marked by [`use_shared_here`];
/// each block is freed by its owner.
#[derive(Clone, Copy)]
pub struct Allocator;

/// Whether `ptr`, a live block of [`Allocator`], is mimalloc's.
#[inline]
fn owned_by_mimalloc(ptr: *mut u8) -> bool {
    !owned_by_shared(ptr)
}

unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if on_shared() {
            heap().malloc(layout.size(), layout.align())
        } else {
            MiMalloc.alloc(layout)
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if on_shared() {
            heap().calloc(layout.size(), layout.align())
        } else {
            MiMalloc.alloc_zeroed(layout)
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if owned_by_mimalloc(ptr) {
            MiMalloc.dealloc(ptr, layout)
        } else {
            heap().free(ptr, layout.size(), layout.align())
        }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let mimalloc = owned_by_mimalloc(ptr);
        if mimalloc != on_shared() {
            // The block belongs to this thread's heap: grow it there.
            return if mimalloc {
                MiMalloc.realloc(ptr, layout, new_size)
            } else {
                heap().realloc(ptr, layout.size(), layout.align(), new_size)
            };
        }
        // Move it to this thread's heap.
        let new = self.alloc(Layout::from_size_align_unchecked(new_size, layout.align()));
        if !new.is_null() {
            std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
            self.dealloc(ptr, layout);
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_made_on_a_shared_thread_are_freed_by_their_owner_anywhere() {
        let a = Allocator;
        let layout = Layout::from_size_align(100, 8).unwrap();
        // A block made on a marked thread is the shared heap's, and freeing
        // or growing it on an unmarked thread goes there.
        let p = std::thread::spawn(move || {
            use_shared_here();
            let p = unsafe { a.alloc(layout) };
            unsafe { p.write_bytes(7, 100) };
            p as usize
        })
        .join()
        .unwrap() as *mut u8;
        unsafe {
            assert!(!owned_by_mimalloc(p));
            let q = a.realloc(p, layout, 5000);
            assert!(owned_by_mimalloc(q), "moved to mimalloc here");
            assert_eq!(*q.add(99), 7);
            a.dealloc(q, Layout::from_size_align(5000, 8).unwrap());
        }
        // Every mimalloc block is found as mimalloc's, however large (a
        // miss would free it into the shared heap).
        for size in [8, 4096, 1 << 20, 64 << 20, 1 << 30] {
            let l = Layout::from_size_align(size, 16).unwrap();
            let p = unsafe { a.alloc(l) };
            assert!(!p.is_null());
            assert!(owned_by_mimalloc(p), "{size} bytes");
            unsafe { a.dealloc(p, l) };
        }
        // A mimalloc block moves to the shared heap when a marked thread
        // grows it; aligned and zeroed blocks come as asked.
        let m = unsafe { a.alloc(layout) } as usize;
        std::thread::spawn(move || {
            use_shared_here();
            let m = m as *mut u8;
            unsafe {
                assert!(owned_by_mimalloc(m));
                m.write_bytes(3, 100);
                let n = a.realloc(m, layout, 300);
                assert!(!owned_by_mimalloc(n));
                assert_eq!(*n.add(50), 3);
                a.dealloc(n, Layout::from_size_align(300, 8).unwrap());
                let big = Layout::from_size_align(4096, 256).unwrap();
                let z = a.alloc_zeroed(big);
                assert_eq!(z as usize % 256, 0);
                assert!(std::slice::from_raw_parts(z, 4096).iter().all(|b| *b == 0));
                a.dealloc(z, big);
            }
        })
        .join()
        .unwrap();
    }
}
