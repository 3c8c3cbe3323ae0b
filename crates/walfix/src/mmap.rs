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
    Map(Mapped),
    Owned(Vec<u8>),
}

struct Mapped {
    // Declared before `map`, so the guard is dropped (unregistered) before the map is unmapped.
    #[cfg(target_os = "linux")]
    guard: sigbus::Registration,
    map: memmap2::Mmap,
}

impl SegmentData {
    /// Opens `path` read-only and maps it. Empty files (which cannot be mapped) and files that
    /// refuse mapping (some FUSE and network file systems) are read instead.
    ///
    /// A file truncated by another process while it is mapped does not end the process (see
    /// the `sigbus` module below): the bytes past its new end read as zeros, and [`SegmentData::check_intact`]
    /// says so afterwards. Every reader of a `SegmentData` calls it before trusting its result.
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
        // truncated under us makes access past the new end raise SIGBUS, which `sigbus` turns
        // into zero pages for maps it has registered (the map is registered below, before any
        // byte of it is read; if it cannot be registered the file is read instead).
        let map = unsafe { memmap2::MmapOptions::new().map(&file) };
        let map = match map {
            Ok(m) => m,
            Err(_) => return read_whole(file, len).map(SegmentData::from_vec),
        };
        #[cfg(target_os = "linux")]
        let Some(guard) = sigbus::register(map.as_ptr() as usize, map.len()) else {
            drop(map);
            return read_whole(file, len).map(SegmentData::from_vec);
        };
        #[cfg(unix)]
        let _ = map.advise(memmap2::Advice::Sequential);
        Ok(SegmentData {
            inner: Inner::Map(Mapped {
                #[cfg(target_os = "linux")]
                guard,
                map,
            }),
        })
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

    /// False once a read hit the part of the map that another process truncated away: those
    /// bytes read as zeros, so anything computed from them is wrong.
    pub fn intact(&self) -> bool {
        match &self.inner {
            #[cfg(target_os = "linux")]
            Inner::Map(m) => !m.guard.hit(),
            _ => true,
        }
    }

    /// An error naming `path` unless [`SegmentData::intact`]: call it after reading, before
    /// using what was read.
    pub fn check_intact(&self, path: &Path) -> io::Result<()> {
        if self.intact() {
            return Ok(());
        }
        let now = std::fs::metadata(path).map_or_else(
            |e| format!("now unreadable: {e}"),
            |m| format!("now {} bytes", m.len()),
        );
        Err(io::Error::other(format!(
            "{}: shrank from {} bytes while being read ({now}; another process truncated it); \
             the read was discarded, run again when nothing writes the WAL",
            path.display(),
            self.len()
        )))
    }
}

fn read_whole(mut file: File, len: u64) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(len.min(1 << 30) as usize);
    file.read_to_end(&mut buf)?;
    Ok(buf)
}

impl Deref for SegmentData {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.inner {
            Inner::Map(m) => &m.map,
            Inner::Owned(v) => v,
        }
    }
}

