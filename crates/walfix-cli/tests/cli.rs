//! The `walfix` binary: exit codes, JSON Lines contract, broken pipes.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

fn walfix() -> Command {
    Command::new(env!("CARGO_BIN_EXE_walfix"))
}

fn corpus(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/corpora")
        .join(name)
}

fn code(args: &[&str], path: Option<PathBuf>) -> i32 {
    let mut c = walfix();
    c.args(args);
    if let Some(p) = path {
        c.arg(p);
    }
    c.output().unwrap().status.code().unwrap()
}

#[test]
fn exit_codes_follow_the_documented_contract() {
    assert_eq!(code(&["check"], Some(corpus("v3-snappy-small"))), 0);
    assert_eq!(code(&["check"], Some(corpus("small-clean--flip-byte"))), 1);
    assert_eq!(code(&["check"], Some(corpus("small-clean--gap"))), 2);
    assert_eq!(
        code(&["check"], Some(corpus("v3-checkpoint--ckpt-flip"))),
        2
    );
    assert_eq!(code(&["check"], Some(corpus("does-not-exist"))), 3);
    assert_eq!(code(&["check"], None), 3, "missing PATH is a usage error");
    assert_eq!(code(&["frobnicate"], None), 3, "unknown subcommand");
    assert_eq!(code(&["--help"], None), 0);
}

#[test]
fn help_documents_exit_codes() {
    let out = walfix().args(["check", "--help"]).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    for line in [
        "0  clean",
        "1  damage that `walfix repair` fixes",
        "2  damage that needs a human",
        "3  operational error",
    ] {
        assert!(text.contains(line), "--help lacks {line:?}:\n{text}");
    }
}

#[test]
fn json_lines_carry_the_schema_and_prometheus_offsets() {
    let out = walfix()
        .args(["check", "--json"])
        .arg(corpus("small-clean--flip-byte"))
        .output()
        .unwrap();
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is one JSON object"))
        .collect();
    assert_eq!(lines[0]["type"], "begin");
    assert_eq!(lines[0]["schema"], "walfix-check/1");
    let last = lines.last().unwrap();
    assert_eq!(last["type"], "summary");
    assert_eq!(last["exit_code"], out.status.code().unwrap());
    let f = lines
        .iter()
        .find(|l| l["type"] == "finding" && l["kind"] == "checksum-mismatch")
        .expect("checksum finding");
    // EXPECTED.md: Prometheus 2.42 logged `wal/00000001 at 302519: unexpected checksum 16bdd74c, expected a06dae88`.
    assert_eq!(f["segment"], 1);
    assert_eq!(f["prometheus_error"]["offset"], 302519);
    assert_eq!(
        f["prometheus_error"]["message"],
        "unexpected checksum 16bdd74c, expected a06dae88"
    );
    assert_eq!(f["severity"], "repairable");
}

#[test]
fn broken_pipe_exits_quietly_with_the_verdict() {
    let mut child = walfix()
        .args(["check", "--json"])
        .arg(corpus("small-clean--flip-byte"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.stderr.is_empty(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn human_report_names_file_offset_and_prometheus_line() {
    let out = walfix()
        .arg("check")
        .arg(corpus("v3-zstd-small--flip-mid"))
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    // EXPECTED.md: 3.5 logged `wal/00000001 at 345600: unexpected checksum eb558cba, expected 9b3582ef`;
    // DAMAGE.txt: the record starts at 344323.
    assert!(text.contains("wal/00000001 at offset 344323"), "{text}");
    assert!(
        text.contains("at 345600: unexpected checksum eb558cba, expected 9b3582ef"),
        "{text}"
    );
    assert!(text.contains("exit 1"), "{text}");
}
