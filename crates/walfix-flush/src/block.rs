//! Writing one block directory: `chunks/000001…`, `index` (format v2), `meta.json`,
//! `tombstones`. Facts from Prometheus's source (v3.5.0, same in v2.42.0 unless said):
//! `tsdb/index/index.go` (Writer), `tsdb/chunks/chunks.go` (Writer, NewBlockChunkRef),
//! `tsdb/block.go` (BlockMeta, writeMetaFile), `tsdb/tombstones/tombstones.go` (WriteFile).

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use walfix_format::crc::crc32c;

use crate::bits::{put_uvarint, put_varint};
use crate::sort::Sorter;

/// `MagicIndex` (index.go).
pub const INDEX_MAGIC: u32 = 0xBAAA_D700;
/// `FormatV2`.
pub const INDEX_V2: u8 = 2;
/// Series entries start on multiples of this; a series ref is its offset / 16.
pub const SERIES_ALIGN: u64 = 16;
/// TOC: six be64 offsets and a CRC (`indexTOCLen`).
pub const TOC_LEN: usize = 6 * 8 + 4;
/// `MagicChunks` (chunks.go).
pub const CHUNKS_MAGIC: u32 = 0x85BD_40DD;
/// Chunk file header: magic, version 1, 3 bytes of padding (`SegmentHeaderSize`).
pub const CHUNKS_HEADER: [u8; 8] = [0x85, 0xBD, 0x40, 0xDD, 0x01, 0, 0, 0];
/// A new chunk file is started before a chunk that would pass this (`DefaultChunkSegmentSize`).
pub const CHUNK_SEGMENT_SIZE: u64 = 512 << 20;
/// An empty tombstones file: `MagicTombstone`, format 1, CRC-32C of nothing.
pub const EMPTY_TOMBSTONES: [u8; 9] = [0x01, 0x30, 0xBA, 0x30, 0x01, 0, 0, 0, 0];

/// `BlockMeta` as Prometheus 2.42..3.5 writes and reads it (`block.go`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    /// Block id, equal to the directory name.
    pub ulid: String,
    /// First sample time, inclusive (ms).
    pub min_time: i64,
    /// End, exclusive (ms).
    pub max_time: i64,
    /// Counts.
    pub stats: MetaStats,
    /// Compaction: level 1, sources = [self].
    pub compaction: MetaCompaction,
    /// Must be 1 (`metaVersion1`).
    pub version: i32,
}

/// `BlockStats`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MetaStats {
    /// Samples.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub num_samples: u64,
    /// Series.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub num_series: u64,
    /// Chunks.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub num_chunks: u64,
    /// Tombstone intervals.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub num_tombstones: u64,
}

fn is_zero(x: &u64) -> bool {
    *x == 0
}

/// `BlockMetaCompaction` (only what we write; unknown keys are ignored when read).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct MetaCompaction {
    /// 1, as for head-written blocks.
    pub level: i32,
    /// `[own ULID]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
    /// Hints such as `from-out-of-order`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hints: Vec<String>,
}

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A ULID (48-bit ms time, 80 random bits) in Crockford base32, 26 characters.
pub fn ulid(ms: u64, random: [u8; 10]) -> String {
    let mut v: u128 = (ms as u128 & ((1 << 48) - 1)) << 80;
    for (i, b) in random.iter().enumerate() {
        v |= (*b as u128) << (8 * (9 - i));
    }
    (0..26)
        .map(|i| CROCKFORD[((v >> (125 - 5 * i)) & 31) as usize] as char)
        .collect()
}

/// True for a name `ulid.ParseStrict` accepts: 26 Crockford characters, the first <= '7'.
pub fn is_ulid(name: &str) -> bool {
    name.len() == 26 && name.as_bytes()[0] <= b'7' && name.bytes().all(|c| CROCKFORD.contains(&c))
}

/// 10 bytes from the kernel's random source.
pub fn random10() -> io::Result<[u8; 10]> {
    use std::io::Read;
    let mut b = [0u8; 10];
    File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(b)
}

/// Chunk metadata of one chunk as the index stores it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkMeta {
    /// First sample time.
    pub mint: i64,
    /// Last sample time.
    pub maxt: i64,
    /// `file index << 32 | offset`.
    pub chunk_ref: u64,
}

