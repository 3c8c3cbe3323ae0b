//! A series record whose tail is lost (issue 15): salvage keeps the entries that decode before
//! the damage, so the samples of those series in later records still find their series.
//!
//! The damaged record is the first record of the checkpoint real Prometheus 3.5 wrote in
//! testdata/corpora/v3-checkpoint: a snappy series record of two fragments (`first` at 0,
//! `last` at 32768). Bytes in the `last` fragment are overwritten (more than one, so no
//! one-byte correction applies); the `first` fragment still checks out.

mod common;

use std::fs;
use std::path::PathBuf;

use walfix::repair::{execute, plan, Action, Mode, RepairOptions};
use walfix::{check, CheckOptions, Severity};
use walfix_format::compression::decompress;
use walfix_format::fragment::{FragmentHeader, HEADER_SIZE, PAGE_SIZE};
use walfix_format::frames::{Event, SegmentReader};
use walfix_format::record::{Record, RecordType};

const SEG: &str = "wal/checkpoint.00000001/00000000";

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/corpora/v3-checkpoint")
}

/// The first record of `bytes`, decoded whole.
fn first_record(bytes: &[u8]) -> Record {
    let mut r = SegmentReader::new(bytes);
    while let Some(ev) = r.next() {
        if let Event::Record(rec) = ev {
            let mut out = Vec::new();
            decompress(rec.compression, rec.payload, &mut out).unwrap();
            return Record::decode(&out).unwrap();
        }
    }
    panic!("no record");
}

fn damaged_copy(damage: impl Fn(&mut Vec<u8>)) -> (tempfile::TempDir, PathBuf, Vec<u8>) {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    common::copy_dir(&corpus(), &data, &|p| {
        p.extension().is_some_and(|x| x == "txt")
    });
    let original = fs::read(data.join(SEG)).unwrap();
    let mut bytes = original.clone();
    damage(&mut bytes);
    fs::write(data.join(SEG), &bytes).unwrap();
    (t, data, original)
}

fn salvage(data: &std::path::Path) -> u64 {
    let o = RepairOptions {
        mode: Mode::Salvage,
        ..Default::default()
    };
    let p = plan(data, &o).unwrap();
    let kept: u64 = p
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::SalvageSegment { loss, .. } => Some(loss.series_kept),
            _ => None,
        })
        .sum();
    let out = execute(&p, &o, &walfix::fsops::RealFs).unwrap();
    assert!(
        out.after.worst < Severity::Repairable,
        "{:?}",
        out.after.findings
    );
    kept
}

#[test]
fn entries_before_the_damage_in_a_checkpoint_series_record_are_kept() {
    let (_t, data, original) = damaged_copy(|b| {
        // The `last` fragment's header is at 32768; its payload starts 7 bytes later.
        let h = FragmentHeader::parse(b[PAGE_SIZE..PAGE_SIZE + HEADER_SIZE].try_into().unwrap());
        assert_eq!(h.kind().name(), "last", "the corpus changed");
        for x in &mut b[PAGE_SIZE + HEADER_SIZE + 100..PAGE_SIZE + HEADER_SIZE + 108] {
            *x ^= 0x5a;
        }
    });
    let Record::Series(all) = first_record(&original) else {
        panic!("first record is not a series record");
    };
    let before = check(&data, &CheckOptions::default()).unwrap();
    assert!(before.worst >= Severity::Repairable);

    let kept = salvage(&data);
    let Record::Series(now) = first_record(&fs::read(data.join(SEG)).unwrap()) else {
        panic!("the salvaged segment does not start with a series record");
    };
    // The kept entries are the original's first entries, byte for byte, and only those.
    assert!(
        !now.is_empty() && now.len() < all.len(),
        "{} of {}",
        now.len(),
        all.len()
    );
    assert_eq!(now[..], all[..now.len()]);
    assert_eq!(kept, now.len() as u64);
    // The first fragment holds 32761 payload bytes of a snappy stream of series entries
    // (about 60-90 bytes each uncompressed): far more than a handful of them decode.
    assert!(now.len() * 4 > all.len(), "{} of {}", now.len(), all.len());
    // The next record is the original's second record, unchanged.
    assert_eq!(
        nth_type(&fs::read(data.join(SEG)).unwrap(), 1),
        nth_type(&original, 1)
    );
}

fn nth_type(bytes: &[u8], n: usize) -> Option<RecordType> {
    let mut r = SegmentReader::new(bytes);
    let mut i = 0;
    while let Some(ev) = r.next() {
        if let Event::Record(rec) = ev {
            if i == n {
                let mut out = Vec::new();
                decompress(rec.compression, rec.payload, &mut out).ok()?;
                return out.first().copied().and_then(RecordType::from_u8);
            }
            i += 1;
        }
    }
    None
}

#[test]
fn a_damaged_first_fragment_keeps_nothing_of_its_record() {
    // Damage in the `first` fragment: no byte of the record can be trusted.
    let (_t, data, _) = damaged_copy(|b| {
        for x in &mut b[HEADER_SIZE + 50..HEADER_SIZE + 58] {
            *x ^= 0x5a;
        }
    });
    assert_eq!(salvage(&data), 0);
}
