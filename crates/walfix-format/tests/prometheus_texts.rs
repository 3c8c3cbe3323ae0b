//! The texts Prometheus's replay logs for records that do not decode, on records made here byte
//! by byte. Expected texts are read off Prometheus's source (v3.5.0 and v3.14.0):
//! `tsdb/head_wal.go` (loadWAL, loadWBL) and `tsdb/agent/db.go` (loadWAL) wrap the decoder's
//! error as `decode <what>: %w`; `tsdb/record/record.go` words it `decode error after %d
//! <entries>: %w` (samples, exemplars, mmap markers, histograms; the entry being decoded is
//! appended before the error is looked at) or returns the bare `Decbuf` error (series,
//! tombstones, metadata); `tsdb/encoding/encoding.go` has `ErrInvalidSize = "invalid size"` for
//! every read past the end and every bad varint.

use walfix_format::record::{prometheus_decode_error, validate, LogKind};

fn be64(b: &mut Vec<u8>, x: u64) {
    b.extend_from_slice(&x.to_be_bytes());
}

/// Go's binary.PutVarint (zigzag), written out here.
fn varint(b: &mut Vec<u8>, x: i64) {
    let mut z = ((x << 1) ^ (x >> 63)) as u64;
    while z >= 0x80 {
        b.push(z as u8 | 0x80);
        z >>= 7;
    }
    b.push(z as u8);
}

fn text(rec: &[u8], kind: LogKind) -> Option<String> {
    let e = validate(rec).expect_err("the record is broken");
    prometheus_decode_error(rec, &e, kind)
}

/// V1 envelope: type, be64 base ref, be64 base t.
fn v1(t: u8) -> Vec<u8> {
    let mut b = vec![t];
    be64(&mut b, 1);
    be64(&mut b, 1_700_000_000_000);
    b
}

#[test]
fn samples_count_the_broken_entry_and_say_invalid_size_once_prefixed() {
    // Two whole samples, then a third whose value has 3 of its 8 bytes.
    let mut rec = v1(2);
    for _ in 0..2 {
        varint(&mut rec, 0);
        varint(&mut rec, 15_000);
        be64(&mut rec, 1f64.to_bits());
    }
    varint(&mut rec, 1);
    varint(&mut rec, 30_000);
    rec.extend([0x3f, 0xf0, 0]);
    assert_eq!(
        text(&rec, LogKind::Wal).as_deref(),
        Some("decode samples: decode error after 3 samples: invalid size")
    );
    // The WBL and the agent use the same prefix for samples.
    for kind in [LogKind::Wbl, LogKind::Agent, LogKind::Checkpoint] {
        assert_eq!(
            text(&rec, kind).as_deref(),
            Some("decode samples: decode error after 3 samples: invalid size"),
            "{kind:?}"
        );
    }
    // Cut in the V1 header: the loop never runs.
    assert_eq!(
        text(&rec[..12], LogKind::Wal).as_deref(),
        Some("decode samples: decode error after 0 samples: invalid size")
    );
    // A varint of 11 bytes is as invalid to Go as a short one.
    let mut rec = v1(2);
    rec.extend([0x80; 11]);
    rec.extend([0; 9]);
    assert_eq!(
        text(&rec, LogKind::Wal).as_deref(),
        Some("decode samples: decode error after 1 samples: invalid size")
    );
}

#[test]
fn samples_v2_first_entry_is_inside_the_loop() {
    // Type 11: varint ref, varint t, varint st, then be64 value: value cut short.
    let mut rec = vec![11];
    varint(&mut rec, 5);
    varint(&mut rec, 1_700_000_000_000);
    varint(&mut rec, 0);
    rec.extend([0; 4]);
    assert_eq!(
        text(&rec, LogKind::Wal).as_deref(),
        Some("decode samples: decode error after 1 samples: invalid size")
    );
}

#[test]
fn series_tombstones_metadata_give_the_bare_decbuf_error() {
    // Series: ref, 1 label, "__name__", then a value claiming 5 bytes with 2 left.
    let mut rec = vec![1];
    be64(&mut rec, 7);
    rec.push(1);
    rec.push(8);
    rec.extend(b"__name__");
    rec.push(5);
    rec.extend(b"up");
    for kind in [LogKind::Wal, LogKind::Checkpoint, LogKind::Agent] {
        assert_eq!(
            text(&rec, kind).as_deref(),
            Some("decode series: invalid size"),
            "{kind:?}"
        );
    }
    // Tombstones: be64 ref, varint mint, and no maxt.
    let mut rec = vec![3];
    be64(&mut rec, 7);
    varint(&mut rec, 0);
    assert_eq!(
        text(&rec, LogKind::Wal).as_deref(),
        Some("decode tombstones: invalid size")
    );
    // Metadata: uvarint ref, type byte, and no field count.
    let rec = vec![6, 7, 1];
    assert_eq!(
        text(&rec, LogKind::Wal).as_deref(),
        Some("decode metadata: invalid size")
    );
}

#[test]
fn exemplars_and_mmap_markers() {
    // Exemplars: V1 envelope, one entry whose label list ends early.
    let mut rec = v1(4);
    varint(&mut rec, 0);
    varint(&mut rec, 0);
    be64(&mut rec, 1f64.to_bits());
    rec.extend([1, 8]);
    rec.extend(b"trace");
    assert_eq!(
        text(&rec, LogKind::Wal).as_deref(),
        Some("decode exemplars: decode error after 1 exemplars: invalid size")
    );
    // Mmap markers: two whole (be64 ref, be64 chunk ref), a third cut short.
    let mut rec = vec![5];
    for r in 1..=2 {
        be64(&mut rec, r);
        be64(&mut rec, 1 << 32);
    }
    be64(&mut rec, 3);
    rec.extend([0; 4]);
    assert_eq!(
        text(&rec, LogKind::Wbl).as_deref(),
        Some("decode mmap markers: decode error after 3 mmap markers: invalid size")
    );
    // loadWAL has no case for mmap markers (`default: // Noop.`): never decoded there.
    assert_eq!(text(&rec, LogKind::Wal), None);
}

#[test]
fn histograms_are_named_per_log_kind() {
    // Type 7 (8 for floats): V1 envelope, one entry: ref and t deltas, hint byte, then nothing
    // where the schema varint belongs.
    for (t, wal, agent) in [
        (7u8, "decode histograms", "decode histogram samples"),
        (
            8,
            "decode float histograms",
            "decode float histogram samples",
        ),
    ] {
        let mut rec = v1(t);
        varint(&mut rec, 0);
        varint(&mut rec, 0);
        rec.push(0);
        let want = |p: &str| format!("{p}: decode error after 1 histograms: invalid size");
        assert_eq!(text(&rec, LogKind::Wal), Some(want(wal)), "type {t}");
        assert_eq!(text(&rec, LogKind::Wbl), Some(want(wal)), "type {t}");
        assert_eq!(text(&rec, LogKind::Agent), Some(want(agent)), "type {t}");
    }
    // Type 12 (V2): the first ref, t and st are read before the loop; cut there, 0 histograms.
    let mut rec = vec![12];
    varint(&mut rec, 5);
    assert_eq!(
        text(&rec, LogKind::Wal).as_deref(),
        Some("decode histograms: decode error after 0 histograms: invalid size")
    );
}
