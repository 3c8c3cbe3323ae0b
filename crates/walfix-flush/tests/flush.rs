//! Hand-made WALs (written with walfix-format's encoder) flushed into blocks and read back by
//! our block reader: the same series and samples as replay's rules keep, in 2 h windows.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use proptest::prelude::*;
use walfix_flush::read::{read_block, OwnedLabels};
use walfix_flush::{flush, FlushError, FlushOptions, BLOCK_RANGE_MS};
use walfix_format::encode::SegmentEncoder;
use walfix_format::fragment::Compression;
use walfix_format::record::{OwnedSeries, Record, Sample, STALE_NAN_BITS};

type Expected = BTreeMap<OwnedLabels, Vec<(i64, u64)>>;

fn labels(pairs: &[(&str, &str)]) -> OwnedLabels {
    pairs
        .iter()
        .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
}

fn sample(r: u64, t: i64, v: f64) -> Sample {
    Sample {
        series_ref: r,
        t,
        st: 0,
        v,
    }
}

/// Writes records into `dir/NNNNNNNN` files, one segment per inner vector (all pages but the
/// last padded, as Prometheus leaves a closed segment).
fn write_segments(dir: &Path, first: u64, segments: &[Vec<Record>]) {
    fs::create_dir_all(dir).unwrap();
    let n = segments.len();
    for (i, recs) in segments.iter().enumerate() {
        let mut enc = SegmentEncoder::new();
        let mut buf = Vec::new();
        for r in recs {
            buf.clear();
            r.encode(&mut buf);
            enc.append(&buf, Compression::Snappy);
        }
        if i + 1 < n {
            enc.pad_page();
        }
        fs::write(dir.join(format!("{:08}", first + i as u64)), enc.bytes()).unwrap();
    }
}

/// Every series and sample in the blocks under `dir`, checking each block's range.
fn read_all(dir: &Path) -> (Expected, Vec<(i64, i64)>) {
    let mut got: Expected = BTreeMap::new();
    let mut ranges = Vec::new();
    let mut names: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| walfix_flush::block::is_ulid(n))
        .collect();
    names.sort();
    for n in names {
        let s = read_block(&dir.join(&n), |l, samples| {
            got.entry(l.clone()).or_default().extend_from_slice(samples);
        })
        .unwrap_or_else(|e| panic!("block {n}: {e}"));
        let m = s.meta.unwrap();
        assert_eq!(m.ulid, n);
        assert_eq!(m.compaction.level, 1);
        assert_eq!(m.compaction.sources, vec![n.clone()]);
        ranges.push((m.min_time, m.max_time));
    }
    for v in got.values_mut() {
        v.sort();
    }
    (got, ranges)
}

fn check_ranges(ranges: &[(i64, i64)], last_sample: i64) {
    for (i, &(lo, hi)) in ranges.iter().enumerate() {
        let k = lo.div_euclid(BLOCK_RANGE_MS);
        assert!(
            hi <= (k + 1) * BLOCK_RANGE_MS,
            "block {i} crosses a 2 h boundary"
        );
        assert!(lo < hi);
        if i + 1 < ranges.len() {
            assert_eq!(
                hi,
                (k + 1) * BLOCK_RANGE_MS,
                "older blocks end on the window end"
            );
            assert!(ranges[i + 1].0 >= hi);
        } else {
            assert_eq!(
                hi,
                last_sample + 1,
                "the newest block ends just after the last sample"
            );
        }
    }
}

const H: i64 = 3_600_000;
const T0: i64 = 1_700_000_000_000 - 1_700_000_000_000 % (2 * H) + 2 * H - 30 * 60_000;

