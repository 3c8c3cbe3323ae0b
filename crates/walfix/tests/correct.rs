//! One-byte errors undone from the CRC (issue 15): on the damaged corpora real Prometheus
//! wrote, the corrected byte is the original one DAMAGE.txt records; on flips made at random
//! positions in real segments, the corrected segment equals the original byte for byte; and
//! damage that one byte does not explain is never "corrected".

use std::fs;
use std::path::PathBuf;

use walfix::repair::{correct_segment, execute, plan, Action, Mode, RepairOptions};
use walfix_format::fragment::HEADER_SIZE;
use walfix_format::frames::{Event, SegmentReader};
use walfix_format::record::LogKind;

mod common;

fn corpora() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/corpora")
}

/// (file, offset, original byte) from a DAMAGE.txt line such as
/// `file wal/00000001: byte at offset 301518 (0x499ce) changed 0x5c -> 0xa3`.
fn damage(name: &str) -> (PathBuf, u64, u8) {
    let text = fs::read_to_string(corpora().join(name).join("DAMAGE.txt")).unwrap();
    let line = text.lines().find(|l| l.contains("byte at offset")).unwrap();
    let line = line.trim_start_matches("file ");
    let (file, rest) = line.split_once(": byte at offset ").unwrap();
    let offset: u64 = rest.split_whitespace().next().unwrap().parse().unwrap();
    let was = rest.split("changed 0x").nth(1).unwrap();
    let original = u8::from_str_radix(&was[..2], 16).unwrap();
    (PathBuf::from(file), offset, original)
}

#[test]
fn the_flipped_byte_of_every_flip_corpus_is_changed_back_and_nothing_is_lost() {
    for name in [
        "small-clean--flip-byte",
        "v3-zstd-small--flip-mid",
        "v3-checkpoint--ckpt-flip",
        "with-checkpoint--ckpt-flip",
        "v3-wbl--wbl-flip-mid",
    ] {
        let (file, offset, original) = damage(name);
        let t = tempfile::tempdir().unwrap();
        let data = t.path().join("data");
        common::copy_dir(&corpora().join(name), &data, &|p| {
            p.extension().is_some_and(|x| x == "txt")
        });
        let o = RepairOptions {
            mode: Mode::Salvage,
            ..Default::default()
        };
        let p = plan(&data, &o).unwrap();
        let corr: Vec<_> = p
            .actions
            .iter()
            .flat_map(|a| match a {
                Action::SalvageSegment {
                    path, corrections, ..
                } => corrections.iter().map(|c| (path.clone(), *c)).collect(),
                _ => Vec::new(),
            })
            .collect();
        assert_eq!(corr.len(), 1, "{name}: {corr:?}");
        let (path, c) = &corr[0];
        assert_eq!(path, &data.join(&file), "{name}");
        assert_eq!((c.offset, c.now), (offset, original), "{name}");
        assert_eq!(
            p.loss.records + p.loss.damaged_regions,
            0,
            "{name}: {:?}",
            p.loss
        );
        let after = execute(&p, &o, &walfix::fsops::RealFs).unwrap().after;
        assert!(after.worst < walfix::Severity::Repairable, "{name}");
    }
}

/// Offsets and lengths of every fragment payload in a segment.
fn payloads(seg: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + HEADER_SIZE <= seg.len() {
        let page_end = (pos / 32768 + 1) * 32768;
        if seg[pos] == 0 {
            pos = page_end;
            continue;
        }
        let len = usize::from(u16::from_be_bytes([seg[pos + 1], seg[pos + 2]]));
        if len > 0 {
            out.push((pos + HEADER_SIZE, len));
        }
        pos += HEADER_SIZE + len;
        if page_end - pos < HEADER_SIZE {
            pos = page_end;
        }
    }
    out
}

fn rng(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

fn segments() -> Vec<(PathBuf, LogKind)> {
    vec![
        (corpora().join("v3-snappy-small/wal/00000000"), LogKind::Wal),
        (corpora().join("small-clean/wal/00000001"), LogKind::Wal),
        (corpora().join("v3-zstd-small/wal/00000001"), LogKind::Wal),
        (corpora().join("uncompressed/wal/00000000"), LogKind::Wal),
        (
            fs::read_dir(corpora().join("v3-checkpoint/wal"))
                .unwrap()
                .map(|e| e.unwrap().path())
                .find(|p| {
                    p.file_name()
                        .unwrap()
                        .to_string_lossy()
                        .starts_with("checkpoint.")
                })
                .unwrap()
                .join("00000000"),
            LogKind::Checkpoint,
        ),
    ]
}

fn clean(seg: &[u8]) -> bool {
    let mut r = SegmentReader::new(seg);
    while let Some(ev) = r.next() {
        if let Event::Problem(p) = ev {
            if p.is_error() {
                return false;
            }
        }
    }
    true
}

#[test]
fn random_one_bit_and_one_byte_flips_are_corrected_to_the_original_bytes() {
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    for (path, kind) in segments() {
        let orig = fs::read(&path).unwrap();
        assert!(clean(&orig), "{}", path.display());
        let frags = payloads(&orig);
        for trial in 0..40 {
            let (start, len) = frags[rng(&mut seed) as usize % frags.len()];
            let at = start + rng(&mut seed) as usize % len;
            let xor = if trial % 2 == 0 {
                1u8 << (rng(&mut seed) % 8)
            } else {
                (rng(&mut seed) % 255 + 1) as u8
            };
            let mut bad = orig.clone();
            bad[at] ^= xor;
            let (fixed, corr) = correct_segment(&bad, kind);
            if trial % 2 == 0 {
                // One bit: always the only candidate, so always corrected.
                assert_eq!(corr.len(), 1, "{} bit at {at}", path.display());
            }
            match fixed {
                Some(f) => assert!(
                    f == orig,
                    "{} at {at} ^{xor:02x}: wrong correction {corr:?}",
                    path.display()
                ),
                // A one-byte error with another candidate is left alone, never guessed.
                None => assert!(corr.is_empty()),
            }
        }
    }
}

#[test]
fn damage_one_byte_does_not_explain_is_never_corrected() {
    let mut seed = 42u64;
    let mut tried = 0;
    for (path, kind) in segments() {
        let orig = fs::read(&path).unwrap();
        let frags = payloads(&orig);
        for _ in 0..60 {
            let (start, len) = frags[rng(&mut seed) as usize % frags.len()];
            if len < 16 {
                continue;
            }
            let mut bad = orig.clone();
            // Two to four bytes apart within one fragment.
            let n = 2 + rng(&mut seed) as usize % 3;
            for _ in 0..n {
                let at = start + rng(&mut seed) as usize % len;
                bad[at] ^= (rng(&mut seed) % 255 + 1) as u8;
            }
            if bad == orig {
                continue;
            }
            tried += 1;
            let (fixed, corr) = correct_segment(&bad, kind);
            // Several bytes are wrong: no one-byte change restores the original, so any
            // correction here would be a false one.
            assert!(
                corr.is_empty() && fixed.is_none(),
                "{}: false correction {corr:?}",
                path.display()
            );
        }
    }
    assert!(tried > 200);
}
