//! Fuzz inputs replayed under plain `cargo test`: every committed seed (`fuzz/seeds/<target>/`)
//! and every regression file (`testdata/fuzzed/<target>-<what>`) goes through the same property
//! function its fuzz target asserts. The properties live in one file, `fuzz/props.rs`, compiled
//! both here and into the fuzz targets; `fuzz/README.md` says how to run the fuzzers and how to
//! add a regression file.

use std::fs;
use std::panic;
use std::path::{Path, PathBuf};

#[path = "../../../fuzz/props.rs"]
mod props;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Files of `dir`, sorted, without `README.md` and scripts.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name != "README.md" && !name.ends_with(".py")
        })
        .collect();
    v.sort();
    v
}

/// The fuzz target a regression file belongs to: its name is `<target>-<what>`.
fn target_of(path: &Path) -> &'static str {
    let name = path.file_name().unwrap().to_string_lossy();
    props::TARGETS
        .iter()
        .copied()
        .find(|t| name.starts_with(&format!("{t}-")))
        .unwrap_or_else(|| {
            panic!(
                "{}: a regression file's name starts with its target and a dash, one of {:?}",
                path.display(),
                props::TARGETS
            )
        })
}

/// Runs the property, turning a panic into an error with the file's name.
fn holds(target: &str, path: &Path) -> Result<(), String> {
    let data = fs::read(path).unwrap();
    panic::catch_unwind(|| props::run(target, &data)).map_err(|e| {
        let msg = e
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        format!("{target} {}: {msg}", path.display())
    })
}

#[test]
fn every_seed_holds_its_target_property() {
    let mut failures = Vec::new();
    let mut n = 0;
    for target in props::TARGETS {
        let dir = repo().join("fuzz/seeds").join(target);
        let seeds = files(&dir);
        assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
        for seed in seeds {
            n += 1;
            if let Err(e) = holds(target, &seed) {
                failures.push(e);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {n} seeds fail:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_regression_file_holds_its_target_property() {
    let dir = repo().join("testdata/fuzzed");
    let mut failures = Vec::new();
    for file in files(&dir) {
        let target = target_of(&file);
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let known = props::KNOWN_BUGS.iter().find(|(n, ..)| *n == name);
        // The known bugs are overflow panics, which only debug builds check.
        if known.is_some() && !cfg!(debug_assertions) {
            continue;
        }
        match (holds(target, &file), known) {
            (Ok(()), None) => {}
            (Err(e), None) => failures.push(e),
            (Err(e), Some((_, what, panic))) => {
                if e.contains(panic) {
                    eprintln!("known bug, still there: {name}: {what}");
                } else {
                    failures.push(format!(
                        "{e} (known bug {name} should panic with {panic:?})"
                    ));
                }
            }
            (Ok(()), Some(_)) => failures.push(format!(
                "{name} no longer fails: the bug is fixed, delete its entry from KNOWN_BUGS in \
                 fuzz/props.rs (keep the file: it is a regression test now)"
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_known_bug_has_its_regression_file() {
    for (name, what, _) in props::KNOWN_BUGS {
        let path = repo().join("testdata/fuzzed").join(name);
        assert!(path.is_file(), "{} is missing ({what})", path.display());
    }
}