#[test]
fn checkpoint_segments_replay_rules_and_windows() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let wal = data.join("wal");
    let a = labels(&[("__name__", "up"), ("job", "a")]);
    let b = labels(&[("__name__", "up"), ("job", "b")]);
    let c = labels(&[("__name__", "x"), ("instance", "h:1"), ("job", "a")]);
    let series = |r: u64, l: &OwnedLabels| OwnedSeries {
        series_ref: r,
        labels: l.clone(),
    };
    let mut want: Expected = BTreeMap::new();
    // Checkpoint 1: series a (ref 1), b (ref 2) and two samples of a.
    let ck = vec![
        Record::Series(vec![series(1, &a), series(2, &b)]),
        Record::Samples(vec![sample(1, T0, 1.0), sample(1, T0 + 15_000, 2.0)]),
    ];
    want.entry(a.clone())
        .or_default()
        .extend([(T0, 1f64.to_bits()), (T0 + 15_000, 2f64.to_bits())]);
    write_segments(&wal.join("checkpoint.00000001"), 0, &[ck]);
    // Segment 1 is covered by the checkpoint: its samples must not be read.
    write_segments(
        &wal,
        1,
        &[vec![
            Record::Series(vec![series(1, &a), series(2, &b)]),
            Record::Samples(vec![sample(1, T0 - 1000, 99.0)]),
        ]],
    );
    // Segments 2 and 3: 1000 scrapes every 15 s (4 h 10 min: three windows), irregular
    // jitter, a staleness marker, a duplicate and an out-of-order sample, series c defined
    // twice under two refs.
    let mut seg2 = vec![Record::Series(vec![series(3, &c)])];
    let mut seg3 = vec![Record::Series(vec![series(4, &c)])];
    let mut last_a = T0 + 15_000;
    for i in 2..1000i64 {
        let t = T0 + i * 15_000 + (i * 37 % 11) - 5;
        let mut recs = vec![sample(1, t, (i as f64).sqrt())];
        want.entry(a.clone())
            .or_default()
            .push((t, (i as f64).sqrt().to_bits()));
        last_a = t;
        let bv = if i == 500 {
            f64::from_bits(STALE_NAN_BITS)
        } else {
            i as f64 * 0.5
        };
        if i % 3 != 0 {
            recs.push(sample(2, t + 1, bv));
            want.entry(b.clone())
                .or_default()
                .push((t + 1, bv.to_bits()));
        }
        // Out of order / duplicate for b: dropped.
        if i % 100 == 0 {
            recs.push(sample(2, t - 20_000, 7.0));
        }
        let cref = if i < 600 { 3 } else { 4 };
        recs.push(sample(cref, t + 2, -(i as f64)));
        want.entry(c.clone())
            .or_default()
            .push((t + 2, (-(i as f64)).to_bits()));
        if i % 250 == 0 {
            recs.push(sample(cref, t + 2, 1e9)); // duplicate timestamp: dropped
        }
        if i < 500 {
            seg2.push(Record::Samples(recs));
        } else {
            seg3.push(Record::Samples(recs));
        }
    }
    write_segments(&wal, 2, &[seg2, seg3]);

    let out = tmp.path().join("out");
    let dry = flush(
        &data,
        &FlushOptions {
            output_dir: Some(out.clone()),
            dry_run: true,
            ..FlushOptions::default()
        },
    )
    .unwrap();
    assert!(!out.exists(), "a dry run writes nothing");
    let rep = flush(
        &data,
        &FlushOptions {
            output_dir: Some(out.clone()),
            ..FlushOptions::default()
        },
    )
    .unwrap();
    assert_eq!(rep.checkpoint, Some(1));
    assert_eq!(rep.series, 3);
    let n_want: usize = want.values().map(Vec::len).sum();
    assert_eq!(rep.samples_written, n_want as u64);
    assert_eq!(rep.dropped_out_of_order, 9 + 3);
    assert_eq!(rep.blocks.len(), 3, "{:#?}", rep.blocks);
    assert_eq!(dry.blocks.len(), 3);
    for (d, r) in dry.blocks.iter().zip(&rep.blocks) {
        assert_eq!(
            (d.min_time, d.max_time, d.series, d.samples, d.chunks),
            (r.min_time, r.max_time, r.series, r.samples, r.chunks)
        );
        assert!(r.written);
    }
    let (got, ranges) = read_all(&out);
    assert_eq!(got, want);
    check_ranges(&ranges, last_a + 2);
    // No spill or temporary directory is left.
    let left: Vec<_> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !walfix_flush::block::is_ulid(n))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // The WAL is untouched and a second run into the same dir writes nothing more: every
    // sample is before the new blocks' end.
    let again = flush(
        &data,
        &FlushOptions {
            output_dir: Some(out.clone()),
            ..FlushOptions::default()
        },
    )
    .unwrap();
    assert!(again.blocks.is_empty());
    assert_eq!(again.dropped_before_blocks, n_want as u64 + 12);
}

#[test]
fn chunks_hold_at_most_120_samples() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let l = labels(&[("__name__", "m")]);
    let mut recs = vec![Record::Series(vec![OwnedSeries {
        series_ref: 1,
        labels: l.clone(),
    }])];
    // 1 sample a second for 20 minutes, random-looking values: chunks by count and by bytes.
    let mut x = 0x1234_5678_9abc_def0u64;
    for i in 0..1200 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        recs.push(Record::Samples(vec![sample(
            1,
            T0 + i * 1000,
            f64::from_bits(x),
        )]));
    }
    write_segments(&data.join("wal"), 0, &[recs]);
    let rep = flush(&data, &FlushOptions::default()).unwrap();
    assert_eq!(rep.blocks.len(), 1);
    let b = &rep.blocks[0];
    assert!(b.chunks >= 10, "{b:?}");
    let (got, _) = read_all(&data);
    assert_eq!(got[&l].len(), 1200);
    // Random 64-bit values take ~9.5 bytes a sample: the 1005-byte cut comes first.
    assert!(b.chunks > 1200 / 120, "{b:?}");
}

