//! `repair` on every damaged corpus real Prometheus wrote, held against what Prometheus's own
//! repair kept (testdata/facts.json, from EXPECTED.txt), plus idempotence, backups, the lock,
//! and failures injected at every file operation.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;
use walfix::fsops::{FileWriter, Fs, RealFs};
use walfix::repair::{execute, plan, Action, Mode, RepairError, RepairOptions};
use walfix::{check, CheckOptions, Report, Severity};

fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

fn facts() -> serde_json::Map<String, Value> {
    let text = fs::read_to_string(testdata().join("facts.json")).unwrap();
    match serde_json::from_str(&text).unwrap() {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

/// A writable copy of a corpus (wal/ and wbl/ only), as a data dir.
fn copy(name: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    common::copy_dir(&testdata().join("corpora").join(name), &data, &|p| {
        p.extension().is_some_and(|x| x == "txt")
    });
    (tmp, data)
}

/// Every file under `dir` (relative path -> bytes).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                walk(root, &p, out);
            } else {
                out.insert(
                    p.strip_prefix(root).unwrap().to_path_buf(),
                    fs::read(&p).unwrap(),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn opts(mode: Mode) -> RepairOptions {
    RepairOptions {
        mode,
        ..Default::default()
    }
}

fn repair(data: &Path, o: &RepairOptions) -> Report {
    let p = plan(data, o).unwrap();
    execute(&p, o, &RealFs).unwrap().after
}

/// Float and histogram samples without staleness markers: what PromQL's count_over_time sees.
fn queryable(r: &Report) -> u64 {
    let t = &r.totals;
    t.float_samples - t.stale_markers + t.histogram_samples + t.float_histogram_samples
}

fn damaged() -> Vec<(String, Value)> {
    facts()
        .into_iter()
        .filter(|(_, f)| f["clean"] == Value::Bool(false))
        .collect()
}

#[test]
fn truncate_mode_keeps_exactly_what_prometheus_kept() {
    // EXPECTED.txt: queryable samples after Prometheus's own repair. The WBL corpus is left out:
    // its OOO samples also depend on chunks_head, which the corpus does not carry.
    let mut n = 0;
    for (name, f) in damaged() {
        let kept = &f["after_replay"]["samples_queryable"];
        if f["started"] != Value::Bool(true) || !kept.is_number() || name.contains("wbl") {
            continue;
        }
        let (_t, data) = copy(&name);
        let after = repair(&data, &opts(Mode::Truncate));
        assert!(
            after.worst < Severity::Repairable,
            "{name}: {:#?}",
            after.findings
        );
        assert_eq!(queryable(&after), kept.as_u64().unwrap(), "{name}");
        n += 1;
    }
    assert!(n >= 5, "only {n} corpora compared");
}

#[test]
fn salvage_leaves_every_damaged_corpus_clean_and_keeps_at_least_as_much() {
    for (name, f) in damaged() {
        let (_t, data) = copy(&name);
        let after = repair(&data, &opts(Mode::Salvage));
        assert!(
            after.worst < Severity::Repairable,
            "{name}: {:#?}",
            after.findings
        );
        if let Some(kept) = f["after_replay"]["samples_queryable"].as_u64() {
            if !name.contains("wbl") {
                assert!(
                    queryable(&after) >= kept,
                    "{name}: {} < {kept}",
                    queryable(&after)
                );
            }
        }
    }
}

#[test]
fn salvage_after_one_flipped_byte_loses_one_record_only() {
    // DAMAGE.txt: one byte flipped inside one full fragment; the clean original is small-clean.
    let orig = check(
        &testdata().join("corpora/small-clean"),
        &CheckOptions::default(),
    )
    .unwrap();
    let (_t, data) = copy("small-clean--flip-byte");
    let mut o = opts(Mode::Salvage);
    o.no_correct = true;
    let after = repair(&data, &o);
    assert_eq!(after.totals.records + 1, orig.totals.records);
    assert_eq!(after.distinct_series, orig.distinct_series);

    // With corrections (the default) the byte is changed back and nothing is lost.
    let (_t, data) = copy("small-clean--flip-byte");
    let after = repair(&data, &opts(Mode::Salvage));
    assert_eq!(after.totals, orig.totals);
}

#[test]
fn repair_is_idempotent_and_a_clean_wal_is_not_touched() {
    for name in [
        "small-clean--flip-byte",
        "v3-wbl--wbl-flip-mid",
        "small-clean--gap",
        "v3-checkpoint--ckpt-flip",
    ] {
        let (_t, data) = copy(name);
        repair(&data, &opts(Mode::Salvage));
        let once = snapshot(&data);
        let p = plan(&data, &opts(Mode::Salvage)).unwrap();
        assert!(p.actions.is_empty(), "{name}: second plan {:#?}", p.actions);
        execute(&p, &opts(Mode::Salvage), &RealFs).unwrap();
        assert_eq!(snapshot(&data), once, "{name}: second repair changed bytes");
    }
    let (_t, data) = copy("v3-snappy-small");
    let before = snapshot(&data);
    repair(&data, &opts(Mode::Salvage));
    assert_eq!(snapshot(&data), before, "clean WAL changed");
    assert!(
        !data.join("walfix-backup").exists(),
        "clean repair made a backup dir"
    );
}

#[test]
fn backup_holds_every_original_file_it_changed() {
    for name in [
        "small-clean--flip-byte",
        "v3-zstd-small--flip-mid",
        "small-clean--trunc-tail",
    ] {
        let (_t, data) = copy(name);
        let before = snapshot(&data);
        repair(&data, &opts(Mode::Truncate));
        let after = snapshot(&data);
        let backup: BTreeMap<_, _> = backups(&data).into_iter().collect();
        for (rel, bytes) in &before {
            if after.get(rel) != Some(bytes) {
                assert_eq!(
                    backup.get(rel),
                    Some(bytes),
                    "{name}: {} changed but not backed up",
                    rel.display()
                );
            }
        }
        assert!(backup.contains_key(Path::new("manifest.jsonl")));
    }
}

#[test]
fn checkpoint_damage_never_touches_live_segments() {
    for name in ["v3-checkpoint--ckpt-flip", "with-checkpoint--ckpt-flip"] {
        let (_t, data) = copy(name);
        let before = snapshot(&data);
        repair(&data, &opts(Mode::Salvage));
        let after = snapshot(&data);
        for (rel, bytes) in &before {
            if !rel.to_string_lossy().contains("checkpoint.") {
                assert_eq!(
                    after.get(rel),
                    Some(bytes),
                    "{name}: live file {} changed",
                    rel.display()
                );
            }
        }
    }
}

/// `--drop-checkpoint` on an agent WAL (real Prometheus 3.5 agent, corpus v3-agent) whose
/// checkpoint has one payload byte flipped: the checkpoint goes to the backup, as it does for a
/// server WAL (with-checkpoint--ckpt-flip, damaged by the corpus generator).
#[test]
fn drop_checkpoint_drops_a_damaged_checkpoint_of_an_agent_wal_too() {
    let (_t, agent) = copy("v3-agent");
    let ck = agent.join("wal/checkpoint.00000001");
    let seg = ck.join("00000000");
    let mut bytes = fs::read(&seg).unwrap();
    // The first fragment starts at 0: 7-byte header (type, be16 length, be32 CRC), payload.
    let len = u16::from_be_bytes([bytes[1], bytes[2]]) as usize;
    assert!(len > 2 && bytes[0] & 7 != 0, "a fragment at 0");
    bytes[7 + len / 2] ^= 0xff;
    fs::write(&seg, bytes).unwrap();
    let (_t2, server) = copy("with-checkpoint--ckpt-flip");

    for (data, flavor) in [
        (&agent, walfix::WalFlavor::Agent),
        (&server, walfix::WalFlavor::Server),
    ] {
        let o = RepairOptions {
            mode: Mode::Salvage,
            flavor,
            drop_checkpoint: true,
            ..Default::default()
        };
        let ck = fs::read_dir(data.join("wal"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("checkpoint.")
            })
            .unwrap();
        let r = check(
            data,
            &CheckOptions {
                flavor,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(
            r.findings
                .iter()
                .any(|f| f.file.starts_with(&ck) && f.severity >= Severity::Repairable),
            "{flavor:?}: the damage is found in the checkpoint"
        );
        let p = plan(data, &o).unwrap();
        assert!(
            p.actions.iter().any(|a| matches!(
                a,
                walfix::repair::Action::MoveToBackup { path, .. } if *path == ck
            )),
            "{flavor:?}: checkpoint not dropped: {:#?}",
            p.actions
        );
        execute(&p, &o, &RealFs).unwrap();
        assert!(!ck.exists(), "{flavor:?}: {} still there", ck.display());
    }
}

#[test]
fn wbl_damage_is_repaired_in_wbl_only() {
    let (_t, data) = copy("v3-wbl--wbl-flip-mid");
    let before = snapshot(&data.join("wal"));
    let after = repair(&data, &opts(Mode::Salvage));
    assert_eq!(snapshot(&data.join("wal")), before);
    assert!(after.worst < Severity::Repairable);
}

#[test]
fn gap_is_closed_with_an_empty_segment() {
    let (_t, data) = copy("small-clean--gap");
    let after = repair(&data, &opts(Mode::Salvage));
    // DAMAGE.txt: wal/00000002 was deleted.
    assert_eq!(fs::metadata(data.join("wal/00000002")).unwrap().len(), 0);
    assert_eq!(after.exit_code, 0, "{:#?}", after.findings);
}

#[test]
fn refuses_while_the_lock_is_held() {
    let (_t, data) = copy("small-clean--flip-byte");
    let lock = fs::File::create(data.join("lock")).unwrap();
    lock.try_lock().unwrap();
    let p = plan(&data, &opts(Mode::Salvage)).unwrap();
    let before = snapshot(&data.join("wal"));
    match execute(&p, &opts(Mode::Salvage), &RealFs) {
        Err(RepairError::Locked(_)) => {}
        other => panic!("expected Locked, got {other:?}"),
    }
    assert_eq!(snapshot(&data.join("wal")), before);
    let forced = RepairOptions {
        force: true,
        ..opts(Mode::Salvage)
    };
    assert!(execute(&p, &forced, &RealFs).is_ok());
    drop(lock);
}

#[test]
fn leftover_repair_file_is_recovered() {
    // Simulate Prometheus's repair interrupted after it re-logged part of segment 3: the
    // original segment is in 00000003.repair and 00000003 holds only its first records.
    let (_t, data) = copy("small-clean");
    let wal = data.join("wal");
    let orig = fs::read(wal.join("00000003")).unwrap();
    fs::rename(wal.join("00000003"), wal.join("00000003.repair")).unwrap();
    let (prefix, _, kept) =
        walfix::repair::salvage(&orig, walfix_format::record::LogKind::Wal, Some(200_000));
    assert!(kept > 0);
    fs::write(wal.join("00000003"), &prefix).unwrap();
    let before = check(&data, &CheckOptions::default()).unwrap();
    assert!(before
        .findings
        .iter()
        .any(|f| f.kind == "leftover-repair-file"));
    let after = repair(&data, &opts(Mode::Salvage));
    assert!(!wal.join("00000003.repair").exists());
    let clean = check(
        &testdata().join("corpora/small-clean"),
        &CheckOptions::default(),
    )
    .unwrap();
    assert_eq!(after.totals.records, clean.totals.records);
    assert_eq!(after.totals.float_samples, clean.totals.float_samples);
}

/// A `.repair` file whose segment is there under another name (`+0000003`): it is compared with
/// that file, not with the missing `00000003`. Found by the repair fuzz target: the segment's
/// records were replaced by the `.repair` file's (none) because `00000003` did not exist yet.
#[test]
fn leftover_repair_file_is_compared_with_a_segment_under_another_name() {
    let (_t, data) = copy("small-clean");
    let wal = data.join("wal");
    let orig = fs::read(wal.join("00000003")).unwrap();
    let (prefix, _, kept) =
        walfix::repair::salvage(&orig, walfix_format::record::LogKind::Wal, Some(200_000));
    assert!(kept > 0);

    // The segment holds its first records under an odd name; the .repair file has them all.
    fs::remove_file(wal.join("00000003")).unwrap();
    fs::write(wal.join("+0000003"), &prefix).unwrap();
    fs::write(wal.join("00000003.repair"), &orig).unwrap();
    let after = repair(&data, &opts(Mode::Salvage));
    let clean = check(
        &testdata().join("corpora/small-clean"),
        &CheckOptions::default(),
    )
    .unwrap();
    assert_eq!(after.totals.records, clean.totals.records);
    assert_eq!(after.totals.float_samples, clean.totals.float_samples);

    // A .repair file that is not an extension of the segment: nothing of the segment is lost,
    // and a human decides.
    let (_t2, data) = copy("small-clean");
    let wal = data.join("wal");
    let orig = fs::read(wal.join("00000003")).unwrap();
    fs::remove_file(wal.join("00000003")).unwrap();
    fs::write(wal.join("+0000003"), &orig).unwrap();
    fs::write(wal.join("00000003.repair"), &prefix).unwrap();
    let p = plan(&data, &opts(Mode::Salvage)).unwrap();
    assert!(
        p.unresolved.iter().any(|u| u.contains("00000003.repair")),
        "{:?}",
        p.unresolved
    );
    let after = execute(&p, &opts(Mode::Salvage), &RealFs).unwrap().after;
    assert_eq!(after.totals.records, clean.totals.records);
    assert_eq!(after.totals.float_samples, clean.totals.float_samples);
}

#[test]
fn pad_fills_the_last_page_of_the_newest_segment() {
    let (_t, data) = copy("v3-snappy-small--trunc-tail-unaligned");
    let o = RepairOptions {
        pad: true,
        ..opts(Mode::Salvage)
    };
    let after = repair(&data, &o);
    let len = fs::metadata(data.join("wal/00000002")).unwrap().len();
    assert_eq!(len % 32768, 0);
    assert!(after.worst < Severity::Repairable);
}

/// Fails the n-th mutating operation (and leaves a half-written file when it is a write).
struct FailAt {
    n: usize,
    count: AtomicUsize,
}

impl FailAt {
    fn tick(&self) -> io::Result<()> {
        if self.count.fetch_add(1, Ordering::SeqCst) == self.n {
            Err(io::Error::other("injected failure"))
        } else {
            Ok(())
        }
    }
}

struct HalfWriter<'a> {
    inner: Box<dyn FileWriter + 'a>,
    fail: bool,
}

impl io::Write for HalfWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.fail {
            let half = buf.len() / 2;
            self.inner.write_all(&buf[..half])?;
            return Err(io::Error::other("injected failure mid-write"));
        }
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl FileWriter for HalfWriter<'_> {
    fn sync(&mut self) -> io::Result<()> {
        self.inner.sync()
    }
}

impl Fs for FailAt {
    fn create(&self, path: &Path) -> io::Result<Box<dyn FileWriter + '_>> {
        let fail = self.tick().is_err();
        Ok(Box::new(HalfWriter {
            inner: RealFs.create(path)?,
            fail,
        }))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.tick()?;
        RealFs.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.tick()?;
        RealFs.remove_file(path)
    }
    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        self.tick()?;
        RealFs.remove_dir_all(path)
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.tick()?;
        RealFs.create_dir_all(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.tick()?;
        RealFs.sync_dir(path)
    }
    fn append_line(&self, path: &Path, line: &[u8]) -> io::Result<()> {
        self.tick()?;
        RealFs.append_line(path, line)
    }
    fn set_owner_mode(&self, path: &Path, owner: Option<(u32, u32)>, mode: u32) -> io::Result<()> {
        self.tick()?;
        RealFs.set_owner_mode(path, owner, mode)
    }
    fn set_len(&self, path: &Path, len: u64) -> io::Result<()> {
        self.tick()?;
        RealFs.set_len(path, len)
    }
}

/// Every backed-up file, keyed by its path inside its run directory (`walfix-backup/<run>/`).
fn backups(data: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = data.join("walfix-backup");
    if !dir.exists() {
        return Vec::new();
    }
    snapshot(&dir)
        .into_iter()
        .map(|(k, v)| (k.iter().skip(1).collect::<PathBuf>(), v))
        .collect()
}

fn without_backup(mut s: BTreeMap<PathBuf, Vec<u8>>) -> BTreeMap<PathBuf, Vec<u8>> {
    s.retain(|k, _| !k.starts_with("walfix-backup"));
    s
}

#[test]
fn a_failure_at_any_step_then_a_rerun_equals_an_uninterrupted_repair() {
    let corpus = |name: &'static str| -> Box<dyn Fn() -> (tempfile::TempDir, PathBuf)> {
        Box::new(move || copy(name))
    };
    for (name, setup, mode) in [
        (
            "small-clean--flip-byte",
            corpus("small-clean--flip-byte"),
            Mode::Salvage,
        ),
        (
            "small-clean--flip-byte",
            corpus("small-clean--flip-byte"),
            Mode::Truncate,
        ),
        (
            "small-clean--gap",
            corpus("small-clean--gap"),
            Mode::Salvage,
        ),
        (
            "v3-checkpoint--ckpt-flip",
            corpus("v3-checkpoint--ckpt-flip"),
            Mode::Salvage,
        ),
        // Tails cut in place (an older segment also zero-padded in place).
        (
            "small-clean--trunc-tail",
            corpus("small-clean--trunc-tail"),
            Mode::Salvage,
        ),
        (
            "small-clean--trunc-multipage",
            corpus("small-clean--trunc-multipage"),
            Mode::Truncate,
        ),
        // Rebuilding a segment from a .repair file that holds an undecodable record.
        (
            "repair-file",
            Box::new(|| repair_file_case(false)) as Box<dyn Fn() -> _>,
            Mode::Salvage,
        ),
    ] {
        let o = opts(mode);
        let (_t0, clean_run) = setup();
        let original = snapshot(&clean_run);
        repair(&clean_run, &o);
        let want = without_backup(snapshot(&clean_run));

        let mut n = 0;
        loop {
            let (_t, data) = setup();
            let fs_ = FailAt {
                n,
                count: AtomicUsize::new(0),
            };
            let p = plan(&data, &o).unwrap();
            let failed = execute(&p, &o, &fs_).is_err();
            // Rerun with a working file system, as an operator would.
            let after = repair(&data, &o);
            assert!(after.worst < Severity::Repairable, "{name} fail at {n}");
            assert_eq!(
                without_backup(snapshot(&data)),
                want,
                "{name} {mode:?}: fail at op {n}"
            );
            // Every original file that changed is in the backup, byte for byte.
            let now = snapshot(&data);
            let backup = backups(&data);
            for (rel, bytes) in &original {
                if now.get(rel) != Some(bytes) {
                    let kept = backup.iter().any(|(k, v)| {
                        v == bytes && k.starts_with(rel.parent().unwrap_or(Path::new("")))
                    });
                    assert!(kept, "{name} fail at {n}: {} lost", rel.display());
                }
            }
            if !failed {
                break;
            }
            n += 1;
        }
        assert!(n >= 4, "{name}: only {n} operations");
    }
}

#[test]
fn prediction_on_a_scratch_copy_matches_the_real_result() {
    for name in [
        "with-checkpoint--ckpt-flip",
        "small-clean--flip-byte",
        "small-clean--gap",
    ] {
        let (_t, data) = copy(name);
        let before = snapshot(&data);
        let o = opts(Mode::Salvage);
        let p = plan(&data, &o).unwrap();
        let predicted = walfix::repair::predict(&p, &o).unwrap();
        assert_eq!(snapshot(&data), before, "{name}: predict changed the WAL");
        let after = execute(&p, &o, &RealFs).unwrap().after;
        let key = |r: &Report| {
            r.findings
                .iter()
                .map(|f| (f.kind, f.file.clone(), f.segment, f.unknown_refs))
                .collect::<Vec<_>>()
        };
        assert_eq!(key(&predicted), key(&after), "{name}");
        assert_eq!(predicted.totals, after.totals, "{name}");
    }
}

/// The real file system, reporting `free` bytes left everywhere.
struct Full {
    free: u64,
}

impl Fs for Full {
    fn create(&self, path: &Path) -> io::Result<Box<dyn FileWriter + '_>> {
        RealFs.create(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        RealFs.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        RealFs.remove_file(path)
    }
    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        RealFs.remove_dir_all(path)
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        RealFs.create_dir_all(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        RealFs.sync_dir(path)
    }
    fn append_line(&self, path: &Path, line: &[u8]) -> io::Result<()> {
        RealFs.append_line(path, line)
    }
    fn free_space(&self, _: &Path) -> io::Result<u64> {
        Ok(self.free)
    }
}

#[test]
fn refuses_to_pad_or_back_up_without_space_and_changes_nothing() {
    // The seed scenario: `zero-pad torn page: no space left on device`. With too little room
    // for the backup and the padded rewrite, repair must refuse before touching anything.
    let (_t, data) = copy("v3-snappy-small--trunc-tail-unaligned");
    let o = RepairOptions {
        pad: true,
        ..opts(Mode::Salvage)
    };
    let p = plan(&data, &o).unwrap();
    let before = snapshot(&data.join("wal"));
    match execute(&p, &o, &Full { free: 4096 }) {
        Err(RepairError::NoSpace {
            needed, available, ..
        }) => {
            assert!(needed > available);
            let msg = execute(&p, &o, &Full { free: 4096 })
                .unwrap_err()
                .to_string();
            assert!(msg.contains("no space left on device"), "{msg}");
        }
        other => panic!("expected NoSpace, got {other:?}"),
    }
    assert_eq!(snapshot(&data.join("wal")), before);
    // With room, the same plan goes through.
    assert!(execute(&p, &o, &Full { free: 1 << 40 }).is_ok());
}

/// `stat` of every entry under `dir`: relative path -> (uid, gid, mode bits).
fn owners(dir: &Path) -> BTreeMap<PathBuf, (u32, u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let m = fs::symlink_metadata(&d).unwrap();
        out.insert(
            d.strip_prefix(dir).unwrap().to_path_buf(),
            (m.uid(), m.gid(), m.mode() & 0o7777),
        );
        if m.is_dir() {
            for e in fs::read_dir(&d).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
    }
    out
}

fn set_tree(dir: &Path, owner: Option<(u32, u32)>, file_mode: u32, dir_mode: u32) {
    for (rel, _) in owners(dir) {
        let p = dir.join(&rel);
        let mode = if p.is_dir() { dir_mode } else { file_mode };
        walfix::fsops::set_owner_mode(&p, owner, mode).unwrap();
    }
}

/// Issue 11: a repair run as root gave a 65534-owned 0640 segment back as root 0644.
/// Every file keeps its owner, group and mode; the backup is private to the data dir's owner.
#[test]
fn repair_keeps_owner_group_and_mode_and_backups_are_private() {
    let root = rustix::process::geteuid().is_root();
    // As root the tree is given away to 65534 (what the pod's Prometheus runs as); otherwise
    // only modes can be checked, the owner being us.
    let owner = root.then_some((65534, 65534));
    for name in [
        "small-clean--flip-byte",
        "small-clean--gap",
        "v3-checkpoint--ckpt-flip",
    ] {
        let (_t, data) = copy(name);
        set_tree(&data, owner, 0o640, 0o750);
        let before = owners(&data);
        let after_report = repair(&data, &opts(Mode::Salvage));
        assert!(after_report.worst < Severity::Repairable, "{name}");
        let after = owners(&data);
        let (uid, gid, _) = before[Path::new("")];
        for (rel, st) in &after {
            if rel.starts_with("walfix-backup") {
                let want = if data.join(rel).is_dir() {
                    0o700
                } else {
                    0o600
                };
                assert_eq!(*st, (uid, gid, want), "{name}: {}", rel.display());
            } else if let Some(old) = before.get(rel) {
                assert_eq!(st, old, "{name}: {} changed owner or mode", rel.display());
            } else {
                // New files (an empty segment closing a gap) get the data dir's owner.
                assert_eq!((st.0, st.1), (uid, gid), "{name}: new {}", rel.display());
            }
        }
    }
}

#[test]
fn old_backups_are_pruned_to_keep_backups() {
    let (_t, data) = copy("small-clean--flip-byte");
    let pristine = tempfile::tempdir().unwrap();
    common::copy_dir(&data, pristine.path(), &|_| false);
    let mut o = opts(Mode::Salvage);
    o.keep_backups = Some(2);
    let mut runs_seen = Vec::new();
    for i in 0..4 {
        // Put the damage back and repair again: each run makes one backup run dir.
        common::copy_dir(&pristine.path().join("wal"), &data.join("wal"), &|_| false);
        let p = plan(&data, &o).unwrap();
        assert!(!p.actions.is_empty(), "run {i}: nothing planned");
        let out = execute(&p, &o, &RealFs).unwrap();
        runs_seen.push(p.backup_run.clone());
        let runs: std::collections::BTreeSet<_> = fs::read_dir(data.join("walfix-backup"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        // The newest two runs survive, whatever their names.
        let want: std::collections::BTreeSet<_> = runs_seen.iter().rev().take(2).cloned().collect();
        assert_eq!(runs, want, "run {i}");
        assert_eq!(
            out.pruned.len(),
            usize::from(i >= 2),
            "run {i}: {:?}",
            out.pruned
        );
        assert!(p.backup_run.join("manifest.jsonl").is_file());
    }
}

/// Issue 12, defect 4: a repair killed after it rebuilt a segment from a `.repair` file that
/// holds an undecodable record, before it removed the `.repair` file. The segment is then the
/// `.repair` file's clean records; a rerun must finish (remove the `.repair` file, backed up),
/// not call it diverged.
/// A data dir whose `wal/00000000.repair` holds four records, the third of which does not
/// decode (a samples record cut inside its first value: `invalid size`), as Prometheus's
/// interrupted repair leaves it. `rebuilt`: `00000000` already holds the `.repair` file's clean
/// records (a walfix run killed after the rebuild); otherwise only its first record (what
/// Prometheus had re-logged).
fn repair_file_case(rebuilt: bool) -> (tempfile::TempDir, PathBuf) {
    use walfix_format::encode::SegmentEncoder;
    use walfix_format::fragment::Compression;
    fn be64(b: &mut Vec<u8>, x: u64) {
        b.extend_from_slice(&x.to_be_bytes());
    }
    // record.go: series = type 1, then per series be64 ref, uvarint label count, and each
    // label as uvarint-length-prefixed name and value.
    let mut series = vec![1u8];
    be64(&mut series, 1);
    series.extend([1, 8]);
    series.extend(b"__name__");
    series.extend([2]);
    series.extend(b"up");
    // samples = type 2, be64 base ref, be64 base time, then per sample varint dref, varint dt,
    // be64 value.
    let sample = |tail_ok: bool| {
        let mut b = vec![2u8];
        be64(&mut b, 1);
        be64(&mut b, 1_700_000_000_000);
        b.extend([0, 0]);
        if tail_ok {
            be64(&mut b, 1f64.to_bits());
        } else {
            b.extend([0x3f, 0xf0]);
        }
        b
    };
    let records = [series, sample(true), sample(false), sample(true)];
    let mut enc = SegmentEncoder::new();
    for r in &records {
        enc.append(r, Compression::None);
    }
    let with_bad = enc.into_bytes();
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let wal = data.join("wal");
    fs::create_dir_all(&wal).unwrap();
    fs::write(wal.join("00000000.repair"), &with_bad).unwrap();
    let seg = if rebuilt {
        let (clean, _, kept) =
            walfix::repair::salvage(&with_bad, walfix_format::record::LogKind::Wal, None);
        assert_eq!(kept, 3);
        clean
    } else {
        let mut enc = SegmentEncoder::new();
        enc.append(&records[0], Compression::None);
        enc.into_bytes()
    };
    fs::write(wal.join("00000000"), seg).unwrap();
    (t, data)
}

/// Issue 12, defect 4: a repair killed after it rebuilt a segment from a `.repair` file that
/// holds an undecodable record, before it removed the `.repair` file. A rerun must finish
/// (remove the `.repair` file, backed up), not call the two diverged.
#[test]
fn a_rebuild_from_a_repair_file_killed_before_its_removal_is_finished_by_a_rerun() {
    let (_t, data) = repair_file_case(true);
    let wal = data.join("wal");
    let with_bad = fs::read(wal.join("00000000.repair")).unwrap();
    let clean = fs::read(wal.join("00000000")).unwrap();
    let o = opts(Mode::Salvage);
    let p = plan(&data, &o).unwrap();
    assert!(p.unresolved.is_empty(), "{:?}", p.unresolved);
    assert!(
        p.actions
            .iter()
            .any(|a| matches!(a, Action::RecoverRepairFile { .. })),
        "{:?}",
        p.actions
    );
    let after = execute(&p, &o, &RealFs).unwrap().after;
    assert!(after.worst < Severity::Repairable, "{:#?}", after.findings);
    assert!(!wal.join("00000000.repair").exists());
    assert_eq!(fs::read(wal.join("00000000")).unwrap(), clean);
    assert!(
        backups(&data).iter().any(|(_, b)| *b == with_bad),
        "the .repair file is backed up"
    );
}

/// The real file system with no free space under `full`, plenty elsewhere.
struct FullUnder {
    full: PathBuf,
}

impl Fs for FullUnder {
    fn create(&self, path: &Path) -> io::Result<Box<dyn FileWriter + '_>> {
        if path.starts_with(&self.full) {
            return Err(io::Error::from_raw_os_error(28)); // ENOSPC
        }
        RealFs.create(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        RealFs.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        RealFs.remove_file(path)
    }
    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        RealFs.remove_dir_all(path)
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        RealFs.create_dir_all(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        RealFs.sync_dir(path)
    }
    fn append_line(&self, path: &Path, line: &[u8]) -> io::Result<()> {
        RealFs.append_line(path, line)
    }
    fn free_space(&self, path: &Path) -> io::Result<u64> {
        Ok(if path.starts_with(&self.full) {
            0
        } else {
            1 << 40
        })
    }
}

/// Issue 12, defect 11: on a full volume a torn tail is cut in place (no new file is written
/// there), so with the backup on another disk the repair goes through; with the backup on the
/// full volume the message says to move the backup, and nothing changes.
#[test]
fn a_torn_tail_on_a_full_volume_is_cut_in_place_with_the_backup_elsewhere() {
    for name in [
        "small-clean--trunc-tail",
        "v3-snappy-small--trunc-tail-unaligned",
    ] {
        let (t, data) = copy(name);
        let elsewhere = t.path().join("other-disk");
        let fs_ = FullUnder { full: data.clone() };
        let before = snapshot(&data);

        let o = opts(Mode::Salvage);
        let p = plan(&data, &o).unwrap();
        let msg = execute(&p, &o, &fs_).unwrap_err().to_string();
        assert!(msg.contains("--backup-dir"), "{name}: {msg}");
        assert_eq!(snapshot(&data), before, "{name}");

        let o = RepairOptions {
            backup_dir: Some(elsewhere.clone()),
            ..opts(Mode::Salvage)
        };
        let p = plan(&data, &o).unwrap();
        let after = execute(&p, &o, &fs_).unwrap().after;
        assert!(
            after.worst < Severity::Repairable,
            "{name}: {:#?}",
            after.findings
        );
        // The original is in the backup on the other disk, byte for byte.
        let kept = snapshot(&elsewhere);
        for (rel, bytes) in &before {
            if snapshot(&data).get(rel) != Some(bytes) {
                assert!(
                    kept.values().any(|b| b == bytes),
                    "{name}: {} lost",
                    rel.display()
                );
            }
        }
    }
}

/// Issue 12, defect 12: what is executed is what was planned. A segment that changes between
/// plan and execute (a Prometheus writing it meanwhile) makes execute refuse, changing nothing.
#[test]
fn a_segment_written_between_plan_and_execute_is_refused() {
    let (_t, data) = copy("small-clean--flip-byte");
    let o = opts(Mode::Salvage);
    let p = plan(&data, &o).unwrap();
    let seg = data.join("wal/00000001");
    let mut f = fs::OpenOptions::new().append(true).open(&seg).unwrap();
    use std::io::Write;
    f.write_all(&[0]).unwrap();
    drop(f);
    let before = snapshot(&data);
    match execute(&p, &o, &RealFs) {
        Err(RepairError::Changed(path)) => assert_eq!(path, seg),
        other => panic!("expected Changed, got {other:?}"),
    }
    assert_eq!(snapshot(&data), before);
    assert!(!data.join("walfix-backup").exists());
}

/// Cutting a tail in place must not change a file outside the WAL: a segment that is a second
/// name (hard link) of such a file, or a symlink to one, is replaced instead, as before.
#[test]
fn a_tail_is_never_cut_through_a_link_to_a_file_outside() {
    for link in ["hard", "sym"] {
        let (t, data) = copy("small-clean--trunc-tail");
        let seg = data.join("wal/00000003");
        let outside = t.path().join("outside");
        fs::rename(&seg, &outside).unwrap();
        if link == "hard" {
            fs::hard_link(&outside, &seg).unwrap();
        } else {
            std::os::unix::fs::symlink(&outside, &seg).unwrap();
        }
        let before = fs::read(&outside).unwrap();
        let after = repair(&data, &opts(Mode::Salvage));
        assert!(after.worst < Severity::Repairable, "{link}");
        assert_eq!(
            fs::read(&outside).unwrap(),
            before,
            "{link}: the file outside changed"
        );
        assert!(
            fs::read(&seg).unwrap().len() < before.len(),
            "{link}: not cut"
        );
    }
}