/// Writes the chunk files of a block in index order.
pub struct ChunkWriter {
    dir: PathBuf,
    file: Option<BufWriter<File>>,
    seq: u64,
    pos: u64,
    /// Bytes written over all files.
    pub bytes: u64,
    segment_size: u64,
}

impl ChunkWriter {
    /// A writer into `dir` (the block's `chunks/`), created if needed.
    pub fn new(dir: &Path) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        Ok(ChunkWriter {
            dir: dir.to_path_buf(),
            file: None,
            seq: 0,
            pos: 0,
            bytes: 0,
            segment_size: CHUNK_SEGMENT_SIZE,
        })
    }

    #[cfg(test)]
    pub(crate) fn with_segment_size(mut self, n: u64) -> Self {
        self.segment_size = n;
        self
    }

    fn cut(&mut self) -> io::Result<()> {
        self.finish_file()?;
        self.seq += 1;
        let path = self.dir.join(format!("{:06}", self.seq));
        let mut f = BufWriter::with_capacity(1 << 20, File::create(path)?);
        f.write_all(&CHUNKS_HEADER)?;
        self.pos = CHUNKS_HEADER.len() as u64;
        self.bytes += self.pos;
        self.file = Some(f);
        Ok(())
    }

    fn finish_file(&mut self) -> io::Result<()> {
        if let Some(f) = self.file.take() {
            let f = f.into_inner().map_err(|e| e.into_error())?;
            f.sync_all()?;
        }
        Ok(())
    }

    /// Writes one chunk (`uvarint len | encoding | data | crc32c(encoding, data)`); returns its ref.
    pub fn write(&mut self, encoding: u8, data: &[u8]) -> io::Result<u64> {
        let mut head = Vec::with_capacity(6);
        put_uvarint(&mut head, data.len() as u64);
        head.push(encoding);
        let total = (head.len() + data.len() + 4) as u64;
        if self.file.is_none()
            || (self.pos + total > self.segment_size && self.pos > CHUNKS_HEADER.len() as u64)
        {
            self.cut()?;
        }
        let chunk_ref = (self.seq - 1) << 32 | self.pos;
        let mut crc_in = Vec::with_capacity(1 + data.len());
        crc_in.push(encoding);
        crc_in.extend_from_slice(data);
        let f = self.file.as_mut().expect("cut above");
        f.write_all(&head)?;
        f.write_all(data)?;
        f.write_all(&crc32c(&crc_in).to_be_bytes())?;
        self.pos += total;
        self.bytes += total;
        Ok(chunk_ref)
    }

    /// Flushes and fsyncs the last file. A block with no chunk gets an empty `chunks/` dir.
    pub fn finish(mut self) -> io::Result<u64> {
        self.finish_file()?;
        Ok(self.bytes)
    }
}

/// Writes an index: symbols first, then series in label order, then [`IndexWriter::finish`]
/// writes postings, the postings offset table and the TOC. Like Prometheus 3.7+ it writes no
/// label indices (the v2 readers of 2.42..3.5 never read them: `LabelValues` and the postings
/// lookups use the postings offset table); the TOC's `LabelIndices` is then the end of the series
/// and `LabelIndicesTable` equals `PostingsTable`, as 3.7's writer records them.
pub struct IndexWriter {
    f: BufWriter<File>,
    pos: u64,
    toc_symbols: u64,
    toc_series: u64,
    symbols: u32,
    /// (name position, value position, series ref) of every label of every series, sorted
    /// externally within a budget. Positions sort like the strings, so sorting these gives
    /// the postings in order.
    postings: Sorter,
    all: Vec<u32>,
    last_chunk_ref: u64,
}

