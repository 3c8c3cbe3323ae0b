//! The JSON outputs carry their schema, and every field docs/json-output.md documents is in
//! real output (issue 12, defect 10).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

mod common;

fn walfix() -> Command {
    Command::new(env!("CARGO_BIN_EXE_walfix"))
}

fn corpus(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/corpora")
        .join(name)
}

/// Field names in the first column of the first table after `heading` in docs/json-output.md
/// (a cell may name several: `` `a`, `b` ``).
fn documented(heading: &str) -> Vec<String> {
    let doc = fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/json-output.md"),
    )
    .unwrap();
    let at = doc
        .find(heading)
        .unwrap_or_else(|| panic!("no {heading:?}"));
    let mut fields = Vec::new();
    let mut in_table = false;
    for line in doc[at..].lines().skip(1) {
        if line.starts_with("| field") {
            in_table = true;
            continue;
        }
        if in_table && !line.starts_with('|') {
            break;
        }
        if in_table && !line.starts_with("|---") {
            let cell = line.split('|').nth(1).unwrap();
            for name in cell.split('`').skip(1).step_by(2) {
                fields.push(name.to_string());
            }
        }
    }
    assert!(!fields.is_empty(), "no table after {heading:?}");
    fields
}

fn has_all(v: &Value, fields: &[String], what: &str) {
    for f in fields {
        assert!(v.get(f).is_some(), "{what} lacks documented {f:?}: {v}");
    }
}

#[test]
fn estimate_json_has_its_schema_and_the_documented_fields() {
    let out = walfix()
        .args(["estimate", "--json"])
        .arg(corpus("v3-snappy-small"))
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(v["schema"], "walfix-estimate/1");
    has_all(
        &v,
        &documented("# `walfix estimate --json`"),
        "estimate --json",
    );
}

#[test]
fn repair_json_has_the_documented_fields_and_predicted() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    common::copy_dir(
        &corpus("small-clean--trunc-tail").join("wal"),
        &data.join("wal"),
    );
    let out = walfix()
        .args(["repair", "--dry-run", "--json"])
        .arg(&data)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["schema"], "walfix-repair/1");
    has_all(&v, &documented("# `walfix repair --json`"), "repair --json");
    let predicted = &v["predicted"];
    assert!(predicted.is_object(), "{v}");
    has_all(
        predicted,
        &documented("`predicted` is computed before"),
        "predicted",
    );
    // DAMAGE.txt: a torn tail only; cut, it leaves nothing Prometheus trips over.
    assert_eq!(predicted["worst"], "info", "{predicted}");
}

fn manifest_of(data: &Path) -> Vec<Value> {
    let runs: Vec<_> = fs::read_dir(data.join("walfix-backup"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(runs.len(), 1);
    fs::read_to_string(runs[0].join("manifest.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn manifest_paths_do_not_depend_on_the_working_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    common::copy_dir(
        &corpus("small-clean--trunc-tail").join("wal"),
        &data.join("wal"),
    );
    // Run from the temp dir with a relative path, as a user in another directory would.
    let out = walfix()
        .current_dir(tmp.path())
        .args(["repair", "data"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = manifest_of(&data);
    assert!(!lines.is_empty());
    let root = PathBuf::from(lines[0]["data_root"].as_str().unwrap());
    assert!(root.is_absolute(), "{root:?}");
    assert_eq!(root, fs::canonicalize(&data).unwrap());
    for l in &lines {
        let path = Path::new(l["action"]["path"].as_str().unwrap());
        assert!(path.is_relative(), "{l}");
        // DAMAGE.txt: the damaged segment is wal/00000003.
        assert_eq!(path, Path::new("wal/00000003"), "{l}");
        assert!(root.join(path).is_file(), "{l}");
        let backup = l["backup"].as_str().unwrap();
        assert!(Path::new(backup).is_relative(), "{l}");
    }
}

fn doc() -> String {
    fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/json-output.md"))
        .unwrap()
}

#[test]
fn finding_kinds_are_the_documented_names() {
    let doc = doc();
    let at = doc.find("\nKinds: ").unwrap();
    let para = &doc[at..at + doc[at..].find("\n\n").unwrap()];
    let mut documented: Vec<&str> = para.split('`').skip(1).step_by(2).collect();
    documented.sort();
    let mut ours: Vec<&str> = walfix::FindingKind::ALL.iter().map(|k| k.name()).collect();
    ours.sort();
    assert_eq!(ours, documented);
    for k in walfix::FindingKind::ALL {
        assert_eq!(serde_json::to_value(k).unwrap(), k.name());
    }
}

/// `summary.prometheus` of `check --json`.
fn outcome(name: &str) -> Value {
    let out = walfix()
        .args(["check", "--json"])
        .arg(corpus(name))
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let v: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    v["prometheus"].clone()
}

#[test]
fn prometheus_outcome_as_data_matches_what_prometheus_did() {
    let f: Value = serde_json::from_slice(
        &fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/facts.json"))
            .unwrap(),
    )
    .unwrap();
    let kinds = documented_outcome_kinds();
    for name in [
        "small-clean",
        "small-clean--gap",
        "small-clean--flip-byte",
        "small-clean--trunc-tail",
        "v3-checkpoint--ckpt-flip",
        "v3-wbl--wbl-flip-mid",
    ] {
        let fact = &f[name];
        let o = outcome(name);
        let kind = o["kind"].as_str().unwrap();
        assert!(kinds.iter().any(|k| k == kind), "{name}: undocumented {o}");
        let corruption = &fact["corruption"];
        match kind {
            "replays-all" => {
                assert_eq!(fact["started"], true, "{name}");
                assert!(corruption.is_null(), "{name}");
            }
            "does-not-start" => {
                assert_eq!(fact["started"], false, "{name}");
                assert!(corruption.is_null(), "{name}: {o}");
            }
            "repairs-and-starts" | "checkpoint-repair-fails" => {
                assert_eq!(o["error"]["offset"], corruption["offset"], "{name}: {o}");
                assert_eq!(o["segment"], corruption["segment"], "{name}: {o}");
                assert_eq!(o["error"]["message"], corruption["message"], "{name}: {o}");
                let started = kind == "repairs-and-starts";
                assert_eq!(fact["started"], started, "{name}: {o}");
                assert_eq!(
                    corruption["checkpoint"].is_string(),
                    !started,
                    "{name}: {corruption}"
                );
                if started {
                    assert_eq!(o["log"], corruption["log"], "{name}: {o}");
                }
            }
            k => panic!("{name}: {k}"),
        }
    }
}

fn documented_outcome_kinds() -> Vec<String> {
    let doc = doc();
    let at = doc.find("| `kind` | fields |").unwrap();
    doc[at..]
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| l.split('`').nth(1).unwrap().to_string())
        .collect()
}
