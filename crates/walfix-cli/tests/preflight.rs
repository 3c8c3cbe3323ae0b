//! `walfix preflight` against docs/preflight.md: exit codes, what it changes and what it
//! refuses to touch, on WALs real Prometheus wrote. The pod tests (tests/pod/) run the same
//! cases in real containers before a real Prometheus.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

fn corpus(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/corpora")
        .join(name)
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// A data dir holding a copy of a corpus's wal/ (and wbl/), owned by the user preflight is
/// told Prometheus runs as: 65534 when we are root (as in CI and in pods), else ourselves.
fn data_dir(name: Option<&str>) -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    fs::create_dir_all(&data).unwrap();
    if let Some(name) = name {
        for log in ["wal", "wbl"] {
            if corpus(name).join(log).is_dir() {
                common::copy_dir(&corpus(name).join(log), &data.join(log));
            }
        }
    }
    if is_root() {
        chown_tree(&data, 65534, 65534);
    }
    (t, data)
}

fn chown_tree(dir: &Path, uid: u32, gid: u32) {
    let st = Command::new("chown")
        .arg("-R")
        .arg(format!("{uid}:{gid}"))
        .arg(dir)
        .status()
        .unwrap();
    assert!(st.success());
}

fn prom_user() -> (u32, u32) {
    if is_root() {
        (65534, 65534)
    } else {
        let u = rustix::process::geteuid().as_raw();
        let g = rustix::process::getegid().as_raw();
        (u, g)
    }
}

