//! Can Prometheus's user write what Prometheus writes in a data dir?
//!
//! From Prometheus's source (2.42, 2.53, 3.5): it creates files in the data dir (`lock`,
//! `queries.active`, `wal/`, `chunks_head/`, block dirs), opens `queries.active` and `lock`
//! for writing, creates and deletes segments, checkpoints and head chunk files, and renames
//! and deletes block directories (retention, compaction). So every directory must be
//! writable and searchable, `lock` and `queries.active` writable, every other file readable.
//! Only the mode bits are read (no ACLs), as for a plain volume.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// The user a process runs as.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Access {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary groups (a pod's `fsGroup`).
    pub groups: Vec<u32>,
}

/// What Prometheus needs of an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Need {
    /// Read a file.
    Read,
    /// Read and write a file.
    ReadWrite,
    /// List, create and delete entries of a directory (rwx).
    Directory,
}

impl Need {
    fn bits(self) -> u32 {
        match self {
            Need::Read => 0o4,
            Need::ReadWrite => 0o6,
            Need::Directory => 0o7,
        }
    }

    /// What it means, for a message.
    pub fn describe(self) -> &'static str {
        match self {
            Need::Read => "read",
            Need::ReadWrite => "write",
            Need::Directory => "create and delete files in",
        }
    }
}

/// One entry Prometheus's user cannot use as Prometheus needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The entry.
    #[serde(serialize_with = "crate::report::lossless_path")]
    pub path: PathBuf,
    /// What Prometheus needs of it.
    pub need: Need,
    /// Its owner.
    pub uid: u32,
    /// Its group.
    pub gid: u32,
    /// Its permission bits.
    pub mode: u32,
}

/// The result of [`check_tree`].
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// Entries looked at.
    pub entries: u64,
    /// Entries with a problem.
    pub problem_count: u64,
    /// The first problems (at most [`MAX_LISTED`]).
    pub problems: Vec<Problem>,
    /// The file system is mounted read-only.
    pub read_only: bool,
}

/// Problems listed in full; the rest are counted.
pub const MAX_LISTED: usize = 10;

/// True if `access` may do `need` on an entry with this owner, group and mode.
pub fn allowed(access: &Access, uid: u32, gid: u32, mode: u32, need: Need) -> bool {
    if access.uid == 0 {
        return true;
    }
    let bits = if uid == access.uid {
        mode >> 6
    } else if gid == access.gid || access.groups.contains(&gid) {
        mode >> 3
    } else {
        mode
    } & 0o7;
    bits & need.bits() == need.bits()
}

/// What Prometheus needs of `rel` (a path relative to the data dir).
fn need_of(rel: &Path, is_dir: bool) -> Need {
    if is_dir {
        Need::Directory
    } else if rel == Path::new("lock") || rel == Path::new("queries.active") {
        Need::ReadWrite
    } else {
        Need::Read
    }
}

/// Entries Prometheus never touches: a file system's own `lost+found`.
fn skipped(rel: &Path) -> bool {
    rel == Path::new("lost+found")
}

/// Walks `root` (not following symlinks) and lists what `access` cannot do that Prometheus
/// needs. A missing `root` is fine (Prometheus creates it) if its parent is writable.
pub fn check_tree(root: &Path, access: &Access) -> io::Result<Report> {
    let mut r = Report {
        read_only: read_only(root)?,
        ..Report::default()
    };
    if !root.exists() {
        if let Some(parent) = root.parent().filter(|p| p.exists()) {
            visit(&mut r, access, parent, Need::Directory)?;
        }
        return Ok(r);
    }
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let path = under(root, &rel);
        let meta = fs::symlink_metadata(&path)?;
        if meta.file_type().is_symlink() {
            continue;
        }
        let need = need_of(&rel, meta.is_dir());
        visit(&mut r, access, &path, need)?;
        if meta.is_dir() {
            let entries = match fs::read_dir(&path) {
                Ok(e) => e,
                // We cannot look inside; if we run as Prometheus's user, neither can it, and
                // `visit` has reported the directory already.
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => continue,
                Err(e) => return Err(e),
            };
            for e in entries {
                let child = rel.join(e?.file_name());
                if !skipped(&child) {
                    stack.push(child);
                }
            }
        }
    }
    Ok(r)
}

fn visit(r: &mut Report, access: &Access, path: &Path, need: Need) -> io::Result<()> {
    let m = fs::symlink_metadata(path)?;
    r.entries += 1;
    let mode = m.mode() & 0o7777;
    if !allowed(access, m.uid(), m.gid(), mode, need) {
        r.problem_count += 1;
        if r.problems.len() < MAX_LISTED {
            r.problems.push(Problem {
                path: path.to_path_buf(),
                need,
                uid: m.uid(),
                gid: m.gid(),
                mode,
            });
        }
    }
    Ok(())
}

/// True if the file system holding `path` (or its nearest existing parent) is read-only.
pub fn read_only(path: &Path) -> io::Result<bool> {
    let mut p = path;
    while !p.exists() {
        match p.parent() {
            Some(q) => p = q,
            None => return Ok(false),
        }
    }
    let st = rustix::fs::statvfs(p).map_err(io::Error::from)?;
    Ok(st.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY))
}

/// What [`fix_ownership`] changed.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Fixed {
    /// Entries whose owner or group changed.
    pub chowned: u64,
    /// Entries whose mode gained owner bits.
    pub chmodded: u64,
    /// The first entries changed (at most [`MAX_LISTED`]).
    #[serde(serialize_with = "lossless_paths")]
    pub examples: Vec<PathBuf>,
}