impl IndexWriter {
    /// Creates `path` and writes the header and the symbol table of `symbols` (sorted by bytes
    /// and distinct; series then name them by position). Postings beyond `sort_budget` bytes
    /// are sorted in run files under `scratch`.
    pub fn new<'a>(
        path: &Path,
        scratch: &Path,
        sort_budget: usize,
        symbols: impl Iterator<Item = &'a [u8]> + Clone,
    ) -> io::Result<Self> {
        let f = BufWriter::with_capacity(1 << 20, File::create(path)?);
        // The table's length comes before it: sum it first, then stream the strings.
        let (mut body_len, mut count) = (4u64, 0u64);
        for s in symbols.clone() {
            body_len += uvarint_len(s.len() as u64) + s.len() as u64;
            count += 1;
        }
        let n = u32::try_from(count).map_err(|_| io::Error::other("more than 2^32 symbols"))?;
        let tag = path
            .parent()
            .and_then(|p| p.file_name())
            .map_or("index".into(), |n| n.to_string_lossy().into_owned());
        let mut w = IndexWriter {
            f,
            pos: 0,
            toc_symbols: 0,
            toc_series: 0,
            symbols: n,
            postings: Sorter::new(scratch, &tag, sort_budget),
            all: Vec::new(),
            last_chunk_ref: 0,
        };
        let mut head = INDEX_MAGIC.to_be_bytes().to_vec();
        head.push(INDEX_V2);
        w.put(&head)?;
        w.toc_symbols = w.pos;
        if body_len > u32::MAX as u64 {
            return Err(io::Error::other("symbol table larger than 4 GiB"));
        }
        w.put(&(body_len as u32).to_be_bytes())?;
        let mut crc = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32Iscsi);
        let count = n.to_be_bytes();
        crc.update(&count);
        w.put(&count)?;
        let mut b = Vec::with_capacity(16);
        for s in symbols {
            b.clear();
            put_uvarint(&mut b, s.len() as u64);
            crc.update(&b);
            crc.update(s);
            w.put(&b)?;
            w.put(s)?;
        }
        w.put(&(crc.finalize() as u32).to_be_bytes())?;
        w.toc_series = w.pos;
        Ok(w)
    }

    fn put(&mut self, b: &[u8]) -> io::Result<()> {
        self.f.write_all(b)?;
        self.pos += b.len() as u64;
        Ok(())
    }

    fn pad(&mut self, align: u64) -> io::Result<()> {
        let n = (align - self.pos % align) % align;
        self.put(&vec![0u8; n as usize])
    }

    /// Adds the next series, its label pairs as symbol positions (label sets strictly
    /// increasing, pairs sorted by name, at least one
    /// chunk, chunk refs never decreasing across the index: what `AddSeries` checks).
    /// Returns the series' ref (its offset / 16), which tombstones name it by.
    pub fn add_series(&mut self, pairs: &[[u32; 2]], chunks: &[ChunkMeta]) -> io::Result<u32> {
        if chunks.is_empty() {
            return Err(io::Error::other("series without chunks"));
        }
        let mut prev_maxt = None;
        for c in chunks {
            if c.chunk_ref < self.last_chunk_ref
                || c.maxt < c.mint
                || prev_maxt.is_some_and(|p| c.mint <= p)
            {
                return Err(io::Error::other("chunks out of order"));
            }
            self.last_chunk_ref = c.chunk_ref;
            prev_maxt = Some(c.maxt);
        }
        self.pad(SERIES_ALIGN)?;
        let sref = self.pos / SERIES_ALIGN;
        let sref = u32::try_from(sref)
            .map_err(|_| io::Error::other("index larger than 64 GiB (series refs are u32)"))?;
        let mut body = Vec::with_capacity(16 + pairs.len() * 4 + chunks.len() * 8);
        put_uvarint(&mut body, pairs.len() as u64);
        for &[n, v] in pairs {
            if n >= self.symbols || v >= self.symbols {
                return Err(io::Error::other("label string not in the symbol table"));
            }
            put_uvarint(&mut body, n as u64);
            put_uvarint(&mut body, v as u64);
            self.postings.push((n, v, sref))?;
        }
        self.all.push(sref);
        put_uvarint(&mut body, chunks.len() as u64);
        let c0 = chunks[0];
        put_varint(&mut body, c0.mint);
        put_uvarint(&mut body, (c0.maxt - c0.mint) as u64);
        put_uvarint(&mut body, c0.chunk_ref);
        let (mut t0, mut r0) = (c0.maxt, c0.chunk_ref as i64);
        for c in &chunks[1..] {
            put_uvarint(&mut body, (c.mint - t0) as u64);
            put_uvarint(&mut body, (c.maxt - c.mint) as u64);
            put_varint(&mut body, c.chunk_ref as i64 - r0);
            t0 = c.maxt;
            r0 = c.chunk_ref as i64;
        }
        let mut len = Vec::with_capacity(5);
        put_uvarint(&mut len, body.len() as u64);
        self.put(&len)?;
        self.put(&body)?;
        self.put(&crc32c(&body).to_be_bytes())?;
        Ok(sref)
    }

    fn posting(&mut self, refs: &[u32]) -> io::Result<u64> {
        self.pad(4)?;
        let off = self.pos;
        let mut body = Vec::with_capacity(4 + refs.len() * 4);
        body.extend_from_slice(&(refs.len() as u32).to_be_bytes());
        for r in refs {
            body.extend_from_slice(&r.to_be_bytes());
        }
        self.put(&(body.len() as u32).to_be_bytes())?;
        self.put(&body)?;
        self.put(&crc32c(&body).to_be_bytes())?;
        Ok(off)
    }

    /// Writes postings (all-postings key `("", "")` first, then every label pair by name and
    /// value), the postings offset table and the TOC, and fsyncs. Returns the file's size.
    pub fn finish<'a>(mut self, symbol: impl Fn(u32) -> &'a [u8]) -> io::Result<u64> {
        let toc_label_indices = self.pos;
        let toc_postings = self.pos;
        let all = std::mem::take(&mut self.all);
        // The postings offset table's body, built as the lists are written (count filled in
        // at the end): `uvarint 2 | uvarint-len name | uvarint-len value | uvarint offset`.
        let mut body = vec![0u8; 4];
        let mut count = 0u32;
        let mut entry = |body: &mut Vec<u8>, n: &[u8], v: &[u8], off: u64| {
            put_uvarint(body, 2);
            put_uvarint(body, n.len() as u64);
            body.extend_from_slice(n);
            put_uvarint(body, v.len() as u64);
            body.extend_from_slice(v);
            put_uvarint(body, off);
            count += 1;
        };
        let off = self.posting(&all)?;
        entry(&mut body, b"", b"", off);
        // One list per (name, value): the sorted triples, grouped.
        let postings = std::mem::replace(&mut self.postings, Sorter::new(Path::new("."), "", 0));
        let mut refs = Vec::new();
        let mut key: Option<(u32, u32)> = None;
        let mut flush = |w: &mut Self, body: &mut Vec<u8>, key: (u32, u32), refs: &[u32]| {
            let off = w.posting(refs)?;
            entry(body, symbol(key.0), symbol(key.1), off);
            io::Result::Ok(())
        };
        postings.finish(|(n, v, r)| {
            if key.is_some_and(|k| k != (n, v)) {
                flush(&mut self, &mut body, key.unwrap_or_default(), &refs)?;
                refs.clear();
            }
            key = Some((n, v));
            refs.push(r);
            Ok(())
        })?;
        if let Some(k) = key {
            flush(&mut self, &mut body, k, &refs)?;
        }
        drop(refs);
        let toc_postings_table = self.pos;
        body[..4].copy_from_slice(&count.to_be_bytes());
        if body.len() > u32::MAX as usize {
            return Err(io::Error::other("postings offset table larger than 4 GiB"));
        }
        self.put(&(body.len() as u32).to_be_bytes())?;
        self.put(&body)?;
        self.put(&crc32c(&body).to_be_bytes())?;
        let mut toc = Vec::with_capacity(TOC_LEN);
        for x in [
            self.toc_symbols,
            self.toc_series,
            toc_label_indices,
            toc_postings_table,
            toc_postings,
            toc_postings_table,
        ] {
            toc.extend_from_slice(&x.to_be_bytes());
        }
        // The order of the TOC fields is Symbols, Series, LabelIndices, LabelIndicesTable,
        // Postings, PostingsTable (index.go writeTOC).
        let crc = crc32c(&toc);
        toc.extend_from_slice(&crc.to_be_bytes());
        self.put(&toc)?;
        let f = self.f.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        Ok(self.pos)
    }
}

