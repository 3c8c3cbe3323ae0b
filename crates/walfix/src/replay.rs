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
use std::path::{Path, PathBuf};

use walfix_format::frames::RecordReader;
pub use walfix_format::frames::{Record, RecordEvent as Event};
use walfix_format::record::LogKind;

use crate::layout::{Layout, Log, SegmentFile};
use crate::mmap::SegmentData;

/// What replay does with a segment file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Place {
    /// A segment of the checkpoint with this index: loaded first.
    Checkpoint(u64),
    /// A WAL (or WBL) segment replay reads.
    Replayed,
    /// A WAL segment at or below the checkpoint's index: replay skips it (head.go@v3.5.0 Init
    /// starts at checkpoint index + 1).
    Covered,
}

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
    /// Where it sits in replay.
    pub place: Place,
    /// The entry is a directory (Prometheus fails when it opens it).
    pub is_dir: bool,
}

impl Segment {
    /// Replay opens it: not covered by the checkpoint.
    pub fn is_replayed(&self) -> bool {
        self.place != Place::Covered
    }
}

/// The segment files of one log in replay order, covered ones and directories included.
pub fn log_segments(log: &Log, place: impl Fn(&SegmentFile) -> Place) -> Vec<Segment> {
    log.segments
        .iter()
        .map(|s| Segment {
            kind: log.kind,
            index: s.index,
            path: s.path.clone(),
            len: s.len,
            place: place(s),
            is_dir: s.is_dir,
        })
        .collect()
}

/// Every segment file of every log, in replay order (checkpoint, WAL, WBL), with what replay
/// does with it: the list `check` reports on and `estimate` reads (covered segments and
/// directories included; [`replay_order`] leaves them out).
pub fn all_segments(layout: &Layout) -> Vec<Segment> {
    let mut out = Vec::new();
    for log in &layout.logs {
        let (ck_logs, covered_to) = checkpoint_parts(log);
        out.extend(ck_logs);
        out.extend(log_segments(log, |s| live_place(covered_to, s)));
    }
    out
}

/// The checkpoint's segments of `log` and the last index it covers.
pub fn checkpoint_parts(log: &Log) -> (Vec<Segment>, Option<u64>) {
    match &log.checkpoint {
        Some(ck) => (
            log_segments(&ck.log, |_| Place::Checkpoint(ck.index)),
            Some(ck.index),
        ),
        None => (Vec::new(), None),
    }
}

/// Place of a live segment given the checkpoint's index.
pub fn live_place(covered_to: Option<u64>, s: &SegmentFile) -> Place {
    if covered_to.is_some_and(|c| s.index <= c) {
        Place::Covered
    } else {
        Place::Replayed
    }
}

/// Every segment Prometheus replays, in the order it replays them.
pub fn replay_order(layout: &Layout) -> Vec<Segment> {
    all_segments(layout)
        .into_iter()
        .filter(|s| s.is_replayed() && !s.is_dir)
        .collect()
}

/// Reads the segment file at `path` with `f`: the one guard every reader goes through. An
/// error if the file cannot be read or another process truncated it under the map meanwhile
/// (what `f` computed from the bytes past the cut is then wrong, so it is not returned).
pub fn with_segment<T>(path: &Path, f: impl FnOnce(&[u8]) -> T) -> io::Result<T> {
    let data = SegmentData::open(path)?;
    let out = f(&data);
    data.check_intact(path)?;
    Ok(out)
}

/// Reads `seg`'s records and problems in order, handing each to `f` until it breaks. Fails if
/// the file cannot be read or changed under us while being read (then what `f` saw of this
/// segment may be wrong).
pub fn read_segment(
    seg: &Segment,
    f: &mut dyn FnMut(Event<'_>) -> ControlFlow<()>,
) -> io::Result<()> {
    with_segment(&seg.path, |data| {
        let mut r = RecordReader::new(data);
        while let Some(ev) = r.next() {
            if f(ev).is_break() {
                break;
            }
        }
    })
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
