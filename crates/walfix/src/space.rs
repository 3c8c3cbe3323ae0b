//! How much free space Prometheus needs to start on a data dir.
//!
//! Each figure is what Prometheus's source (2.42, 2.53 and 3.5 alike) writes at start-up:
//! - `queries.active`: 1 + 1000 x `--query.max-concurrency` (20) bytes, created sparse and
//!   written through a map (promql/query_logger.go). Writing into it on a full disk is a SIGBUS.
//! - a new, empty WAL segment at open, before replay (tsdb/wlog: `NewSize`), that takes its
//!   first 32 KiB page at the first commit.
//! - a head chunks file, fallocated to 128 KiB when the first chunk is cut, which may happen
//!   during replay (tsdb/chunks/head_chunks.go).
//! - when the replayed head spans more than 1.5 block ranges (3 h), a compaction right after
//!   start: a block whose chunks file is fallocated to 512 MiB, then a checkpoint written
//!   beside the current one before that is deleted.

use std::io;
use std::path::Path;

use serde::Serialize;

/// `queries.active` rounded up to 4 KiB blocks.
pub const QUERY_LOG_BYTES: u64 = 20_001_u64.div_ceil(4096) * 4096;
/// One WAL page.
pub const WAL_PAGE_BYTES: u64 = 32 * 1024;
/// `chunks_head` preallocation.
pub const HEAD_CHUNKS_BYTES: u64 = 128 * 1024;
/// A block's chunks file preallocation at compaction.
pub const BLOCK_CHUNKS_BYTES: u64 = 512 * 1024 * 1024;
/// The head compacts when it spans more than this (1.5 x the default 2 h block range).
pub const COMPACT_SPAN_MS: i64 = 3 * 3600 * 1000;

/// One thing Prometheus writes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Item {
    /// What it is.
    pub what: &'static str,
    /// Bytes it takes.
    pub bytes: u64,
}

/// What Prometheus will write at start-up.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Need {
    /// Each item.
    pub items: Vec<Item>,
    /// Their sum.
    pub bytes: u64,
    /// Files and directories it creates.
    pub inodes: u64,
}

/// What Prometheus needs to start on a data dir whose WAL holds samples from `min_time` to
/// `max_time` (ms) and whose current checkpoint takes `checkpoint_bytes`.
pub fn startup_need(min_time: Option<i64>, max_time: Option<i64>, checkpoint_bytes: u64) -> Need {
    let mut items = vec![
        Item {
            what: "queries.active (20 query slots of 1000 bytes, written through a map)",
            bytes: QUERY_LOG_BYTES,
        },
        Item {
            what: "the new WAL segment's first page",
            bytes: WAL_PAGE_BYTES,
        },
        Item {
            what: "a head chunks file (preallocated)",
            bytes: HEAD_CHUNKS_BYTES,
        },
    ];
    let mut inodes = 5; // lock, queries.active, segment, chunks_head/ and its file
    if let (Some(a), Some(b)) = (min_time, max_time) {
        if b.saturating_sub(a) > COMPACT_SPAN_MS {
            items.push(Item {
                what: "the block the head compacts into right after start (chunks preallocated)",
                bytes: BLOCK_CHUNKS_BYTES,
            });
            items.push(Item {
                what: "a new checkpoint beside the current one",
                bytes: checkpoint_bytes,
            });
            inodes += 8;
        }
    }
    Need {
        bytes: items.iter().map(|i| i.bytes).sum(),
        items,
        inodes,
    }
}

/// Free space on the file system holding `path`, for an unprivileged writer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Free {
    /// Bytes.
    pub bytes: u64,
    /// Inodes (`None` where the file system does not count them).
    pub inodes: Option<u64>,
}

/// Free bytes and inodes at `path` (or its nearest existing parent).
pub fn free(path: &Path) -> io::Result<Free> {
    let mut p = path;
    while !p.exists() {
        p = p.parent().unwrap_or(Path::new("/"));
    }
    let st = rustix::fs::statvfs(p).map_err(io::Error::from)?;
    Ok(Free {
        bytes: st.f_bavail.saturating_mul(st.f_frsize),
        inodes: (st.f_files > 0).then_some(st.f_favail),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_from_prometheus_source() {
        // 1 + 1000 * 20 bytes is 5 blocks of 4 KiB.
        assert_eq!(QUERY_LOG_BYTES, 20_480);
        let n = startup_need(Some(0), Some(COMPACT_SPAN_MS), 1 << 20);
        assert_eq!(n.bytes, 20_480 + 32_768 + 131_072);
        let n = startup_need(Some(0), Some(COMPACT_SPAN_MS + 1), 1 << 20);
        assert_eq!(n.bytes, 20_480 + 32_768 + 131_072 + (512 << 20) + (1 << 20));
        assert_eq!(startup_need(None, None, 0).items.len(), 3);
    }
}
