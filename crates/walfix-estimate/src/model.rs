//! The memory model: what each part of Prometheus's head costs, per version family, and what the
//! Go garbage collector makes of it. Every term and constant is described in
//! `docs/estimate-model.md`, with where it comes from.
//!
//! Structure (sizes of Go structs, size classes, slice and map growth) comes from Prometheus's
//! and Go's sources and is computed, not fitted; the replay peak comes from a simulation of Go's
//! collector over the allocation timeline the scan recorded ([`simulate_replay_gc`]). A few
//! numbers per family are measured or fitted on real Prometheus
//! (`testdata/memory/measurements.jsonl`, fitted on the `fit` workloads only): the heap and
//! resident file pages of an empty Prometheus, the non-heap anonymous memory, the slack of the
//! simulated peak and the batches alive per replay worker.

use serde::Serialize;

use crate::golang::{self, Maps};
use crate::scan::Inputs;
use crate::xor::ChunkRules;

/// Prometheus version families with different memory layouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Family {
    /// 2.42 and older 2.x: `[]Label` labels, Go maps with buckets, `seriesHashmap` of slices.
    #[serde(rename = "2.42")]
    V2_42,
    /// 2.44 .. 2.55: `unique` series hash map, 1024-byte chunk cap (2.48+), GOGC 75 after start.
    #[serde(rename = "2.53")]
    V2_53,
    /// 3.x: single-string labels, exponential postings growth, GOGC 75 and GOMEMLIMIT by default.
    #[serde(rename = "3.5")]
    V3_5,
}

impl Family {
    /// Maps a version string (`2.42`, `2.53.3`, `v3.5.0`, `3`) to its family.
    pub fn parse(s: &str) -> Option<Family> {
        let s = s.trim().trim_start_matches('v');
        let mut it = s.split('.');
        let major: u32 = it.next()?.parse().ok()?;
        let minor: u32 = match it.next() {
            Some(m) => m.parse().ok()?,
            None => 0,
        };
        match (major, minor) {
            (2, m) if m < 44 => Some(Family::V2_42),
            (2, _) => Some(Family::V2_53),
            (3.., _) => Some(Family::V3_5),
            _ => None,
        }
    }

    /// Name as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Family::V2_42 => "2.42",
            Family::V2_53 => "2.53",
            Family::V3_5 => "3.5",
        }
    }

    /// The family's constants.
    pub fn params(self) -> Params {
        match self {
            Family::V2_42 => Params {
                family: self,
                default_labels: LabelLayout::Slice,
                maps: Maps::Buckets,
                mem_series_slice: 192,
                mem_series_string: 176,
                tx_ring: 48 + 32,
                scrape_base: 560,
                mem_chunk: 32,
                hash_value: 24,
                hash_value_alloc: 8,
                exp_postings: false,
                label_values_index: false,
                rules: ChunkRules {
                    samples_per_chunk: 120,
                    max_bytes: None,
                    chunk_range_ms: CHUNK_RANGE_MS,
                },
                gogc_replay: 100,
                gogc_steady: 100,
                auto_memlimit: false,
                base_heap_alloc: 7_310_000,
                base_heap_inuse: 9_490_000,
                rss_file: 31_240_000,
                non_heap: 2_000_000,
                inuse_per_live: 1.105,
                peak_slack: 1.23,
                in_flight_per_worker: 360.0,
                decode_presized: false,
            },
            Family::V2_53 => Params {
                family: self,
                default_labels: LabelLayout::Slice,
                maps: Maps::Swiss,
                mem_series_slice: 192,
                mem_series_string: 176,
                tx_ring: 32,
                scrape_base: 370,
                mem_chunk: 48,
                hash_value: 8,
                hash_value_alloc: 0,
                exp_postings: false,
                label_values_index: false,
                rules: ChunkRules {
                    samples_per_chunk: 120,
                    max_bytes: Some(1024 - 19),
                    chunk_range_ms: CHUNK_RANGE_MS,
                },
                gogc_replay: 100,
                gogc_steady: 75,
                auto_memlimit: false,
                base_heap_alloc: 9_280_000,
                base_heap_inuse: 12_010_000,
                rss_file: 51_890_000,
                non_heap: 0,
                inuse_per_live: 1.120,
                peak_slack: 1.12,
                in_flight_per_worker: 360.0,
                decode_presized: true,
            },
            Family::V3_5 => Params {
                family: self,
                default_labels: LabelLayout::String,
                maps: Maps::Swiss,
                mem_series_slice: 176,
                mem_series_string: 176,
                tx_ring: 32,
                scrape_base: 385,
                mem_chunk: 48,
                hash_value: 8,
                hash_value_alloc: 0,
                exp_postings: true,
                label_values_index: true,
                rules: ChunkRules {
                    samples_per_chunk: 120,
                    max_bytes: Some(1024 - 19),
                    chunk_range_ms: CHUNK_RANGE_MS,
                },
                gogc_replay: 75,
                gogc_steady: 75,
                auto_memlimit: true,
                base_heap_alloc: 9_490_000,
                base_heap_inuse: 12_130_000,
                rss_file: 54_350_000,
                non_heap: 0,
                inuse_per_live: 1.075,
                peak_slack: 1.09,
                in_flight_per_worker: 360.0,
                decode_presized: true,
            },
        }
    }
}

/// Default head chunk range: `--storage.tsdb.min-block-duration` = 2 h.
pub const CHUNK_RANGE_MS: i64 = 2 * 3600 * 1000;