/// Surviving a mapped file that another process truncates.
///
/// Reading a page of a shared file map that lies wholly past the file's current end raises
/// SIGBUS, whose default action ends the process: an initContainer would crash instead of
/// reporting. Reading files with `read(2)` instead would cost a copy and a buffer per segment
/// (up to 128 MiB per thread), so walfix keeps the maps and handles the signal:
///
/// - every map is registered (address, length) in a fixed table of atomics before it is read,
///   each entry behind a sequence number so the handler never pairs two registrations' fields;
/// - a SIGBUS handler, installed once, looks the faulting address up in the table; for a
///   registered map it maps anonymous zero pages over the rest of that map (`MAP_FIXED`),
///   marks the registration, and returns, so the faulting read is retried and reads zeros;
/// - any other SIGBUS (not ours, or sent by `kill`) gets the previous disposition back and
///   happens again, exactly as without walfix (Rust's own handler, then the default action);
/// - readers call [`SegmentData::check_intact`] after reading and discard what they computed.
///
/// The handler only loads and stores atomics and calls `mmap(2)`, which on Linux is a plain
/// system call with no locks (not on POSIX's async-signal-safe list, but safe in practice and
/// what JVMs do for the same problem). Linux only; elsewhere a truncation still raises SIGBUS.
#[cfg(target_os = "linux")]
mod sigbus {
    use std::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};
    use std::sync::OnceLock;

    /// Maps open at once: one per worker thread plus a few in repair; more are read instead.
    const SLOTS: usize = 256;

    struct Slot {
        /// Taken by a live registration.
        used: AtomicBool,
        /// Seqlock over `start` and `len`: odd while they are being written, so the handler
        /// never pairs the `start` of one registration with the `len` of another.
        seq: AtomicUsize,
        start: AtomicUsize,
        len: AtomicUsize,
        hit: AtomicBool,
    }

    impl Slot {
        /// Writes `start` and `len` (only the slot's owner writes).
        fn set(&self, start: usize, len: usize) {
            self.seq.fetch_add(1, Ordering::Relaxed);
            fence(Ordering::Release);
            self.start.store(start, Ordering::Relaxed);
            self.len.store(len, Ordering::Relaxed);
            self.seq.fetch_add(1, Ordering::Release);
        }

        /// `(start, len)` as one registration wrote them, or `None` while being written.
        fn get(&self) -> Option<(usize, usize)> {
            let s1 = self.seq.load(Ordering::Acquire);
            if s1 & 1 == 1 {
                return None;
            }
            let start = self.start.load(Ordering::Relaxed);
            let len = self.len.load(Ordering::Relaxed);
            fence(Ordering::Acquire);
            (self.seq.load(Ordering::Relaxed) == s1).then_some((start, len))
        }
    }

    #[allow(clippy::declare_interior_mutable_const)]
    const FREE: Slot = Slot {
        used: AtomicBool::new(false),
        seq: AtomicUsize::new(0),
        start: AtomicUsize::new(0),
        len: AtomicUsize::new(0),
        hit: AtomicBool::new(false),
    };
    static TABLE: [Slot; SLOTS] = [FREE; SLOTS];
    static PAGE: AtomicUsize = AtomicUsize::new(4096);
    static PREVIOUS: OnceLock<libc::sigaction> = OnceLock::new();

    /// A registered map; unregisters on drop (before the map itself is unmapped).
    pub struct Registration(usize);

    impl Registration {
        pub fn hit(&self) -> bool {
            TABLE[self.0].hit.load(Ordering::Acquire)
        }
    }

    impl Drop for Registration {
        fn drop(&mut self) {
            let slot = &TABLE[self.0];
            slot.set(0, 0);
            slot.used.store(false, Ordering::Release);
        }
    }

    /// Registers the map at `start..start + len`; `None` if the handler could not be installed
    /// or the table is full (the caller then reads the file instead of mapping it).
    pub fn register(start: usize, len: usize) -> Option<Registration> {
        if !super::process_wide() || !installed() || start == 0 || len == 0 {
            return None;
        }
        for (i, slot) in TABLE.iter().enumerate() {
            if slot
                .used
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                slot.hit.store(false, Ordering::Release);
                slot.set(start, len);
                return Some(Registration(i));
            }
        }
        None
    }

    fn installed() -> bool {
        static INSTALLED: OnceLock<bool> = OnceLock::new();
        *INSTALLED.get_or_init(|| {
            // SAFETY: sysconf and sigaction are called with valid arguments; the new action's
            // handler has the three-argument signature SA_SIGINFO requires, and the old action
            // is written into a zeroed struct we own.
            unsafe {
                let page = libc::sysconf(libc::_SC_PAGESIZE);
                if page > 0 {
                    PAGE.store(page as usize, Ordering::Release);
                }
                let mut new: libc::sigaction = std::mem::zeroed();
                new.sa_sigaction = handler as *const () as usize;
                new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
                libc::sigemptyset(&mut new.sa_mask);
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(libc::SIGBUS, &new, &mut old) != 0 {
                    return false;
                }
                let _ = PREVIOUS.set(old);
            }
            true
        })
    }

    extern "C" fn handler(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
        // SAFETY: the kernel passes a valid siginfo_t for a SA_SIGINFO handler; si_addr is the
        // faulting address for SIGBUS. The mmap call replaces pages only inside a map that is
        // registered, i.e. still mapped and owned by a live `SegmentData`, with read-only zero
        // pages of the same protection, so no other memory changes.
        unsafe {
            // Only a fault the kernel raised (si_code > 0) has a faulting address in si_addr;
            // for a SIGBUS sent by kill(2) that field holds the sender's pid and uid.
            if (*info).si_code > 0 {
                let addr = (*info).si_addr() as usize;
                let page = PAGE.load(Ordering::Acquire);
                for slot in &TABLE {
                    let Some((start, len)) = slot.get() else {
                        continue;
                    };
                    if len == 0 || addr.wrapping_sub(start) >= len {
                        continue;
                    }
                    let from = addr & !(page - 1);
                    let end = (start + len).div_ceil(page) * page;
                    let p = libc::mmap(
                        from as *mut libc::c_void,
                        end - from,
                        libc::PROT_READ,
                        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                        -1,
                        0,
                    );
                    if p != libc::MAP_FAILED {
                        slot.hit.store(true, Ordering::Release);
                        return;
                    }
                    break;
                }
            }
            // Not one of ours (or the zero pages could not be mapped): put the previous action
            // back; the faulting access runs again and gets it. A SIGBUS sent by kill(2) is
            // raised again for the same reason.
            match PREVIOUS.get() {
                Some(old) => {
                    libc::sigaction(libc::SIGBUS, old, std::ptr::null_mut());
                }
                None => {
                    libc::signal(libc::SIGBUS, libc::SIG_DFL);
                }
            }
            if (*info).si_code <= 0 {
                libc::raise(libc::SIGBUS);
            }
        }
    }
}

static PROCESS_WIDE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Lets walfix change two things that belong to the whole process: a SIGBUS handler (installed
/// at the first map; it turns a file truncated under one of our maps into zero pages instead of
/// a crash, and hands every other SIGBUS to the previous handler) and glibc's mmap threshold
/// ([`limit_allocator_retention`]). The `walfix` binary turns this on first thing. A program
/// using the library that leaves it off keeps its own signal handling and allocator settings;
/// segments are then read into memory instead of mapped (slower, and memory grows with the
/// largest segment), never mapped without the guard.
pub fn enable_process_wide() {
    PROCESS_WIDE.store(true, std::sync::atomic::Ordering::Release);
}

fn process_wide() -> bool {
    PROCESS_WIDE.load(std::sync::atomic::Ordering::Acquire)
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
    if !process_wide() {
        return;
    }
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
