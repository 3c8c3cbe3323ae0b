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

/// A data dir whose WAL has 40 segments of 200 one-byte samples records (`02`, no entries),
/// every other one with its payload byte flipped: 4,000 checksum mismatches, megabytes of JSON.
/// Each record is one 8-byte `full` fragment (7-byte header, 1 payload byte under its CRC).
fn many_findings_wal() -> (tempfile::TempDir, PathBuf) {
    use walfix_format::encode::SegmentEncoder;
    use walfix_format::fragment::Compression;
    let tmp = tempfile::tempdir().unwrap();
    let wal = tmp.path().join("data/wal");
    std::fs::create_dir_all(&wal).unwrap();
    let mut enc = SegmentEncoder::new();
    for _ in 0..200 {
        enc.append(&[2], Compression::None);
    }
    let mut bytes = enc.into_bytes();
    assert_eq!(bytes.len(), 8 * 200);
    for i in (1..200).step_by(2) {
        bytes[8 * i + 7] ^= 0xff;
    }
    for s in 0..40 {
        std::fs::write(wal.join(format!("{s:08}")), &bytes).unwrap();
    }
    let data = tmp.path().join("data");
    (tmp, data)
}

/// `walfix check --json DIR | head -1` through a real pipe: head exits after one line, while
/// walfix still has far more than a pipe buffer (64 KiB on Linux) to write.
#[test]
fn json_into_a_pipe_closed_early_exits_quietly_with_the_verdict() {
    let (_tmp, data) = many_findings_wal();
    let full = walfix()
        .args(["check", "--json"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(full.stdout.len() > 1 << 20, "{} bytes", full.stdout.len());
    assert_eq!(
        full.status.code(),
        Some(1),
        "checksum mismatches are repairable"
    );

    let mut child = walfix()
        .args(["check", "--json"])
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let head = Command::new("head")
        .arg("-1")
        .stdin(Stdio::from(child.stdout.take().unwrap()))
        .output()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let first: Value = serde_json::from_slice(&head.stdout).unwrap();
    assert_eq!(first["type"], "begin");
    assert!(
        out.stderr.is_empty(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1));
}

/// Paths `check` cannot run on: missing, an empty directory (no log in it), a file whose name is
/// not a segment number (Prometheus's segment names are decimal, `%08d`).
fn unusable_paths() -> (tempfile::TempDir, Vec<PathBuf>) {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let file = tmp.path().join("notes.txt");
    std::fs::write(&file, b"not a WAL").unwrap();
    let missing = tmp.path().join("missing");
    (tmp, vec![missing, empty, file])
}

#[test]
fn json_errors_are_one_json_object_on_stdout() {
    let (_tmp, paths) = unusable_paths();
    for p in paths {
        let out = walfix().args(["check", "--json"]).arg(&p).output().unwrap();
        assert_eq!(out.status.code(), Some(3), "{}", p.display());
        let text = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{}: {text:?}", p.display());
        let v: Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(v["type"], "error", "{v}");
        assert_eq!(v["schema"], "walfix-check/1", "{v}");
        assert_eq!(v["path"], p.to_str().unwrap(), "{v}");
        assert_eq!(v["exit_code"], 3, "{v}");
        assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    }
}

#[test]
fn error_messages_name_the_path_once() {
    let (_tmp, paths) = unusable_paths();
    for p in paths {
        let out = walfix().arg("check").arg(&p).output().unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert!(out.stdout.is_empty());
        let err = String::from_utf8(out.stderr).unwrap();
        let shown = p.to_str().unwrap();
        assert_eq!(err.matches(shown).count(), 1, "{err}");
        assert!(err.starts_with(&format!("walfix: {shown}: ")), "{err}");
    }
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

/// A data dir whose name holds an escape sequence and a byte that is not UTF-8, with a WAL
/// where three series start at t0 and three more an hour later, their `pod` values holding an
/// escape sequence, a newline and invalid UTF-8 (Prometheus's decoder takes any bytes).
fn hostile_names_wal() -> (tempfile::TempDir, PathBuf) {
    use std::os::unix::ffi::OsStrExt;
    use walfix_format::encode::SegmentEncoder;
    use walfix_format::fragment::Compression;
    use walfix_format::record::{OwnedSeries, Record, Sample};

    let tmp = tempfile::tempdir().unwrap();
    let data = tmp
        .path()
        .join(std::ffi::OsStr::from_bytes(b"data-\x1b[2J-\xff"));
    let wal = data.join("wal");
    std::fs::create_dir_all(&wal).unwrap();
    let pods: [&[u8]; 6] = [
        b"a",
        b"b",
        b"c",
        b"\x1b[31mred",
        b"line\nbreak",
        b"\xff\xfe",
    ];
    let series = |refs: std::ops::Range<usize>| {
        Record::Series(
            refs.map(|i| OwnedSeries {
                series_ref: i as u64 + 1,
                labels: vec![
                    (b"__name__".to_vec(), b"up".to_vec()),
                    (b"pod".to_vec(), pods[i].to_vec()),
                ],
            })
            .collect(),
        )
    };
    let mut enc = SegmentEncoder::new();
    let mut buf = Vec::new();
    let mut put = |r: Record, enc: &mut SegmentEncoder| {
        buf.clear();
        r.encode(&mut buf);
        enc.append(&buf, Compression::Snappy);
    };
    put(series(0..3), &mut enc);
    let t0 = 1_700_000_000_000i64;
    for k in 0..480i64 {
        let t = t0 + k * 15_000;
        if k == 240 {
            put(series(3..6), &mut enc);
        }
        let live = if k < 240 { 3 } else { 6 };
        put(
            Record::Samples(
                (0..live)
                    .map(|i| Sample {
                        series_ref: i as u64 + 1,
                        t,
                        st: 0,
                        v: 1.0,
                    })
                    .collect(),
            ),
            &mut enc,
        );
    }
    std::fs::write(wal.join("00000000"), enc.into_bytes()).unwrap();
    (tmp, data)
}

#[test]
fn human_output_escapes_control_characters_and_invalid_utf8() {
    let (_tmp, data) = hostile_names_wal();
    for args in [&["check"][..], &["estimate"]] {
        let out = walfix().args(args).arg(&data).output().unwrap();
        assert!(out.status.code().unwrap() <= 2, "{args:?}: {out:?}");
        let text = &out.stdout;
        assert!(!text.contains(&0x1b), "{args:?}: raw ESC in output");
        assert!(
            std::str::from_utf8(text).is_ok(),
            "{args:?}: output is not UTF-8"
        );
        let text = String::from_utf8_lossy(text);
        assert!(text.contains("data-\\x1b[2J-\\xff"), "{args:?}: {text}");
    }
    let out = walfix().arg("estimate").arg(&data).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let churn = text
        .lines()
        .find(|l| l.trim_start().starts_with("pod "))
        .unwrap_or_else(|| panic!("no churning pod line: {text}"));
    for shown in ["\\x1b[31mred", "line\\nbreak", "\\xff\\xfe"] {
        assert!(churn.contains(shown), "{shown} missing: {churn}");
    }
}

#[test]
fn json_output_keeps_label_and_path_bytes() {
    let (_tmp, data) = hostile_names_wal();
    // Paths: a string when UTF-8, else {"bytes": base64} of the exact bytes.
    let out = walfix()
        .args(["check", "--json"])
        .arg(&data)
        .output()
        .unwrap();
    let first: Value =
        serde_json::from_slice(out.stdout.split(|&b| b == b'\n').next().unwrap()).unwrap();
    let got = first["path"]["bytes"]
        .as_str()
        .unwrap_or_else(|| panic!("{first}"));
    use std::os::unix::ffi::OsStrExt;
    assert_eq!(from_base64(got), data.as_os_str().as_bytes());

    let out = walfix()
        .args(["estimate", "--json"])
        .arg(&data)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let pod = v["inputs"]["churning_labels"]
        .as_array()
        .and_then(|a| a.iter().find(|l| l["name"] == "pod"))
        .unwrap_or_else(|| panic!("{v}"))
        .clone();
    let examples = pod["examples"].as_array().unwrap();
    // UTF-8 values are JSON strings (control characters escaped by JSON itself, read back
    // exactly); b"\xff\xfe" is base64 "//4=".
    assert!(examples.contains(&Value::from("\u{1b}[31mred")), "{pod}");
    assert!(examples.contains(&Value::from("line\nbreak")), "{pod}");
    assert!(
        examples.contains(&serde_json::json!({"bytes": "//4="})),
        "{pod}"
    );
    let got = v["path"]["bytes"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", v["path"]));
    assert_eq!(from_base64(got), data.as_os_str().as_bytes());
}

/// RFC 4648 base64 decoding, written here so the test does not trust walfix's encoder.
fn from_base64(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let mut out = Vec::new();
    for quad in s.as_bytes().chunks(4) {
        let data: Vec<u8> = quad
            .iter()
            .copied()
            .filter(|&c| c != b'=')
            .map(val)
            .collect();
        let n = data
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &d)| n | u32::from(d) << (18 - 6 * i));
        out.extend(n.to_be_bytes()[1..].iter().take(data.len() - 1));
    }
    out
}

#[test]
fn completions_are_valid_shell_and_the_man_page_is_roff() {
    let out = walfix().args(["completions", "bash"]).output().unwrap();
    assert!(out.status.success());
    let script = String::from_utf8(out.stdout).unwrap();
    for sub in ["check", "repair", "preflight", "dump", "estimate"] {
        assert!(script.contains(sub), "completion lacks {sub}");
    }
    // bash itself parses it.
    let mut bash = Command::new("bash")
        .arg("-n")
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    bash.stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    assert!(
        bash.wait().unwrap().success(),
        "bash -n rejects the completion script"
    );

    let out = walfix().arg("man").output().unwrap();
    assert!(out.status.success());
    let man = String::from_utf8(out.stdout).unwrap();
    assert!(
        man.contains(".TH walfix 1"),
        "{}",
        &man[..man.len().min(300)]
    );
    assert!(man.contains("preflight"));
}