#[test]
fn refuses_a_locked_data_dir_and_a_damaged_wal() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let recs = vec![
        Record::Series(vec![OwnedSeries {
            series_ref: 1,
            labels: labels(&[("__name__", "m")]),
        }]),
        Record::Samples(vec![sample(1, T0, 1.0)]),
    ];
    write_segments(&data.join("wal"), 0, &[recs.clone(), recs]);
    let lock = fs::File::create(data.join("lock")).unwrap();
    lock.lock().unwrap();
    let e = flush(&data, &FlushOptions::default()).unwrap_err();
    assert!(matches!(e, FlushError::Locked(_)), "{e}");
    assert_eq!(e.exit_code(), 2);
    lock.unlock().unwrap();
    // Flip a byte inside the first record of segment 0.
    let seg = data.join("wal/00000000");
    let mut b = fs::read(&seg).unwrap();
    b[10] ^= 0xff;
    fs::write(&seg, &b).unwrap();
    let e = flush(&data, &FlushOptions::default()).unwrap_err();
    assert!(matches!(e, FlushError::Damaged(_)), "{e}");
    assert!(fs::read_dir(&data)
        .unwrap()
        .all(|e| !walfix_flush::block::is_ulid(e.unwrap().file_name().to_str().unwrap())));
}

#[test]
fn the_reader_finds_flipped_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut recs = vec![Record::Series(vec![OwnedSeries {
        series_ref: 1,
        labels: labels(&[("__name__", "m"), ("a", "b")]),
    }])];
    for i in 0..300 {
        recs.push(Record::Samples(vec![sample(1, T0 + i * 10_000, i as f64)]));
    }
    write_segments(&data.join("wal"), 0, &[recs]);
    let rep = flush(&data, &FlushOptions::default()).unwrap();
    let dir = &rep.blocks[0].path;
    for file in ["index", "chunks/000001"] {
        let p = dir.join(file);
        let orig = fs::read(&p).unwrap();
        for at in (8..orig.len()).step_by(7) {
            let mut b = orig.clone();
            b[at] ^= 0x10;
            fs::write(&p, &b).unwrap();
            let r = read_block(dir, |_, _| {});
            // A flip in padding is harmless only if the bytes still read the same.
            if let Ok(s) = r {
                assert_eq!(s.samples, 300, "{file} byte {at}");
                panic!("{file}: flip at {at} not detected");
            }
        }
        fs::write(&p, &orig).unwrap();
    }
    read_block(dir, |_, _| {}).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Any WAL of our encoder flushes to blocks that read back exactly what replay keeps.
    #[test]
    fn any_wal_reads_back_as_replay_keeps_it(
        n_series in 1usize..6,
        steps in proptest::collection::vec((0usize..6, 0i64..(3 * H), any::<u64>()), 1..400),
        split in 0usize..400,
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let ls: Vec<OwnedLabels> = (0..n_series)
            .map(|i| labels(&[("__name__", "m"), ("i", &i.to_string())]))
            .collect();
        let mut recs = vec![Record::Series(
            ls.iter().enumerate().map(|(i, l)| OwnedSeries { series_ref: i as u64 + 1, labels: l.clone() }).collect(),
        )];
        let mut want: Expected = BTreeMap::new();
        let mut last: BTreeMap<usize, i64> = BTreeMap::new();
        let mut last_t = i64::MIN;
        for (s, dt, v) in &steps {
            let s = s % n_series;
            let t = T0 + dt;
            recs.push(Record::Samples(vec![sample(s as u64 + 1, t, f64::from_bits(*v))]));
            if last.get(&s).is_none_or(|&l| t > l) {
                last.insert(s, t);
                want.entry(ls[s].clone()).or_default().push((t, *v));
                last_t = last_t.max(t);
            }
        }
        let cut = split.min(recs.len() - 1).max(1);
        let tail = recs.split_off(cut);
        write_segments(&data.join("wal"), 0, &[recs, tail]);
        let rep = flush(&data, &FlushOptions::default()).unwrap();
        let (mut got, ranges) = read_all(&data);
        for v in want.values_mut() { v.sort(); }
        got.retain(|_, v| !v.is_empty());
        prop_assert_eq!(got, want);
        check_ranges(&ranges, last_t);
        prop_assert_eq!(rep.blocks.len(), ranges.len());
    }
}

