//! Golden outputs: the human output of each command on bundled WALs, kept beside the tests in
//! tests/golden/NAME.txt. A change in wording or numbers shows up as a diff to review; after
//! reviewing, `WALFIX_BLESS=1 cargo test -p walfix-cli --test golden` writes the new outputs.
//! Paths are written relative to the repository (`<repo>/...`), temp dirs as `<tmp>`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn normalize(s: &str, tmp: Option<&Path>) -> String {
    let mut out = s.replace(&root().display().to_string(), "<repo>");
    if let Some(t) = tmp {
        out = out.replace(&t.display().to_string(), "<tmp>");
    }
    // Backup run directories are named by the time of the run.
    let re = |line: &str| -> String {
        let mut l = line.to_string();
        if let Some(i) = l.find("walfix-backup/") {
            let start = i + "walfix-backup/".len();
            if l.len() >= start + 16 && l.as_bytes()[start + 8] == b'T' {
                l.replace_range(start..start + 16, "<time>");
            }
        }
        l
    };
    // What depends on the machine: free space, and the user the test runs as.
    let machine = |line: String| -> String {
        let mut l = line;
        if let Some(i) = l.find(" free, Prometheus needs") {
            let start = l[..i]
                .rfind(' ')
                .map_or(0, |j| l[..j].rfind(' ').map_or(0, |k| k + 1));
            l.replace_range(start..i, "<free>");
        }
        // flush: block ULIDs hold the time of the run; free space is the machine's.
        for key in ["would write block ", "wrote block "] {
            if let Some(i) = l.find(key) {
                let start = i + key.len();
                if l.len() >= start + 26 {
                    l.replace_range(start..start + 26, "<ulid>");
                }
            }
        }
        if let Some(i) = l.find(" B free after the pass)") {
            let start = l[..i].rfind('(').map_or(0, |j| j + 1);
            l.replace_range(start..i, "<free>");
        }
        let me = rustix::process::geteuid().as_raw();
        l.replace(&format!("uid {me} gid {me}"), "uid <me> gid <me>")
            .replace(&format!("--uid {me} --gid {me}"), "--uid <me> --gid <me>")
    };
    out.lines()
        .map(re)
        .map(machine)
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

fn golden(name: &str, args: &[&str], tmp: Option<&Path>) {
    let out = Command::new(env!("CARGO_BIN_EXE_walfix"))
        .args(args)
        .current_dir(root())
        .output()
        .unwrap();
    let text = format!(
        "$ walfix {}\n{}{}[exit {}]\n",
        args.join(" ")
            .replace(&root().display().to_string(), "<repo>"),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        out.status.code().unwrap_or(-1)
    );
    let text = normalize(&text, tmp);
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.txt"));
    if std::env::var_os("WALFIX_BLESS").is_some() {
        std::fs::write(&path, &text).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "{} missing: run WALFIX_BLESS=1 cargo test -p walfix-cli --test golden",
            path.display()
        )
    });
    assert!(
        want == text,
        "{name}: output changed (review, then WALFIX_BLESS=1 cargo test -p walfix-cli --test golden)\n--- want\n{want}\n--- got\n{text}"
    );
}

/// A data dir in a temp dir holding a copy of the corpus's wal/: (the temp dir, its canonical
/// path, the data dir).
fn wal_copy(corpus: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let tp = t.path().canonicalize().unwrap();
    let data = tp.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let st = Command::new("cp")
        .arg("-r")
        .arg(root().join("testdata/corpora").join(corpus).join("wal"))
        .arg(&data)
        .status()
        .unwrap();
    assert!(st.success());
    (t, tp, data)
}

#[test]
fn check_human_output() {
    golden(
        "check-clean",
        &["check", "testdata/corpora/v3-snappy-small"],
        None,
    );
    golden(
        "check-flip-byte",
        &["check", "testdata/corpora/small-clean--flip-byte"],
        None,
    );
    golden(
        "check-gap",
        &["check", "testdata/corpora/small-clean--gap"],
        None,
    );
    golden(
        "check-checkpoint-flip",
        &["check", "testdata/corpora/v3-checkpoint--ckpt-flip"],
        None,
    );
}

#[test]
fn repair_dry_run_human_output() {
    for (name, corpus) in [
        ("repair-flip-byte", "small-clean--flip-byte"),
        ("repair-trunc-tail", "small-clean--trunc-tail"),
        ("repair-gap", "small-clean--gap"),
    ] {
        let (_t, tp, data) = wal_copy(corpus);
        golden(
            name,
            &["repair", "--dry-run", data.to_str().unwrap()],
            Some(&tp),
        );
    }
}

#[test]
fn stats_human_output() {
    golden(
        "stats-checkpoint",
        &["stats", "--top", "5", "testdata/corpora/v3-checkpoint"],
        None,
    );
}

#[test]
fn estimate_human_output() {
    // Limit, version and CPUs are given, so nothing depends on the machine or its cgroup.
    golden(
        "estimate-checkpoint",
        &[
            "estimate",
            "--prometheus-version",
            "3.5",
            "--memory-limit",
            "268435456",
            "--cpus",
            "2",
            "testdata/corpora/v3-checkpoint",
        ],
        None,
    );
    golden(
        "estimate-2.42-tight",
        &[
            "estimate",
            "--prometheus-version",
            "2.42",
            "--memory-limit",
            "60000000",
            "--cpus",
            "2",
            "testdata/corpora/small-clean",
        ],
        None,
    );
}

#[test]
fn flush_dry_run_human_output() {
    let (_t, tp, data) = wal_copy("v3-checkpoint");
    golden(
        "flush-dry-run-checkpoint",
        &["flush", "--dry-run", data.to_str().unwrap()],
        Some(&tp),
    );
}

#[test]
fn preflight_human_output() {
    let (_t, tp, data) = wal_copy("small-clean--gap");
    let me = rustix::process::geteuid().as_raw().to_string();
    golden(
        "preflight-gap",
        &[
            "preflight",
            data.to_str().unwrap(),
            "--uid",
            &me,
            "--gid",
            &me,
            "--live-wait",
            "0",
            "--termination-log",
            tp.join("term").to_str().unwrap(),
        ],
        Some(&tp),
    );
}
