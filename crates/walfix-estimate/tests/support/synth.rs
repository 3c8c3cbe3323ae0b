//! Deterministic synthetic WALs shaped like the ones Prometheus writes while it scrapes.
//!
//! Shared by the calibration test (`tests/calibration.rs`) and by the `synth_wal` example that
//! `scripts/measure-memory.sh` runs: the same workload spec always gives the same bytes, so the
//! measurement table only needs to keep the spec and a hash of the WAL, not the WAL itself.
//!
//! What Prometheus writes for one scrape of one target (`headAppender.Commit` → `log`): one series
//! record with the series it has not seen before, then one samples record with every sample of
//! the scrape, including a staleness marker (`StaleNaN`) for each series of the previous scrape
//! that is gone. Refs are handed out from 1 upward in creation order. Records are snappy
//! compressed and packed into 32 KiB pages by `walfix_format::encode::SegmentEncoder`; a record
//! that does not fit in the segment starts the next one (128 MiB segments by default).
//!
//! Churn is pod churn: every `churn_period` seconds each target is replaced (new `pod` and
//! `instance` values, so every series of it is new) with probability `churn_pct` %, or, with
//! `churn_exact=1`, exactly `churn_pct` % of the targets in rotation.

// Shared by a test and an example; each uses part of it.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::Path;

use walfix_format::encode::SegmentEncoder;
use walfix_format::fragment::Compression;
use walfix_format::record::{OwnedSeries, Record, Sample};

/// Prometheus's default WAL segment size (`wlog.DefaultSegmentSize`).
pub const SEGMENT_SIZE: usize = 128 * 1024 * 1024;

/// Staleness marker bit pattern (`value.StaleNaN`).
const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

/// One synthetic workload. `Workload::parse` reads the `key=value,...` spec kept in the
/// measurement table; `Workload::spec` writes it back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    /// Scrape targets (pods).
    pub targets: u32,
    /// Series each target exposes at any time.
    pub series_per_target: u32,
    /// Distinct metric names (series are spread over them round-robin).
    pub metrics: u32,
    /// Extra labels per series (`l0`, `l1`, ...), low cardinality.
    pub extra_labels: u32,
    /// Length of each extra label value.
    pub value_len: u32,
    /// Scrape interval, seconds.
    pub interval_s: u32,
    /// Length of the WAL, seconds.
    pub duration_s: u32,
    /// Every this many seconds targets may be replaced; 0: never.
    pub churn_period_s: u32,
    /// Chance in percent that a target is replaced at each churn period.
    pub churn_pct: u32,
    /// Replace exactly `churn_pct` % of the targets at each churn period (in rotation) instead
    /// of tossing a coin per target: the churn rate is then the same in every part of the WAL.
    pub churn_exact: bool,
    /// Seed of every pseudo-random choice.
    pub seed: u64,
    /// Time of the first scrape, ms since the epoch.
    pub start_ms: i64,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            targets: 10,
            series_per_target: 1000,
            metrics: 50,
            extra_labels: 2,
            value_len: 8,
            interval_s: 15,
            duration_s: 1800,
            churn_period_s: 0,
            churn_pct: 0,
            churn_exact: false,
            seed: 1,
            // 2025-06-15T12:10:00Z: 10 minutes into a 2 h head chunk range.
            start_ms: 1_749_989_400_000,
        }
    }
}

/// Counts of what was written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Written {
    /// Distinct series (= series entries: each is written once).
    pub series: u64,
    /// Samples, staleness markers included.
    pub samples: u64,
    /// Staleness markers.
    pub stale_markers: u64,
    /// Segment files.
    pub segments: u64,
    /// Bytes of all segments.
    pub bytes: u64,
    /// FNV-1a 64 over the bytes of every segment in order, as 16 hex digits.
    pub fnv64: String,
}