fn lossless_paths<S: serde::Serializer>(v: &[PathBuf], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(v.len()))?;
    for p in v {
        seq.serialize_element(&crate::report::Text(
            crate::report::path_bytes(p).into_owned(),
        ))?;
    }
    seq.end()
}

/// Gives the tree under `root` to `uid:gid` (symlinks themselves, never their targets) and
/// adds the owner's read/write (and search, for directories) bits where missing. Only root
/// can do this; `lost+found` is left alone.
pub fn fix_ownership(root: &Path, uid: u32, gid: u32) -> io::Result<Fixed> {
    let mut f = Fixed::default();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let path = under(root, &rel);
        let m = fs::symlink_metadata(&path)?;
        let mut changed = false;
        if (m.uid(), m.gid()) != (uid, gid) {
            rustix::fs::chownat(
                rustix::fs::CWD,
                &path,
                Some(rustix::fs::Uid::from_raw(uid)),
                Some(rustix::fs::Gid::from_raw(gid)),
                rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(|e| with_path(e.into(), &path))?;
            f.chowned += 1;
            changed = true;
        }
        if !m.file_type().is_symlink() {
            let want = if m.is_dir() { 0o700 } else { 0o600 };
            let mode = m.mode() & 0o7777;
            if mode & want != want {
                crate::fsops::set_owner_mode(&path, None, mode | want)
                    .map_err(|e| with_path(e, &path))?;
                f.chmodded += 1;
                changed = true;
            }
        }
        if changed && f.examples.len() < MAX_LISTED {
            f.examples.push(path.clone());
        }
        if m.is_dir() {
            for e in fs::read_dir(&path)? {
                let child = rel.join(e?.file_name());
                if !skipped(&child) {
                    stack.push(child);
                }
            }
        }
    }
    Ok(f)
}

/// `root/rel`, and `root` itself (no trailing slash) for the empty `rel`.
fn under(root: &Path, rel: &Path) -> PathBuf {
    if rel.as_os_str().is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    }
}

fn with_path(e: io::Error, p: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prom(groups: &[u32]) -> Access {
        Access {
            uid: 65534,
            gid: 65534,
            groups: groups.to_vec(),
        }
    }

    #[test]
    fn mode_bits_as_the_kernel_reads_them() {
        // Owner bits for the owner, even when group or other bits would allow more.
        assert!(!allowed(&prom(&[]), 65534, 0, 0o077, Need::Read));
        assert!(allowed(&prom(&[]), 65534, 0, 0o700, Need::Directory));
        // Root-owned 0755 directory: Prometheus can list it but not create files in it.
        assert!(!allowed(&prom(&[]), 0, 0, 0o755, Need::Directory));
        assert!(allowed(&prom(&[]), 0, 0, 0o644, Need::Read));
        assert!(!allowed(&prom(&[]), 0, 0, 0o644, Need::ReadWrite));
        // fsGroup: group-writable through a supplementary group.
        assert!(allowed(&prom(&[2000]), 0, 2000, 0o775, Need::Directory));
        assert!(!allowed(&prom(&[]), 0, 2000, 0o775, Need::Directory));
        // Root may do anything.
        let root = Access {
            uid: 0,
            gid: 0,
            groups: vec![],
        };
        assert!(allowed(&root, 1, 1, 0o000, Need::Directory));
    }

    #[test]
    fn lock_and_query_log_must_be_writable_other_files_readable() {
        assert_eq!(need_of(Path::new("queries.active"), false), Need::ReadWrite);
        assert_eq!(need_of(Path::new("lock"), false), Need::ReadWrite);
        assert_eq!(need_of(Path::new("wal/00000003"), false), Need::Read);
        assert_eq!(need_of(Path::new("wal"), true), Need::Directory);
    }

    #[test]
    fn a_tree_owned_by_someone_else_is_reported_with_owner_and_mode() {
        let t = tempfile::tempdir().unwrap();
        let data = t.path().join("data");
        fs::create_dir_all(data.join("wal")).unwrap();
        fs::create_dir_all(data.join("lost+found")).unwrap();
        fs::write(data.join("wal/00000000"), b"x").unwrap();
        fs::write(data.join("queries.active"), b"x").unwrap();
        for p in ["", "wal", "lost+found"] {
            crate::fsops::set_owner_mode(&data.join(p), None, 0o755).unwrap();
        }
        for p in ["wal/00000000", "queries.active"] {
            crate::fsops::set_owner_mode(&data.join(p), None, 0o644).unwrap();
        }
        let me = rustix::process::geteuid().as_raw();
        // Someone who is neither the owner nor in the group.
        let other = Access {
            uid: me.wrapping_add(12345),
            gid: 54321,
            groups: vec![],
        };
        let r = check_tree(&data, &other).unwrap();
        assert_eq!(r.entries, 4, "lost+found is skipped");
        assert_eq!(r.problem_count, 3, "{:?}", r.problems);
        let mut got: Vec<_> = r
            .problems
            .iter()
            .map(|p| {
                (
                    p.path.strip_prefix(&data).unwrap().to_path_buf(),
                    p.need,
                    p.mode,
                )
            })
            .collect();
        got.sort();
        assert_eq!(
            got,
            vec![
                (PathBuf::from(""), Need::Directory, 0o755),
                (PathBuf::from("queries.active"), Need::ReadWrite, 0o644),
                (PathBuf::from("wal"), Need::Directory, 0o755),
            ]
        );
        // The owner itself has everything it needs.
        let owner = Access {
            uid: me,
            gid: 54321,
            groups: vec![],
        };
        assert_eq!(check_tree(&data, &owner).unwrap().problem_count, 0);
    }
}