#[test]
fn tombstones_go_to_the_blocks_they_overlap() {
    use walfix_format::record::Tombstone;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let a = labels(&[("__name__", "a")]);
    let b = labels(&[("__name__", "b")]);
    let mut recs = vec![Record::Series(vec![
        OwnedSeries {
            series_ref: 1,
            labels: a.clone(),
        },
        OwnedSeries {
            series_ref: 2,
            labels: b.clone(),
        },
    ])];
    // 3 h of samples every minute: windows k (30 min) and k+1 (2 h) and k+2 (30 min).
    for i in 0..180 {
        let t = T0 + i * 60_000;
        recs.push(Record::Samples(vec![sample(1, t, 1.0), sample(2, t, 2.0)]));
    }
    let mid = T0 + 40 * 60_000;
    recs.push(Record::Tombstones(vec![
        // a: from 10 minutes in to 40 minutes in: crosses the first boundary.
        Tombstone {
            series_ref: 1,
            mint: T0 + 10 * 60_000,
            maxt: mid,
        },
        // b: one sample.
        Tombstone {
            series_ref: 2,
            mint: T0,
            maxt: T0,
        },
        // unknown ref: skipped, as replay skips it.
        Tombstone {
            series_ref: 9,
            mint: T0,
            maxt: mid,
        },
    ]));
    write_segments(&data.join("wal"), 0, &[recs]);
    let rep = flush(&data, &FlushOptions::default()).unwrap();
    assert_eq!((rep.tombstones, rep.tombstones_skipped), (2, 1));
    assert_eq!(rep.blocks.len(), 3);
    assert_eq!(
        rep.blocks.iter().map(|b| b.tombstones).collect::<Vec<_>>(),
        [2, 1, 0]
    );
    let boundary = T0 + 30 * 60_000;
    let s0 = read_block(&rep.blocks[0].path, |_, _| {}).unwrap();
    let mut t0 = s0.tombstones.clone();
    t0.sort();
    assert_eq!(
        t0,
        [
            (a.clone(), T0 + 10 * 60_000, boundary - 1),
            (b.clone(), T0, T0)
        ]
    );
    let s1 = read_block(&rep.blocks[1].path, |_, _| {}).unwrap();
    assert_eq!(s1.tombstones, [(a.clone(), boundary, mid)]);
    // The samples are all there: Prometheus hides the deleted ones at query time.
    let (got, _) = read_all(&data);
    assert_eq!(got[&a].len(), 180);
}

/// Killed at any point and rerun, it converges: blocks already renamed stay and their samples
/// are skipped, a block under construction and the spill are removed, the rest is written.
#[test]
fn a_rerun_after_a_kill_converges() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let l = labels(&[("__name__", "m")]);
    let mut recs = vec![Record::Series(vec![OwnedSeries {
        series_ref: 1,
        labels: l.clone(),
    }])];
    // 5 h at 30 s: windows of 30 min, 2 h, 2 h, 30 min.
    for i in 0..600 {
        recs.push(Record::Samples(vec![sample(1, T0 + i * 30_000, i as f64)]));
    }
    write_segments(&data.join("wal"), 0, &[recs]);
    let clean_dir = tmp.path().join("clean");
    let clean = flush(
        &data,
        &FlushOptions {
            output_dir: Some(clean_dir.clone()),
            ..FlushOptions::default()
        },
    )
    .unwrap();
    assert_eq!(clean.blocks.len(), 4);
    let (want, _) = read_all(&clean_dir);

    // A run "killed" after renaming its first two blocks, while building the third, with its
    // spill dir still there: simulated from a full run that leaves the WAL in place.
    let rep = flush(
        &data,
        &FlushOptions {
            keep_wal: true,
            ..FlushOptions::default()
        },
    )
    .unwrap();
    assert!(rep.handover.is_none() && data.join("wal").is_dir());
    for b in &rep.blocks[2..] {
        fs::remove_dir_all(&b.path).unwrap();
    }
    let building = data.join(format!("{}.tmp-for-creation", rep.blocks[2].ulid));
    fs::create_dir_all(building.join("chunks")).unwrap();
    fs::write(building.join("index"), b"half").unwrap();
    let spill = data.join(".walfix-flush-spill-1");
    fs::create_dir_all(&spill).unwrap();
    fs::write(spill.join("w1"), b"old").unwrap();

    let again = flush(&data, &FlushOptions::default()).unwrap();
    assert_eq!(again.blocks.len(), 2);
    assert_eq!(
        again.removed_leftovers.len(),
        2,
        "{:?}",
        again.removed_leftovers
    );
    assert!(!building.exists() && !spill.exists());
    // This time the WAL moved into the backup.
    let h = again.handover.as_ref().expect("moved");
    assert!(!data.join("wal").exists() && h.backup_run.join("wal/00000000").is_file());
    let (got, ranges) = read_all(&data);
    assert_eq!(got, want);
    check_ranges(&ranges, T0 + 599 * 30_000);
    assert_eq!(
        ranges,
        clean
            .blocks
            .iter()
            .map(|b| (b.min_time, b.max_time))
            .collect::<Vec<_>>()
    );
}