impl Workload {
    /// Parses `targets=10,series=1000,...`; keys not given keep their default.
    pub fn parse(spec: &str) -> Result<Workload, String> {
        let mut w = Workload::default();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("bad workload item {part:?}"))?;
            let num = |v: &str| v.parse::<u64>().map_err(|e| format!("{k}={v}: {e}"));
            let n = num(v)?;
            let small = || u32::try_from(n).map_err(|_| format!("{k}={v}: too large"));
            match k {
                "targets" => w.targets = small()?,
                "series" => w.series_per_target = small()?,
                "metrics" => w.metrics = small()?,
                "extra" => w.extra_labels = small()?,
                "vlen" => w.value_len = small()?,
                "interval" => w.interval_s = small()?,
                "duration" => w.duration_s = small()?,
                "churn_period" => w.churn_period_s = small()?,
                "churn_pct" => w.churn_pct = small()?,
                "churn_exact" => w.churn_exact = n != 0,
                "seed" => w.seed = n,
                "start_ms" => w.start_ms = n as i64,
                _ => return Err(format!("unknown workload key {k:?}")),
            }
        }
        if w.targets == 0 || w.series_per_target == 0 || w.metrics == 0 || w.interval_s == 0 {
            return Err("targets, series, metrics and interval must be > 0".into());
        }
        Ok(w)
    }

    /// The spec string `parse` reads.
    pub fn spec(&self) -> String {
        format!(
            "targets={},series={},metrics={},extra={},vlen={},interval={},duration={},churn_period={},churn_pct={},seed={},start_ms={}",
            self.targets,
            self.series_per_target,
            self.metrics,
            self.extra_labels,
            self.value_len,
            self.interval_s,
            self.duration_s,
            self.churn_period_s,
            self.churn_pct,
            self.seed,
            self.start_ms
        ) + if self.churn_exact { ",churn_exact=1" } else { "" }
    }

    fn epochs(&self) -> u32 {
        match self.churn_period_s {
            0 => 1,
            p => self.duration_s / p + 1,
        }
    }

    /// Generation of target `k` in churn epoch `e` (0 at the start).
    fn generations(&self) -> Vec<Vec<u32>> {
        (0..self.targets)
            .map(|k| {
                let mut g = 0;
                (0..self.epochs())
                    .map(|e| {
                        let n = self.targets * self.churn_pct / 100;
                        let replaced = if self.churn_exact {
                            // A window of n targets that moves on by n every epoch.
                            let from = (e as u64 * n as u64 % self.targets as u64) as u32;
                            (k + self.targets - from) % self.targets < n
                        } else {
                            mix(self.seed, &[1, k as u64, e as u64]) % 100 < self.churn_pct as u64
                        };
                        if e > 0 && replaced {
                            g += 1;
                        }
                        g
                    })
                    .collect()
            })
            .collect()
    }

    /// Labels of series `i` of target `k` in generation `g`, sorted by name.
    fn labels(&self, k: u32, g: u32, i: u32) -> Vec<(Vec<u8>, Vec<u8>)> {
        let m = i % self.metrics;
        let name = if m.is_multiple_of(2) {
            format!("synth_app_m{m:03}_requests_total")
        } else {
            format!("synth_app_m{m:03}_queue_ratio")
        };
        let pod_hash = mix(self.seed, &[2, k as u64, g as u64]);
        let mut pod = format!("synth-app-{k}-");
        for j in 0..5 {
            let c = b"bcdfghjklmnpqrstvwxz2456789"[((pod_hash >> (j * 6)) % 27) as usize];
            pod.push(c as char);
        }
        let mut l: Vec<(String, String)> = vec![
            ("__name__".into(), name),
            ("container".into(), "app".into()),
            ("idx".into(), format!("{}", i / self.metrics)),
            (
                "instance".into(),
                format!(
                    "10.{}.{}.{}:9100",
                    (k >> 8) & 255,
                    k & 255,
                    (pod_hash >> 40) % 250
                ),
            ),
            ("job".into(), "synth".into()),
            ("namespace".into(), format!("ns-{}", k % 10)),
            ("pod".into(), pod),
        ];
        for j in 0..self.extra_labels {
            // Low-cardinality values (like method, code, handler): 4 per (metric, label).
            let pick = mix(
                self.seed,
                &[3, m as u64, j as u64, ((i / self.metrics) % 4) as u64],
            );
            let mut v = String::new();
            for b in 0..self.value_len {
                v.push((b'a' + ((pick >> ((b % 10) * 6)) % 26) as u8) as char);
            }
            l.push((format!("l{j}"), v));
        }
        l.sort();
        l.into_iter()
            .map(|(n, v)| (n.into_bytes(), v.into_bytes()))
            .collect()
    }

    /// Writes the WAL segments into `dir` (created; must not hold segments already).
    pub fn write(&self, dir: &Path, segment_size: usize) -> io::Result<Written> {
        fs::create_dir_all(dir)?;
        let gens = self.generations();
        let interval_ms = self.interval_s as i64 * 1000;
        let duration_ms = self.duration_s as i64 * 1000;
        let spt = self.series_per_target as usize;
        // Per target: generation of the last scrape, ref of its first series, value state.
        let mut cur_gen: Vec<Option<u32>> = vec![None; self.targets as usize];
        let mut base_ref: Vec<u64> = vec![0; self.targets as usize];
        let mut values: Vec<f64> = vec![0.0; self.targets as usize * spt];
        let mut next_ref: u64 = 1;
        let mut out = Output::new(dir, segment_size);
        let mut written = Written::default();
        let mut rec = Vec::new();
        let mut round: i64 = 0;
        loop {
            let round_start = round * interval_ms;
            if round_start >= duration_ms {
                break;
            }
            for k in 0..self.targets {
                let off = (k as i64 * interval_ms) / self.targets as i64;
                let rel = round_start + off;
                if rel >= duration_ms {
                    continue;
                }
                let t = self.start_ms + rel;
                let epoch = match self.churn_period_s {
                    0 => 0,
                    p => (rel / (p as i64 * 1000)) as usize,
                };
                let g = gens[k as usize][epoch.min(gens[k as usize].len() - 1)];
                let ku = k as usize;
                let mut samples = Vec::with_capacity(2 * spt);
                if cur_gen[ku] != Some(g) {
                    if cur_gen[ku].is_some() {
                        // The old pod's series are gone from this scrape: staleness markers.
                        for i in 0..spt as u64 {
                            samples.push(Sample {
                                series_ref: base_ref[ku] + i,
                                t,
                                st: 0,
                                v: f64::from_bits(STALE_NAN),
                            });
                        }
                        written.stale_markers += spt as u64;
                    }
                    let series: Vec<OwnedSeries> = (0..self.series_per_target)
                        .map(|i| OwnedSeries {
                            series_ref: next_ref + i as u64,
                            labels: self.labels(k, g, i),
                        })
                        .collect();
                    base_ref[ku] = next_ref;
                    next_ref += spt as u64;
                    written.series += spt as u64;
                    cur_gen[ku] = Some(g);
                    for v in &mut values[ku * spt..(ku + 1) * spt] {
                        *v = 0.0;
                    }
                    rec.clear();
                    Record::Series(series).encode(&mut rec);
                    out.append(&rec)?;
                }
                for i in 0..spt {
                    let m = i as u32 % self.metrics;
                    let h = mix(self.seed, &[4, k as u64, g as u64, i as u64, round as u64]);
                    let v = &mut values[ku * spt + i];
                    if m.is_multiple_of(2) {
                        // Counter: grows by 0..9 per scrape.
                        *v += (h % 10) as f64;
                    } else if h.is_multiple_of(2) {
                        // Gauge: unchanged half of the time, else a small step.
                        *v = ((*v * 10.0).round() + ((h >> 8) % 9) as f64 - 4.0) / 10.0;
                    }
                    samples.push(Sample {
                        series_ref: base_ref[ku] + i as u64,
                        t,
                        st: 0,
                        v: *v,
                    });
                }
                written.samples += samples.len() as u64;
                rec.clear();
                Record::Samples(samples).encode(&mut rec);
                out.append(&rec)?;
            }
            round += 1;
        }
        let (segments, bytes, hash) = out.finish()?;
        written.segments = segments;
        written.bytes = bytes;
        written.fnv64 = format!("{hash:016x}");
        Ok(written)
    }
}

