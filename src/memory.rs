//! Giving back the memory that only start-up, reloads and the fast path's loader used.
//!
//! Owns: the allocator's settings for a long life ([`fixed_thresholds`], before anything is
//! allocated), [`trim_heap`], and [`release_startup_pages`], called once the daemon is ready,
//! after each reload and after the fast path is loaded.
//! Start-up runs code that the running daemon never runs again (argument and file parsing,
//! netlink dumps, the loader of the kernel filter, the first snapshot); the kernel keeps those
//! pages of the binary mapped (and counted in VmRSS) until memory runs short. Dropping the
//! mappings of the binary's read-only segments leaves the pages in the page cache (they are
//! the file's), so what the daemon runs again is mapped back at the cost of a minor fault; VmRSS
//! then shows what the running daemon uses. Likewise the heap that start-up freed is returned.
//!
//! Must not: touch a writable or relocated segment (PT_GNU_RELRO: its pages hold the
//! relocations applied at start and are private copies; dropping them would lose them), nor
//! any mapping but the executable's own.

use std::ffi::c_void;

/// Fixed allocator thresholds (mallopt(3)). glibc's defaults adapt: each large block freed
/// raises the mmap threshold to its size and the trim threshold to twice that, so after the
/// fast path's loader (megabytes of the kernel's BTF, parsed and freed) the heap would keep
/// megabytes of freed memory instead of returning it. The default values, made fixed, and no
/// padding kept at a heap's top.
pub fn fixed_thresholds() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only changes the allocator's parameters; called before other threads.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 * 1024);
        // Nothing kept beyond the top chunk when a heap is trimmed (128 KiB by default): the
        // fast path's loader thread leaves an arena that nothing uses again.
        libc::mallopt(libc::M_TOP_PAD, 0);
    }
}

/// Return the heap's free memory to the kernel (every arena's free pages, malloc_trim(3)).
pub fn trim_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free memory of the allocator; no pointers involved.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The page-aligned ranges `[start, end)` inside the executable's read-only PT_LOAD segments,
/// excluding anything that overlaps its PT_GNU_RELRO segment.
fn read_only_ranges() -> Vec<(usize, usize)> {
    struct Found {
        ranges: Vec<(usize, usize)>,
        done: bool,
    }
    unsafe extern "C" fn each(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut c_void,
    ) -> libc::c_int {
        // SAFETY: `data` is the `Found` passed to dl_iterate_phdr below, alive for the call;
        // `info` and its program headers are valid for the duration of this callback.
        let found = unsafe { &mut *(data as *mut Found) };
        if found.done {
            return 1;
        }
        // The first object reported is the executable itself.
        found.done = true;
        let info = unsafe { &*info };
        let page = 4096usize;
        let base = info.dlpi_addr as usize;
        let phdrs = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) };
        let relro: Vec<(usize, usize)> = phdrs
            .iter()
            .filter(|p| p.p_type == libc::PT_GNU_RELRO)
            .map(|p| {
                let start = base + p.p_vaddr as usize;
                (
                    start & !(page - 1),
                    (start + p.p_memsz as usize + page - 1) & !(page - 1),
                )
            })
            .collect();
        for p in phdrs {
            if p.p_type != libc::PT_LOAD || p.p_flags & libc::PF_W != 0 {
                continue;
            }
            // Only whole pages of the segment's file contents (inward), never a page shared
            // with another segment.
            let start = (base + p.p_vaddr as usize + page - 1) & !(page - 1);
            let end = (base + p.p_vaddr as usize + p.p_filesz as usize) & !(page - 1);
            if end <= start || relro.iter().any(|&(s, e)| start < e && s < end) {
                continue;
            }
            found.ranges.push((start, end));
        }
        1
    }
    let mut found = Found {
        ranges: Vec::new(),
        done: false,
    };
    // SAFETY: the callback only reads what the loader passes it and writes to `found`.
    unsafe { libc::dl_iterate_phdr(Some(each), &mut found as *mut Found as *mut c_void) };
    found.ranges
}

/// Unmap the executable's read-only pages (they map back on use) and return freed heap to the
/// kernel. Returns the bytes of the binary's pages dropped from the mapping.
pub fn release_startup_pages() -> usize {
    let mut dropped = 0;
    for (start, end) in read_only_ranges() {
        // SAFETY: the range lies inside a read-only, never-written, file-backed segment of our
        // own executable (see above): MADV_DONTNEED only removes the page table entries, and
        // the next access maps the same file page back (madvise(2)).
        let rc = unsafe { libc::madvise(start as *mut c_void, end - start, libc::MADV_DONTNEED) };
        if rc == 0 {
            dropped += end - start;
        }
    }
    trim_heap();
    dropped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_text_and_never_a_writable_or_relro_page() {
        let ranges = read_only_ranges();
        assert!(!ranges.is_empty(), "no read-only segment found");
        // This function's own code lies in one of them.
        let here = finds_the_text_and_never_a_writable_or_relro_page as fn() as usize;
        assert!(
            ranges.iter().any(|&(s, e)| s <= here && here < e),
            "the text segment is not among {ranges:x?}"
        );
        // A static in .data is writable: never inside.
        static mut WRITABLE: u64 = 1;
        let data = &raw const WRITABLE as usize;
        assert!(!ranges.iter().any(|&(s, e)| s <= data && data < e));
    }

    #[test]
    fn code_still_runs_after_its_pages_are_dropped() {
        let dropped = release_startup_pages();
        assert!(dropped > 0);
        // Running, formatting and reading constants again maps the pages back.
        let text = format!("{:?}", (1u8..5).map(|x| x * 3).collect::<Vec<_>>());
        assert_eq!(text, "[3, 6, 9, 12]");
    }
}
