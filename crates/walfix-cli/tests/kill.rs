//! `walfix repair` killed with SIGKILL at different moments, then run again, ends exactly where
//! an uninterrupted repair ends, and its backup still holds every original byte it changed.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn corpus(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/corpora")
        .join(name)
}

use common::copy_dir;

fn snapshot(dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>, root: &Path) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            snapshot(&p, out, root);
        } else {
            out.insert(
                p.strip_prefix(root).unwrap().to_path_buf(),
                fs::read(&p).unwrap(),
            );
        }
    }
}

fn wal_state(data: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut m = BTreeMap::new();
    snapshot(&data.join("wal"), &mut m, data);
    m
}

fn repair(data: &Path, mode: &str) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_walfix"))
        .args(["repair", "--mode", mode])
        .arg(data)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn sigkill_at_any_moment_then_rerun_equals_an_uninterrupted_repair() {
    for (name, mode) in [
        ("small-clean--flip-byte", "truncate"),
        ("v3-zstd-small--flip-mid", "salvage"),
    ] {
        let reference = tempfile::tempdir().unwrap();
        copy_dir(&corpus(name).join("wal"), &reference.path().join("wal"));
        let original = wal_state(reference.path());
        assert!(repair(reference.path(), mode).wait().unwrap().success());
        let want = wal_state(reference.path());
        assert_ne!(want, original);

        for delay_us in [0u64, 200, 500, 1000, 2000, 3000, 5000, 8000, 12000, 20000] {
            let tmp = tempfile::tempdir().unwrap();
            let data = tmp.path();
            copy_dir(&corpus(name).join("wal"), &data.join("wal"));
            let mut child = repair(data, mode);
            std::thread::sleep(Duration::from_micros(delay_us));
            let _ = child.kill(); // SIGKILL on Unix
            let _ = child.wait();
            let rerun = repair(data, mode).wait().unwrap();
            assert!(
                rerun.success(),
                "{name}: rerun after kill at {delay_us} us failed"
            );
            assert_eq!(wal_state(data), want, "{name}: kill at {delay_us} us");
            // Every original file that is gone or changed is in the backup, byte for byte.
            let mut backup = BTreeMap::new();
            if data.join("walfix-backup").exists() {
                snapshot(
                    &data.join("walfix-backup"),
                    &mut backup,
                    &data.join("walfix-backup"),
                );
            }
            for (rel, bytes) in &original {
                if want.get(rel) != Some(bytes) {
                    assert!(
                        backup.values().any(|b| b == bytes),
                        "{name}: kill at {delay_us} us: original {} not in the backup",
                        rel.display()
                    );
                }
            }
        }
    }
}
