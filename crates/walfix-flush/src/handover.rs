//! After the blocks: hand the data dir over to them. What replay would read besides the blocks
//! (`wal/`, `chunks_head/`, `wbl/`, `chunk_snapshot.*`) moves into a backup run, so the next
//! Prometheus starts from the blocks with an empty head instead of replaying the WAL that did
//! not fit in memory. Nothing is deleted: a rename within one file system, or a copy (each file
//! fsynced, the directory complete under a temp name before it gets its name) followed by the
//! removal of the original when the backup is on another one.
//!
//! Order: `chunk_snapshot.*`, `chunks_head/`, `wbl/`, and `wal/` last. A run killed before
//! `wal/` moved leaves it in place; the rerun reads it again, writes no block (every sample is
//! before the blocks' end) and moves what is left. Killed after, there is nothing left to do.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use walfix::fsops::{self, Fs, Perms};

/// The backup run a flush moved the WAL into.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Handover {
    /// The run's directory (`<backup dir>/<UTC time>`), holding `manifest.jsonl`.
    pub backup_run: PathBuf,
    /// What moved, in order.
    pub moved: Vec<Moved>,
}

/// One entry moved into the backup.
#[derive(Clone, Debug, Serialize)]
pub struct Moved {
    /// Where it was.
    pub path: PathBuf,
    /// Where it is now.
    pub backup: PathBuf,
    /// Bytes of its files.
    pub bytes: u64,
    /// True if it was copied (the backup is on another file system) and the original removed.
    pub copied: bool,
}

/// The entries of `data_dir` that replay reads besides the blocks, in the order they move.
pub fn replay_inputs(data_dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut snapshots = Vec::new();
    for e in fs::read_dir(data_dir)? {
        let e = e?;
        let name = e.file_name();
        if name.to_string_lossy().starts_with("chunk_snapshot.") {
            snapshots.push(e.path());
        }
    }
    snapshots.sort();
    for name in ["chunks_head", "wbl", "wal"] {
        let p = data_dir.join(name);
        if fs::symlink_metadata(&p).is_ok() {
            snapshots.push(p);
        }
    }
    Ok(snapshots)
}

fn tree_bytes(p: &Path) -> u64 {
    let Ok(m) = fs::symlink_metadata(p) else {
        return 0;
    };
    if !m.is_dir() {
        return m.len();
    }
    fs::read_dir(p)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| tree_bytes(&e.path()))
        .sum()
}

#[derive(Serialize)]
struct ManifestLine<'a> {
    time_unix: u64,
    data_root: &'a Path,
    action: Action<'a>,
    backup: Option<&'a Path>,
}

