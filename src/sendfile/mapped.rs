//! Segment bytes kept in a sealed in-memory file (Linux `memfd`), mapped read-only, so that the
//! HTTP connections can send them with `sendfile(2)` from the file instead of copying them into
//! every socket from user memory: the copy per request is what made castgate slower than nginx
//! (which sends files with `sendfile`) on live segments.
//!
//! A mapped segment is an ordinary `Bytes` for everyone else. A registry maps the address range
//! of each mapping to its file, so the socket can tell, from the slice hyper asks it to write,
//! that it can be sent from a file.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::RwLock;

use bytes::Bytes;

/// Smaller bodies are cheaper to copy than to look up and send in a second system call.
pub const MIN_MAPPED_LEN: usize = 64 * 1024;

/// Live mappings by start address: (length, file).
static REGISTRY: RwLock<BTreeMap<usize, (usize, RawFd)>> = RwLock::new(BTreeMap::new());
/// How many mappings exist: lets sockets skip the registry while there are none.
static MAPPED: AtomicUsize = AtomicUsize::new(0);

/// One segment in its own sealed memory file.
struct MappedSegment {
    file: OwnedFd,
    ptr: *const u8,
    len: usize,
}

// SAFETY: the mapping is read-only and sealed against writes, and lives until `drop`; sharing
// or moving the pointer between threads cannot observe a change.
unsafe impl Send for MappedSegment {}
unsafe impl Sync for MappedSegment {}

impl AsRef<[u8]> for MappedSegment {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `ptr` maps `len` readable bytes until `drop`.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for MappedSegment {
    fn drop(&mut self) {
        registry_write().remove(&(self.ptr as usize));
        MAPPED.fetch_sub(1, Ordering::Relaxed);
        // SAFETY: `ptr`/`len` is our own mapping, no longer reachable (the last `Bytes` is gone).
        unsafe { libc::munmap(self.ptr as *mut libc::c_void, self.len) };
        // `file` closes after this, once no socket can find it any more.
    }
}

/// The same bytes in a sealed memory file when that is worth it and possible; otherwise (small
/// data, not Linux, out of file descriptors) `data` as it is. Either way the result reads the
/// same.
pub fn map_segment(data: Bytes) -> Bytes {
    if data.len() < MIN_MAPPED_LEN {
        return data;
    }
    match MappedSegment::new(&data) {
        Ok(m) => Bytes::from_owner(m),
        Err(e) => {
            tracing::debug!(error = %e, "segment kept in heap memory (no memfd)");
            data
        }
    }
}

impl MappedSegment {
    fn new(data: &[u8]) -> std::io::Result<MappedSegment> {
        // SAFETY: a valid C string and flags; the result is checked.
        let fd = unsafe {
            libc::memfd_create(
                c"castgate-segment".as_ptr(),
                libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` was just opened and is owned by nothing else.
        let file = unsafe { File::from_raw_fd(fd) };
        (&file).write_all(data)?;
        // The content can never change after this, whoever holds the file.
        let seals =
            libc::F_SEAL_WRITE | libc::F_SEAL_GROW | libc::F_SEAL_SHRINK | libc::F_SEAL_SEAL;
        // SAFETY: fcntl on our own descriptor.
        if unsafe { libc::fcntl(fd, libc::F_ADD_SEALS, seals) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: a fresh read-only shared mapping of the whole file; checked below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                data.len(),
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let segment = MappedSegment {
            file: OwnedFd::from(file),
            ptr: ptr as *const u8,
            len: data.len(),
        };
        registry_write().insert(ptr as usize, (data.len(), segment.file.as_raw_fd()));
        MAPPED.fetch_add(1, Ordering::Relaxed);
        Ok(segment)
    }
}

/// If `slice` lies inside a mapped segment: that segment's file and the slice's offset in it.
/// The caller must hold a `Bytes` of the segment (as a socket writing it does), which keeps the
/// file open while it is used.
pub fn lookup(slice: &[u8]) -> Option<(RawFd, u64)> {
    if slice.len() < MIN_MAPPED_LEN || MAPPED.load(Ordering::Relaxed) == 0 {
        return None;
    }
    let start = slice.as_ptr() as usize;
    let registry = REGISTRY.read().unwrap_or_else(|e| e.into_inner());
    let (&base, &(len, fd)) = registry.range(..=start).next_back()?;
    let offset = start - base;
    (offset + slice.len() <= len).then_some((fd, offset as u64))
}

fn registry_write() -> std::sync::RwLockWriteGuard<'static, BTreeMap<usize, (usize, RawFd)>> {
    REGISTRY.write().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(len: usize) -> Bytes {
        Bytes::from((0..len).map(|i| (i * 7 % 251) as u8).collect::<Vec<u8>>())
    }

    #[test]
    fn a_large_segment_reads_the_same_and_is_found_by_its_slices() {
        let data = pattern(200_000);
        let mapped = map_segment(data.clone());
        assert_eq!(mapped, data);
        assert_ne!(mapped.as_ptr(), data.as_ptr(), "moved into the memory file");
        let (fd, offset) = lookup(&mapped[..]).expect("whole segment found");
        assert_eq!(offset, 0);
        // The file holds the same bytes.
        let mut from_file = vec![0u8; 1000];
        // SAFETY: pread into our buffer from a descriptor kept open by `mapped`.
        let n = unsafe { libc::pread(fd, from_file.as_mut_ptr().cast(), 1000, 100_000) };
        assert_eq!(n, 1000);
        assert_eq!(&from_file[..], &data[100_000..101_000]);
        // A part of it (what is left after a partial write) is found at its offset.
        let rest = mapped.slice(120_000..);
        assert_eq!(lookup(&rest), Some((fd, 120_000)));
    }

    #[test]
    fn small_data_and_heap_memory_are_not_mapped() {
        let small = pattern(1000);
        let kept = map_segment(small.clone());
        assert_eq!(kept.as_ptr(), small.as_ptr());
        assert_eq!(lookup(&pattern(200_000)), None);
    }
}