fn uvarint_len(mut x: u64) -> u64 {
    let mut n = 1;
    while x >= 0x80 {
        x >>= 7;
        n += 1;
    }
    n
}

/// The bytes of a `tombstones` file: `MagicTombstone` (be32), format byte 1, then per interval
/// `uvarint series ref | varint mint | varint maxt`, then the CRC-32C of the intervals (the
/// format byte is not covered: tombstones.go WriteFile hashes `bytes[1:]`).
pub fn tombstones_bytes(intervals: &[(u32, i64, i64)]) -> Vec<u8> {
    let mut body = Vec::new();
    for &(r, mint, maxt) in intervals {
        put_uvarint(&mut body, r as u64);
        put_varint(&mut body, mint);
        put_varint(&mut body, maxt);
    }
    let mut out = vec![0x01, 0x30, 0xBA, 0x30, 0x01];
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc32c(&body).to_be_bytes());
    out
}

/// Writes `meta.json` (tab-indented like `json.MarshalIndent(meta, "", "\t")`) and the
/// `tombstones` file into `dir`, fsynced.
pub fn write_meta_and_tombstones(
    dir: &Path,
    meta: &Meta,
    intervals: &[(u32, i64, i64)],
) -> io::Result<()> {
    let mut text = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut ser = serde_json::Serializer::with_formatter(&mut text, fmt);
    meta.serialize(&mut ser).map_err(io::Error::other)?;
    let ts = tombstones_bytes(intervals);
    for (name, bytes) in [("meta.json", &text[..]), ("tombstones", &ts[..])] {
        let mut f = File::create(dir.join(name))?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    Ok(())
}

/// fsyncs a directory.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn be32(x: u32) -> [u8; 4] {
        x.to_be_bytes()
    }

    #[test]
    fn crc_is_castagnoli() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }

    /// An index with one series `{__name__="up"}` and one chunk, byte by byte from the format
    /// (index.go@v3.5.0 / BLOCK-FORMAT §2), offsets worked out by hand.
    #[test]
    fn one_series_index_bytes_by_hand() {
        let tmp = tempfile::tempdir().unwrap();
        let syms: [&[u8]; 2] = [b"__name__", b"up"];
        let path = tmp.path().join("index");
        let mut w = IndexWriter::new(&path, tmp.path(), 1 << 20, syms.iter().copied()).unwrap();
        w.add_series(
            &[[0, 1]],
            &[ChunkMeta {
                mint: 1_700_000_000_000,
                maxt: 1_700_000_030_000,
                chunk_ref: 8,
            }],
        )
        .unwrap();
        let size = w.finish(|p| syms[p as usize]).unwrap();
        let got = fs::read(&path).unwrap();

        let mut want = vec![0xBA, 0xAA, 0xD7, 0x00, 0x02];
        // 5: symbol table, len 16 = count (4) + 9 + 3 bytes of strings.
        let syms_body = [&be32(2)[..], &[8], b"__name__", &[2], b"up"].concat();
        assert_eq!(syms_body.len(), 16);
        want.extend(be32(16));
        want.extend(&syms_body);
        want.extend(be32(crc32c(&syms_body)));
        assert_eq!(want.len(), 29); // TOC Series = 29, before the padding
        want.extend([0, 0, 0]); // to 32: series ref 2
        let series_body = [
            &[0x01, 0x00, 0x01, 0x01][..],         // 1 label: symbols 0, 1; 1 chunk
            &[0x80, 0xa0, 0xab, 0xfe, 0xf9, 0x62], // varint mint 1700000000000
            &[0xb0, 0xea, 0x01],                   // uvarint maxt - mint = 30000
            &[0x08],                               // uvarint ref 8
        ]
        .concat();
        want.push(series_body.len() as u8);
        want.extend(&series_body);
        want.extend(be32(crc32c(&series_body)));
        assert_eq!(want.len(), 51); // TOC LabelIndices and Postings = 51, before padding
        want.push(0); // to 52
        let list = [be32(1), be32(2)].concat();
        for _ in 0..2 {
            // 52: ("", "") all postings; 68: ("__name__", "up").
            want.extend(be32(8));
            want.extend(&list);
            want.extend(be32(crc32c(&list)));
        }
        assert_eq!(want.len(), 84);
        let table = [
            &be32(2)[..],
            &[2, 0, 0, 52],
            &[2, 8],
            b"__name__",
            &[2],
            b"up",
            &[68],
        ]
        .concat();
        want.extend(be32(table.len() as u32));
        want.extend(&table);
        want.extend(be32(crc32c(&table)));
        assert_eq!(want.len(), 114);
        let toc: Vec<u8> = [5u64, 29, 51, 84, 51, 84]
            .iter()
            .flat_map(|x| x.to_be_bytes())
            .collect();
        want.extend(&toc);
        want.extend(be32(crc32c(&toc)));
        assert_eq!(got, want);
        assert_eq!(size, 166);
    }

    /// A chunk file: the 8-byte header, then `uvarint len | 01 | data | crc32c(01 data)`; refs
    /// are `file index << 32 | offset`, and a chunk that does not fit starts a new file.
    #[test]
    fn chunk_files_and_refs() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("chunks");
        let mut w = ChunkWriter::new(&dir).unwrap().with_segment_size(40);
        let data: Vec<u8> = (0..22u8).collect();
        assert_eq!(w.write(1, &data).unwrap(), 8);
        // 8 + 28 = 36; the next 28 bytes would pass 40: file 000002, offset 8.
        assert_eq!(w.write(1, &data).unwrap(), 1 << 32 | 8);
        let total = w.finish().unwrap();
        let f1 = fs::read(dir.join("000001")).unwrap();
        let mut want = vec![0x85, 0xBD, 0x40, 0xDD, 0x01, 0, 0, 0, 22, 1];
        want.extend(&data);
        let mut c = vec![1];
        c.extend(&data);
        want.extend(be32(crc32c(&c)));
        assert_eq!(f1, want);
        assert_eq!(fs::read(dir.join("000002")).unwrap(), want);
        assert_eq!(total, 2 * want.len() as u64);
    }

    #[test]
    fn ulids_and_meta_json() {
        let id = ulid(1_469_918_176_385, [0; 10]);
        // The reference vector of the ULID spec: 1469918176385 ms -> 01ARYZ6S41.
        assert_eq!(&id[..10], "01ARYZ6S41");
        assert_eq!(id.len(), 26);
        assert!(is_ulid(&id));
        assert!(!is_ulid("81ARYZ6S41TSV4RRFFQ69G5FAV"));
        assert!(!is_ulid("01ARYZ6S41TSV4RRFFQ69G5FA"));
        assert_eq!(ulid(u64::MAX, [0xff; 10]), "7ZZZZZZZZZZZZZZZZZZZZZZZZZ");
        let tmp = tempfile::tempdir().unwrap();
        let meta = Meta {
            ulid: id.clone(),
            min_time: 1,
            max_time: 3,
            stats: MetaStats {
                num_samples: 2,
                num_series: 1,
                num_chunks: 1,
                num_tombstones: 0,
            },
            compaction: MetaCompaction {
                level: 1,
                sources: vec![id.clone()],
                hints: vec![],
            },
            version: 1,
        };
        write_meta_and_tombstones(tmp.path(), &meta, &[]).unwrap();
        let text = fs::read_to_string(tmp.path().join("meta.json")).unwrap();
        let want = format!(
            "{{\n\t\"ulid\": \"{id}\",\n\t\"minTime\": 1,\n\t\"maxTime\": 3,\n\t\"stats\": {{\n\t\t\"numSamples\": 2,\n\t\t\"numSeries\": 1,\n\t\t\"numChunks\": 1\n\t}},\n\t\"compaction\": {{\n\t\t\"level\": 1,\n\t\t\"sources\": [\n\t\t\t\"{id}\"\n\t\t]\n\t}},\n\t\"version\": 1\n}}"
        );
        assert_eq!(text, want);
        assert_eq!(
            fs::read(tmp.path().join("tombstones")).unwrap(),
            [0x01, 0x30, 0xBA, 0x30, 0x01, 0, 0, 0, 0]
        );
        assert_eq!(crc32c(&[]), 0);
        assert_eq!(tombstones_bytes(&[]), EMPTY_TOMBSTONES);
        // Ref 2, [-1, 300]: uvarint 2, varint -1 = 01, varint 300 = d8 04.
        let one = tombstones_bytes(&[(2, -1, 300)]);
        let mut want = vec![0x01, 0x30, 0xBA, 0x30, 0x01, 0x02, 0x01, 0xd8, 0x04];
        want.extend(crc32c(&[0x02, 0x01, 0xd8, 0x04]).to_be_bytes());
        assert_eq!(one, want);
    }
}
