//! Our own block reader, used to verify every block before it is renamed into place and by the
//! tests. It checks what Prometheus checks when it opens a block (index magic, version, TOC CRC,
//! symbol table CRC, postings offset table CRC; chunk file magic and version) and what it checks
//! later, at query or compaction time (series and postings CRCs, chunk CRCs, XOR decoding), plus
//! the ordering rules its writer enforces (symbols strictly increasing, label sets strictly
//! increasing, chunk refs non-decreasing, chunks not overlapping, postings sorted and consistent
//! with the series). Memory: the whole postings of the block and one series' samples at a time
//! (test-helper quality; fine for verification, not for huge blocks).

use std::collections::HashMap;
use std::path::Path;

use walfix::mmap::SegmentData;
use walfix_format::crc::crc32c;

use crate::bits::{uvarint, Cursor};
use crate::block::{is_ulid, Meta, CHUNKS_HEADER, INDEX_MAGIC, SERIES_ALIGN, TOC_LEN};
use crate::labels::{hash_labels, sample_digest};
use crate::xor::{self, ENC_XOR};

/// Label pairs as read back.
pub type OwnedLabels = Vec<(Vec<u8>, Vec<u8>)>;

/// What a block holds, from reading all of it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlockSummary {
    /// meta.json.
    pub meta: Option<Meta>,
    /// Series in the index.
    pub series: u64,
    /// Chunks referenced.
    pub chunks: u64,
    /// Samples decoded.
    pub samples: u64,
    /// Sum of [`sample_digest`] over all samples.
    pub digest: u64,
    /// Symbols in the index.
    pub symbols: u64,
    /// Postings lists (the all-postings one included).
    pub postings: u64,
    /// Tombstone intervals: the series' labels, mint, maxt (file order).
    pub tombstones: Vec<(OwnedLabels, i64, i64)>,
}

/// Calls `f` with each (name, value, offset) entry of the postings offset table `body`.
fn postings_table<'a>(
    body: &'a [u8],
    f: &mut dyn FnMut(&'a [u8], &'a [u8], usize) -> Result<(), String>,
) -> Result<(), String> {
    let mut c = Cursor::new(body);
    let n = c.be32().ok_or("postings table: count")?;
    for _ in 0..n {
        if c.uvarint() != Some(2) {
            return err("postings table: key count is not 2");
        }
        let name = c.uvarint_bytes().ok_or("postings table: truncated")?;
        let value = c.uvarint_bytes().ok_or("postings table: truncated")?;
        let off = c.uvarint().ok_or("postings table: truncated")? as usize;
        f(name, value, off)?;
    }
    if c.rest() != 0 {
        return err("postings table: trailing bytes");
    }
    Ok(())
}

/// True if the series entry at `pos` (already checked) has the label `name=value`.
fn series_has(b: &[u8], pos: usize, symbols: &[&[u8]], name: &[u8], value: &[u8]) -> bool {
    let Some((_, n)) = uvarint(&b[pos..]) else {
        return false;
    };
    let mut c = Cursor::new(&b[pos + n..]);
    let Some(nl) = c.uvarint() else {
        return false;
    };
    for _ in 0..nl {
        let (Some(x), Some(y)) = (c.uvarint(), c.uvarint()) else {
            return false;
        };
        if symbols.get(x as usize) == Some(&name) && symbols.get(y as usize) == Some(&value) {
            return true;
        }
    }
    false
}

fn err<T>(what: impl Into<String>) -> Result<T, String> {
    Err(what.into())
}

fn section<'a>(b: &'a [u8], off: usize, what: &str) -> Result<&'a [u8], String> {
    // `len u32 | body | crc32c(body)`.
    let len = b
        .get(off..off + 4)
        .map(|x| u32::from_be_bytes(x.try_into().unwrap()) as usize)
        .ok_or_else(|| format!("{what}: length past the end"))?;
    let body = b
        .get(off + 4..off + 4 + len)
        .ok_or_else(|| format!("{what}: body past the end"))?;
    let crc = b
        .get(off + 4 + len..off + 8 + len)
        .ok_or_else(|| format!("{what}: CRC past the end"))?;
    if crc32c(body).to_be_bytes() != crc {
        return err(format!("{what}: CRC mismatch"));
    }
    Ok(body)
}

