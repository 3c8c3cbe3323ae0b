//! Finding the logs under a path: `wal/`, `wbl/`, checkpoints, single segments.
//!
//! Naming rules follow Prometheus (`wlog.listSegments`, `listCheckpoints`): a segment is any entry
//! whose whole name parses as a decimal integer; `checkpoint.N` is a directory whose suffix parses
//! as one; everything else is ignored by Prometheus and reported by us only when it matters.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use walfix_format::record::LogKind;

/// One segment file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentFile {
    /// Index parsed from the name.
    pub index: u64,
    /// File name as found.
    pub name: String,
    /// Full path.
    pub path: PathBuf,
    /// Size in bytes (0 for directories).
    pub len: u64,
    /// True when the entry is a directory (Prometheus would fail reading it).
    pub is_dir: bool,
}

/// A directory entry Prometheus does not read as a segment but that tells something.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Leftover {
    /// `NNNNNNNN.repair`: a segment renamed by an interrupted Prometheus repair.
    RepairFile(PathBuf),
    /// `checkpoint.N.tmp`: an interrupted checkpoint, deleted by Prometheus at start-up.
    CheckpointTmp(PathBuf),
    /// `checkpoint.N` that is not a directory: Prometheus refuses to start.
    CheckpointNotDir(PathBuf),
    /// An older checkpoint left behind (the highest wins).
    OldCheckpoint(PathBuf),
}

/// One log: a directory of segments (or a single segment file).
#[derive(Clone, Debug)]
pub struct Log {
    /// What kind of log this is; decides which record types are expected.
    pub kind: LogKind,
    /// The directory (or the file, for a single segment).
    pub path: PathBuf,
    /// Segments sorted by index.
    pub segments: Vec<SegmentFile>,
    /// For a WAL: its highest checkpoint, read before the segments.
    pub checkpoint: Option<Box<Checkpoint>>,
    /// Entries that are not segments but matter.
    pub leftovers: Vec<Leftover>,
    /// True when only one segment file was given (no directory rules apply).
    pub single_file: bool,
}

/// A `checkpoint.N` directory.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    /// N: the last WAL segment it covers. Replay continues at N+1.
    pub index: u64,
    /// The checkpoint's own segments, read as one log.
    pub log: Log,
}

/// Everything found under a path.
#[derive(Clone, Debug)]
pub struct Layout {
    /// The path given.
    pub root: PathBuf,
    /// Logs in replay order: the WAL (with its checkpoint), then the WBL.
    pub logs: Vec<Log>,
}

/// How to treat a WAL whose kind cannot be told from its path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum WalFlavor {
    /// A Prometheus server WAL (the default).
    #[default]
    Server,
    /// A Prometheus agent WAL (`--agent`): replay rejects more record types.
    Agent,
}

pub(crate) fn parse_index(name: &str) -> Option<u64> {
    // Prometheus uses strconv.Atoi: an optional sign, decimal digits, and a value that fits a
    // Go int (i64). Anything else is not a segment to it, so not to us either.
    let digits = name.strip_prefix('+').unwrap_or(name);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok().filter(|&i| i <= i64::MAX as u64)
}

/// The name Prometheus opens segment `index` by (`%08d`).
pub fn segment_name(index: u64) -> String {
    format!("{index:08}")
}

fn checkpoint_index(name: &str) -> Option<u64> {
    name.strip_prefix("checkpoint.").and_then(parse_index)
}

