//! End to end: `walfix flush` on corpora written by real Prometheus; the blocks go into a fresh
//! data dir with no WAL. promtool (`tsdb list`, `tsdb analyze`, `tsdb analyze --extended`) must
//! accept every block, and the matching real Prometheus started on the flushed dir must answer
//! like a Prometheus started on the original WAL (whose samples are in its head): the same
//! series, the same `count_over_time` of every series over the whole range, the same samples for
//! a sample of series, and no corruption in its log.
//!
//! Run by scripts/test.sh, which sets WALFIX_PROMETHEUS_DIR (prometheus and promtool of 2.42,
//! 2.53 and 3.5); ignored under a plain `cargo test`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn tool(version: &str, name: &str) -> PathBuf {
    let dir = std::env::var_os("WALFIX_PROMETHEUS_DIR")
        .map(PathBuf::from)
        .expect("WALFIX_PROMETHEUS_DIR is not set: run scripts/test.sh");
    let bin = dir.join(version).join(name);
    assert!(
        bin.exists(),
        "{} missing: scripts/get-prometheus.sh {version} {}",
        bin.display(),
        dir.join(version).display()
    );
    bin
}

/// One Prometheus at a time: they compete for two cores.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Flags the corpus notes started each version with.
fn flags(version: &str) -> &'static [&'static str] {
    match version {
        "2.42" => &["--enable-feature=native-histograms,exemplar-storage"],
        _ => &["--enable-feature=promql-delayed-name-removal"],
    }
}

fn http_get(port: u16, path: &str) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(600)))
        .map_err(|e| e.to_string())?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no HTTP header")?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or("no status")?;
    Ok((code, body.to_owned()))
}

