//! What `check` says Prometheus does with records that do not decode, on segments made here
//! from hand-made record bytes. Texts and behaviour are read off Prometheus's source (v3.5.0,
//! v3.14.0): `tsdb/head_wal.go` loadWAL wraps a decoder error once as `decode samples: %w`,
//! `tsdb/record/record.go` words it `decode error after %d samples: %w` with the broken sample
//! counted, `tsdb/encoding/encoding.go` names every short read `invalid size`.

use std::fs;
use std::path::Path;

use walfix::{check, CheckOptions, Finding, Report};
use walfix_format::encode::SegmentEncoder;
use walfix_format::fragment::Compression;

fn be64(b: &mut Vec<u8>, x: u64) {
    b.extend_from_slice(&x.to_be_bytes());
}

/// Go's binary.PutVarint (zigzag).
fn varint(b: &mut Vec<u8>, x: i64) {
    let mut z = ((x << 1) ^ (x >> 63)) as u64;
    while z >= 0x80 {
        b.push(z as u8 | 0x80);
        z >>= 7;
    }
    b.push(z as u8);
}

/// A series record (type 1) defining `refs` as `up{}`.
fn series(refs: &[u64]) -> Vec<u8> {
    let mut b = vec![1];
    for &r in refs {
        be64(&mut b, r);
        b.extend([1, 8]);
        b.extend(b"__name__");
        b.extend([2]);
        b.extend(b"up");
    }
    b
}

/// A samples record (type 2) of two whole samples and a third whose value is 3 bytes long.
fn broken_samples() -> Vec<u8> {
    let mut b = vec![2];
    be64(&mut b, 1);
    be64(&mut b, 1_700_000_000_000);
    for _ in 0..2 {
        varint(&mut b, 0);
        varint(&mut b, 15_000);
        be64(&mut b, 1f64.to_bits());
    }
    varint(&mut b, 1);
    varint(&mut b, 30_000);
    b.extend([0x3f, 0xf0, 0]);
    b
}

/// Writes `records` (uncompressed, one `full` fragment each: 7-byte header + payload) as
/// `wal/00000000` and returns where each record ends.
fn write_wal(data: &Path, records: &[Vec<u8>]) -> Vec<u64> {
    let wal = data.join("wal");
    fs::create_dir_all(&wal).unwrap();
    let mut enc = SegmentEncoder::new();
    let mut ends = Vec::new();
    for r in records {
        enc.append(r, Compression::None);
        ends.push(enc.len() as u64);
    }
    let mut end = 0;
    for (r, e) in records.iter().zip(&ends) {
        end += 7 + r.len() as u64;
        assert_eq!(end, *e, "records fit the first page as one fragment each");
    }
    fs::write(wal.join("00000000"), enc.into_bytes()).unwrap();
    ends
}

fn stops(r: &Report) -> Vec<&Finding> {
    r.findings
        .iter()
        .filter(|f| f.prometheus_error.is_some())
        .collect()
}

#[test]
fn decode_error_text_is_prometheus_text_with_one_prefix() {
    let tmp = tempfile::tempdir().unwrap();
    let ends = write_wal(tmp.path(), &[series(&[1, 2]), broken_samples()]);
    let r = check(tmp.path(), &CheckOptions::default()).unwrap();
    let s = stops(&r);
    assert_eq!(s.len(), 1, "{:#?}", r.findings);
    let pe = s[0].prometheus_error.as_ref().unwrap();
    assert_eq!(
        pe.message,
        "decode samples: decode error after 3 samples: invalid size"
    );
    // CorruptionErr{Offset: r.Offset()}: the end of the record.
    assert_eq!(pe.offset, ends[1]);
    let line = format!(
        "at {}: decode samples: decode error after 3 samples: invalid size`",
        ends[1]
    );
    assert!(
        r.prometheus_outcome.contains(&line),
        "{}",
        r.prometheus_outcome
    );
}

/// A record flagged snappy (type byte bit 3, `snappyMask` in wlog) whose block claims 10 bytes
/// and holds a literal of 10 with 2 bytes behind it: golang/snappy's Decode (what Prometheus's
/// `compression.Decode` calls) returns `ErrCorrupt`, "snappy: corrupt input".
#[test]
fn snappy_that_does_not_decompress_is_golang_snappy_corrupt_input() {
    let tmp = tempfile::tempdir().unwrap();
    let wal = tmp.path().join("wal");
    fs::create_dir_all(&wal).unwrap();
    let mut enc = SegmentEncoder::new();
    enc.append(&series(&[1]), Compression::None);
    let at = enc.len();
    let block = [0x0a, (10 - 1) << 2, b'a', b'b'];
    enc.append(&block, Compression::None);
    let mut bytes = enc.into_bytes();
    // The CRC covers the payload only, so the flag can be set afterwards.
    assert_eq!(bytes[at], 1, "a full fragment");
    bytes[at] |= 0x08;
    fs::write(wal.join("00000000"), &bytes).unwrap();
    let r = check(tmp.path(), &CheckOptions::default()).unwrap();
    let s = stops(&r);
    assert_eq!(s.len(), 1, "{:#?}", r.findings);
    let pe = s[0].prometheus_error.as_ref().unwrap();
    assert_eq!(pe.message, "snappy: corrupt input");
    assert_eq!(pe.offset as usize, bytes.len());
}