fn preflight(data: &Path, extra: &[&str]) -> Output {
    let (u, g) = prom_user();
    Command::new(env!("CARGO_BIN_EXE_walfix"))
        .arg("preflight")
        .arg(data)
        .args(["--uid", &u.to_string(), "--gid", &g.to_string()])
        .args(["--live-wait", "0"])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap()
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

/// Every file under `dir` with its bytes (walfix-backup/ left out).
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(dir).unwrap().to_path_buf();
            if rel.starts_with("walfix-backup") {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(rel, fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn json_lines(o: &Output) -> Vec<Value> {
    String::from_utf8(o.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn a_fresh_volume_is_ready() {
    // Missing, empty, only lost+found, no wal/ yet: the first start of every deployment.
    let (_t, data) = data_dir(None);
    let o = preflight(&data, &[]);
    assert_eq!(code(&o), 0, "empty: {}", text(&o));
    fs::create_dir(data.join("lost+found")).unwrap();
    let o = preflight(&data, &[]);
    assert_eq!(code(&o), 0, "lost+found: {}", text(&o));
    fs::create_dir(data.join("chunks_head")).unwrap();
    if is_root() {
        chown_tree(&data.join("chunks_head"), 65534, 65534);
    }
    let o = preflight(&data, &[]);
    assert_eq!(code(&o), 0, "no wal/: {}", text(&o));
    // A data dir that does not exist yet, in a directory Prometheus may write.
    let o = preflight(&data.join("sub"), &[]);
    assert_eq!(code(&o), 0, "missing: {}", text(&o));
}

#[test]
fn a_root_owned_volume_names_the_uid_and_path_and_fix_ownership_gives_it_away() {
    if !is_root() {
        // Only root can make files someone else's; CI runs as root.
        eprintln!("not root: ownership case not exercised");
        return;
    }
    let (_t, data) = data_dir(Some("v3-snappy-small"));
    chown_tree(&data, 0, 0);
    let before = files(&data);
    let o = preflight(&data, &[]);
    assert_eq!(code(&o), 4, "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("uid 65534"), "{t}");
    assert!(t.contains(&data.display().to_string()), "{t}");
    assert_eq!(files(&data), before, "a failed preflight changed files");

    let o = preflight(&data, &["--fix-ownership"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let mut stack = vec![data.clone()];
    while let Some(d) = stack.pop() {
        let m = fs::symlink_metadata(&d).unwrap();
        assert_eq!((m.uid(), m.gid()), (65534, 65534), "{}", d.display());
        if m.is_dir() {
            stack.extend(fs::read_dir(&d).unwrap().map(|e| e.unwrap().path()));
        }
    }
    assert_eq!(files(&data), before, "--fix-ownership changed bytes");
}

#[test]
fn a_torn_tail_is_repaired_and_check_then_finds_nothing() {
    let (_t, data) = data_dir(Some("small-clean--trunc-tail"));
    let o = preflight(&data, &["--json"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let lines = json_lines(&o);
    let wal = lines.iter().find(|l| l["check"] == "wal").unwrap();
    assert_eq!(wal["status"], "fixed", "{wal}");
    let check = Command::new(env!("CARGO_BIN_EXE_walfix"))
        .arg("check")
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(code(&check), 0, "{}", text(&check));
    // Every removed byte is in the backup, owned like the data dir.
    let backup = data.join("walfix-backup");
    let m = fs::metadata(&backup).unwrap();
    assert_eq!((m.uid(), m.gid()), prom_user());
    assert_eq!(m.mode() & 0o777, 0o700);
}

#[test]
fn an_unheld_lock_file_is_taken_for_the_whole_run_and_the_repair_goes_through() {
    // Prometheus leaves `lock` behind after a crash; preflight takes it itself, keeps it
    // through the repair (a second flock of its own would conflict) and releases it.
    let (_t, data) = data_dir(Some("small-clean--trunc-tail"));
    fs::write(data.join("lock"), b"").unwrap();
    if is_root() {
        chown_tree(&data.join("lock"), 65534, 65534);
    }
    let o = preflight(&data, &[]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(text(&o).contains("FIXED"), "{}", text(&o));
    let lock = fs::File::open(data.join("lock")).unwrap();
    lock.try_lock().expect("released at exit");
}

#[test]
fn damage_that_needs_a_human_stops_at_init_and_changes_nothing() {
    for name in ["small-clean--gap", "v3-checkpoint--ckpt-flip"] {
        let (_t, data) = data_dir(Some(name));
        let before = files(&data);
        let term = data.parent().unwrap().join("termination-log");
        let o = preflight(&data, &["--termination-log", term.to_str().unwrap()]);
        assert_eq!(code(&o), 2, "{name}: {}", text(&o));
        assert_eq!(files(&data), before, "{name}: changed");
        let msg = fs::read_to_string(&term).unwrap();
        assert!(msg.starts_with("walfix preflight: refused: "), "{msg}");
        assert!(msg.len() <= 4096);
        assert!(msg.contains("needs a human"), "{msg}");
    }
}

#[test]
fn policy_refusals_leave_the_wal_alone() {
    // Damage that costs records (a multi-page record cut short: DAMAGE.txt) is over
    // --max-loss 0; any damage is refused by --on-damage fail.
    for (corpus, extra) in [
        ("small-clean--flip-byte", &["--on-damage", "fail"][..]),
        ("small-clean--trunc-multipage", &["--max-loss", "0"][..]),
    ] {
        let (_t, data) = data_dir(Some(corpus));
        let before = files(&data);
        let o = preflight(&data, extra);
        assert_eq!(code(&o), 2, "{extra:?}: {}", text(&o));
        assert_eq!(files(&data), before, "{extra:?}");
    }
    let (_t, data) = data_dir(Some("small-clean--flip-byte"));
    let before = files(&data);
    let o = preflight(&data, &["--on-damage", "warn"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(text(&o).contains("WARN"), "{}", text(&o));
    assert_eq!(files(&data), before);
}

#[test]
fn a_running_prometheus_is_refused_with_or_without_a_lock_file() {
    // The lock Prometheus takes (flock on <data>/lock).
    let (_t, data) = data_dir(Some("small-clean--flip-byte"));
    let before = files(&data);
    let lock = fs::File::create(data.join("lock")).unwrap();
    lock.try_lock().unwrap();
    let o = preflight(&data, &[]);
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(text(&o).contains("lock is held"), "{}", text(&o));
    drop(lock);
    fs::remove_file(data.join("lock")).unwrap();
    assert_eq!(files(&data), before);

    // No lock file (Debian's 2.x default): a process holding a segment open.
    let seg = data.join("wal/00000001");
    let mut holder = Command::new("sh")
        .arg("-c")
        .arg("exec 3<\"$1\"; exec sleep 30")
        .arg("sh")
        .arg(&seg)
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let o = preflight(&data, &[]);
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(text(&o).contains("has"), "{}", text(&o));
    assert_eq!(files(&data), before);

    // Nothing we can see holds it, but the newest segment grows while we watch.
    let newest = data.join("wal/00000002");
    assert!(newest.exists());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (newest, stop) = (newest.clone(), stop.clone());
        std::thread::spawn(move || {
            use std::io::Write;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let mut f = fs::OpenOptions::new().append(true).open(&newest).unwrap();
                f.write_all(&[0]).unwrap();
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    let (u, g) = prom_user();
    let o = Command::new(env!("CARGO_BIN_EXE_walfix"))
        .arg("preflight")
        .arg(&data)
        .args([
            "--uid",
            &u.to_string(),
            "--gid",
            &g.to_string(),
            "--live-wait",
            "2",
        ])
        .output()
        .unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    assert_eq!(code(&o), 2, "{}", text(&o));
    // The writer may also be caught holding the file open (it opens it for each write).
    let t = text(&o);
    assert!(
        t.contains("changed while watched") || t.contains("open: a Prometheus without a lock"),
        "{t}"
    );
}

#[test]
fn memory_below_the_estimate_is_refused_only_when_asked() {
    let (_t, data) = data_dir(Some("v3-snappy-small"));
    let o = preflight(&data, &["--memory-limit", "1Mi", "--on-oom-risk", "fail"]);
    assert_eq!(code(&o), 4, "{}", text(&o));
    assert!(text(&o).contains("will OOM"), "{}", text(&o));
    let o = preflight(&data, &["--memory-limit", "1Mi"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    // From a downward-API variable.
    let (u, g) = prom_user();
    let o = Command::new(env!("CARGO_BIN_EXE_walfix"))
        .arg("preflight")
        .arg(&data)
        .args([
            "--uid",
            &u.to_string(),
            "--gid",
            &g.to_string(),
            "--live-wait",
            "0",
        ])
        .args(["--memory-limit", "env:PROM_LIMIT", "--on-oom-risk", "fail"])
        .env("PROM_LIMIT", "8Gi")
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", text(&o));
}

/// `--on-oom-risk flush`: the WAL becomes blocks (read back by our block reader: every
/// sample the corpus notes say Prometheus replays), moves to the backup unchanged, and the
/// restarted pod finds nothing to replay.
#[test]
fn will_oom_with_flush_writes_blocks_and_moves_the_wal_out_of_replay() {
    let (_t, data) = data_dir(Some("v3-snappy-small"));
    let wal = files(&data.join("wal"));
    let o = preflight(
        &data,
        &["--memory-limit", "1Mi", "--on-oom-risk", "flush", "--json"],
    );
    assert_eq!(code(&o), 0, "{}", text(&o));
    let lines: Vec<Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mem = lines.iter().find(|l| l["check"] == "memory").unwrap();
    assert_eq!(mem["status"], "fixed", "{mem}");
    assert_eq!(mem["verdict"], "will_oom", "{mem}");
    let run = PathBuf::from(mem["flush"]["handover"]["backup_run"].as_str().unwrap());
    assert!(!data.join("wal").exists());
    assert_eq!(
        files(&run.join("wal")),
        wal,
        "the WAL in the backup is unchanged"
    );
    let mut samples = 0;
    for b in mem["flush"]["blocks"].as_array().unwrap() {
        let dir = PathBuf::from(b["path"].as_str().unwrap());
        let st = walfix_flush::read::read_block(&dir, |_, _| {}).unwrap();
        samples += st.samples;
        let m = fs::metadata(&dir).unwrap();
        let d = fs::metadata(&data).unwrap();
        assert_eq!(
            (m.uid(), m.gid()),
            (d.uid(), d.gid()),
            "owned like the data dir"
        );
    }
    // testdata/facts.json: real Prometheus 3.5 counted 460325 samples of v3-snappy-small after
    // its replay (samples_queryable).
    assert_eq!(samples, 460325);
    let outcome = lines.last().unwrap();
    assert!(
        outcome["changes"][0]
            .as_str()
            .unwrap()
            .starts_with("flushed"),
        "{outcome}"
    );
    // The pod restarts: nothing to replay now.
    let o = preflight(&data, &["--memory-limit", "1Mi", "--on-oom-risk", "flush"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(text(&o).contains("no WAL to replay"), "{}", text(&o));
}

#[test]
fn ready_execs_the_command_and_not_ready_does_not() {
    let (_t, data) = data_dir(Some("v3-snappy-small"));
    let o = preflight(
        &data,
        &["--", "sh", "-c", "echo prometheus-started; exit 7"],
    );
    assert_eq!(code(&o), 7, "the exit code is the command's: {}", text(&o));
    assert!(text(&o).contains("prometheus-started"));

    let (_t, data) = data_dir(Some("small-clean--gap"));
    let o = preflight(&data, &["--", "sh", "-c", "echo prometheus-started"]);
    assert_eq!(code(&o), 2);
    assert!(!text(&o).contains("prometheus-started"), "{}", text(&o));
}

#[test]
fn json_ends_with_an_outcome_whose_code_is_the_exit_code_errors_included() {
    let (_t, data) = data_dir(Some("small-clean--gap"));
    let file = data.join("wal/00000000");
    for (path, want) in [(data.clone(), 2), (file, 3)] {
        let o = preflight(&path, &["--json"]);
        assert_eq!(code(&o), want, "{}", text(&o));
        let lines = json_lines(&o);
        assert!(lines.iter().all(|l| l["schema"] == "walfix-preflight/1"));
        let last = lines.last().unwrap();
        assert_eq!(last["type"], "outcome");
        assert_eq!(last["exit_code"], want);
    }
}