fn enc(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

struct Prom {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Prom {
    fn start(version: &str, data: &Path, work: &Path) -> Prom {
        let cfg = work.join("prometheus.yml");
        fs::write(
            &cfg,
            "global:\n  scrape_interval: 1m\n  evaluation_interval: 1m\nscrape_configs: []\n",
        )
        .unwrap();
        let mut log = work.join("prometheus.log");
        for _attempt in 0..3 {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let child = Command::new(tool(version, "prometheus"))
                .arg(format!("--config.file={}", cfg.display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg(format!("--storage.tsdb.path={}", data.display()))
                .args([
                    "--storage.tsdb.retention.time=3650d",
                    "--query.max-samples=500000000",
                    "--query.timeout=10m",
                    "--log.level=info",
                ])
                .args(flags(version))
                .stdin(Stdio::null())
                .stdout(fs::File::create(&log).unwrap())
                .stderr(fs::File::create(&log).unwrap())
                .spawn()
                .unwrap();
            let mut p = Prom {
                child,
                port,
                log: log.clone(),
            };
            let t0 = Instant::now();
            loop {
                if let Ok(Some(st)) = p.child.try_wait() {
                    let text = fs::read_to_string(&p.log).unwrap_or_default();
                    if text.contains("address already in use") {
                        break;
                    }
                    panic!(
                        "Prometheus {version} exited ({st}) on {}:\n{text}",
                        data.display()
                    );
                }
                if matches!(http_get(port, "/-/ready"), Ok((200, _))) {
                    return p;
                }
                assert!(
                    t0.elapsed() < Duration::from_secs(300),
                    "Prometheus {version} not ready after 300 s"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
            log = p.log.clone();
        }
        panic!("no free port for Prometheus");
    }

    fn api(&self, path: &str) -> Value {
        let (code, body) = http_get(self.port, path).unwrap();
        assert_eq!(code, 200, "{path}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["status"], "success", "{path}: {body}");
        v["data"].clone()
    }

    fn query(&self, q: &str, t_ms: i64) -> Vec<Value> {
        let d = self.api(&format!(
            "/api/v1/query?query={}&time={}.{:03}",
            enc(q),
            t_ms.div_euclid(1000),
            t_ms.rem_euclid(1000)
        ));
        d["result"].as_array().unwrap().clone()
    }

    fn metric(&self, name: &str) -> Option<f64> {
        let (_, body) = http_get(self.port, "/metrics").unwrap();
        body.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
            .and_then(|v| v.trim().parse().ok())
    }

    /// Stops it (SIGTERM, then SIGKILL after 60 s); returns its log.
    fn stop(mut self) -> String {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let t0 = Instant::now();
        while self.child.try_wait().ok().flatten().is_none() {
            if t0.elapsed() > Duration::from_secs(60) {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Prom {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

type LabelSet = BTreeMap<String, String>;

fn labels_of(v: &Value) -> LabelSet {
    v.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect()
}

fn selector(l: &LabelSet) -> String {
    let parts: Vec<String> = l
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}=\"{}\"",
                v.replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n")
            )
        })
        .collect();
    format!("{{{}}}", parts.join(","))
}

/// What one Prometheus answers about everything in [first, last].
struct View {
    series: BTreeSet<LabelSet>,
    counts: BTreeMap<LabelSet, u64>,
    samples: BTreeMap<LabelSet, Vec<(String, String)>>,
}

fn view(p: &Prom, first: i64, last: i64, sampled: &[LabelSet]) -> View {
    let range = format!("{}s", (last - first) / 1000 + 86_400);
    let d = p.api(&format!(
        "/api/v1/series?match[]={}&start={}&end={}",
        enc("{__name__=~\".+\"}"),
        first / 1000 - 1,
        last / 1000 + 1
    ));
    let series: BTreeSet<LabelSet> = d.as_array().unwrap().iter().map(labels_of).collect();
    let names: BTreeSet<String> = series.iter().map(|l| l["__name__"].clone()).collect();
    let mut counts = BTreeMap::new();
    // Per name: count_over_time drops the name, and series may differ only by it.
    for name in &names {
        let sel = selector(&BTreeMap::from([("__name__".to_owned(), name.clone())]));
        for r in p.query(&format!("count_over_time({sel}[{range}])"), last) {
            let mut l = labels_of(&r["metric"]);
            l.insert("__name__".into(), name.clone());
            let n: u64 = r["value"][1].as_str().unwrap().parse().unwrap();
            assert!(counts.insert(l, n).is_none());
        }
    }
    let mut samples = BTreeMap::new();
    for l in sampled {
        let r = p.query(&format!("{}[{range}]", selector(l)), last);
        assert_eq!(r.len(), 1, "{l:?}");
        let vals: Vec<(String, String)> = r[0]["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| (x[0].to_string(), x[1].as_str().unwrap().to_owned()))
            .collect();
        samples.insert(l.clone(), vals);
    }
    View {
        series,
        counts,
        samples,
    }
}

/// Relative path -> bytes of every file under `dir`.
fn dir_bytes(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(base: &Path, p: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in fs::read_dir(p).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                walk(base, &e.path(), out);
            } else {
                let rel = e.path().strip_prefix(base).unwrap().to_path_buf();
                out.insert(rel, fs::read(e.path()).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{text}",
        out.status
    );
    text
}

fn facts(corpus: &str) -> Value {
    let text = fs::read_to_string(root().join("testdata/facts.json")).unwrap();
    let all: Value = serde_json::from_str(&text).unwrap();
    all[corpus].clone()
}

fn flush_and_compare(corpus: &str, version: &str) {
    flush_and_compare_dir(corpus, version, |orig| {
        common::copy_dir(
            &root().join("testdata/corpora").join(corpus).join("wal"),
            &orig.join("wal"),
        )
    });
}

/// `make_orig` fills the original data dir; `corpus` names it (and its facts, if any).
fn flush_and_compare_dir(corpus: &str, version: &str, make_orig: impl Fn(&Path)) {
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let orig = tmp.path().join("orig");
    make_orig(&orig);
    let flushed = tmp.path().join("flushed");

    // Dry run first: nothing is written, the same blocks are planned.
    let dry = run_ok(
        Command::new(env!("CARGO_BIN_EXE_walfix"))
            .args(["flush", "--dry-run", "--json", "--output-dir"])
            .arg(&flushed)
            .arg(&orig),
    );
    assert!(!flushed.exists(), "--dry-run wrote {}", flushed.display());
    let dry: Value = serde_json::from_str(dry.lines().next().unwrap()).unwrap();
    let out = run_ok(
        Command::new(env!("CARGO_BIN_EXE_walfix"))
            .args(["flush", "--json", "--output-dir"])
            .arg(&flushed)
            .arg(&orig),
    );
    let rep: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    let blocks = rep["blocks"].as_array().unwrap();
    assert!(!blocks.is_empty(), "{rep:#}");
    assert_eq!(dry["blocks"].as_array().unwrap().len(), blocks.len());
    assert_eq!(dry["samples_written"], rep["samples_written"]);
    assert!(!flushed.join("wal").exists());
    let first = blocks
        .iter()
        .map(|b| b["min_time"].as_i64().unwrap())
        .min()
        .unwrap();
    let last = blocks
        .iter()
        .map(|b| b["max_time"].as_i64().unwrap())
        .max()
        .unwrap()
        - 1;
    // What the corpus notes say Prometheus could query after its own replay (if a corpus).
    let f = facts(corpus);
    eprintln!(
        "{corpus}: {} blocks, {} samples written (staleness markers included); notes: {} queryable after Prometheus's replay",
        blocks.len(),
        rep["samples_written"],
        f["after_replay"]["samples_queryable"]
    );

    // promtool of the same version accepts every block.
    let promtool = tool(version, "promtool");
    let list = run_ok(Command::new(&promtool).args(["tsdb", "list"]).arg(&flushed));
    for b in blocks {
        let id = b["ulid"].as_str().unwrap();
        assert!(list.contains(id), "promtool tsdb list:\n{list}");
        let a = run_ok(
            Command::new(&promtool)
                .args(["tsdb", "analyze"])
                .arg(&flushed)
                .arg(id),
        );
        // "Total Series: N" since 2.47, "Series: N" before.
        assert!(
            a.contains(&format!("Series: {}\n", b["series"])),
            "promtool tsdb analyze:\n{a}"
        );
        run_ok(
            Command::new(&promtool)
                .args(["tsdb", "analyze", "--extended"])
                .arg(&flushed)
                .arg(id),
        );
    }

    // Prometheus on the original WAL (head) and on the blocks.
    let work_a = tmp.path().join("work-orig");
    let work_b = tmp.path().join("work-flushed");
    fs::create_dir_all(&work_a).unwrap();
    fs::create_dir_all(&work_b).unwrap();
    let pa = Prom::start(version, &orig, &work_a);
    let series_a = view(&pa, first, last, &[]).series;
    // Every 37th series, plus the first and the last: all their samples compared.
    let sampled: Vec<LabelSet> = series_a
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 37 == 0 || *i + 1 == series_a.len())
        .map(|(_, l)| l.clone())
        .collect();
    let a = view(&pa, first, last, &sampled);
    let log_a = pa.stop();
    let pb = Prom::start(version, &flushed, &work_b);
    let loaded = pb.metric("prometheus_tsdb_blocks_loaded");
    let b = view(&pb, first, last, &sampled);
    let log_b = pb.stop();

    assert_eq!(loaded, Some(blocks.len() as f64), "blocks loaded\n{log_b}");
    for l in log_b.lines() {
        let low = l.to_ascii_lowercase();
        assert!(
            !low.contains("corrupt") && !low.contains("level=error") && !low.contains("overlap"),
            "flushed dir: {l}"
        );
    }
    assert!(!a.series.is_empty(), "no series on the original\n{log_a}");
    assert_eq!(a.series, b.series, "series sets differ");
    assert_eq!(a.counts.len(), a.series.len());
    if a.counts != b.counts {
        let diff: Vec<_> = a
            .counts
            .iter()
            .filter(|(k, v)| b.counts.get(*k) != Some(v))
            .take(5)
            .map(|(k, v)| format!("{k:?}: original {v}, flushed {:?}", b.counts.get(k)))
            .collect();
        panic!("count_over_time differs: {diff:#?}");
    }
    assert_eq!(a.samples, b.samples, "sampled series' values differ");
    let total: u64 = b.counts.values().sum();
    eprintln!(
        "{corpus} on {version}: {} series, {total} samples queryable on both, {} series compared sample by sample",
        b.series.len(),
        sampled.len()
    );
    if let Some(n) = f["after_replay"]["samples_queryable"].as_u64() {
        assert_eq!(total, n, "queryable samples differ from the corpus notes");
    }

    // The real run, in place: the blocks go into the data dir and what replay would read
    // besides them moves into the backup, so Prometheus starts from the blocks alone.
    let inplace = tmp.path().join("inplace");
    // A second copy as it was before any Prometheus ran on it (Prometheus rewrites its WAL).
    make_orig(&inplace);
    let wal_before = dir_bytes(&inplace.join("wal"));
    let out = run_ok(
        Command::new(env!("CARGO_BIN_EXE_walfix"))
            .args(["flush", "--json"])
            .arg(&inplace),
    );
    let json = out.lines().find(|l| l.starts_with('{')).unwrap();
    let r: Value = serde_json::from_str(json).unwrap();
    assert!(!inplace.join("wal").exists(), "wal/ still in the data dir");
    let run = Path::new(r["handover"]["backup_run"].as_str().unwrap());
    assert_eq!(
        dir_bytes(&run.join("wal")),
        wal_before,
        "the backup holds the WAL unchanged"
    );
    let work_c = tmp.path().join("work-inplace");
    fs::create_dir_all(&work_c).unwrap();
    let pc = Prom::start(version, &inplace, &work_c);
    let c = view(&pc, first, last, &sampled);
    let log_c = pc.stop();
    assert_eq!(
        a.series, c.series,
        "flushed in place: series sets differ\n{log_c}"
    );
    assert_eq!(
        a.counts, c.counts,
        "flushed in place: count_over_time differs"
    );
    assert_eq!(
        a.samples, c.samples,
        "flushed in place: sampled values differ"
    );
}

#[test]
#[ignore = "end-to-end: needs a real Prometheus and promtool: run scripts/test.sh"]
fn flushed_v3_snappy_small_answers_like_its_wal_in_prometheus_3_5() {
    flush_and_compare("v3-snappy-small", "3.5");
}

#[test]
#[ignore = "end-to-end: needs a real Prometheus and promtool: run scripts/test.sh"]
fn flushed_v3_checkpoint_answers_like_its_wal_in_prometheus_3_5() {
    flush_and_compare("v3-checkpoint", "3.5");
}

#[test]
#[ignore = "end-to-end: needs a real Prometheus and promtool: run scripts/test.sh"]
fn flushed_small_clean_answers_like_its_wal_in_prometheus_2_42() {
    flush_and_compare("small-clean", "2.42");
}

#[test]
#[ignore = "end-to-end: needs a real Prometheus and promtool: run scripts/test.sh"]
fn flushed_v2_53_snappy_answers_like_its_wal_in_prometheus_2_53() {
    flush_and_compare("v2.53-snappy", "2.53");
}

/// A WAL made with walfix-format's encoder: 2 h 30 min of 15 s samples of three series, so
/// two blocks (the window boundary is crossed), a staleness marker, a duplicate and an
/// out-of-order sample (dropped by replay), and deletions (tombstone records) inside one
/// window and across the boundary.
fn encoded_wal(orig: &Path) {
    use walfix_format::encode::SegmentEncoder;
    use walfix_format::fragment::Compression;
    use walfix_format::record::{OwnedSeries, Record, Sample, Tombstone, STALE_NAN_BITS};
    const H: i64 = 3_600_000;
    // 30 minutes before a 2 h boundary (2025-06-15T10:00:00Z).
    let t0 = 1_749_981_600_000 - 30 * 60_000;
    assert_eq!(t0 % (2 * H), 2 * H - 30 * 60_000);
    let l = |n: &str, job: &str| {
        vec![
            (b"__name__".to_vec(), n.as_bytes().to_vec()),
            (b"job".to_vec(), job.as_bytes().to_vec()),
        ]
    };
    let s = |r: u64, t: i64, v: f64| Sample {
        series_ref: r,
        t,
        st: 0,
        v,
    };
    let mut recs = vec![Record::Series(vec![
        OwnedSeries {
            series_ref: 1,
            labels: l("flush_a", "x"),
        },
        OwnedSeries {
            series_ref: 2,
            labels: l("flush_a", "y"),
        },
        OwnedSeries {
            series_ref: 3,
            labels: l("flush_b", "x"),
        },
    ])];
    for i in 0..600i64 {
        let t = t0 + i * 15_000 + (i * 7 % 5);
        let mut v = vec![s(1, t, i as f64), s(3, t, (i as f64).sin())];
        v.push(if i == 300 {
            s(2, t, f64::from_bits(STALE_NAN_BITS))
        } else {
            s(2, t, 1e6 - i as f64 * 0.25)
        });
        if i % 97 == 0 && i > 0 {
            v.push(s(1, t - 30_000, -1.0)); // out of order: dropped
            v.push(s(3, t, 42.0)); // duplicate timestamp: dropped
        }
        recs.push(Record::Samples(v));
    }
    recs.push(Record::Tombstones(vec![
        Tombstone {
            series_ref: 1,
            mint: t0 + 20 * 60_000,
            maxt: t0 + 45 * 60_000,
        },
        Tombstone {
            series_ref: 3,
            mint: t0 + 60 * 60_000,
            maxt: t0 + 61 * 60_000,
        },
    ]));
    let mut enc = SegmentEncoder::new();
    let mut buf = Vec::new();
    for r in &recs {
        buf.clear();
        r.encode(&mut buf);
        enc.append(&buf, Compression::Snappy);
    }
    fs::create_dir_all(orig.join("wal")).unwrap();
    fs::write(orig.join("wal/00000000"), enc.bytes()).unwrap();
}

#[test]
#[ignore = "end-to-end: needs a real Prometheus and promtool: run scripts/test.sh"]
fn flushed_encoded_wal_with_deletions_answers_like_it_in_prometheus_3_5() {
    flush_and_compare_dir("encoded-with-tombstones", "3.5", encoded_wal);
}

#[test]
#[ignore = "end-to-end: needs a real Prometheus and promtool: run scripts/test.sh"]
fn flushed_encoded_wal_with_deletions_answers_like_it_in_prometheus_2_42() {
    flush_and_compare_dir("encoded-with-tombstones", "2.42", encoded_wal);
}

/// The CLI without Prometheus: dry run, JSON, refusals and their exit codes.
#[test]
fn cli_flush_dry_run_json_and_refusals() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    encoded_wal(&data);
    let walfix = |args: &[&str], dir: &Path| {
        let out = Command::new(env!("CARGO_BIN_EXE_walfix"))
            .arg("flush")
            .args(args)
            .arg(dir)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let blocks = |dir: &Path| {
        fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                let n = e.as_ref().unwrap().file_name();
                let n = n.to_string_lossy();
                n.len() == 26 && n.starts_with('0')
            })
            .count()
    };
    let (code, out, _) = walfix(&["--dry-run"], &data);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out.matches("would write block").count(), 2, "{out}");
    assert!(out.contains("dry run: nothing written"), "{out}");
    assert_eq!(blocks(&data), 0);

    let lock = fs::File::create(data.join("lock")).unwrap();
    lock.lock().unwrap();
    let (code, out, err) = walfix(&["--json"], &data);
    assert_eq!(code, Some(2), "{out}{err}");
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["error"], "locked");
    assert_eq!(v["exit_code"], 2);
    assert!(err.contains("locked"), "{err}");
    drop(lock);

    let (code, _, err) = walfix(&[], &tmp.path().join("nothing-here"));
    assert_eq!(code, Some(3), "{err}");

    let (code, out, err) = walfix(&["--json"], &data);
    assert_eq!(code, Some(0), "{err}");
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["blocks"].as_array().unwrap().len(), 2);
    assert_eq!(v["tombstones"], 2);
    assert_eq!(v["dropped_out_of_order"], 12);
    let per_block: u64 = v["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["tombstones"].as_u64().unwrap())
        .sum();
    assert_eq!(
        per_block, 3,
        "the deletion across the boundary is in both blocks"
    );
    assert_eq!(blocks(&data), 2);
    assert!(!data.join("wal").exists(), "the WAL moved to the backup");
    // Again: nothing left to flush; nothing more is written.
    let (code, out, _) = walfix(&[], &data);
    assert_eq!(code, Some(0));
    assert!(out.contains("nothing to flush"), "{out}");
    assert_eq!(blocks(&data), 2);
}

/// `walfix flush` SIGKILLed at several points, then rerun: the blocks hold exactly what an
/// uninterrupted run writes, and nothing of the killed run is left behind.
#[test]
fn killed_flush_then_rerun_converges() {
    use walfix_flush::read::read_block;
    use walfix_format::encode::SegmentEncoder;
    use walfix_format::fragment::Compression;
    use walfix_format::record::{OwnedSeries, Record, Sample};

    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    // 3000 series, 6 h at 60 s: four 2 h windows, 1.08M samples.
    let t0: i64 = 1_749_981_600_000 - 30 * 60_000;
    let mut enc = SegmentEncoder::new();
    let mut buf = Vec::new();
    let mut put = |r: Record, enc: &mut SegmentEncoder| {
        buf.clear();
        r.encode(&mut buf);
        enc.append(&buf, Compression::Snappy);
    };
    put(
        Record::Series(
            (0..3000u64)
                .map(|i| OwnedSeries {
                    series_ref: i + 1,
                    labels: vec![
                        (b"__name__".to_vec(), format!("m{}", i % 7).into_bytes()),
                        (b"i".to_vec(), i.to_string().into_bytes()),
                    ],
                })
                .collect(),
        ),
        &mut enc,
    );
    for k in 0..360i64 {
        let samples = (0..3000u64)
            .map(|i| Sample {
                series_ref: i + 1,
                t: t0 + k * 60_000,
                st: 0,
                v: (k as f64) * (i as f64 + 0.5),
            })
            .collect();
        put(Record::Samples(samples), &mut enc);
    }
    fs::create_dir_all(src.join("wal")).unwrap();
    fs::write(src.join("wal/00000000"), enc.bytes()).unwrap();

    let walfix = || Command::new(env!("CARGO_BIN_EXE_walfix"));
    let contents = |dir: &Path| {
        let mut all = BTreeMap::new();
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        for n in &names {
            if n == "walfix-backup" || n == "lock" {
                continue;
            }
            assert!(n.len() == 26, "left behind: {n}");
            let s = read_block(&dir.join(n), |l, samples| {
                all.entry(l.clone())
                    .or_insert_with(Vec::new)
                    .extend_from_slice(samples)
            })
            .unwrap();
            let m = s.meta.unwrap();
            all.entry(vec![(b"~range".to_vec(), n.as_bytes().to_vec())])
                .or_default()
                .push((m.min_time, m.max_time as u64));
        }
        // Block ids differ between runs: keep the ranges, drop the ids.
        let ranges: Vec<(i64, u64)> = all
            .iter()
            .filter(|(k, _)| k[0].0 == b"~range")
            .flat_map(|(_, v)| v.clone())
            .collect();
        all.retain(|k, _| k[0].0 != b"~range");
        (all, ranges)
    };

    let clean = tmp.path().join("clean");
    common::copy_dir(&src, &clean);
    let t = Instant::now();
    run_ok(walfix().arg("flush").arg(&clean));
    let full = t.elapsed();
    let want = contents(&clean);
    assert_eq!(want.1.len(), 4);

    let mut interrupted = 0;
    for (i, frac) in [0.1, 0.3, 0.5, 0.7, 0.9].iter().enumerate() {
        let d = tmp.path().join(format!("k{i}"));
        common::copy_dir(&src, &d);
        let mut child = walfix()
            .arg("flush")
            .arg(&d)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(full.mul_f64(*frac));
        let _ = child.kill();
        let _ = child.wait();
        let left: Vec<String> = fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n != "wal" && n != "walfix-backup")
            .collect();
        let done = left.iter().filter(|n| n.len() == 26).count();
        if done < 4 {
            interrupted += 1;
        }
        eprintln!("killed at {frac} of {full:?}: {done} blocks done, left: {left:?}");
        run_ok(walfix().arg("flush").arg(&d));
        // The WAL is in exactly one backup run, unchanged.
        let runs: Vec<PathBuf> = fs::read_dir(d.join("walfix-backup"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|r| r.join("wal").exists())
            .collect();
        assert_eq!(runs.len(), 1, "kill at {frac}: {runs:?}");
        assert!(
            dir_bytes(&runs[0].join("wal")) == dir_bytes(&src.join("wal")),
            "kill at {frac}: the WAL in the backup differs"
        );
        let got = contents(&d);
        assert_eq!(got.1, want.1, "kill at {frac} of the run: block ranges");
        assert!(got.0 == want.0, "kill at {frac} of the run: samples differ");
    }
    assert!(
        interrupted >= 2,
        "the kills came too late to interrupt anything"
    );
}