/// Segment files being written.
struct Output<'a> {
    dir: &'a Path,
    segment_size: usize,
    index: u64,
    enc: SegmentEncoder,
    bytes: u64,
    hash: u64,
}

impl<'a> Output<'a> {
    fn new(dir: &'a Path, segment_size: usize) -> Self {
        Output {
            dir,
            segment_size,
            index: 0,
            enc: SegmentEncoder::new(),
            bytes: 0,
            hash: 0xcbf2_9ce4_8422_2325,
        }
    }

    fn append(&mut self, rec: &[u8]) -> io::Result<()> {
        let (stored, used) = walfix_format::encode::compress_record(rec, Compression::Snappy);
        if !self.enc.is_empty() && stored.len() > self.enc.capacity(self.segment_size) {
            self.flush(true)?;
        }
        self.enc.append_stored(&stored, used);
        Ok(())
    }

    fn flush(&mut self, pad: bool) -> io::Result<()> {
        if pad {
            self.enc.pad_page();
        }
        let bytes = std::mem::take(&mut self.enc).into_bytes();
        for &b in &bytes {
            self.hash = (self.hash ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.bytes += bytes.len() as u64;
        fs::write(self.dir.join(format!("{:08}", self.index)), &bytes)?;
        self.index += 1;
        Ok(())
    }

    fn finish(mut self) -> io::Result<(u64, u64, u64)> {
        // Prometheus flushes whole pages on a clean shutdown.
        self.flush(true)?;
        Ok((self.index, self.bytes, self.hash))
    }
}

/// A 64-bit mix of the seed and some words (splitmix64 steps).
fn mix(seed: u64, words: &[u64]) -> u64 {
    let mut x = seed ^ 0x9e37_79b9_7f4a_7c15;
    for &w in words {
        x = x.wrapping_add(w).wrapping_add(0x9e37_79b9_7f4a_7c15);
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^= x >> 31;
    }
    x
}

/// A one-line description of what was written, for logs and the measurement table.
pub fn describe(w: &Workload, n: &Written) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "spec={} series={} samples={} stale={} segments={} bytes={} fnv64={}",
        w.spec(),
        n.series,
        n.samples,
        n.stale_markers,
        n.segments,
        n.bytes,
        n.fnv64
    );
    s
}
