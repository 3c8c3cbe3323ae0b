//! Damage made by hand on copies of real WALs, each asserting the kind and offset `check` must
//! find. Fragment positions come from a minimal walk over the raw headers written here (7-byte
//! header, big-endian u16 length at bytes 1..3), not from walfix's own reader.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use walfix::{check, CheckOptions, Finding, Report, Severity};

const PAGE: usize = 32768;

fn corpus(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/corpora")
        .join(name)
}

/// A writable copy of a corpus's `wal/`, as `<tmp>/wal`.
fn copy_wal(name: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let wal = tmp.path().join("wal");
    common::copy_dir(&corpus(name).join("wal"), &wal, &|_| false);
    (tmp, wal)
}

#[derive(Debug, Clone, Copy)]
struct Frag {
    offset: usize,
    kind: u8,
    len: usize,
}

/// Fragments of a segment, walking headers and skipping page padding.
fn fragments(data: &[u8]) -> Vec<Frag> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 7 <= data.len() {
        let kind = data[pos] & 7;
        if kind == 0 {
            pos = (pos / PAGE + 1) * PAGE;
            continue;
        }
        let len = u16::from_be_bytes([data[pos + 1], data[pos + 2]]) as usize;
        out.push(Frag {
            offset: pos,
            kind,
            len,
        });
        pos += 7 + len;
    }
    out
}

fn edit(path: &Path, f: impl FnOnce(&mut Vec<u8>)) {
    let mut d = fs::read(path).unwrap();
    f(&mut d);
    fs::write(path, d).unwrap();
}

fn run(path: &Path) -> Report {
    check(path, &CheckOptions::default()).unwrap()
}

fn find<'a>(r: &'a Report, kind: &str) -> &'a Finding {
    r.findings
        .iter()
        .find(|f| f.kind == kind)
        .unwrap_or_else(|| panic!("no {kind} finding in {:#?}", r.findings))
}

#[test]
fn flipped_payload_byte_is_a_checksum_mismatch_at_its_fragment() {
    let (_t, wal) = copy_wal("small-clean");
    let seg = wal.join("00000000");
    let first = fragments(&fs::read(&seg).unwrap())[0];
    edit(&seg, |d| d[first.offset + 7 + first.len / 2] ^= 0xff);
    let r = run(&wal);
    let f = find(&r, "checksum-mismatch");
    assert_eq!(
        (f.segment, f.offset, f.severity),
        (Some(0), Some(0), Severity::Repairable)
    );
    let pe = f.prometheus_error.as_ref().unwrap();
    assert_eq!(pe.offset as usize, 7 + first.len);
    assert!(
        pe.message.starts_with("unexpected checksum "),
        "{}",
        pe.message
    );
    assert_eq!(r.exit_code, 1);
}

#[test]
fn invalid_fragment_type_is_reported_with_prometheus_text() {
    let (_t, wal) = copy_wal("small-clean");
    let seg = wal.join("00000001");
    let f0 = fragments(&fs::read(&seg).unwrap())[0];
    // Keep the compression bits, set type 7 (the CRC covers only the payload, so it still holds).
    edit(&seg, |d| d[0] = (d[0] & !7) | 7);
    let r = run(&wal);
    let f = find(&r, "invalid-fragment-type");
    assert_eq!((f.segment, f.offset), (Some(1), Some(0)));
    let pe = f.prometheus_error.as_ref().unwrap();
    assert_eq!(
        (pe.offset as usize, pe.message.as_str()),
        (7 + f0.len, "unexpected record type 7")
    );
}

#[test]
fn impossible_fragment_length_is_reported_at_the_header() {
    let (_t, wal) = copy_wal("small-clean");
    let seg = wal.join("00000002");
    edit(&seg, |d| {
        d[1] = 0xff;
        d[2] = 0xff;
    });
    let r = run(&wal);
    let f = find(&r, "invalid-fragment-length");
    assert_eq!((f.segment, f.offset), (Some(2), Some(0)));
    let pe = f.prometheus_error.as_ref().unwrap();
    assert_eq!(
        (pe.offset, pe.message.as_str()),
        (7, "invalid record size 65535")
    );
    // Reading resumes at the next page: later problems are not invented.
    assert_eq!(f.end, Some(PAGE as u64));
}

#[test]
fn a_zeroed_page_followed_by_data_is_a_lost_write() {
    let (_t, wal) = copy_wal("small-clean");
    let seg = wal.join("00000001");
    edit(&seg, |d| d[5 * PAGE..6 * PAGE].fill(0));
    let r = run(&wal);
    let f = find(&r, "zero-pages-before-data");
    assert_eq!((f.segment, f.offset), (Some(1), Some(5 * PAGE as u64)));
}