/// How label sets are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LabelLayout {
    /// `[]Label{Name, Value string}`: 2.42 and older, and builds without `-tags stringlabels`
    /// (Debian's 2.53, for one).
    Slice,
    /// One string holding every name and value: 3.x, and official builds from 2.44/2.47 on.
    String,
}

/// Constants of one family. Sizes are Go allocation sizes (size classes), in bytes.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Params {
    /// The family.
    pub family: Family,
    /// Label layout of the builds measured.
    pub default_labels: LabelLayout,
    /// Go map implementation of the builds measured.
    pub maps: Maps,
    /// `memSeries` with `[]Label` labels.
    pub mem_series_slice: u64,
    /// `memSeries` with single-string labels.
    pub mem_series_string: u64,
    /// `txRing` (isolation) per series after replay.
    pub tx_ring: u64,
    /// Measured: scrape-side bytes per active series besides its text (scrape cache entry and
    /// its map slot, the current/previous series maps, body and append buffers, txRing ids).
    pub scrape_base: u64,
    /// `memChunk`.
    pub mem_chunk: u64,
    /// Value size in the series-by-hash map (a slice in 2.42, a pointer later).
    pub hash_value: u64,
    /// The one-element slice behind that value (2.42).
    pub hash_value_alloc: u64,
    /// Postings lists grow by `appendWithExponentialGrowth` (3.x) instead of `append`.
    pub exp_postings: bool,
    /// `MemPostings.lvs`: a slice of values per label name (3.x).
    pub label_values_index: bool,
    /// Head chunk cutting.
    pub rules: ChunkRules,
    /// GOGC during replay.
    pub gogc_replay: u32,
    /// GOGC once the configuration is loaded.
    pub gogc_steady: u32,
    /// GOMEMLIMIT set to 90% of the container limit by default.
    pub auto_memlimit: bool,
    /// Measured: live heap of an empty Prometheus (after GC).
    pub base_heap_alloc: u64,
    /// Measured: heap in use of an empty Prometheus (after GC).
    pub base_heap_inuse: u64,
    /// Measured: resident file pages (the binary) after start.
    pub rss_file: u64,
    /// Fitted: anonymous memory that is not heap (stacks, GC metadata, runtime).
    pub non_heap: u64,
    /// Fitted: heap in use per byte of live heap after a GC (size-class and span slack).
    pub inuse_per_live: f64,
    /// Fitted: resident anonymous bytes per byte of the simulated heap peak (size-class and
    /// span slack, spans freed but not yet returned to the OS).
    pub peak_slack: f64,
    /// Fitted: sample batches alive per replay worker at most (its input channel holds 300, its
    /// reuse channel 300 more; with the input full the reuse channel stays nearly empty).
    pub in_flight_per_worker: f64,
    /// `Decoder.Samples` sizes its slice from the record's length (2.53 and later) instead of
    /// growing it by `append` (2.42).
    pub decode_presized: bool,
}

/// Knobs of one estimate.
#[derive(Clone, Debug, Serialize)]
pub struct ModelOptions {
    /// Version family.
    pub family: Family,
    /// Label layout (default: the family's).
    pub labels: LabelLayout,
    /// GOGC during replay and after (default: the family's).
    pub gogc_replay: u32,
    /// GOGC after start.
    pub gogc_steady: u32,
    /// GOMEMLIMIT in bytes, if Prometheus runs with one (3.x sets 90% of the container limit).
    pub gomemlimit: Option<u64>,
    /// GOMAXPROCS of Prometheus: its replay runs this many workers.
    pub cpus: u32,
    /// Head window for the steady state, hours (3: the head grows to 1.5 chunk ranges before
    /// it is compacted).
    pub head_window_hours: f64,
    /// Exemplar storage size, if `--enable-feature=exemplar-storage` (default 100000).
    pub exemplar_storage: Option<u64>,
    /// Count scrape-side state (scrape caches) in the steady state. True by default; off to
    /// compare with a Prometheus that only replayed.
    pub scraping: bool,
}

impl ModelOptions {
    /// Defaults for a family on this machine.
    pub fn new(family: Family, cpus: u32) -> ModelOptions {
        let p = family.params();
        ModelOptions {
            family,
            labels: p.default_labels,
            gogc_replay: p.gogc_replay,
            gogc_steady: p.gogc_steady,
            gomemlimit: None,
            cpus: cpus.max(1),
            head_window_hours: 3.0,
            exemplar_storage: None,
            scraping: true,
        }
    }
}

/// When a term is held.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Live after replay (and in steady state, scaled).
    Head,
    /// Only during replay.
    Replay,
    /// Only while scraping.
    Scrape,
}

/// One term of the model.
#[derive(Clone, Debug, Serialize)]
pub struct Term {
    /// Short name.
    pub name: &'static str,
    /// Bytes.
    pub bytes: u64,
    /// When it is held.
    pub phase: Phase,
    /// How it is computed.
    pub formula: String,
}

