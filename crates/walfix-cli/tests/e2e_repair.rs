//! End to end: `walfix repair` on every damaged corpus, then the real Prometheus of the version
//! that measured the corpus (testdata/facts.json `replayed_by`) started on the repaired copy by
//! scripts/replay.sh. It must start, log no corruption or repair, and hold at least what
//! Prometheus's own repair kept (facts.json `after_replay`); `--mode truncate` must hold exactly
//! that. Plus one fresh WAL from a real Prometheus with a byte flipped in the middle.
//!
//! Run by scripts/test.sh, which sets WALFIX_PROMETHEUS_DIR; ignored under a plain `cargo test`.
//! With WALFIX_REPAIR_TABLE=FILE the corpus test also writes the results table of docs/repair.md
//! to FILE (it always prints it).

mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn prometheus(version: &str) -> PathBuf {
    let dir = std::env::var_os("WALFIX_PROMETHEUS_DIR")
        .map(PathBuf::from)
        .expect("WALFIX_PROMETHEUS_DIR is not set: run scripts/test.sh");
    let bin = dir.join(version).join("prometheus");
    assert!(
        bin.exists(),
        "{} missing: scripts/get-prometheus.sh {version} {}",
        bin.display(),
        dir.join(version).display()
    );
    bin
}

/// One Prometheus at a time: they pick free ports and compete for two cores.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn facts() -> serde_json::Map<String, Value> {
    let text = fs::read_to_string(root().join("testdata/facts.json")).unwrap();
    match serde_json::from_str(&text).unwrap() {
        Value::Object(m) => m,
        _ => panic!("facts.json is not an object"),
    }
}

use common::copy_dir;

/// A writable data dir holding a copy of the corpus's wal/ and wbl/ (what EXPECTED-walonly and
/// the 2.42 EXPECTED.txt started Prometheus on).
fn copy_corpus(name: &str, data: &Path) {
    let src = root().join("testdata/corpora").join(name);
    fs::create_dir_all(data).unwrap();
    for sub in ["wal", "wbl"] {
        if src.join(sub).is_dir() {
            copy_dir(&src.join(sub), &data.join(sub));
        }
    }
}

/// `size path` of every file under `dir` (for failure messages).
fn listing(dir: &Path) -> String {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let len = fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
                out.push(format!(
                    "{len:>10} {}",
                    p.strip_prefix(root).unwrap().display()
                ));
            }
        }
    }
    let mut v = Vec::new();
    walk(dir, dir, &mut v);
    v.sort_by(|a, b| a[11..].cmp(&b[11..]));
    v.join("\n")
}

/// Flags the notes started each version with (EXPECTED*.txt command lines).
fn replay_flags(version: &str) -> &'static [&'static str] {
    match version {
        "2.42" => &["--enable-feature=native-histograms,exemplar-storage"],
        _ => &["--enable-feature=promql-delayed-name-removal"],
    }
}

/// What scripts/replay.sh measured.
struct Replay {
    kv: BTreeMap<String, String>,
    log: PathBuf,
}

impl Replay {
    fn num(&self, key: &str) -> Option<u64> {
        self.kv
            .get(key)
            .and_then(|v| v.parse::<f64>().ok())
            .map(|v| v as u64)
    }
    fn started(&self) -> bool {
        self.kv.get("started").map(String::as_str) == Some("1")
    }
    fn series(&self) -> Option<u64> {
        self.num("prometheus_tsdb_head_series")
    }
    fn samples(&self) -> Option<u64> {
        self.num("samples_queryable")
    }
    fn corruption_lines(&self) -> Vec<String> {
        let log = fs::read_to_string(&self.log).unwrap_or_default();
        log.lines()
            .filter(|l| {
                let l = l.to_ascii_lowercase();
                l.contains("corrupt") || l.contains("repair") || l.contains("torn")
            })
            .map(str::to_owned)
            .collect()
    }
    /// Started, logged no corruption or repair, counted no corruption.
    fn clean_start(&self) -> Result<(), String> {
        if !self.started() {
            let log = fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            return Err(format!(
                "did not start (exit {}): {}",
                self.kv.get("exit_code").map_or("?", String::as_str),
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            ));
        }
        let lines = self.corruption_lines();
        if self.num("log_corruption_lines") != Some(0) || !lines.is_empty() {
            return Err(format!("logged corruption/repair: {}", lines.join(" | ")));
        }
        if self.num("prometheus_tsdb_wal_corruptions_total") != Some(0) {
            return Err(format!(
                "prometheus_tsdb_wal_corruptions_total = {:?}",
                self.kv.get("prometheus_tsdb_wal_corruptions_total")
            ));
        }
        Ok(())
    }
    fn cell(&self) -> String {
        match (self.started(), self.series(), self.samples()) {
            (true, Some(h), Some(s)) => format!("{h} / {s}"),
            (true, _, _) => "started, not measured".into(),
            (false, _, _) => "does not start".into(),
        }
    }
}

