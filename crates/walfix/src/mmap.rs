//! Read-only access to segment bytes. The only `unsafe` in walfix lives here.

use std::fs::File;
use std::io::{self, Read};
use std::ops::Deref;
use std::path::Path;

/// The bytes of one segment file: memory-mapped when possible, read into memory otherwise.
pub struct SegmentData {
    inner: Inner,
}

enum Inner {
    Map(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl SegmentData {
    /// Opens `path` read-only and maps it. Empty files (which cannot be mapped) and files that
    /// refuse mapping (some FUSE and network file systems) are read instead.
    pub fn open(path: &Path) -> io::Result<SegmentData> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        if len == 0 {
            return Ok(SegmentData::from_vec(Vec::new()));
        }
        // SAFETY: the map is read-only and private to this process. Its contents can still
        // change if another process writes the file while we read it; we only ever read the
        // bytes as plain `u8`s with bounds-checked accesses, so a concurrent change can give
        // wrong answers (a false CRC mismatch) but never undefined behaviour in our code. A file
        // truncated under us makes access past the new end raise SIGBUS; walfix refuses to run
        // `repair` while Prometheus holds the data dir's lock, and `check` is documented to be
        // run on a WAL nobody is truncating (Prometheus only truncates whole old segments).
        let map = unsafe { memmap2::MmapOptions::new().map(&file) };
        match map {
            Ok(m) => {
                #[cfg(unix)]
                let _ = m.advise(memmap2::Advice::Sequential);
                Ok(SegmentData {
                    inner: Inner::Map(m),
                })
            }
            Err(_) => {
                let mut buf = Vec::with_capacity(len.min(1 << 30) as usize);
                File::open(path)?.read_to_end(&mut buf)?;
                Ok(SegmentData::from_vec(buf))
            }
        }
    }

    /// Bytes already in memory (tests, stdin).
    pub fn from_vec(v: Vec<u8>) -> SegmentData {
        SegmentData {
            inner: Inner::Owned(v),
        }
    }

    /// True when the bytes are memory-mapped.
    pub fn is_mapped(&self) -> bool {
        matches!(self.inner, Inner::Map(_))
    }
}

impl Deref for SegmentData {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.inner {
            Inner::Map(m) => m,
            Inner::Owned(v) => v,
        }
    }
}

/// Buffers at least this large get their own mapping from glibc's malloc and go back to the
/// system when freed (see [`limit_allocator_retention`]).
pub const LARGE_ALLOCATION: usize = 4 << 20;

/// Keeps peak memory independent of the WAL's length under glibc. By default glibc raises its
/// mmap threshold to the size of the largest block freed so far (up to 32 MiB): after one giant
/// record (the first scrape of a big target writes a series record of tens of MiB) every later
/// record buffer comes from the heap and stays there, a few per thread, so peak RssAnon grew with
/// the number of such records met (measured: 36 MiB on a 1 GiB WAL, 60 MiB on 4 GiB, 2 threads).
/// A fixed threshold of [`LARGE_ALLOCATION`] turns that off. Called once by the scanner; does
/// nothing on other C libraries.
pub fn limit_allocator_retention() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            extern "C" {
                fn mallopt(param: i32, value: i32) -> i32;
            }
            const M_MMAP_THRESHOLD: i32 = -3;
            // SAFETY: `mallopt` only sets a malloc tunable; glibc takes its own lock, and the
            // value is within the range it accepts (at most HEAP_MAX_SIZE / 2 = 32 MiB).
            unsafe {
                mallopt(M_MMAP_THRESHOLD, LARGE_ALLOCATION as i32);
            }
        });
    }
}