#[test]
fn every_problem_is_reported_not_only_the_first() {
    let (_t, wal) = copy_wal("small-clean");
    for name in ["00000001", "00000002"] {
        let seg = wal.join(name);
        let fr = fragments(&fs::read(&seg).unwrap());
        let mid = fr[fr.len() / 2];
        edit(&seg, |d| d[mid.offset + 7 + mid.len / 2] ^= 0x55);
    }
    let r = run(&wal);
    let segs: Vec<_> = r
        .findings
        .iter()
        .filter(|f| f.kind == "checksum-mismatch")
        .map(|f| f.segment)
        .collect();
    assert_eq!(segs, vec![Some(1), Some(2)]);
    assert!(
        r.prometheus_outcome.contains("00000001"),
        "{}",
        r.prometheus_outcome
    );
}

#[test]
fn first_turned_into_middle_is_an_orphan() {
    let (_t, wal) = copy_wal("small-clean");
    let seg = wal.join("00000000");
    let fr = fragments(&fs::read(&seg).unwrap());
    let first = *fr.iter().find(|f| f.kind == 2).expect("a first fragment");
    edit(&seg, |d| d[first.offset] = (d[first.offset] & !7) | 3);
    let r = run(&wal);
    let f = find(&r, "orphan-fragment");
    assert_eq!(f.offset, Some(first.offset as u64));
    let pe = f.prometheus_error.as_ref().unwrap();
    assert_eq!(pe.message, "unexpected middle record, dropping buffer");
    assert_eq!(pe.offset as usize, first.offset + 7 + first.len);
}

#[test]
fn non_zero_byte_in_padding() {
    let (_t, wal) = copy_wal("small-clean");
    let seg = wal.join("00000000");
    let data = fs::read(&seg).unwrap();
    // A page whose last fragment ends at least 2 bytes before the page end, zero padding after it.
    let fr = fragments(&data);
    let pad_start = fr
        .iter()
        .map(|f| f.offset + 7 + f.len)
        .find(|&end| {
            end % PAGE != 0 && PAGE - end % PAGE >= 2 && end < data.len() && data[end] == 0
        })
        .expect("a padded page");
    let page_end = (pad_start / PAGE + 1) * PAGE;
    edit(&seg, |d| d[page_end - 1] = 0x42);
    let r = run(&wal);
    let f = find(&r, "non-zero-padding");
    assert_eq!(f.offset, Some(pad_start as u64));
    let pe = f.prometheus_error.as_ref().unwrap();
    assert_eq!(
        (pe.offset as usize, pe.message.as_str()),
        (page_end, "unexpected non-zero byte in padded page")
    );
}

#[test]
fn cut_inside_the_last_fragment_is_a_torn_tail_and_cut_between_records_is_harmless() {
    let (_t, wal) = copy_wal("small-clean");
    let seg = wal.join("00000003");
    let data = fs::read(&seg).unwrap();
    let fr = fragments(&data);
    // A full fragment not ending on a page boundary, in the middle of the segment.
    let f = *fr[fr.len() / 2..]
        .iter()
        .find(|f| f.kind == 1 && (f.offset + 7 + f.len) % PAGE != 0)
        .unwrap();
    fs::write(&seg, &data[..f.offset + 7 + f.len / 2]).unwrap();
    let r = run(&wal);
    let t = find(&r, "torn-tail");
    assert_eq!((t.segment, t.offset), (Some(3), Some(f.offset as u64)));
    assert_eq!(r.exit_code, 1);

    fs::write(&seg, &data[..f.offset + 7 + f.len]).unwrap();
    let r = run(&wal);
    let u = find(&r, "unaligned-tail");
    assert_eq!(u.offset, Some((f.offset + 7 + f.len) as u64));
    assert_eq!(r.exit_code, 0, "{:#?}", r.findings);
}

#[test]
fn cut_short_older_segment_is_not_called_a_torn_tail() {
    let (_t, wal) = copy_wal("small-clean");
    let seg = wal.join("00000001");
    let data = fs::read(&seg).unwrap();
    let f = fragments(&data)[10];
    fs::write(&seg, &data[..f.offset + 3]).unwrap();
    let r = run(&wal);
    let t = find(&r, "truncated-segment");
    assert_eq!((t.segment, t.offset), (Some(1), Some(f.offset as u64)));
}

#[test]
fn missing_segment_zero_and_leftovers() {
    let (_t, wal) = copy_wal("small-clean");
    fs::remove_file(wal.join("00000000")).unwrap();
    fs::write(wal.join("00000002.repair"), b"").unwrap();
    fs::create_dir(wal.join("checkpoint.00000007.tmp")).unwrap();
    let r = run(&wal);
    assert_eq!(
        find(&r, "missing-first-segment").severity,
        Severity::NeedsHuman
    );
    assert_eq!(
        find(&r, "leftover-repair-file").severity,
        Severity::Repairable
    );
    assert_eq!(find(&r, "stale-checkpoint-tmp").severity, Severity::Warning);
    assert_eq!(r.exit_code, 2);
}

