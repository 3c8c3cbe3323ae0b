//! Issue 12, defect 12: the SIGBUS handler and the malloc tunable belong to the whole process,
//! so a program using the library gets neither unless it asks (walfix::mmap::enable_process_wide,
//! which the walfix binary calls). Without them segments are read, not mapped. This file is its
//! own test binary (process) so that nothing else has turned them on.

use std::path::PathBuf;

/// The SIGBUS action now (Rust's runtime installs one of its own for stack overflows).
fn sigbus_action() -> usize {
    // SAFETY: a query (null new action) into a zeroed struct we own.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        assert_eq!(libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut old), 0);
        old.sa_sigaction
    }
}

#[test]
fn without_opt_in_segments_are_read_and_no_sigbus_handler_is_installed() {
    let before = sigbus_action();
    let seg = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/corpora/v3-snappy-small/wal/00000000");
    let data = walfix::mmap::SegmentData::open(&seg).unwrap();
    assert!(!data.is_mapped());
    assert_eq!(data.len() as u64, std::fs::metadata(&seg).unwrap().len());
    let r = walfix::check(seg.parent().unwrap(), &walfix::CheckOptions::default()).unwrap();
    assert_eq!(r.exit_code, 0);
    assert_eq!(sigbus_action(), before, "walfix changed the SIGBUS action");

    // Opted in, the next segment is mapped behind walfix's handler.
    walfix::mmap::enable_process_wide();
    let data = walfix::mmap::SegmentData::open(&seg).unwrap();
    assert!(data.is_mapped());
    assert_ne!(sigbus_action(), before);
}