/// The estimate.
#[derive(Clone, Debug, Serialize)]
pub struct Estimate {
    /// Options used.
    pub options: ModelOptions,
    /// Constants used.
    pub params: Params,
    /// Terms, head first.
    pub terms: Vec<Term>,
    /// Live heap of the head after replay, above an empty Prometheus.
    pub head_live_bytes: u64,
    /// Peak of replay's in-flight sample batches.
    pub replay_in_flight_bytes: u64,
    /// The simulated garbage collection of the replay (see [`simulate_replay_gc`]).
    pub replay_gc: ReplayGc,
    /// Live heap after replay (empty Prometheus + head).
    pub post_replay_live_heap_bytes: u64,
    /// `go_memstats_heap_inuse_bytes` after replay once a GC ran.
    pub post_replay_heap_inuse_bytes: u64,
    /// Peak RSS during replay (VmHWM when Prometheus becomes ready).
    pub replay_peak_rss_bytes: u64,
    /// Low end of the range of that peak.
    pub replay_peak_rss_low_bytes: u64,
    /// High end of the range: what the verdict is taken on.
    pub replay_peak_rss_high_bytes: u64,
    /// Inputs outside what the calibration measured (the range is wider then).
    pub outside_calibration: Vec<OutsideCalibration>,
    /// GOMEMLIMIT holds the upper end of the range down: the GC works hard to stay under it.
    pub gomemlimit_bound: bool,
    /// Anonymous part of that peak.
    pub replay_peak_anon_bytes: u64,
    /// Lowest RSS replay can get by with: the live set without GC headroom.
    pub replay_floor_rss_bytes: u64,
    /// Heap in use after a GC once scraping resumes after replay: the replayed head plus the
    /// scrape state of the active series.
    pub scraping_heap_inuse_bytes: u64,
    /// Series in the head in steady state (active + churn over the head window).
    pub steady_series: u64,
    /// Live heap in steady state, scrape caches included.
    pub steady_live_heap_bytes: u64,
    /// Heap in use in steady state after a GC.
    pub steady_heap_inuse_bytes: u64,
    /// RSS in steady state just before a GC (heap at the GC goal).
    pub steady_peak_rss_bytes: u64,
}

fn mb(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / 1048576.0)
}

/// The bytes a replay holds in flight: decoded sample batches on their way to the `cpus`
/// workers, and the decoded records they are cut from. Each worker has an input channel of 300
/// batches and keeps up to 300 processed ones for reuse (`walSubsetProcessor`); a record is cut
/// into chunks of at most 5000 samples, each split by series over the workers. The decoder runs
/// up to 10 records ahead (`decoded` channel), plus the one it decodes and the one being split.
pub fn in_flight(inputs: &Inputs, opts: &ModelOptions) -> u64 {
    in_flight_parts(inputs, opts).live_bytes()
}

/// The parts of [`in_flight`].
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct InFlight {
    /// Bytes of the largest batch (24 B per sample, grown by `append` from nil).
    pub batch_bytes: u64,
    /// Bytes the `append`s that grew it dropped on the way.
    pub batch_garbage: u64,
    /// Batches the WAL makes (records x chunks of 5000 x workers).
    pub batches: f64,
    /// Batches alive at once: all of them, up to [`Params::in_flight_per_worker`] per worker.
    pub alive: f64,
    /// Decoded records alive at once, bytes.
    pub decoded_bytes: u64,
    /// Garbage of decoding them into fresh slices: 2.42 grows each by `append` from an empty
    /// pooled slice; 2.53 and 3.x make it once at `len(record) / 10` samples.
    pub decoded_garbage: u64,
}

impl InFlight {
    /// Live bytes.
    pub fn live_bytes(&self) -> u64 {
        (self.alive * self.batch_bytes as f64) as u64 + self.decoded_bytes
    }
    /// Garbage made while they were allocated (fresh batches and records).
    pub fn garbage_bytes(&self) -> u64 {
        (self.alive * self.batch_garbage as f64) as u64 + self.decoded_garbage
    }
}

/// Batches and decoded records alive at once during replay (see [`in_flight`]).
pub fn in_flight_parts(inputs: &Inputs, opts: &ModelOptions) -> InFlight {
    let records = inputs.sample_records;
    if records == 0 {
        return InFlight::default();
    }
    let p = opts.family.params();
    let c = opts.cpus.max(1) as f64;
    let samples = inputs.float_samples + inputs.histogram_samples;
    let per_record = samples as f64 / records as f64;
    let full = (per_record / 5000.0).floor();
    let rem = per_record - full * 5000.0;
    let largest = if full >= 1.0 { 5000.0 / c } else { rem / c };
    let batches_per_record = full + if rem >= 1.0 { 1.0 } else { 0.0 };
    let largest = largest.ceil().max(1.0) as u64;
    let batch = golang::append_bytes(largest, 24);
    let total = records as f64 * batches_per_record * c;
    let alive = total.min(p.in_flight_per_worker * c);
    let n = per_record.ceil() as u64;
    let fresh = records.min(DECODED_ALIVE);
    let (decoded, decoded_garbage) = if p.decode_presized {
        (fresh * golang::alloc(n * 24), 0)
    } else {
        (
            fresh * golang::append_bytes(n, 24),
            fresh * golang::append_garbage(n, 24),
        )
    };
    InFlight {
        batch_bytes: batch,
        batch_garbage: golang::append_garbage(largest, 24),
        batches: total,
        alive,
        decoded_bytes: decoded,
        decoded_garbage,
    }
}

/// Decoded records alive at once: the `decoded` channel of 10, the one being decoded and the one
/// being split; each comes from a pool that starts empty.
pub const DECODED_ALIVE: u64 = 12;

