//! Scale: a WAL with many segments, each with several findings. Ordering and planning must stay
//! near-linear; a lookup per finding over every segment (or per segment over every finding)
//! would make these tests run for hours. They assert what is found, not how long it takes.

use std::fs;
use std::path::Path;

use walfix::repair::{plan, Action, Mode, RepairOptions};
use walfix::{check, CheckOptions, Severity};
use walfix_format::encode::SegmentEncoder;
use walfix_format::fragment::Compression;

const SEGMENTS: u64 = 10_000;
const RECORDS: usize = 10;
/// Records whose payload byte is flipped, in every segment.
const DAMAGED: [usize; 5] = [1, 3, 5, 7, 9];

/// `SEGMENTS` segments of `RECORDS` one-byte samples records (`02`: a samples record with no
/// entries, which Prometheus's decoder accepts). Each is one `full` fragment of a 7-byte header
/// and 1 payload byte, so record `i` starts at `8 * i`; flipping its payload byte breaks its
/// CRC-32C (stored in the header, over the payload only).
fn many_segments(wal: &Path) {
    fs::create_dir_all(wal).unwrap();
    let mut enc = SegmentEncoder::new();
    for _ in 0..RECORDS {
        enc.append(&[2], Compression::None);
    }
    let mut bytes = enc.into_bytes();
    assert_eq!(bytes.len(), 8 * RECORDS, "one 8-byte fragment per record");
    for i in DAMAGED {
        bytes[8 * i + 7] ^= 0xff;
    }
    for s in 0..SEGMENTS {
        fs::write(wal.join(format!("{s:08}")), &bytes).unwrap();
    }
}

#[test]
fn ten_thousand_segments_with_findings_in_replay_order() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    many_segments(&data.join("wal"));

    let r = check(&data, &CheckOptions::default()).unwrap();
    let got: Vec<(u64, u64)> = r
        .findings
        .iter()
        .filter(|f| f.kind == "checksum-mismatch")
        .map(|f| (f.segment.unwrap(), f.offset.unwrap()))
        .collect();
    // Replay order: segment by segment, offset by offset within one.
    let want: Vec<(u64, u64)> = (0..SEGMENTS)
        .flat_map(|s| DAMAGED.iter().map(move |&i| (s, 8 * i as u64)))
        .collect();
    assert_eq!(got.len(), want.len());
    assert!(got == want, "checksum findings out of replay order");
    // Findings inside segments follow segment order overall, whatever their kind.
    let segs: Vec<u64> = r.findings.iter().filter_map(|f| f.segment).collect();
    assert!(segs.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(r.worst, Severity::Repairable);

    // `repair --dry-run` plans from the same findings: one salvage per segment, in order.
    let p = plan(
        &data,
        &RepairOptions {
            mode: Mode::Salvage,
            ..Default::default()
        },
    )
    .unwrap();
    let salvaged: Vec<_> = p
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::SalvageSegment { path, .. } => Some(path.clone()),
            _ => None,
        })
        .collect();
    let want: Vec<_> = (0..SEGMENTS)
        .map(|s| data.join("wal").join(format!("{s:08}")))
        .collect();
    assert_eq!(salvaged.len(), want.len());
    assert!(salvaged == want, "salvage actions out of segment order");
}