#[test]
fn checkpoint_that_is_a_file_blocks_start() {
    let (_t, wal) = copy_wal("small-clean");
    fs::write(wal.join("checkpoint.00000001"), b"").unwrap();
    let r = run(&wal);
    assert_eq!(
        find(&r, "checkpoint-not-directory").severity,
        Severity::NeedsHuman
    );
    assert!(
        r.prometheus_outcome.contains("is not a directory"),
        "{}",
        r.prometheus_outcome
    );
}

#[test]
fn single_segment_file_and_data_dir_paths() {
    let seg = corpus("v3-wbl").join("wbl/00000001");
    let r = run(&seg);
    assert_eq!(r.logs.len(), 1);
    assert_eq!(r.logs[0].log.name(), "wbl");
    // INVENTORY.txt: wbl segment 00000001 holds 260 records.
    assert_eq!(r.totals.records, 260);

    let r = run(&corpus("v3-wbl"));
    let logs: Vec<_> = r.logs.iter().map(|l| l.log.name()).collect();
    assert_eq!(logs, vec!["wal", "wbl"]);
}

#[test]
fn samples_before_their_series_record_are_counted_as_unknown_refs() {
    use walfix_format::encode::SegmentEncoder;
    use walfix_format::fragment::Compression;
    use walfix_format::record::{OwnedSeries, Record, Sample};

    let sample = |r: u64, t: i64| Sample {
        series_ref: r,
        t,
        st: 0,
        v: 1.0,
    };
    let series = |r: u64| OwnedSeries {
        series_ref: r,
        labels: vec![(b"__name__".to_vec(), format!("m{r}").into_bytes())],
    };
    // Segment 0 defines ref 1; segment 1 uses refs 1, 2 and 3, then defines 3.
    let mut segs = [SegmentEncoder::new(), SegmentEncoder::new()];
    let mut buf = Vec::new();
    for (i, rec) in [
        (0, Record::Series(vec![series(1)])),
        (
            1,
            Record::Samples(vec![
                sample(1, 10),
                sample(2, 10),
                sample(3, 10),
                sample(2, 20),
            ]),
        ),
        (1, Record::Series(vec![series(3)])),
        (1, Record::Samples(vec![sample(3, 30)])),
    ] {
        buf.clear();
        rec.encode(&mut buf);
        segs[i].append(&buf, Compression::Snappy);
    }
    let [seg0, seg1] = segs;
    let tmp = tempfile::tempdir().unwrap();
    let wal = tmp.path().join("wal");
    fs::create_dir(&wal).unwrap();
    fs::write(wal.join("00000000"), seg0.bytes()).unwrap();
    fs::write(wal.join("00000001"), seg1.bytes()).unwrap();
    let r = run(&wal);
    let f = find(&r, "unknown-series-refs");
    let u = f.unknown_refs.unwrap();
    // Ref 2 twice and ref 3 once come before any series record defines them.
    assert_eq!((u.series, u.samples), (2, 3));
    assert_eq!(
        (f.segment, f.severity, r.exit_code),
        (Some(1), Severity::Warning, 0)
    );
}

#[test]
fn a_segment_not_named_by_8_digits_keeps_prometheus_from_starting() {
    // Real Prometheus 3.5 on v3-snappy-small with 00000002 renamed to +0000002 fails with
    // `open WAL segment: 2: open .../wal/00000002: no such file or directory` (it lists by
    // parsing names, but opens by the %08d name).
    let (_t, wal) = copy_wal("v3-snappy-small");
    fs::rename(wal.join("00000002"), wal.join("+0000002")).unwrap();
    let r = run(&wal);
    assert_eq!(find(&r, "odd-segment-name").severity, Severity::NeedsHuman);
    assert_eq!(r.exit_code, 2);
    assert!(
        r.prometheus_outcome.contains("open WAL segment: 2"),
        "{}",
        r.prometheus_outcome
    );

    let o = walfix::repair::RepairOptions::default();
    let p = walfix::repair::plan(&wal, &o).unwrap();
    let after = walfix::repair::execute(&p, &o, &walfix::fsops::RealFs)
        .unwrap()
        .after;
    assert!(wal.join("00000002").exists());
    assert_eq!(after.exit_code, 0, "{:#?}", after.findings);
}

#[test]
fn two_names_for_one_index_are_not_sequential() {
    let (_t, wal) = copy_wal("small-clean");
    fs::copy(wal.join("00000000"), wal.join("0")).unwrap();
    let r = run(&wal);
    assert_eq!(
        find(&r, "duplicate-segment-index").severity,
        Severity::NeedsHuman
    );
    assert!(r.prometheus_outcome.contains("segments are not sequential"));
}