/// scripts/replay.sh: the Prometheus of `version` on `data`; results and log under `out_dir`.
fn replay(version: &str, data: &Path, out_dir: &Path, label: &str) -> Replay {
    let out = out_dir.join(format!("replay-{label}.txt"));
    let res = Command::new(root().join("scripts/replay.sh"))
        .arg(prometheus(version))
        .arg(data)
        .arg(&out)
        .args(replay_flags(version))
        // Generous: two cores shared with fuzzers and benchmarks.
        .env("REPLAY_READY_TIMEOUT", "300")
        .env("REPLAY_STOP_TIMEOUT", "120")
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "replay.sh {label} failed: {}\n{}",
        res.status,
        String::from_utf8_lossy(&res.stderr)
    );
    let text = fs::read_to_string(&out).unwrap();
    let kv = text
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
        .collect();
    Replay {
        kv,
        log: PathBuf::from(format!("{}.prometheus.log", out.display())),
    }
}

/// `walfix repair [--mode MODE] DATA`: exit code and output.
fn walfix_repair(data: &Path, mode: &str) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_walfix"))
        .args(["repair", "--mode", mode])
        .arg(data)
        .output()
        .unwrap();
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Samples `walfix check` reads in the WAL (float without staleness markers, plus histograms):
/// on a damaged copy, every sample outside the damaged bytes. None with a WBL: a WAL holds the
/// out-of-order samples too (Prometheus's replay skips them there and takes them from the WBL),
/// so the sum over wal/ and wbl/ counts them twice.
fn readable_samples(data: &Path) -> Option<u64> {
    if data.join("wbl").exists() {
        return None;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_walfix"))
        .args(["check", "--json"])
        .arg(data)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let summary: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    let t = &summary["totals"];
    let n = |k: &str| t[k].as_u64().unwrap_or_else(|| panic!("{k} in {t}"));
    Some(
        n("float_samples") - n("stale_markers")
            + n("histogram_samples")
            + n("float_histogram_samples"),
    )
}

fn pct(a: u64, b: u64) -> String {
    if b == 0 {
        "-".into()
    } else {
        format!("{:.2}%", a as f64 * 100.0 / b as f64)
    }
}

struct Row {
    name: String,
    version: String,
    own: Replay,
    truncate: Replay,
    salvage: Replay,
    base_name: String,
    base_samples: u64,
    readable: Option<u64>,
    secs: f64,
}

#[test]
#[ignore = "needs a real Prometheus: run scripts/test.sh"]
fn repaired_corpora_start_cleanly_in_real_prometheus_and_keep_at_least_what_its_repair_kept() {
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let all = facts();
    let damaged: Vec<(&String, &Value)> = all
        .iter()
        .filter(|(_, f)| f["clean"] == Value::Bool(false))
        .collect();
    assert!(
        damaged.len() >= 10,
        "only {} damaged corpora",
        damaged.len()
    );
    let tmp = tempfile::tempdir().unwrap();
    let mut failures: Vec<String> = Vec::new();
    let mut fail = |name: &str, what: &str, msg: String| {
        eprintln!("FAIL {name} {what}: {msg}");
        failures.push(format!("{name} {what}: {msg}"));
    };
    let t_all = Instant::now();

    // The clean base corpora: replay.sh must reproduce the notes' figures (this is what the
    // salvage percentage is taken of).
    let mut bases: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for (_, f) in &damaged {
        let base = f["base"].as_str().unwrap().to_owned();
        if bases.contains_key(&base) {
            continue;
        }
        let t = Instant::now();
        let bf = &all[&base];
        let version = bf["replayed_by"].as_str().unwrap();
        let dir = tmp.path().join(&base);
        let data = dir.join("data");
        copy_corpus(&base, &data);
        let r = replay(version, &data, &dir, "clean");
        if let Err(e) = r.clean_start() {
            fail(&base, "clean base", e);
        }
        let want = (
            bf["after_replay"]["head_series"].as_u64().unwrap(),
            bf["after_replay"]["samples_queryable"].as_u64().unwrap(),
        );
        if (r.series(), r.samples()) != (Some(want.0), Some(want.1)) {
            fail(
                &base,
                "clean base",
                format!(
                    "replay.sh measured {:?} / {:?}, the notes say {} / {}",
                    r.series(),
                    r.samples(),
                    want.0,
                    want.1
                ),
            );
        }
        eprintln!(
            "{base}: clean base {} ({:.1} s)",
            r.cell(),
            t.elapsed().as_secs_f64()
        );
        bases.insert(base, want);
    }

    let mut rows = Vec::new();
    for (name, f) in &damaged {
        let t = Instant::now();
        let version = f["replayed_by"].as_str().unwrap();
        let dir = tmp.path().join(name.as_str());
        let kept = &f["after_replay"];
        let prom_started = f["started"] == Value::Bool(true);

        // 1. Prometheus's own repair on the damaged copy: replay.sh must see what the notes say.
        let own_dir = dir.join("own");
        copy_corpus(name, &own_dir.join("data"));
        let readable = readable_samples(&own_dir.join("data"));
        let own = replay(version, &own_dir.join("data"), &own_dir, "own");
        if own.started() != prom_started
            || (prom_started
                && (own.series() != kept["head_series"].as_u64()
                    || own.samples() != kept["samples_queryable"].as_u64()))
        {
            fail(
                name,
                "Prometheus's own repair",
                format!(
                    "replay.sh measured started={} {:?} / {:?}, the notes say started={prom_started} {} / {}",
                    own.started(),
                    own.series(),
                    own.samples(),
                    kept["head_series"],
                    kept["samples_queryable"]
                ),
            );
        }

        // 2. walfix repair in both modes, then the same Prometheus.
        let mut by_mode = Vec::new();
        for mode in ["salvage", "truncate"] {
            let mdir = dir.join(mode);
            let data = mdir.join("data");
            copy_corpus(name, &data);
            let (code, out) = walfix_repair(&data, mode);
            if code != Some(0) {
                fail(name, mode, format!("walfix repair exited {code:?}:\n{out}"));
            }
            let sizes = listing(&data);
            let r = replay(version, &data, &mdir, mode);
            if let Err(e) = r.clean_start() {
                fail(
                    name,
                    mode,
                    format!("{e}\nrepaired files (before Prometheus):\n{sizes}\nwalfix repair said:\n{out}"),
                );
            }
            let (series, samples) = (r.series().unwrap_or(0), r.samples().unwrap_or(0));
            match mode {
                "salvage" if prom_started => {
                    let (ks, kq) = (
                        kept["head_series"].as_u64().unwrap(),
                        kept["samples_queryable"].as_u64().unwrap(),
                    );
                    if series < ks || samples < kq {
                        fail(
                            name,
                            mode,
                            format!(
                                "{series} series / {samples} samples < Prometheus's {ks} / {kq}"
                            ),
                        );
                    }
                }
                // Prometheus did not start at all: anything that starts with data is better.
                "salvage" if series == 0 || samples == 0 => {
                    fail(name, mode, format!("{series} series / {samples} samples"));
                }
                "truncate" if prom_started => {
                    // Truncate claims to do exactly what Prometheus's repair does.
                    let want = (
                        kept["head_series"].as_u64(),
                        kept["samples_queryable"].as_u64(),
                    );
                    if (Some(series), Some(samples)) != want {
                        fail(
                            name,
                            mode,
                            format!("{series} / {samples}, Prometheus's own repair kept {want:?}"),
                        );
                    }
                }
                _ => {}
            }
            by_mode.push(r);
        }
        let truncate = by_mode.pop().unwrap();
        let salvage = by_mode.pop().unwrap();

        // 3. Salvage never keeps less than truncate, and keeps every sample outside the damaged
        //    bytes, unless the damage took series definitions (a checkpoint's series record)
        //    with it: then those series' samples go too, in both modes.
        let in_checkpoint = f["damage"]["file"]
            .as_str()
            .is_some_and(|p| p.contains("checkpoint."));
        let s = salvage.samples().unwrap_or(0);
        if s < truncate.samples().unwrap_or(0)
            || salvage.series().unwrap_or(0) < truncate.series().unwrap_or(0)
        {
            fail(
                name,
                "salvage",
                format!("salvage {} < truncate {}", salvage.cell(), truncate.cell()),
            );
        }
        // Corrections (a flipped byte changed back) can give back the damaged record too,
        // never more than the clean original held.
        if readable.is_some_and(|r| !in_checkpoint && s < r) {
            fail(
                name,
                "salvage",
                format!(
                    "{s} samples queryable, walfix check reads {readable:?} outside the damage"
                ),
            );
        }
        if s > bases[f["base"].as_str().unwrap()].1 {
            fail(
                name,
                "salvage",
                format!("{s} samples, more than the clean original"),
            );
        }

        let secs = t.elapsed().as_secs_f64();
        let base_name = f["base"].as_str().unwrap().to_owned();
        let base_samples = bases[&base_name].1;
        eprintln!(
            "{name} ({version}): Prometheus {} | truncate {} | salvage {} = {} of clean {base_name}, {} of readable ({secs:.1} s)",
            own.cell(),
            truncate.cell(),
            salvage.cell(),
            pct(s, base_samples),
            readable.map_or("-".into(), |r| pct(s, r))
        );
        rows.push(Row {
            name: name.to_string(),
            version: version.to_owned(),
            own,
            truncate,
            salvage,
            base_name,
            base_samples,
            readable,
            secs,
        });
    }

    let mut table = String::new();
    table.push_str(
        "| corpus | Prometheus | Prometheus's own repair: series / samples | walfix truncate | walfix salvage | salvage, % of clean base (base samples) | salvage, % of samples outside the damage (walfix check) | seconds |\n|---|---|---|---|---|---|---|---|\n",
    );
    for r in &rows {
        let s = r.salvage.samples().unwrap_or(0);
        writeln!(
            table,
            "| {} | {} | {} | {} | {} | {} ({}: {}) | {} ({}) | {:.1} |",
            r.name,
            r.version,
            r.own.cell(),
            r.truncate.cell(),
            r.salvage.cell(),
            pct(s, r.base_samples),
            r.base_name,
            r.base_samples,
            r.readable.map_or("-".into(), |x| pct(s, x)),
            r.readable.map_or("WBL".into(), |x| x.to_string()),
            r.secs
        )
        .unwrap();
    }
    println!("\n{table}");
    println!("total {:.1} s", t_all.elapsed().as_secs_f64());
    if let Some(p) = std::env::var_os("WALFIX_REPAIR_TABLE") {
        fs::write(&p, &table).unwrap();
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The full fragment that holds the segment's middle byte, or the first one after it:
/// `(offset, payload length)`.
fn middle_full_fragment(seg: &[u8]) -> Option<(usize, usize)> {
    const PAGE: usize = 32 * 1024;
    let mid = seg.len() / 2;
    let mut page = 0;
    while page < seg.len() {
        let end = (page + PAGE).min(seg.len());
        let mut off = page;
        while off + 7 <= end {
            let typ = seg[off] & 0x07;
            if typ == 0 {
                break; // zero padding up to the page end
            }
            let len = u16::from_be_bytes([seg[off + 1], seg[off + 2]]) as usize;
            if typ == 1 && off + 7 + len > mid && len >= 16 {
                return Some((off, len));
            }
            off += 7 + len;
        }
        page += PAGE;
    }
    None
}

fn metric(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("{key} not in metrics file:\n{text}"))
        .trim()
        .parse::<f64>()
        .unwrap() as u64
}

#[test]
#[ignore = "needs a real Prometheus: run scripts/test.sh"]
fn fresh_wal_with_a_flipped_byte_is_salvaged_and_replays_cleanly() {
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let t = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let fresh = tmp.path().join("fresh");
    let metrics = tmp.path().join("metrics.txt");
    // 20 s at 200 ms: about 100 scrapes, so one samples record is about 1% of the WAL.
    let st = Command::new(root().join("scripts/gen-wal.sh"))
        .arg(prometheus("3.5"))
        .arg(&fresh)
        .arg("20")
        .arg(&metrics)
        .env("GEN_WAL_INTERVAL", "200ms")
        .status()
        .unwrap();
    assert!(st.success(), "gen-wal.sh failed");
    let m = fs::read_to_string(&metrics).unwrap();
    let appended = metric(&m, "prometheus_tsdb_head_samples_appended_total");
    let gen_secs = t.elapsed().as_secs_f64();

    // Flip one byte in the middle of the payload of the full fragment in the middle of the
    // (only) segment.
    let seg_rel = Path::new("wal/00000000");
    let mut bytes = fs::read(fresh.join(seg_rel)).unwrap();
    let (frag, len) = middle_full_fragment(&bytes).expect("no full fragment past the middle");
    let at = frag + 7 + len / 2;
    bytes[at] ^= 0xff;
    eprintln!(
        "flipped byte {at} of {} ({} bytes), in the full fragment at {frag} (payload {len})",
        seg_rel.display(),
        bytes.len()
    );

    let mut results = Vec::new();
    let mut readable = 0;
    for what in ["clean", "own", "salvage", "corrected"] {
        let dir = tmp.path().join(what);
        let data = dir.join("data");
        copy_dir(&fresh.join("wal"), &data.join("wal"));
        if what != "clean" {
            fs::write(data.join(seg_rel), &bytes).unwrap();
        }
        let mut sizes = String::new();
        if what == "salvage" || what == "corrected" {
            readable = readable_samples(&data).unwrap();
            let out = Command::new(env!("CARGO_BIN_EXE_walfix"))
                .args(["repair", "--mode", "salvage"])
                .args(if what == "salvage" {
                    &["--no-correct"][..]
                } else {
                    &[][..]
                })
                .arg(&data)
                .output()
                .unwrap();
            assert_eq!(
                out.status.code(),
                Some(0),
                "walfix repair:\n{}",
                String::from_utf8_lossy(&out.stdout)
            );
            sizes = listing(&data);
        }
        let r = replay("3.5", &data, &dir, what);
        if what != "own" {
            if let Err(e) = r.clean_start() {
                panic!("{what} fresh WAL: {e}\nfiles:\n{sizes}");
            }
        }
        results.push(r);
    }
    let corrected = results.pop().unwrap();
    let salvage = results.pop().unwrap();
    let own = results.pop().unwrap();
    let clean = results.pop().unwrap();
    let kept = salvage.samples().unwrap();
    let all = clean.samples().unwrap();
    eprintln!(
        "fresh 3.5 WAL, {appended} samples appended, {all} queryable undamaged, {readable} outside the damaged record: \
         Prometheus's own repair {} ({} of undamaged), walfix salvage {} ({} of undamaged, {} of appended); {:.1} s (gen-wal {gen_secs:.1} s)",
        own.cell(),
        pct(own.samples().unwrap_or(0), all),
        salvage.cell(),
        pct(kept, all),
        pct(kept, appended),
        t.elapsed().as_secs_f64()
    );
    assert!(
        kept * 100 >= appended * 95,
        "salvage kept {kept} of {appended} appended samples"
    );
    assert_eq!(
        kept, readable,
        "salvage lost samples outside the damaged record"
    );
    assert!(kept < all, "the flipped byte cost nothing?");
    assert!(kept >= own.samples().unwrap_or(0));
    assert_eq!(salvage.series(), clean.series());
    // By default the byte is changed back (the only one-byte change that makes the CRC
    // match): real Prometheus then replays every sample of the undamaged WAL.
    assert_eq!(
        corrected.samples(),
        clean.samples(),
        "correction lost samples"
    );
    assert_eq!(corrected.series(), clean.series());
}

/// A WAL whose segments are numbered far above 0 with no checkpoint (a long-running server
/// whose checkpoint was lost): Prometheus replays from segment 0 and does not start (WAL-FORMAT.md
/// 7.2: "no checkpoint but first segment != 0"). Filling 0..20002 with empty segments would take
/// 20,003 files; `walfix repair` writes an empty `checkpoint.00020002` instead, and real
/// Prometheus then starts cleanly and replays every sample.
#[test]
#[ignore = "needs a real Prometheus: run scripts/test.sh"]
fn wal_far_above_zero_starts_after_repair_writes_an_empty_checkpoint() {
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    const BASE: u64 = 20_003;
    for (version, corpus) in [("2.42", "small-clean"), ("3.5", "v3-snappy-small")] {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        copy_corpus(corpus, &data);
        let wal = data.join("wal");
        let mut names: Vec<String> = fs::read_dir(&wal)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for n in names.iter().rev() {
            let i: u64 = n.parse().unwrap();
            fs::rename(wal.join(n), wal.join(format!("{:08}", i + BASE))).unwrap();
        }
        let want = readable_samples(&data).unwrap();

        let before = replay(version, &data, tmp.path(), "before");
        assert!(
            !before.started(),
            "{version}: Prometheus started on a WAL starting at {BASE} without a checkpoint"
        );

        let (code, out) = walfix_repair(&data, "salvage");
        assert_eq!(code, Some(0), "{version}: {out}");
        assert!(
            wal.join(format!("checkpoint.{:08}/00000000", BASE - 1))
                .is_file(),
            "{version}: {}",
            listing(&data)
        );
        let after = replay(version, &data, tmp.path(), "after");
        if let Err(e) = after.clean_start() {
            panic!("{version}: {e}\n{}", listing(&data));
        }
        assert_eq!(after.samples(), Some(want), "{version}: samples after");
    }
}

/// Issue 11: Debian's Prometheus 2.42 takes no lock file by default, and `walfix repair`
/// rewrote the WAL of a running one. Now repair (exit 3) and preflight (exit 2) refuse, and
/// nothing they would have repaired changes.
#[test]
#[ignore = "end-to-end: needs real Prometheus (scripts/test.sh)"]
fn a_running_prometheus_without_a_lock_file_is_refused() {
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    copy_corpus("small-clean", &data);
    let config = tmp.path().join("prometheus.yml");
    fs::write(&config, "global:\n  scrape_interval: 1s\n").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = fs::File::create(tmp.path().join("prometheus.log")).unwrap();
    let mut prom = Command::new(prometheus("2.42"))
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", data.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    // Prometheus opens a new segment (00000004) before replaying the four it finds.
    let deadline = Instant::now() + std::time::Duration::from_secs(120);
    while !data.join("wal/00000004").exists() {
        assert!(Instant::now() < deadline, "Prometheus did not open its WAL");
        assert!(prom.try_wait().unwrap().is_none(), "Prometheus exited");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(
        !data.join("lock").exists(),
        "this build takes a lock by default"
    );
    // Damage an old segment Prometheus no longer reads, so there is something to repair.
    let seg = data.join("wal/00000001");
    let mut bytes = fs::read(&seg).unwrap();
    let (frag, len) = middle_full_fragment(&bytes).unwrap();
    bytes[frag + 7 + len / 2] ^= 0xff;
    fs::write(&seg, &bytes).unwrap();

    let repair = Command::new(env!("CARGO_BIN_EXE_walfix"))
        .arg("repair")
        .arg(&data)
        .output()
        .unwrap();
    let preflight = Command::new(env!("CARGO_BIN_EXE_walfix"))
        .args(["preflight", "--live-wait", "0", "--uid", "0"])
        .arg(&data)
        .output()
        .unwrap();
    let _ = prom.kill();
    let _ = prom.wait();
    let say = |o: &std::process::Output| {
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
    };
    assert_eq!(repair.status.code(), Some(3), "repair: {}", say(&repair));
    assert!(
        say(&repair).contains("without a lock file"),
        "repair: {}",
        say(&repair)
    );
    assert_eq!(
        preflight.status.code(),
        Some(2),
        "preflight: {}",
        say(&preflight)
    );
    assert_eq!(
        fs::read(&seg).unwrap(),
        bytes,
        "the damaged segment was changed"
    );
    assert!(!data.join("walfix-backup").exists());
}

/// Issue 11: a torn tail is what an OOM kill leaves; preflight repairs it and the real
/// Prometheus that wrote the WAL then starts without logging a repair.
#[test]
#[ignore = "end-to-end: needs real Prometheus (scripts/test.sh)"]
fn preflight_repairs_a_torn_tail_and_prometheus_logs_no_repair() {
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    for (name, version) in [
        ("small-clean--trunc-tail", "2.42"),
        ("v3-snappy-small--trunc-tail-unaligned", "3.5"),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        copy_corpus(name, &data);
        let out = Command::new(env!("CARGO_BIN_EXE_walfix"))
            .args(["preflight", "--live-wait", "0", "--uid", "0"])
            .arg(&data)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{name}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let r = replay(version, &data, tmp.path(), "after-preflight");
        if let Err(e) = r.clean_start() {
            panic!("{name} on {version} after preflight: {e}");
        }
    }
}

/// Series entries Prometheus 3.5 wrote into the first record of v3-checkpoint's checkpoint, a
/// two-fragment snappy series record, from `walfix dump` of the undamaged corpus.
fn series_in_first_record(seg: &Path) -> u64 {
    let out = Command::new(env!("CARGO_BIN_EXE_walfix"))
        .args(["dump", "--type", "series"])
        .arg(seg)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    let (seg_name, offset) = (first["segment"].clone(), first["offset"].clone());
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["segment"] == seg_name && v["offset"] == offset)
        .count() as u64
}

/// The tail of a checkpoint's series record lost (bytes overwritten in its `last` fragment, more
/// than one so no correction applies): salvage keeps the entries that decode from the `first`
/// fragment, and real Prometheus then has those series and their samples. Compared with the
/// same damage plus damage in the `first` fragment, where nothing of the record can be kept.
#[test]
#[ignore = "needs a real Prometheus: run scripts/test.sh"]
fn a_series_record_that_lost_its_tail_keeps_its_first_entries_in_real_prometheus() {
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let seg_rel = Path::new("wal/checkpoint.00000001/00000000");
    let original = fs::read(root().join("testdata/corpora/v3-checkpoint").join(seg_rel)).unwrap();
    // Fragment headers: `first` at 0, `last` at 32768 (type byte 2 and 4, snappy flag 0x08).
    assert_eq!(
        (original[0] & 7, original[32768] & 7),
        (2, 4),
        "the corpus changed"
    );
    let in_record =
        series_in_first_record(&root().join("testdata/corpora/v3-checkpoint").join(seg_rel));
    let mut results = Vec::new();
    let mut predicted_drop = Vec::new();
    for what in ["clean", "tail", "whole"] {
        let dir = tmp.path().join(what);
        let data = dir.join("data");
        copy_corpus("v3-checkpoint", &data);
        let mut kept = 0;
        if what != "clean" {
            let mut bytes = original.clone();
            for x in &mut bytes[32768 + 7 + 100..32768 + 7 + 108] {
                *x ^= 0x5a;
            }
            if what == "whole" {
                for x in &mut bytes[7 + 50..7 + 58] {
                    *x ^= 0x5a;
                }
            }
            fs::write(data.join(seg_rel), &bytes).unwrap();
            let out = Command::new(env!("CARGO_BIN_EXE_walfix"))
                .args(["repair", "--mode", "salvage", "--json"])
                .arg(&data)
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            assert_eq!(out.status.code(), Some(0), "walfix repair:\n{text}");
            let v: Value = serde_json::from_str(&text).unwrap();
            kept = v["plan"]["loss"]["series_kept"].as_u64().unwrap();
            predicted_drop.push(
                v["predicted"]["findings"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|f| f["unknown_refs"]["samples"].as_u64())
                    .sum::<u64>(),
            );
        }
        let r = replay("3.5", &data, &dir, what);
        if what != "clean" {
            if let Err(e) = r.clean_start() {
                panic!("{what}: {e}\nfiles:\n{}", listing(&data));
            }
        }
        results.push((r, kept));
    }
    let (whole, whole_kept) = results.pop().unwrap();
    let (tail, kept) = results.pop().unwrap();
    let (clean, _) = results.pop().unwrap();
    eprintln!(
        "checkpoint series record of {in_record} entries: clean {}, tail lost {} (kept {kept}), whole record lost {}",
        clean.cell(),
        tail.cell(),
        whole.cell()
    );
    assert_eq!(whole_kept, 0);
    assert!(kept > 0 && kept < in_record, "kept {kept} of {in_record}");
    let (s_clean, s_tail, s_whole) = (
        clean.series().unwrap(),
        tail.series().unwrap(),
        whole.series().unwrap(),
    );
    // Every kept entry is a series Prometheus has again; every lost one is missing.
    assert_eq!(s_whole, s_clean - in_record);
    assert_eq!(s_tail, s_clean - (in_record - kept));
    assert!(tail.samples().unwrap() > whole.samples().unwrap());
    // The prediction (samples of series whose record is gone) is what Prometheus dropped.
    let all = clean.samples().unwrap();
    assert_eq!(
        predicted_drop,
        [
            all - tail.samples().unwrap(),
            all - whole.samples().unwrap()
        ]
    );
}