/// The head and replay terms for these inputs.
fn head_terms(inputs: &Inputs, opts: &ModelOptions) -> Vec<Term> {
    let p = opts.family.params();
    let s = inputs.series;
    let mut terms = Vec::new();
    let mut add = |name, bytes: u64, phase, formula: String| {
        terms.push(Term {
            name,
            bytes,
            phase,
            formula,
        })
    };

    let ms = match opts.labels {
        LabelLayout::Slice => p.mem_series_slice,
        LabelLayout::String => p.mem_series_string,
    };
    add(
        "series",
        s * (ms + p.tx_ring),
        Phase::Head,
        format!("{s} series x (memSeries {ms} + txRing {})", p.tx_ring),
    );
    let labels = match opts.labels {
        LabelLayout::Slice => inputs.labels_heap_slice,
        LabelLayout::String => inputs.labels_heap_string,
    };
    add(
        "labels",
        labels,
        Phase::Head,
        match opts.labels {
            LabelLayout::Slice => format!(
                "{} labels: []Label of 32 B each + a string per name and value ({} B of text), size classes and tiny allocator",
                inputs.labels, inputs.label_bytes
            ),
            LabelLayout::String => format!(
                "one string per series: {} B of text + length bytes, size classes",
                inputs.label_bytes
            ),
        },
    );
    // stripeSeries: 16384 stripes, each a map by ref and a map by label hash.
    let stripes = 16384f64;
    let per_stripe = s as f64 / stripes;
    let maps = stripes
        * golang::poisson_expect(per_stripe, |k| {
            (golang::map_bytes(p.maps, k, 8, 8) + golang::map_bytes(p.maps, k, 8, p.hash_value))
                as f64
        });
    add(
        "series_index",
        maps as u64 + s * p.hash_value_alloc,
        Phase::Head,
        format!(
            "16384 stripes x 2 maps ({:?}), {per_stripe:.1} series per stripe{}",
            p.maps,
            if p.hash_value_alloc > 0 {
                " + a 1-element slice per series"
            } else {
                ""
            }
        ),
    );
    let list = |n: u64| {
        if p.exp_postings {
            golang::exp_growth_bytes(n, 8)
        } else {
            golang::append_bytes(n, 8)
        }
    };
    let mut lists = list(s);
    for (&len, &pairs) in &inputs.postings_lengths {
        lists += pairs * list(len);
    }
    add(
        "postings_lists",
        lists,
        Phase::Head,
        format!(
            "{} postings lists (one per label pair, plus all-series) of 8 B refs, {} growth",
            inputs.label_pairs + 1,
            if p.exp_postings { "2n+1" } else { "append" }
        ),
    );
    let mut pmaps = 0;
    for (&values, &names) in &inputs.values_per_name {
        let mut b = golang::map_bytes(p.maps, values, 16, 24);
        if p.label_values_index {
            b += golang::exp_growth_bytes(values, 16);
        }
        pmaps += names * b;
    }
    add(
        "postings_maps",
        pmaps,
        Phase::Head,
        format!(
            "{} label names: map value -> postings list{}",
            inputs.label_names,
            if p.label_values_index {
                " + values slice"
            } else {
                ""
            }
        ),
    );
    let mut chunk_bytes = 0;
    for (&len, &n) in &inputs.open_chunk_lengths {
        let cap = if len <= 128 { 128 } else { grow_from(128, len) };
        chunk_bytes += n * golang::alloc(cap);
    }
    // memChunk + XORChunk (32) + xorAppender (48).
    let structs = inputs.open_chunks * (p.mem_chunk + 32 + 48);
    add(
        "head_chunks",
        chunk_bytes + structs,
        Phase::Head,
        format!(
            "{} open chunks: bytes as XOR-encoded (from 128 B, grown by append) + memChunk {} + XORChunk 32 + appender 48",
            inputs.open_chunks, p.mem_chunk
        ),
    );
    let mut mm = inputs.mmapped_chunks * 32;
    for (&count, &n) in &inputs.mmapped_per_series {
        mm += n * golang::append_bytes(count, 8);
    }
    if inputs.mmapped_chunks > 0 {
        mm += 4 << 20;
    }
    add(
        "mmapped_chunks",
        mm,
        Phase::Head,
        format!(
            "{} chunks cut and m-mapped on replay: mmappedChunk 32 B + pointer slice; 4 MiB chunk write buffer",
            inputs.mmapped_chunks
        ),
    );
    if inputs.histogram_series > 0 {
        // Rough: an open histogram chunk per series, up to 1 KiB, and the last histogram kept.
        let avg = inputs.histogram_body_bytes / inputs.histogram_samples.max(1);
        let per_series_samples = inputs.histogram_samples / inputs.histogram_series.max(1);
        let chunk = golang::alloc((avg / 2 * per_series_samples.min(120)).clamp(128, 1024));
        let last = golang::alloc(112) + golang::alloc(avg * 2);
        add(
            "histograms",
            inputs.histogram_series * (chunk + last + p.mem_chunk + 32 + 48),
            Phase::Head,
            format!(
                "{} histogram series: open chunk ~{chunk} B + last histogram ~{last} B (rough, not calibrated)",
                inputs.histogram_series
            ),
        );
    }
    if inputs.metadata_series > 0 {
        let avg = inputs.metadata_bytes / inputs.metadata.max(1);
        add(
            "metadata",
            inputs.metadata_series * (48 + golang::alloc(avg)),
            Phase::Head,
            format!(
                "{} series with metadata: Metadata 48 B + help/unit ~{avg} B",
                inputs.metadata_series
            ),
        );
    }
    if let Some(per) = inputs.wbl_samples.checked_div(inputs.wbl_series) {
        let per = per.min(32);
        add(
            "out_of_order",
            inputs.wbl_series * (64 + golang::alloc(per * 32)),
            Phase::Head,
            format!(
                "{} series with WBL samples: OOO fields 64 B + up to 32 samples of 32 B (rough)",
                inputs.wbl_series
            ),
        );
    }
    if let Some(n) = opts.exemplar_storage {
        add(
            "exemplars",
            n * 96 + inputs.exemplar_series * 96,
            Phase::Head,
            format!(
                "exemplar storage: {n} entries x ~96 B + index per series with exemplars ({})",
                inputs.exemplar_series
            ),
        );
    }
    let in_flight = in_flight(inputs, opts);
    add(
        "replay_in_flight",
        in_flight,
        Phase::Replay,
        format!(
            "up to {:.0} sample batches per replay worker x {} (of 300 queued + 300 kept for reuse; records cut at 5000 samples, split by series) + 12 decoded records",
            p.in_flight_per_worker,
            opts.cpus
        ),
    );
    if inputs.duplicate_refs > 0 {
        add(
            "replay_duplicate_refs",
            inputs.duplicate_refs * 40,
            Phase::Replay,
            format!(
                "{} duplicate refs in the multiRef map",
                inputs.duplicate_refs
            ),
        );
    }
    terms
}