#[derive(Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
enum Action<'a> {
    /// The blocks the WAL was flushed into (to undo: remove them, move the WAL back).
    WriteBlocks { blocks: &'a [String] },
    /// As repair's action of the same name.
    MoveToBackup { path: &'a Path, why: &'a str },
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn manifest(
    fs_: &dyn Fs,
    run: &Path,
    root: &Path,
    action: Action<'_>,
    backup: Option<&Path>,
) -> io::Result<()> {
    let line = ManifestLine {
        time_unix: now_unix(),
        data_root: root,
        action,
        backup,
    };
    let bytes = serde_json::to_vec(&line).map_err(io::Error::other)?;
    fs_.append_line(&run.join("manifest.jsonl"), &bytes)
}

/// Moves [`replay_inputs`] of `data_dir` into a new run under `backup_dir` (default
/// `data_dir/walfix-backup`, as repair's), after writing which `blocks` they went into to the
/// run's `manifest.jsonl`. The run directory is private (0700) and owned like the data dir.
pub fn move_to_backup(
    fs_: &dyn Fs,
    data_dir: &Path,
    backup_dir: Option<&Path>,
    blocks: &[String],
) -> io::Result<Handover> {
    let inputs = replay_inputs(data_dir)?;
    let root = fs::canonicalize(data_dir)?;
    let backup_dir = backup_dir.map_or_else(|| root.join("walfix-backup"), Path::to_path_buf);
    let dm = fs::metadata(&root)?;
    let owner = fsops::wanted_owner(dm.uid(), dm.gid());
    let new_parent = !backup_dir.exists();
    fs_.create_dir_all(&backup_dir)?;
    if new_parent {
        fs_.set_owner_mode(&backup_dir, owner, 0o700)?;
    }
    let run = walfix::repair::new_run_dir(&backup_dir);
    fs_.create_dir_all(&run)?;
    fs_.set_owner_mode(&run, owner, 0o700)?;
    fs_.sync_dir(&backup_dir)?;
    manifest(fs_, &run, &root, Action::WriteBlocks { blocks }, None)?;
    let mut out = Handover {
        backup_run: run.clone(),
        moved: Vec::new(),
    };
    let why = "flushed into blocks: replay would read it again (walfix flush)";
    for path in inputs {
        let Some(name) = path.file_name() else {
            continue;
        };
        let dest = run.join(name);
        let bytes = tree_bytes(&path);
        let copied = match fs_.rename(&path, &dest) {
            Ok(()) => false,
            Err(e) if e.kind() == io::ErrorKind::CrossesDevices => {
                copy_tree(fs_, &path, &dest)?;
                if fs::symlink_metadata(&path)?.is_dir() {
                    fs_.remove_dir_all(&path)?;
                } else {
                    fs_.remove_file(&path)?;
                }
                true
            }
            Err(e) => return Err(e),
        };
        fs_.sync_dir(&run)?;
        fs_.sync_dir(&root)?;
        let rel = Path::new(name);
        manifest(
            fs_,
            &run,
            &root,
            Action::MoveToBackup { path: rel, why },
            Some(rel),
        )?;
        out.moved.push(Moved {
            path,
            backup: dest,
            bytes,
            copied,
        });
    }
    Ok(out)
}

/// Copies `from` (a file or a directory tree; symlinks are not followed and are refused)
/// to `to` on another file system: a directory is filled under a temp name, every file and
/// directory fsynced, then renamed into place.
fn copy_tree(fs_: &dyn Fs, from: &Path, to: &Path) -> io::Result<()> {
    let m = fs::symlink_metadata(from)?;
    if m.file_type().is_symlink() {
        return Err(io::Error::other(format!(
            "{}: a symlink; not moved across file systems (move it by hand)",
            from.display()
        )));
    }
    if !m.is_dir() {
        return fsops::copy_file(fs_, from, to, Perms::Keep);
    }
    let tmp = fsops::temp_name(to);
    if tmp.exists() {
        fs_.remove_dir_all(&tmp)?;
    }
    fs_.create_dir_all(&tmp)?;
    fill(fs_, from, &tmp)?;
    fs_.rename(&tmp, to)?;
    fs_.sync_dir(to.parent().unwrap_or(Path::new(".")))
}

fn fill(fs_: &dyn Fs, from: &Path, to: &Path) -> io::Result<()> {
    for e in fs::read_dir(from)? {
        let e = e?;
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let t = e.file_type()?;
        if t.is_dir() {
            fs_.create_dir_all(&dst)?;
            fill(fs_, &src, &dst)?;
        } else if t.is_file() {
            fsops::copy_file(fs_, &src, &dst, Perms::Keep)?;
        } else {
            return Err(io::Error::other(format!(
                "{}: not a file or directory; not moved across file systems",
                src.display()
            )));
        }
    }
    fs_.sync_dir(to)
}

/// Gives a block directory tree the owner of the directory it goes into, when running as
/// root: Prometheus (often uid 65534) must delete blocks it compacts away or retention drops.
pub fn give_to_owner_of(tree: &Path, parent: &Path) -> io::Result<()> {
    let m = fs::metadata(parent)?;
    let Some(owner) = fsops::wanted_owner(m.uid(), m.gid()) else {
        return Ok(());
    };
    chown_tree(tree, owner)
}

fn chown_tree(p: &Path, owner: (u32, u32)) -> io::Result<()> {
    let m = fs::symlink_metadata(p)?;
    let mode = m.mode() & 0o7777;
    fsops::set_owner_mode(p, Some(owner), mode)?;
    if m.is_dir() {
        for e in fs::read_dir(p)? {
            chown_tree(&e?.path(), owner)?;
        }
    }
    Ok(())
}