/// The bytes of every block's `index` and chunk files under `dir`, oldest block first (ULIDs
/// differ between runs; these files do not name them).
fn block_bytes(dir: &Path) -> Vec<(Vec<u8>, Vec<Vec<u8>>)> {
    let mut names: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| walfix_flush::block::is_ulid(n))
        .collect();
    names.sort();
    names
        .iter()
        .map(|n| {
            let b = dir.join(n);
            let mut chunks: Vec<_> = fs::read_dir(b.join("chunks"))
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            chunks.sort();
            (
                fs::read(b.join("index")).unwrap(),
                chunks.iter().map(|p| fs::read(p).unwrap()).collect(),
            )
        })
        .collect()
}

/// Open chunks moved out to the spill in pieces (a budget of 0 or 64 bytes) and postings
/// sorted in runs of one or a few triples on disk give the same block bytes as everything in
/// memory; the blocks hold exactly the WAL's samples (all in order, none dropped).
#[test]
fn memory_budgets_do_not_change_the_blocks() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let n = 150u64;
    let ls: Vec<OwnedLabels> = (0..n)
        .map(|i| {
            let job = format!("j{}", i % 7);
            let inst = format!("host-{}:9100", i * 7919 % n);
            labels(&[
                ("__name__", ["up", "x", "node_cpu"][i as usize % 3]),
                ("instance", &inst),
                ("job", &job),
            ])
        })
        .collect();
    let mut recs = vec![Record::Series(
        ls.iter()
            .enumerate()
            .map(|(i, l)| OwnedSeries {
                series_ref: i as u64 + 1,
                labels: l.clone(),
            })
            .collect(),
    )];
    let mut want: Expected = BTreeMap::new();
    let mut x = 7u64;
    // 400 steps of 30 s from T0: three 2 h windows; odd series random bits (chunks cut by
    // size), even series a slow counter (cut at 120 samples).
    for k in 0..400i64 {
        let batch = (0..n)
            .map(|i| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let v = if i % 2 == 1 {
                    x
                } else {
                    ((k * 3 + i as i64) as f64).to_bits()
                };
                let t = T0 + k * 30_000 + i as i64;
                want.entry(ls[i as usize].clone()).or_default().push((t, v));
                sample(i + 1, t, f64::from_bits(v))
            })
            .collect();
        recs.push(Record::Samples(batch));
    }
    let tail = recs.split_off(recs.len() / 2);
    write_segments(&data.join("wal"), 0, &[recs, tail]);
    let mut outs = Vec::new();
    for (i, (chunk_budget, sort_budget)) in
        [(None, None), (Some(0), Some(12)), (Some(64), Some(1000))]
            .into_iter()
            .enumerate()
    {
        let out = tmp.path().join(format!("out{i}"));
        let rep = flush(
            &data,
            &FlushOptions {
                output_dir: Some(out.clone()),
                open_chunk_budget: chunk_budget,
                sort_budget,
                ..FlushOptions::default()
            },
        )
        .unwrap();
        assert_eq!(rep.blocks.len(), 3);
        assert_eq!(rep.samples_written, 400 * n);
        let (got, _) = read_all(&out);
        assert_eq!(got, want);
        // Leftovers: none (spill, runs).
        assert!(fs::read_dir(&out)
            .unwrap()
            .all(|e| walfix_flush::block::is_ulid(e.unwrap().file_name().to_str().unwrap())));
        outs.push((
            block_bytes(&out),
            rep.spill_bytes,
            rep.memory.peak_open_chunk_bytes,
        ));
    }
    assert_eq!(outs[0].0, outs[1].0);
    assert_eq!(outs[0].0, outs[2].0);
    // The small budgets did move pieces out and held less.
    assert!(outs[1].1 > outs[0].1 && outs[2].1 > outs[0].1);
    assert!(outs[2].2 < outs[0].2);
}