/// Reads and checks the block in `dir`; calls `each` once per series in index order with its
/// labels and its samples `(t, value bits)`.
pub fn read_block(
    dir: &Path,
    mut each: impl FnMut(&OwnedLabels, &[(i64, u64)]),
) -> Result<BlockSummary, String> {
    let mut out = BlockSummary::default();
    let meta_text = std::fs::read(dir.join("meta.json")).map_err(|e| format!("meta.json: {e}"))?;
    let meta: Meta = serde_json::from_slice(&meta_text).map_err(|e| format!("meta.json: {e}"))?;
    if meta.version != 1 {
        return err("meta.json: version is not 1");
    }
    if !is_ulid(&meta.ulid) {
        return err("meta.json: ulid is not a ULID");
    }
    if meta.min_time >= meta.max_time {
        return err("meta.json: minTime >= maxTime");
    }
    let ts = std::fs::read(dir.join("tombstones")).map_err(|e| format!("tombstones: {e}"))?;
    if ts.len() < 9 || ts[..5] != [0x01, 0x30, 0xBA, 0x30, 0x01] {
        return err("tombstones: bad header");
    }
    let stones = &ts[5..ts.len() - 4];
    if crc32c(stones).to_be_bytes() != ts[ts.len() - 4..] {
        return err("tombstones: CRC mismatch");
    }
    let mut c = Cursor::new(stones);
    let mut stone_list: Vec<(u32, i64, i64)> = Vec::new();
    while c.rest() > 0 {
        let r = c.uvarint().ok_or("tombstones: truncated")?;
        let mint = c.varint().ok_or("tombstones: truncated")?;
        let maxt = c.varint().ok_or("tombstones: truncated")?;
        let r = u32::try_from(r).map_err(|_| "tombstones: ref beyond u32")?;
        if mint > maxt {
            return err("tombstones: mint > maxt");
        }
        stone_list.push((r, mint, maxt));
    }
    let mut stone_labels: HashMap<u32, OwnedLabels> =
        stone_list.iter().map(|t| (t.0, Vec::new())).collect();

    // Chunk files: numeric names, sorted; ref file index = position in that order.
    let mut files: Vec<(u64, std::path::PathBuf)> = Vec::new();
    for e in std::fs::read_dir(dir.join("chunks")).map_err(|e| format!("chunks/: {e}"))? {
        let e = e.map_err(|e| format!("chunks/: {e}"))?;
        if let Some(n) = e.file_name().to_str().and_then(|s| s.parse::<u64>().ok()) {
            files.push((n, e.path()));
        }
    }
    files.sort();
    let mut segs = Vec::new();
    for (i, (n, p)) in files.iter().enumerate() {
        if *n != i as u64 + 1 {
            return err(format!("chunks/: files not numbered 1..: {n}"));
        }
        let d = SegmentData::open(p).map_err(|e| format!("{}: {e}", p.display()))?;
        if d.len() < 8 || d[..8] != CHUNKS_HEADER {
            return err(format!("{}: bad chunk file header", p.display()));
        }
        segs.push(d);
    }

    let data = SegmentData::open(&dir.join("index")).map_err(|e| format!("index: {e}"))?;
    let b: &[u8] = &data;
    if b.len() < 5 + TOC_LEN || b[..4] != INDEX_MAGIC.to_be_bytes() || b[4] != 2 {
        return err("index: bad magic or version");
    }
    let toc = &b[b.len() - TOC_LEN..];
    if crc32c(&toc[..48]).to_be_bytes() != toc[48..] {
        return err("index: TOC CRC mismatch");
    }
    let t = |i: usize| u64::from_be_bytes(toc[i * 8..i * 8 + 8].try_into().unwrap()) as usize;
    let (symbols_off, series_off, postings_table_off) = (t(0), t(1), t(5));

    // Symbols.
    let body = section(b, symbols_off, "symbols")?;
    let mut c = Cursor::new(body);
    let n = c.be32().ok_or("symbols: count")? as usize;
    let mut symbols: Vec<&[u8]> = Vec::with_capacity(n.min(body.len()));
    for _ in 0..n {
        let s = c.uvarint_bytes().ok_or("symbols: truncated")?;
        if symbols.last().is_some_and(|l| *l >= s) {
            return err("symbols: not strictly increasing");
        }
        symbols.push(s);
    }
    if c.rest() != 0 {
        return err("symbols: trailing bytes");
    }
    out.symbols = n as u64;
    if series_off != symbols_off + 4 + body.len() + 4 {
        return err("TOC: series offset is not the end of the symbol table");
    }

    // Postings offset table: sorted keys, the all-postings key first. The lists are checked
    // after the series, one at a time (no table or list is held in memory).
    let table_body = section(b, postings_table_off, "postings offset table")?;
    let mut prev_key: Option<(&[u8], &[u8])> = None;
    let mut end = postings_table_off;
    let mut first_key = None;
    postings_table(table_body, &mut |name, value, off| {
        if prev_key.is_some_and(|p| p >= (name, value)) {
            return err("postings table: keys not sorted");
        }
        if first_key.is_none() {
            first_key = Some((name, value));
        }
        prev_key = Some((name, value));
        end = end.min(off);
        out.postings += 1;
        Ok(())
    })?;
    if first_key != Some((b"".as_slice(), b"".as_slice())) {
        return err("postings table: no all-postings key first");
    }

    // Series, from the first 16-byte boundary after the symbols up to the first postings list.
    let mut pos = series_off;
    let mut pairs_total = 0u64;
    let mut all = Vec::new();
    let mut prev_labels: Option<Vec<(&[u8], &[u8])>> = None;
    let mut last_ref = 0u64;
    let mut samples: Vec<(i64, u64)> = Vec::new();
    loop {
        // Zero padding (a series entry starts with its non-zero length).
        while pos < end && b[pos] == 0 {
            pos += 1;
        }
        if pos >= end {
            break;
        }
        if pos % SERIES_ALIGN as usize != 0 {
            return err(format!("series at {pos} not 16-byte aligned"));
        }
        let sref = (pos / SERIES_ALIGN as usize) as u32;
        let (len, n) = uvarint(&b[pos..end]).ok_or("series: length")?;
        let body = b
            .get(pos + n..pos + n + len as usize)
            .ok_or("series: past the end")?;
        let crc = b
            .get(pos + n + len as usize..pos + n + len as usize + 4)
            .ok_or("series: CRC past the end")?;
        if crc32c(body).to_be_bytes() != crc {
            return err(format!("series {sref}: CRC mismatch"));
        }
        pos += n + len as usize + 4;
        let mut c = Cursor::new(body);
        let nl = c.uvarint().ok_or("series: labels")? as usize;
        let mut labels: Vec<(&[u8], &[u8])> = Vec::with_capacity(nl.min(64));
        for _ in 0..nl {
            let nm = c.uvarint().ok_or("series: label")? as usize;
            let vl = c.uvarint().ok_or("series: label")? as usize;
            let nm = *symbols.get(nm).ok_or("series: name symbol out of range")?;
            let vl = *symbols.get(vl).ok_or("series: value symbol out of range")?;
            if labels.last().is_some_and(|l| l.0 >= nm) {
                return err("series: label names not sorted or not unique");
            }
            labels.push((nm, vl));
            pairs_total += 1;
        }
        if let Some(p) = &prev_labels {
            if *p >= labels {
                return err("series: label sets not strictly increasing");
            }
        }
        all.push(sref);
        let nc = c.uvarint().ok_or("series: chunk count")? as usize;
        if nc == 0 {
            return err("series without chunks");
        }
        let series_hash = hash_labels(labels.iter().copied());
        samples.clear();
        let (mut t0, mut r0) = (0i64, 0i64);
        for i in 0..nc {
            let (mint, maxt, cref) = if i == 0 {
                let mint = c.varint().ok_or("chunk meta")?;
                let maxt = mint + c.uvarint().ok_or("chunk meta")? as i64;
                (mint, maxt, c.uvarint().ok_or("chunk meta")? as i64)
            } else {
                let mint = t0 + c.uvarint().ok_or("chunk meta")? as i64;
                let maxt = mint + c.uvarint().ok_or("chunk meta")? as i64;
                (mint, maxt, r0 + c.varint().ok_or("chunk meta")?)
            };
            if i > 0 && mint <= t0 {
                return err("chunks overlap");
            }
            if (cref as u64) < last_ref {
                return err("chunk refs decrease");
            }
            if mint < meta.min_time || maxt >= meta.max_time {
                return err(format!(
                    "chunk [{mint}, {maxt}] outside the block [{}, {})",
                    meta.min_time, meta.max_time
                ));
            }
            last_ref = cref as u64;
            t0 = maxt;
            r0 = cref;
            let (seg, off) = (
                (cref as u64 >> 32) as usize,
                (cref as u64 & 0xffff_ffff) as usize,
            );
            let f = segs.get(seg).ok_or("chunk ref: no such file")?;
            let (dl, n) =
                uvarint(f.get(off..).ok_or("chunk ref past the file")?).ok_or("chunk length")?;
            let enc_data = f
                .get(off + n..off + n + 1 + dl as usize)
                .ok_or("chunk past the file")?;
            let crc = f
                .get(off + n + 1 + dl as usize..off + n + 5 + dl as usize)
                .ok_or("chunk CRC past the file")?;
            if crc32c(enc_data).to_be_bytes() != crc {
                return err(format!("chunk {cref:#x}: CRC mismatch"));
            }
            if enc_data[0] != ENC_XOR {
                return err(format!("chunk {cref:#x}: encoding {}", enc_data[0]));
            }
            let got = xor::decode(&enc_data[1..])?;
            if got.first().map(|s| s.0) != Some(mint) || got.last().map(|s| s.0) != Some(maxt) {
                return err(format!(
                    "chunk {cref:#x}: samples do not span [{mint}, {maxt}]"
                ));
            }
            if got.windows(2).any(|w| w[0].0 >= w[1].0)
                || samples.last().is_some_and(|l| l.0 >= got[0].0)
            {
                return err("samples not strictly increasing in time");
            }
            out.chunks += 1;
            samples.extend_from_slice(&got);
        }
        if c.rest() != 0 {
            return err("series: trailing bytes");
        }
        for &(t, v) in &samples {
            out.digest = out.digest.wrapping_add(sample_digest(series_hash, t, v));
        }
        out.samples += samples.len() as u64;
        out.series += 1;
        let owned: OwnedLabels = labels
            .iter()
            .map(|(n, v)| (n.to_vec(), v.to_vec()))
            .collect();
        if let Some(l) = stone_labels.get_mut(&sref) {
            *l = owned.clone();
        }
        each(&owned, &samples);
        prev_labels = Some(labels);
    }
    for d in &segs {
        d.check_intact(dir).map_err(|e| e.to_string())?;
    }
    data.check_intact(dir).map_err(|e| e.to_string())?;

    // Postings: each list CRC-checked, strictly increasing, every ref a series that carries the
    // pair; the all-postings list is every series in order; and the entries add up to the
    // label pairs of all series. Distinct keys and strictly increasing refs make the entries
    // distinct facts that are all true, so equal counts mean every pair of every series is in
    // its list.
    let mut entries = 0u64;
    let mut first = true;
    postings_table(table_body, &mut |name, value, off| {
        if off % 4 != 0 {
            return err("postings list not 4-byte aligned");
        }
        let body = section(b, off, "postings list")?;
        let mut c = Cursor::new(body);
        let k = c.be32().ok_or("postings: count")? as usize;
        if body.len() != 4 + 4 * k {
            return err("postings: length does not match count");
        }
        let mut prev = None;
        for i in 0..k {
            let r = c.be32().unwrap();
            if prev.is_some_and(|p| p >= r) {
                return err("postings: refs not strictly increasing");
            }
            prev = Some(r);
            if first {
                if all.get(i) != Some(&r) {
                    return err("all-postings list differs from the series");
                }
                continue;
            }
            if all.binary_search(&r).is_err() {
                return err("postings: ref is no series");
            }
            if !series_has(b, r as usize * SERIES_ALIGN as usize, &symbols, name, value) {
                return err("a postings list names a series without its pair");
            }
        }
        if first && k != all.len() {
            return err("all-postings list differs from the series");
        }
        if !first {
            entries += k as u64;
        }
        first = false;
        Ok(())
    })?;
    if entries != pairs_total {
        return err("postings lists differ from the series' label pairs");
    }
    for (r, mint, maxt) in stone_list {
        match stone_labels.get(&r) {
            Some(l) if !l.is_empty() => out.tombstones.push((l.clone(), mint, maxt)),
            _ => return err(format!("tombstones: ref {r} is no series of the index")),
        }
    }
    if meta.stats.num_tombstones != out.tombstones.len() as u64 {
        return err("meta.json numTombstones differs from the tombstones file");
    }
    if meta.stats.num_series != out.series
        || meta.stats.num_chunks != out.chunks
        || meta.stats.num_samples != out.samples
    {
        return err("meta.json stats differ from the index and chunks");
    }
    out.meta = Some(meta);
    Ok(out)
}