/// The inputs of a head holding `k` times the series of these, every series like the average
/// one: series, labels, chunks and postings entries scale; the stripe maps and the fixed chunk
/// write buffer are recomputed from the scaled counts rather than scaled.
fn scaled(inputs: &Inputs, k: f64) -> Inputs {
    let m = |v: u64| (v as f64 * k).round() as u64;
    let hist =
        |h: &std::collections::BTreeMap<u64, u64>| h.iter().map(|(&len, &n)| (len, m(n))).collect();
    let mut o = inputs.clone();
    o.series = m(inputs.series);
    o.labels = m(inputs.labels);
    o.label_bytes = m(inputs.label_bytes);
    o.labels_heap_slice = m(inputs.labels_heap_slice);
    o.labels_heap_string = m(inputs.labels_heap_string);
    o.label_pairs = m(inputs.label_pairs);
    o.postings_lengths = hist(&inputs.postings_lengths);
    o.values_per_name = inputs
        .values_per_name
        .iter()
        .map(|(&values, &names)| (m(values).max(1), names))
        .collect();
    o.open_chunks = m(inputs.open_chunks);
    o.open_chunk_lengths = hist(&inputs.open_chunk_lengths);
    o.mmapped_chunks = m(inputs.mmapped_chunks);
    o.mmapped_per_series = hist(&inputs.mmapped_per_series);
    for v in [
        &mut o.histogram_series,
        &mut o.metadata_series,
        &mut o.wbl_series,
        &mut o.exemplar_series,
    ] {
        *v = (*v as f64 * k).round() as u64;
    }
    o
}

/// What the simulated garbage collector did during replay.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct ReplayGc {
    /// Bytes allocated during replay (live at the end or not).
    pub allocated_bytes: u64,
    /// Of those, garbage: chunk streams outgrown or m-mapped, postings lists and maps outgrown.
    pub garbage_bytes: u64,
    /// Live heap at the end of replay (in-flight batches included).
    pub live_end_bytes: u64,
    /// Highest heap (live + garbage not yet collected) the simulation reached, averaged over
    /// [`GC_PHASES`] phases of the collector's cycle at the start of replay.
    pub peak_heap: u64,
    /// The lowest of those phases' peaks.
    pub peak_heap_low: u64,
    /// The highest.
    pub peak_heap_high: u64,
    /// Collections run (first phase).
    pub cycles: u64,
}

/// Phases of the collector's cycle tried: where in its cycle the collector is when replay starts
/// is not known (start-up allocates before replay; the pacer's trigger varies), and where the last
/// cycles fall decides how much garbage the peak holds.
pub const GC_PHASES: u32 = 8;

/// Garbage the series structures leave while they grow: postings lists outgrown by `append`
/// (2.x) or `appendWithExponentialGrowth` (3.x), and the stripe maps' old bucket arrays
/// (about half their final size: a map doubles).
fn series_garbage(inputs: &Inputs, p: &Params, index_bytes: u64) -> u64 {
    let garbage = |n: u64| {
        if p.exp_postings {
            golang::exp_growth_garbage(n, 8)
        } else {
            golang::append_garbage(n, 8)
        }
    };
    let mut g = garbage(inputs.series);
    for (&len, &pairs) in &inputs.postings_lengths {
        g += pairs * garbage(len);
    }
    g + index_bytes / 2
}

