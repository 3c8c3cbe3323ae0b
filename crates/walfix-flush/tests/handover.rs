//! After the blocks, what replay would read besides them moves into a backup run: nothing is
//! deleted, a failure (or kill) at any file operation of the move followed by a rerun ends with
//! everything moved, and a rerun after that has nothing to do.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use walfix::fsops::{FileWriter, Fs, RealFs};
use walfix_flush::{flush, handover, FlushOptions};
use walfix_format::encode::SegmentEncoder;
use walfix_format::fragment::Compression;
use walfix_format::record::{OwnedSeries, Record, Sample};

const T0: i64 = 1_700_000_000_000;

/// A data dir whose WAL holds one series over 3 h (two blocks), plus a `chunks_head/` file, an
/// empty `wbl/` segment and a memory snapshot directory (their bytes are arbitrary: they only
/// have to arrive unchanged).
fn data_dir(root: &Path) -> PathBuf {
    let data = root.join("data");
    let wal = data.join("wal");
    fs::create_dir_all(&wal).unwrap();
    let mut recs = vec![Record::Series(vec![OwnedSeries {
        series_ref: 1,
        labels: vec![(b"__name__".to_vec(), b"m".to_vec())],
    }])];
    for i in 0..360 {
        recs.push(Record::Samples(vec![Sample {
            series_ref: 1,
            t: T0 + i * 30_000,
            st: 0,
            v: i as f64,
        }]));
    }
    let mut enc = SegmentEncoder::new();
    let mut buf = Vec::new();
    for r in &recs {
        buf.clear();
        r.encode(&mut buf);
        enc.append(&buf, Compression::Snappy);
    }
    fs::write(wal.join("00000000"), enc.bytes()).unwrap();
    fs::create_dir_all(data.join("chunks_head")).unwrap();
    fs::write(data.join("chunks_head/000001"), b"head chunks bytes").unwrap();
    fs::create_dir_all(data.join("wbl")).unwrap();
    fs::write(data.join("wbl/00000000"), b"").unwrap();
    let snap = data.join("chunk_snapshot.000000.0000000123");
    fs::create_dir_all(&snap).unwrap();
    fs::write(snap.join("00000000"), b"snapshot bytes").unwrap();
    data
}

