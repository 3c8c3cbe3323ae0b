//! `-q` and the progress bar (issue 15): under `-q` nothing reaches stdout unless `--json` asks
//! for it, the exit code is the same as without `-q`; without a terminal, no progress is drawn
//! (stderr stays empty on a clean run), so pipes, CI logs and pods never see it.

use std::path::PathBuf;
use std::process::{Command, Output};

fn corpus(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/corpora")
        .join(name)
}

fn walfix(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_walfix"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn quiet_prints_nothing_and_keeps_the_exit_code() {
    // small-clean--flip-byte: a CRC mismatch `walfix repair` fixes: exit 1 (README, EXIT_CODES).
    let damaged = corpus("small-clean--flip-byte");
    let d = damaged.to_str().unwrap();
    for args in [
        vec!["check", d],
        vec!["stats", d],
        vec!["estimate", "--memory-limit", "1000000000", "--cpus", "2", d],
        vec!["repair", "--dry-run", d],
    ] {
        let loud = walfix(&args);
        let mut q = vec!["-q"];
        q.extend(&args);
        let quiet = walfix(&q);
        assert!(
            !loud.stdout.is_empty(),
            "{args:?} printed nothing without -q"
        );
        assert!(
            quiet.stdout.is_empty(),
            "{args:?} -q printed {:?}",
            String::from_utf8_lossy(&quiet.stdout)
        );
        assert_eq!(quiet.status.code(), loud.status.code(), "{args:?}");
    }
    assert_eq!(walfix(&["-q", "check", d]).status.code(), Some(1));
    assert_eq!(
        walfix(&["check", "-q", &corpus("small-clean").to_string_lossy()])
            .status
            .code(),
        Some(0)
    );
}

#[test]
fn quiet_keeps_json_and_errors() {
    let d = corpus("small-clean--flip-byte");
    let out = walfix(&["-q", "check", "--json", d.to_str().unwrap()]);
    let last = String::from_utf8(out.stdout).unwrap();
    let last = last.lines().last().unwrap();
    let v: serde_json::Value = serde_json::from_str(last).unwrap();
    assert_eq!(v["exit_code"], 1, "{last}");
    // An operational error still says why on stderr (exit 3).
    let out = walfix(&["-q", "check", "/nonexistent/walfix-quiet-test"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/walfix-quiet-test"));
}

#[test]
fn no_progress_without_a_terminal() {
    // The test's stderr is a pipe: a clean check writes nothing there at all.
    let out = walfix(&["check", corpus("v3-checkpoint").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out.stderr.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = walfix(&["stats", corpus("v3-checkpoint").to_str().unwrap()]);
    assert!(
        out.stderr.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&out.stderr)
    );
}