/// Reads `path` and finds the logs under it. Errors only for I/O failures and for a path that
/// holds no log at all. Like I/O errors, the error texts do not name `path`: callers do.
pub fn discover(path: &Path, flavor: WalFlavor) -> io::Result<Layout> {
    let meta = fs::metadata(path)?;
    let root = path.to_path_buf();
    let wal_kind = match flavor {
        WalFlavor::Server => LogKind::Wal,
        WalFlavor::Agent => LogKind::Agent,
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();

    if meta.is_file() {
        let Some(index) = parse_index(&name) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                // No path in the text: callers print it before the error, as for I/O errors.
                "not a segment file (segment names are decimal numbers like 00000012)",
            ));
        };
        let parent = path.parent().and_then(|p| p.file_name());
        let kind = match parent.map(|p| p.to_string_lossy().into_owned()) {
            Some(p) if p == "wbl" => LogKind::Wbl,
            Some(p) if checkpoint_index(&p).is_some() => LogKind::Checkpoint,
            _ => wal_kind,
        };
        let seg = SegmentFile {
            index,
            name,
            path: root.clone(),
            len: meta.len(),
            is_dir: false,
        };
        return Ok(Layout {
            root: root.clone(),
            logs: vec![Log {
                kind,
                path: root,
                segments: vec![seg],
                checkpoint: None,
                leftovers: Vec::new(),
                single_file: true,
            }],
        });
    }

    let mut logs = Vec::new();
    let wal = path.join("wal");
    if wal.is_dir() {
        logs.push(read_wal_dir(&wal, wal_kind)?);
        let wbl = path.join("wbl");
        if wbl.is_dir() {
            logs.push(read_log_dir(&wbl, LogKind::Wbl)?);
        }
    } else if name == "wbl" {
        // The WBL's samples belong to series the WAL defines, and Prometheus replays the WAL
        // first: without the wal/ beside it every WBL sample would look like a drop.
        if let Some(wal) = path.parent().map(|p| p.join("wal")).filter(|p| p.is_dir()) {
            logs.push(read_wal_dir(&wal, wal_kind)?);
        }
        logs.push(read_log_dir(path, LogKind::Wbl)?);
    } else if checkpoint_index(&name).is_some() {
        logs.push(read_log_dir(path, LogKind::Checkpoint)?);
    } else {
        let log = read_wal_dir(path, wal_kind)?;
        // An empty `wal/` is a valid (empty) WAL; any other dir without segments is a wrong path.
        if name != "wal"
            && log.segments.is_empty()
            && log.checkpoint.is_none()
            && log.leftovers.is_empty()
        {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "no WAL here (expected a data dir with wal/, a wal/ or wbl/ dir, a checkpoint.N dir or a segment file)",
            ));
        }
        logs.push(log);
        // A wal/ given directly may have its wbl/ beside it.
        if name == "wal" {
            if let Some(wbl) = path.parent().map(|p| p.join("wbl")).filter(|p| p.is_dir()) {
                logs.push(read_log_dir(&wbl, LogKind::Wbl)?);
            }
        }
    }
    Ok(Layout { root, logs })
}

/// Reads a directory of segments (no checkpoint handling).
pub fn read_log_dir(dir: &Path, kind: LogKind) -> io::Result<Log> {
    let mut segments = Vec::new();
    let mut leftovers = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if let Some(index) = parse_index(&name) {
            // Follow symlinks for size and type, as Prometheus's open() would. An entry that
            // cannot be stat'ed (a dangling link) is kept: reading it fails and is reported.
            let (len, is_dir) = match fs::metadata(&path) {
                Ok(m) if m.is_dir() => (0, true),
                Ok(m) => (m.len(), false),
                Err(_) => (0, false),
            };
            segments.push(SegmentFile {
                index,
                name,
                path,
                len,
                is_dir,
            });
        } else if name.ends_with(".repair")
            && parse_index(name.trim_end_matches(".repair")).is_some()
        {
            leftovers.push(Leftover::RepairFile(path));
        }
    }
    segments.sort_by_key(|s| s.index);
    Ok(Log {
        kind,
        path: dir.to_path_buf(),
        segments,
        checkpoint: None,
        leftovers,
        single_file: false,
    })
}

fn read_wal_dir(dir: &Path, kind: LogKind) -> io::Result<Log> {
    let mut log = read_log_dir(dir, kind)?;
    let mut checkpoints: Vec<(u64, PathBuf)> = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("checkpoint.") {
            continue;
        }
        let path = entry.path();
        let is_dir = fs::metadata(&path).map(|m| m.is_dir()).unwrap_or(false);
        match checkpoint_index(&name) {
            Some(i) if is_dir => checkpoints.push((i, path)),
            Some(_) => log.leftovers.push(Leftover::CheckpointNotDir(path)),
            None if name.ends_with(".tmp") => log.leftovers.push(Leftover::CheckpointTmp(path)),
            None => {}
        }
    }
    checkpoints.sort();
    if let Some((index, path)) = checkpoints.pop() {
        for (_, old) in checkpoints {
            log.leftovers.push(Leftover::OldCheckpoint(old));
        }
        // An agent's checkpoint is replayed by the agent's rules.
        let ck_kind = if kind == LogKind::Agent {
            LogKind::Agent
        } else {
            LogKind::Checkpoint
        };
        let ck = read_log_dir(&path, ck_kind)?;
        log.checkpoint = Some(Box::new(Checkpoint { index, log: ck }));
    }
    log.leftovers
        .sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    Ok(log)
}