/// Go's collector over the replay, on the allocation timeline of the WAL
/// ([`Inputs::timeline`]). Live at a point: the empty Prometheus, the in-flight batches, the
/// series structures of the series created so far, the open chunks' streams and structs.
/// Allocated: the same plus every chunk stream outgrown or m-mapped and the series structures'
/// growth garbage. A cycle starts when the heap (live at the last mark + allocated since)
/// reaches the goal `live at the last mark x (1 + GOGC/100)` (at least 4 MiB x GOGC/100,
/// `runtime/mgcpacer.go` `heapMinimum`); it marks what is live then. The peak is the highest
/// heap reached: at a goal, or at the end.
pub fn simulate_replay_gc(
    inputs: &Inputs,
    opts: &ModelOptions,
    terms: &[Term],
    in_flight: u64,
) -> ReplayGc {
    let p = opts.family.params();
    let t = in_flight as f64;
    let t_garbage = in_flight_parts(inputs, opts).garbage_bytes() as f64;
    // The decoder and the loop that feeds the workers run ahead of them: the in-flight batches
    // and records are allocated (with the garbage of growing them) before the workers add much
    // to the head, and stay until the end.
    let mut points = vec![(t, t + t_garbage)];
    points.extend(
        replay_points(inputs, opts, terms)
            .into_iter()
            .map(|(l, a)| (l + t, a + t + t_garbage)),
    );
    gc_over(&points, p.base_heap_alloc as f64, opts.gogc_replay)
}

/// (live, allocated) bytes of the head at each point of [`Inputs::timeline`], without the empty
/// Prometheus and the in-flight batches (see [`simulate_replay_gc`]).
pub fn replay_points(inputs: &Inputs, opts: &ModelOptions, terms: &[Term]) -> Vec<(f64, f64)> {
    let p = opts.family.params();
    let term = |n: &str| terms.iter().find(|t| t.name == n).map_or(0, |t| t.bytes);
    let head: u64 = terms
        .iter()
        .filter(|t| t.phase == Phase::Head)
        .map(|t| t.bytes)
        .sum();
    let replay_only: u64 = terms
        .iter()
        .filter(|t| t.phase == Phase::Replay && t.name != "replay_in_flight")
        .map(|t| t.bytes)
        .sum();
    let chunk_struct = (p.mem_chunk + 32 + 48) as f64;
    let chunks = term("head_chunks") + term("mmapped_chunks");
    // Everything of the head that is not float chunks is created with the series.
    let per_series_total = (head + replay_only).saturating_sub(chunks) as f64;
    let garbage_series = series_garbage(inputs, &p, term("series_index")) as f64;
    let s_total = inputs.series.max(1) as f64;
    let write_buffer = (4u64 << 20) as f64;
    let mut points: Vec<(f64, f64)> = inputs
        .timeline
        .iter()
        .map(|q| {
            let frac = q.series as f64 / s_total;
            let mm = q.chunks_created.saturating_sub(q.open_chunks) as f64;
            let mmapped = if mm > 0.0 {
                mm * 40.0 + write_buffer
            } else {
                0.0
            };
            let live = per_series_total * frac
                + q.chunk_live_bytes as f64
                + q.open_chunks as f64 * chunk_struct
                + mmapped;
            let alloc = (per_series_total + garbage_series) * frac
                + q.chunk_alloc_bytes as f64
                + q.chunks_created as f64 * chunk_struct
                + mmapped;
            (live, alloc)
        })
        .collect();
    if points.is_empty() {
        // No samples: the series structures only.
        points.push((per_series_total, per_series_total + garbage_series));
    }
    points
}

/// Go's pacer over a run of (live, allocated) points, on top of `base` live bytes, for every
/// phase of [`GC_PHASES`].
pub fn gc_over(points: &[(f64, f64)], base: f64, gogc: u32) -> ReplayGc {
    let runs: Vec<ReplayGc> = (0..GC_PHASES)
        .map(|u| gc_phase(points, base, gogc, u as f64 / GC_PHASES as f64))
        .collect();
    let mut out = runs[0];
    out.peak_heap = runs.iter().map(|r| r.peak_heap).sum::<u64>() / GC_PHASES as u64;
    out.peak_heap_low = runs.iter().map(|r| r.peak_heap).min().unwrap_or(0);
    out.peak_heap_high = runs.iter().map(|r| r.peak_heap).max().unwrap_or(0);
    out
}

/// One run of the pacer: the first goal is `(1 + GOGC/100)^phase` times the usual one.
fn gc_phase(points: &[(f64, f64)], base: f64, gogc: u32, phase: f64) -> ReplayGc {
    let g = gogc as f64 / 100.0;
    let min_goal = 4.0 * 1048576.0 * g;
    let goal_of = |marked: f64| (marked * (1.0 + g)).max(min_goal);
    let mut prev = (base, base);
    let mut marked = base;
    let mut a_gc = base;
    let mut goal = goal_of(marked) * (1.0 + g).powf(phase);
    let mut peak = base;
    let mut cycles = 0u64;
    for &(l, a) in points {
        let (live, alloc) = (base + l, base + a);
        while marked + (alloc - a_gc) >= goal && alloc > prev.1 && cycles < 100_000 {
            // The heap reaches the goal inside this step: a cycle marks what is live there.
            let f = ((goal - marked + a_gc - prev.1) / (alloc - prev.1)).clamp(0.0, 1.0);
            let l = prev.0 + f * (live - prev.0);
            let a = prev.1 + f * (alloc - prev.1);
            peak = peak.max(goal);
            cycles += 1;
            marked = l;
            a_gc = a;
            goal = goal_of(marked);
            prev = (l, a);
        }
        prev = (live, alloc);
    }
    let (live_end, alloc_end) = prev;
    peak = peak.max(marked + (alloc_end - a_gc));
    ReplayGc {
        allocated_bytes: alloc_end as u64,
        garbage_bytes: (alloc_end - live_end).max(0.0) as u64,
        live_end_bytes: live_end as u64,
        peak_heap: peak as u64,
        peak_heap_low: peak as u64,
        peak_heap_high: peak as u64,
        cycles,
    }
}