/// An mmap markers record (type 5) cut short, then a whole samples record.
fn broken_mmap_markers() -> Vec<u8> {
    let mut b = vec![5];
    be64(&mut b, 1);
    b.extend([0; 3]);
    b
}

/// A whole samples record: one sample of ref 1.
fn one_sample() -> Vec<u8> {
    let mut b = vec![2];
    be64(&mut b, 1);
    be64(&mut b, 1_700_000_000_000);
    varint(&mut b, 0);
    varint(&mut b, 0);
    be64(&mut b, 1f64.to_bits());
    b
}

fn tombstones_cut_short() -> Vec<u8> {
    let mut b = vec![3];
    be64(&mut b, 1);
    b
}

/// Damaged records of types replay skips without decoding them: mmap markers in a server WAL
/// (head_wal.go loadWAL has no case for them: `default: // Noop.`), tombstones in an agent WAL
/// (agent/db.go loadWAL: `case record.Tombstones, record.Exemplars: continue`), series in a WBL
/// (loadWBL: `default: // Noop.`). Prometheus never sees their damage: no stop, replay goes on
/// to the records after them, nothing is lost.
#[test]
fn damage_in_a_record_replay_skips_is_not_where_prometheus_stops() {
    let cases: [(&str, walfix::WalFlavor, Vec<u8>); 3] = [
        ("wal", walfix::WalFlavor::Server, broken_mmap_markers()),
        ("wal", walfix::WalFlavor::Agent, tombstones_cut_short()),
        ("wbl", walfix::WalFlavor::Server, {
            let mut s = series(&[1]);
            s.truncate(s.len() - 1);
            s
        }),
    ];
    for (log, flavor, bad) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let records = vec![series(&[1]), bad, one_sample()];
        if log == "wbl" {
            // The WBL's series come from the WAL beside it.
            write_wal(tmp.path(), &[series(&[1])]);
            let wbl = tmp.path().join("wbl");
            fs::create_dir_all(&wbl).unwrap();
            let mut enc = SegmentEncoder::new();
            for r in &records[1..] {
                enc.append(r, Compression::None);
            }
            fs::write(wbl.join("00000000"), enc.into_bytes()).unwrap();
        } else {
            write_wal(tmp.path(), &records);
        }
        let r = check(
            tmp.path(),
            &CheckOptions {
                flavor,
                ..Default::default()
            },
        )
        .unwrap();
        let what = format!("{log} {flavor:?}");
        assert!(stops(&r).is_empty(), "{what}: {:#?}", r.findings);
        assert!(
            r.prometheus_outcome
                .starts_with("Prometheus replays everything without error"),
            "{what}: {}",
            r.prometheus_outcome
        );
        assert!(
            r.exit_code == 0,
            "{what}: exit {}: {:#?}",
            r.exit_code,
            r.findings
        );
        let f = r
            .findings
            .iter()
            .find(|f| f.kind == "undecodable-ignored-record")
            .unwrap_or_else(|| panic!("{what}: the damage is still reported: {:#?}", r.findings));
        assert_eq!(f.severity, walfix::Severity::Warning, "{what}");
        assert_eq!(f.lost_from, None, "{what}");
    }
}

/// Issue 12, defect 5: replay decodes a whole record before applying any of it
/// (`head_wal.go` loadWAL returns on the decode error before the samples reach the workers), so
/// the two whole samples before the broken one are not replayed, and `check` does not count
/// them; the series record before it counts in full.
#[test]
fn a_record_that_decodes_half_way_counts_for_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    write_wal(tmp.path(), &[series(&[1, 2]), broken_samples()]);
    let r = check(tmp.path(), &CheckOptions::default()).unwrap();
    assert_eq!(r.totals.float_samples, 0, "{:#?}", r.totals);
    assert_eq!(r.totals.series, 2);
    assert_eq!(
        r.totals.min_time, None,
        "no sample time from the dropped record"
    );
    assert_eq!(r.totals.records, 2, "the record is still read");
}
