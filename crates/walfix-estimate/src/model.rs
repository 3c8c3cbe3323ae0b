//! The memory model: what each part of Prometheus's head costs, per version family, and what the
//! Go garbage collector makes of it. Every term and constant is described in
//! `docs/estimate-model.md`, with where it comes from.
//!
//! Structure (sizes of Go structs, size classes, slice and map growth) comes from Prometheus's
//! and Go's sources and is computed, not fitted. Five numbers per family are measured or fitted
//! on real Prometheus (`testdata/memory/measurements.jsonl`): the heap and resident file pages of
//! an empty Prometheus, the non-heap anonymous memory, and the two garbage factors of the replay
//! peak.

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
                non_heap: 6_000_000,
                inuse_per_live: 1.105,
                early_factor: 0.90,
                late_factor: 0.34,
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
                non_heap: 10_000_000,
                inuse_per_live: 1.120,
                early_factor: 0.70,
                late_factor: 0.32,
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
                non_heap: 15_000_000,
                inuse_per_live: 1.075,
                early_factor: 0.50,
                late_factor: 0.28,
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
    /// Fitted: early replay peak = (base + in-flight) × (1 + early_factor × headroom), with
    /// headroom = [`gc_headroom`]`(GOGC)`.
    pub early_factor: f64,
    /// Fitted: late replay peak = (base + head) × (1 + late_factor × headroom).
    pub late_factor: f64,
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
    /// Live heap after replay (empty Prometheus + head).
    pub post_replay_live_heap_bytes: u64,
    /// `go_memstats_heap_inuse_bytes` after replay once a GC ran.
    pub post_replay_heap_inuse_bytes: u64,
    /// Peak RSS during replay (VmHWM when Prometheus becomes ready).
    pub replay_peak_rss_bytes: u64,
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
/// workers. Each worker has an input channel of 300 batches and keeps up to 300 processed ones
/// for reuse (`walSubsetProcessor`); a record is cut into chunks of at most 5000 samples, each
/// split by series over the workers. A batch keeps the capacity of the largest it held. Plus the
/// 10 decoded records the decoder may run ahead.
pub fn in_flight(inputs: &Inputs, cpus: u32) -> u64 {
    let records = inputs.sample_records;
    if records == 0 {
        return 0;
    }
    let c = cpus.max(1) as f64;
    let samples = inputs.float_samples + inputs.histogram_samples;
    let per_record = samples as f64 / records as f64;
    let full = (per_record / 5000.0).floor();
    let rem = per_record - full * 5000.0;
    let largest = if full >= 1.0 { 5000.0 / c } else { rem / c };
    let batches_per_record = full + if rem >= 1.0 { 1.0 } else { 0.0 };
    let batch = golang::append_bytes(largest.ceil().max(1.0) as u64, 24);
    let total = records as f64 * batches_per_record * c;
    let alive = total.min(600.0 * c);
    let decoded = 10 * golang::append_bytes(per_record.ceil() as u64, 24);
    (alive * batch as f64) as u64 + decoded
}

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
    let in_flight = in_flight(inputs, opts.cpus);
    add(
        "replay_in_flight",
        in_flight,
        Phase::Replay,
        format!(
            "sample batches of {} replay workers (300 queued + 300 kept for reuse each; records cut at 5000 samples, split by series) + 10 decoded records",
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

/// Runs the model on the inputs.
pub fn estimate(inputs: &Inputs, opts: &ModelOptions) -> Estimate {
    let p = opts.family.params();
    let s = inputs.series;
    let mut terms = head_terms(inputs, opts);
    let in_flight = in_flight(inputs, opts.cpus);
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
    let g_replay = gc_headroom(opts.gogc_replay);
    let early = (base + in_flight) as f64 * (1.0 + p.early_factor * g_replay);
    let late = (base + head + replay_only) as f64 * (1.0 + p.late_factor * g_replay);
    let mut peak_heap = early.max(late);
    let floor_heap = (base + head + replay_only).max(base + in_flight) as f64;
    if let Some(lim) = opts.gomemlimit {
        // The GC works to keep the heap under GOMEMLIMIT, but never below the live set.
        let room = lim.saturating_sub(p.non_heap) as f64;
        peak_heap = peak_heap.min(room.max(floor_heap));
    }
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
    let mut steady_heap_peak = steady_live as f64 * (1.0 + opts.gogc_steady as f64 / 100.0);
    if let Some(lim) = opts.gomemlimit {
        let room = lim.saturating_sub(p.non_heap) as f64;
        steady_heap_peak = steady_heap_peak.min(room.max(steady_live as f64));
    }
    Estimate {
        options: opts.clone(),
        params: p,
        terms,
        head_live_bytes: head,
        replay_in_flight_bytes: in_flight,
        post_replay_live_heap_bytes: base + head,
        post_replay_heap_inuse_bytes: post_inuse,
        replay_peak_rss_bytes: p.rss_file + peak_anon,
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