/// Relative error of the replay peak on the calibration set that the range adds on either side
/// of the collector's phases (docs/estimate-model.md, Calibration).
pub const RANGE_MARGIN: f64 = 0.12;

/// The largest inputs the calibration measured (testdata/memory/measurements.jsonl).
pub mod calibrated {
    /// Series created on replay.
    pub const SERIES: u64 = 600_020;
    /// Samples in one record: one scrape of one target, so the series per target.
    pub const SAMPLES_PER_RECORD: u64 = 100_000;
    /// GOMAXPROCS of the Prometheus measured.
    pub const CPUS: u32 = 2;
    /// Span of the WAL, hours.
    pub const SPAN_HOURS: f64 = 2.9;
}

/// One input outside what the calibration measured.
#[derive(Clone, Debug, Serialize)]
pub struct OutsideCalibration {
    /// Which input.
    pub input: &'static str,
    /// Its value here.
    pub value: f64,
    /// The largest value measured (0: none measured).
    pub calibrated_max: f64,
}

/// The inputs of this estimate that are beyond the calibration's.
pub fn outside_calibration(inputs: &Inputs, opts: &ModelOptions) -> Vec<OutsideCalibration> {
    let mut out = Vec::new();
    let mut check = |input, value: f64, max: f64| {
        if value > max {
            out.push(OutsideCalibration {
                input,
                value,
                calibrated_max: max,
            });
        }
    };
    check("series", inputs.series as f64, calibrated::SERIES as f64);
    check(
        "samples_per_record (series per target)",
        inputs.max_record_samples as f64,
        calibrated::SAMPLES_PER_RECORD as f64,
    );
    check("cpus", opts.cpus as f64, calibrated::CPUS as f64);
    check("span_hours", inputs.span_hours, calibrated::SPAN_HOURS);
    check(
        "native_histogram_samples",
        inputs.histogram_samples as f64,
        0.0,
    );
    check("wbl_samples", inputs.wbl_samples as f64, 0.0);
    check("exemplars", inputs.exemplars as f64, 0.0);
    out
}

/// Runs the model on the inputs.
pub fn estimate(inputs: &Inputs, opts: &ModelOptions) -> Estimate {
    let p = opts.family.params();
    let s = inputs.series;
    let mut terms = head_terms(inputs, opts);
    let in_flight = in_flight(inputs, opts);
    let head: u64 = terms
        .iter()
        .filter(|t| t.phase == Phase::Head)
        .map(|t| t.bytes)
        .sum();
    let replay_only: u64 = terms
        .iter()
        .filter(|t| t.phase == Phase::Replay && t.name != "replay_in_flight")
        .map(|t| t.bytes)
        .sum();

    let base = p.base_heap_alloc;
    let sim = simulate_replay_gc(inputs, opts, &terms, in_flight);
    let floor_heap = (base + head + replay_only + in_flight) as f64;
    let cap = |heap: f64| -> f64 {
        match opts.gomemlimit {
            // The GC works to keep the heap under GOMEMLIMIT, but never below the live set.
            Some(lim) => heap.min((lim.saturating_sub(p.non_heap) as f64).max(floor_heap)),
            None => heap,
        }
    };
    let peak_heap = cap(sim.peak_heap as f64 * p.peak_slack);
    let outside = outside_calibration(inputs, opts);
    // The range: the collector's phases (lowest and highest peak), widened by the model's error
    // on the calibration set; with inputs outside what was measured, the upper end is at least
    // the pacer's bound: every byte live at the end plus GOGC's headroom on it.
    let g = opts.gogc_replay as f64 / 100.0;
    // The margin applies to the whole RSS (the binary's pages vary from run to run too).
    let fixed = (p.rss_file + p.non_heap) as f64;
    let low_heap =
        cap((fixed + sim.peak_heap_low as f64 * p.peak_slack) * (1.0 - RANGE_MARGIN) - fixed)
            .max(0.0);
    let mut high_heap =
        (fixed + sim.peak_heap_high as f64 * p.peak_slack) * (1.0 + RANGE_MARGIN) - fixed;
    if !outside.is_empty() {
        high_heap = high_heap.max(floor_heap * (1.0 + g) * p.peak_slack);
    }
    // GOMEMLIMIT is a soft limit: the runtime overshoots it by a few percent while it catches up.
    let soft_cap = |heap: f64| -> f64 {
        match opts.gomemlimit {
            Some(lim) => {
                heap.min(((lim as f64 * (1.0 + RANGE_MARGIN)) - p.non_heap as f64).max(floor_heap))
            }
            None => heap,
        }
    };
    let gomemlimit_bound = cap(high_heap) < high_heap;
    let high_heap = soft_cap(high_heap);
    let peak_anon = p.non_heap + peak_heap as u64;
    let post_inuse = p.base_heap_inuse + (head as f64 * p.inuse_per_live) as u64;

    // Steady state: a head of `steady_series` series like the average one seen; active series
    // also carry scrape-side state.
    let steady_series = steady_series(inputs, opts.head_window_hours);
    let scale = if s > 0 {
        steady_series as f64 / s as f64
    } else {
        0.0
    };
    let steady_head: u64 = head_terms(&scaled(inputs, scale), opts)
        .iter()
        .filter(|t| t.phase == Phase::Head)
        .map(|t| t.bytes)
        .sum();
    let avg_label_bytes = inputs.label_bytes.checked_div(s).unwrap_or(0);
    let avg_labels = inputs.labels.checked_div(s).unwrap_or(0);
    // Scrape state: the series text (cache key, body buffers) and a measured per-series rest.
    let scrape_per_series = p.scrape_base + golang::alloc(avg_label_bytes + 4 * avg_labels);
    let scrape = if opts.scraping {
        inputs.active_at_end * scrape_per_series
    } else {
        0
    };
    terms.push(Term {
        name: "scrape_state",
        bytes: scrape,
        phase: Phase::Scrape,
        formula: format!(
            "{} active series x ~{scrape_per_series} B: scrape cache, series text, buffers, txRing ids (measured on one scraping workload)",
            inputs.active_at_end
        ),
    });
    let steady_live = base + steady_head + scrape;
    let steady_inuse =
        p.base_heap_inuse + ((steady_head + scrape) as f64 * p.inuse_per_live) as u64;
    // Scraping keeps allocating: the heap climbs to the GC goal before every cycle.
    // Heap in use (spans) is what is resident, and the live heap sits in those spans: the peak
    // is never below it, GOMEMLIMIT or not.
    let steady_heap_peak = steady_heap_peak(
        steady_live,
        steady_inuse,
        opts.gogc_steady,
        opts.gomemlimit,
        p.non_heap,
    );
    Estimate {
        options: opts.clone(),
        params: p,
        terms,
        head_live_bytes: head,
        replay_in_flight_bytes: in_flight,
        replay_gc: sim,
        post_replay_live_heap_bytes: base + head,
        post_replay_heap_inuse_bytes: post_inuse,
        replay_peak_rss_bytes: p.rss_file + peak_anon,
        replay_peak_rss_low_bytes: p.rss_file + p.non_heap + low_heap as u64,
        replay_peak_rss_high_bytes: (p.rss_file + p.non_heap + high_heap as u64)
            .max(p.rss_file + peak_anon),
        outside_calibration: outside,
        gomemlimit_bound,
        replay_peak_anon_bytes: peak_anon,
        replay_floor_rss_bytes: p.rss_file + p.non_heap + floor_heap as u64,
        scraping_heap_inuse_bytes: p.base_heap_inuse
            + ((head + scrape) as f64 * p.inuse_per_live) as u64,
        steady_series,
        steady_live_heap_bytes: steady_live,
        steady_heap_inuse_bytes: steady_inuse,
        steady_peak_rss_bytes: p.rss_file + p.non_heap + steady_heap_peak as u64,
    }
}