/// Relative path -> bytes of every file under `dir`.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(base: &Path, p: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in fs::read_dir(p).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                walk(base, &e.path(), out);
            } else {
                let rel = e.path().strip_prefix(base).unwrap().to_path_buf();
                out.insert(rel, fs::read(e.path()).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// The replay inputs' files, as they were before the flush.
fn inputs(data: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    files(data)
        .into_iter()
        .filter(|(p, _)| {
            let top = p.components().next().unwrap().as_os_str().to_string_lossy();
            top == "wal"
                || top == "wbl"
                || top == "chunks_head"
                || top.starts_with("chunk_snapshot.")
        })
        .collect()
}

/// Every file under the backup runs of `data`, relative to its run (later runs win: a file is
/// only ever in one run).
fn backed_up(data: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let Ok(rd) = fs::read_dir(data.join("walfix-backup")) else {
        return out;
    };
    for run in rd {
        let run = run.unwrap().path();
        for (p, b) in files(&run) {
            let hidden = p
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy()
                .starts_with('.');
            if p != Path::new("manifest.jsonl") && !hidden {
                assert!(
                    out.insert(p.clone(), b).is_none(),
                    "{} in two runs",
                    p.display()
                );
            }
        }
    }
    out
}

/// The files of the blocks (ULID directories) under `data`.
fn block_files(data: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    files(data)
        .into_iter()
        .filter(|(p, _)| {
            walfix_flush::block::is_ulid(
                &p.components().next().unwrap().as_os_str().to_string_lossy(),
            )
        })
        .collect()
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

#[test]
fn the_wal_moves_into_the_backup_after_the_blocks() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data_dir(tmp.path());
    let before = inputs(&data);
    assert_eq!(before.len(), 4);

    let dry = flush(
        &data,
        &FlushOptions {
            dry_run: true,
            ..FlushOptions::default()
        },
    )
    .unwrap();
    assert!(dry.handover.is_none() && dry.wal_kept.is_none());
    let tops = |v: &[PathBuf]| -> Vec<String> {
        v.iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    };
    // Snapshot first, wal/ last: a run killed before wal/ moved is rerun on it.
    assert_eq!(
        tops(&dry.to_move),
        [
            "chunk_snapshot.000000.0000000123",
            "chunks_head",
            "wbl",
            "wal"
        ]
    );
    assert_eq!(inputs(&data), before, "a dry run moves nothing");

    let rep = flush(&data, &FlushOptions::default()).unwrap();
    assert_eq!(rep.blocks.len(), 2);
    let h = rep.handover.as_ref().expect("moved");
    let mut left = names(&data);
    left.retain(|n| !walfix_flush::block::is_ulid(n));
    assert_eq!(left, ["walfix-backup"], "only the blocks and the backup");
    assert_eq!(
        backed_up(&data),
        before,
        "every byte in the backup, unchanged"
    );
    assert_eq!(
        fs::metadata(&h.backup_run).unwrap().mode() & 0o777,
        0o700,
        "the run is private"
    );

    // The manifest: the blocks, then each move, paths relative to the absolute data root.
    let text = fs::read_to_string(h.backup_run.join("manifest.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5);
    let root = fs::canonicalize(&data).unwrap();
    for l in &lines {
        assert_eq!(l["data_root"], root.to_str().unwrap());
    }
    assert_eq!(lines[0]["action"]["action"], "write-blocks");
    let ulids: Vec<&str> = rep.blocks.iter().map(|b| b.ulid.as_str()).collect();
    assert_eq!(lines[0]["action"]["blocks"], serde_json::json!(ulids));
    for (l, want) in lines[1..].iter().zip(tops(&dry.to_move)) {
        assert_eq!(l["action"]["action"], "move-to-backup");
        assert_eq!(l["action"]["path"], want.as_str());
        assert_eq!(l["backup"], want.as_str());
    }

    // Done: a rerun has nothing to read and changes nothing.
    let blocks = files(&data);
    let again = flush(&data, &FlushOptions::default()).unwrap();
    assert!(!again.wal_found && again.blocks.is_empty() && again.handover.is_none());
    assert_eq!(files(&data), blocks);
}

#[test]
fn keep_wal_and_output_dir_leave_it_in_place() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data_dir(tmp.path());
    let before = inputs(&data);
    let out = tmp.path().join("out");
    let rep = flush(
        &data,
        &FlushOptions {
            output_dir: Some(out.clone()),
            ..FlushOptions::default()
        },
    )
    .unwrap();
    assert!(rep.handover.is_none() && rep.wal_kept.as_deref().unwrap().contains("--output-dir"));
    let rep = flush(
        &data,
        &FlushOptions {
            keep_wal: true,
            ..FlushOptions::default()
        },
    )
    .unwrap();
    assert!(rep.handover.is_none() && rep.wal_kept.is_some());
    assert_eq!(inputs(&data), before);
    assert!(!data.join("walfix-backup").exists());
}

/// Real file operations, but the `fail_at`-th one fails: before it runs (`after` false) or
/// after it ran (as if the process were killed right after it).
struct FailAt {
    n: AtomicUsize,
    fail_at: usize,
    after: bool,
}

impl FailAt {
    fn step(&self, op: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
        let i = self.n.fetch_add(1, Ordering::SeqCst);
        if i == self.fail_at && !self.after {
            return Err(io::Error::other("injected"));
        }
        op()?;
        if i == self.fail_at {
            return Err(io::Error::other("injected after"));
        }
        Ok(())
    }
}

impl Fs for FailAt {
    fn create(&self, path: &Path) -> io::Result<Box<dyn FileWriter + '_>> {
        let mut f = None;
        self.step(|| {
            f = Some(RealFs.create(path)?);
            Ok(())
        })?;
        Ok(f.unwrap())
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.step(|| RealFs.rename(from, to))
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.step(|| RealFs.remove_file(path))
    }
    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        self.step(|| RealFs.remove_dir_all(path))
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.step(|| RealFs.create_dir_all(path))
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.step(|| RealFs.sync_dir(path))
    }
    fn append_line(&self, path: &Path, line: &[u8]) -> io::Result<()> {
        self.step(|| RealFs.append_line(path, line))
    }
    fn set_owner_mode(&self, path: &Path, owner: Option<(u32, u32)>, mode: u32) -> io::Result<()> {
        self.step(|| RealFs.set_owner_mode(path, owner, mode))
    }
}

#[test]
fn a_move_stopped_at_any_file_operation_converges_on_rerun() {
    // Operations of one whole move, counted on a run that does not fail.
    let total = {
        let tmp = tempfile::tempdir().unwrap();
        let data = data_dir(tmp.path());
        let fs_ = FailAt {
            n: AtomicUsize::new(0),
            fail_at: usize::MAX,
            after: false,
        };
        handover::move_to_backup(&fs_, &data, None, &[]).unwrap();
        fs_.n.load(Ordering::SeqCst)
    };
    assert!(total >= 4 * 3, "{total} operations");
    for after in [false, true] {
        for fail_at in 0..total {
            let tmp = tempfile::tempdir().unwrap();
            let data = data_dir(tmp.path());
            let before = inputs(&data);
            // The blocks are in place (a run with the WAL kept), then the move stops.
            flush(
                &data,
                &FlushOptions {
                    keep_wal: true,
                    ..FlushOptions::default()
                },
            )
            .unwrap();
            let blocks = block_files(&data);
            let fs_ = FailAt {
                n: AtomicUsize::new(0),
                fail_at,
                after,
            };
            let err = handover::move_to_backup(&fs_, &data, None, &[]);
            assert!(err.is_err(), "op {fail_at} (after: {after}) did not fail");
            // Whatever was moved is whole in the backup, whatever was not is whole in place.
            let mut seen = backed_up(&data);
            seen.extend(inputs(&data));
            assert_eq!(
                seen, before,
                "op {fail_at} after {after}: lost or changed bytes"
            );

            let rep = flush(&data, &FlushOptions::default()).unwrap();
            if rep.wal_found {
                assert!(rep.blocks.is_empty(), "the rerun writes no block again");
            }
            assert!(
                inputs(&data).is_empty(),
                "op {fail_at} after {after}: left behind"
            );
            assert_eq!(backed_up(&data), before, "op {fail_at} after {after}");
            let now = block_files(&data);
            assert_eq!(now, blocks, "the blocks are unchanged");
        }
    }
}

/// Run as root (CI): blocks and the backup run belong to the data dir's owner, so Prometheus
/// running as that user can compact, delete and prune them.
#[test]
fn as_root_the_blocks_and_backup_belong_to_the_data_dirs_owner() {
    // /proc/self belongs to the effective uid.
    if fs::metadata("/proc/self").unwrap().uid() != 0 {
        eprintln!("skipped: needs root (CI runs it as root)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = data_dir(tmp.path());
    std::os::unix::fs::chown(&data, Some(65534), Some(65534)).unwrap();
    let rep = flush(&data, &FlushOptions::default()).unwrap();
    let mut checked = 0;
    for b in &rep.blocks {
        for (p, _) in files(&b.path) {
            let m = fs::metadata(b.path.join(&p)).unwrap();
            assert_eq!((m.uid(), m.gid()), (65534, 65534), "{}", p.display());
            checked += 1;
        }
        let m = fs::metadata(&b.path).unwrap();
        assert_eq!((m.uid(), m.gid()), (65534, 65534));
    }
    assert!(
        checked >= 2 * 4,
        "index, chunks, meta.json, tombstones per block"
    );
    let run = &rep.handover.as_ref().unwrap().backup_run;
    for d in [run.as_path(), run.parent().unwrap()] {
        let m = fs::metadata(d).unwrap();
        assert_eq!((m.uid(), m.gid(), m.mode() & 0o777), (65534, 65534, 0o700));
    }
}
