//! The logs under a path in Prometheus's replay order, read one record at a time.
//!
//! Order (tsdb/head.go `Init`): the highest checkpoint's segments, then the WAL segments above
//! the checkpoint's index (those at or below it are covered and skipped), then the WBL. Every
//! segment is read through [`read_segment`], which checks that the memory map stayed intact
//! before it returns success (a file truncated under the map reads as zeros and is reported).
//!
//! ```no_run
//! use std::ops::ControlFlow;
//! use walfix::replay::{read_segment, replay_order, Event};
//!
//! # fn main() -> std::io::Result<()> {
//! let layout = walfix::layout::discover("/prometheus".as_ref(), walfix::WalFlavor::Server)?;
//! let mut series_records = 0;
//! for seg in replay_order(&layout) {
//!     read_segment(&seg, &mut |ev| {
//!         if let Event::Record(r) = ev {
//!             if r.data.first() == Some(&1) {
//!                 series_records += 1;
//!             }
//!         }
//!         ControlFlow::Continue(())
//!     })?;
//! }
//! println!("{series_records} series records");
//! # Ok(())
//! # }
//! ```

use std::io;
use std::ops::ControlFlow;
use std::path::PathBuf;

use walfix_format::frames::RecordReader;
pub use walfix_format::frames::{Record, RecordEvent as Event};
use walfix_format::record::LogKind;

use crate::layout::Layout;
use crate::mmap::SegmentData;

/// One segment, where replay reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// What kind of log it belongs to (decides which record types replay applies).
    pub kind: LogKind,
    /// Segment index.
    pub index: u64,
    /// The file.
    pub path: PathBuf,
    /// Its size when the layout was discovered (for progress; reads use the file as it is).
    pub len: u64,
}

/// Every segment Prometheus replays, in the order it replays them.
pub fn replay_order(layout: &Layout) -> Vec<Segment> {
    let mut out = Vec::new();
    for log in &layout.logs {
        let mut covered_to = None;
        if let Some(ck) = &log.checkpoint {
            covered_to = Some(ck.index);
            for s in ck.log.segments.iter().filter(|s| !s.is_dir) {
                out.push(Segment {
                    kind: LogKind::Checkpoint,
                    index: s.index,
                    path: s.path.clone(),
                    len: s.len,
                });
            }
        }
        for s in &log.segments {
            if s.is_dir || covered_to.is_some_and(|c| s.index <= c) {
                continue;
            }
            out.push(Segment {
                kind: log.kind,
                index: s.index,
                path: s.path.clone(),
                len: s.len,
            });
        }
    }
    out
}

/// Reads `seg`'s records and problems in order, handing each to `f` until it breaks. Fails if
/// the file cannot be read or changed under us while being read (then what `f` saw of this
/// segment may be wrong).
pub fn read_segment(
    seg: &Segment,
    f: &mut dyn FnMut(Event<'_>) -> ControlFlow<()>,
) -> io::Result<()> {
    let data = SegmentData::open(&seg.path)?;
    {
        let mut r = RecordReader::new(&data);
        while let Some(ev) = r.next() {
            if f(ev).is_break() {
                break;
            }
        }
    }
    data.check_intact(&seg.path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_first_then_segments_above_it_then_the_wbl() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        for p in [
            "wal/00000002",
            "wal/00000003",
            "wal/00000004",
            "wal/checkpoint.00000003/00000000",
            "wal/checkpoint.00000001/00000000",
            "wbl/00000000",
        ] {
            std::fs::create_dir_all(d.join(p).parent().unwrap()).unwrap();
            std::fs::write(d.join(p), b"").unwrap();
        }
        let layout = crate::layout::discover(d, crate::WalFlavor::Server).unwrap();
        let got: Vec<_> = replay_order(&layout)
            .into_iter()
            .map(|s| s.path.strip_prefix(d).unwrap().to_path_buf())
            .collect();
        let want: Vec<PathBuf> = [
            "wal/checkpoint.00000003/00000000",
            "wal/00000004",
            "wbl/00000000",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        assert_eq!(got, want);
    }
}