/// Steady-state heap just before a GC: the live heap at the GC goal, capped by GOMEMLIMIT (less
/// the non-heap memory), and never below the heap in use (`inuse`) that holds the live heap.
pub fn steady_heap_peak(
    live: u64,
    inuse: u64,
    gogc: u32,
    gomemlimit: Option<u64>,
    non_heap: u64,
) -> f64 {
    let mut peak = live as f64 * (1.0 + gogc as f64 / 100.0);
    if let Some(lim) = gomemlimit {
        peak = peak.min(lim.saturating_sub(non_heap) as f64);
    }
    peak.max(inuse as f64)
}

/// How much of GOGC's headroom replay uses, relative to GOGC=100: `2g/(1+g)` with `g =
/// GOGC/100` (0.67 at 50, 0.86 at 75, 1 at 100, 1.33 at 200). Replay makes little garbage, so
/// the heap rarely reaches the GC goal and the peak grows slower than GOGC (measured at 50, 75,
/// 100 and 200).
pub fn gc_headroom(gogc: u32) -> f64 {
    let g = gogc as f64 / 100.0;
    2.0 * g / (1.0 + g)
}

/// Series in the head in steady state: the active ones plus those created over the head window
/// at the rate seen in the WAL.
pub fn steady_series(inputs: &Inputs, window_hours: f64) -> u64 {
    inputs.active_at_end + (inputs.created_per_hour * window_hours).round() as u64
}

/// Capacity of a byte slice that starts with capacity `start` and grows by `append` to `len`.
fn grow_from(start: u64, len: u64) -> u64 {
    let mut cap = start;
    while cap < len {
        let double = cap * 2;
        let next = if cap < 256 {
            double
        } else {
            cap + (cap + 3 * 256) / 4
        };
        cap = golang::alloc(next);
    }
    cap
}

/// Human-readable size.
pub fn human(b: u64) -> String {
    mb(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families() {
        assert_eq!(Family::parse("2.42"), Some(Family::V2_42));
        assert_eq!(Family::parse("v2.43.1"), Some(Family::V2_42));
        assert_eq!(Family::parse("2.53.3"), Some(Family::V2_53));
        assert_eq!(Family::parse("2.55"), Some(Family::V2_53));
        assert_eq!(Family::parse("3"), Some(Family::V3_5));
        assert_eq!(Family::parse("3.7.0"), Some(Family::V3_5));
        assert_eq!(Family::parse("1.8"), None);
        assert_eq!(Family::parse("x"), None);
    }

    #[test]
    fn chunk_growth() {
        assert_eq!(grow_from(128, 100), 128);
        assert_eq!(grow_from(128, 200), 256);
        assert_eq!(grow_from(128, 600), 896);
    }
}
