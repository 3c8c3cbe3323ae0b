//! The memory limit of the current container: cgroup v2 `memory.max`, cgroup v1
//! `memory.limit_in_bytes`, the lowest along the cgroup's path (a parent's limit applies too).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// A detected limit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MemoryLimit {
    /// Bytes; `None` when no cgroup limits memory.
    pub bytes: Option<u64>,
    /// The file the limit was read from, or what was looked at.
    pub source: String,
}

/// cgroup v1 reports "no limit" as a huge page-aligned number (2^63 - 4096 on x86-64).
const V1_UNLIMITED: u64 = 1 << 62;

/// Reads the limit of the cgroup this process runs in.
pub fn detect_memory_limit() -> io::Result<MemoryLimit> {
    let cgroup = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    detect_in(Path::new("/sys/fs/cgroup"), &cgroup)
}

/// [`detect_memory_limit`] with another cgroup mount point and `/proc/self/cgroup` text (tests).
pub fn detect_in(root: &Path, proc_cgroup: &str) -> io::Result<MemoryLimit> {
    let mut v2_path = None;
    let mut v1_path = None;
    for line in proc_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(ctrl), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if id == "0" && ctrl.is_empty() {
            v2_path = Some(path.to_string());
        } else if ctrl.split(',').any(|c| c == "memory") {
            v1_path = Some(path.to_string());
        }
    }
    let mut looked = Vec::new();
    // cgroup v2: unified hierarchy at the root (no "memory" subdirectory).
    if root.join("cgroup.controllers").exists() || root.join("memory.max").exists() {
        let path = v2_path.unwrap_or_else(|| "/".into());
        if let Some((b, f)) = lowest(root, &path, "memory.max", &mut looked)? {
            return Ok(MemoryLimit {
                bytes: Some(b),
                source: f.display().to_string(),
            });
        }
    }
    // cgroup v1: the memory controller's own hierarchy.
    let v1 = root.join("memory");
    if v1.is_dir() {
        let path = v1_path.unwrap_or_else(|| "/".into());
        if let Some((b, f)) = lowest(&v1, &path, "memory.limit_in_bytes", &mut looked)? {
            return Ok(MemoryLimit {
                bytes: Some(b),
                source: f.display().to_string(),
            });
        }
    }
    Ok(MemoryLimit {
        bytes: None,
        source: if looked.is_empty() {
            format!("no cgroup memory controller under {}", root.display())
        } else {
            format!("no limit in {}", looked.join(", "))
        },
    })
}

/// The lowest limit in `file` from the cgroup `path` up to the mount root. A container usually
/// sees its own cgroup at the root (cgroup namespace); otherwise its path is under the root.
fn lowest(
    mount: &Path,
    path: &str,
    file: &str,
    looked: &mut Vec<String>,
) -> io::Result<Option<(u64, PathBuf)>> {
    let mut best: Option<(u64, PathBuf)> = None;
    let mut dir = PathBuf::from(path.trim_start_matches('/'));
    loop {
        let f = mount.join(&dir).join(file);
        if let Ok(text) = fs::read_to_string(&f) {
            looked.push(f.display().to_string());
            let t = text.trim();
            if t != "max" {
                let v: u64 = t.parse().map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{}: not a number: {t:?}", f.display()),
                    )
                })?;
                if v < V1_UNLIMITED && best.as_ref().is_none_or(|(b, _)| v < *b) {
                    best = Some((v, f));
                }
            }
        }
        if !dir.pop() {
            break;
        }
    }
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_limit_and_parent() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        fs::write(r.join("cgroup.controllers"), "memory").unwrap();
        fs::create_dir_all(r.join("kubepods/pod1/c1")).unwrap();
        fs::write(r.join("kubepods/pod1/c1/memory.max"), "max\n").unwrap();
        fs::write(r.join("kubepods/pod1/memory.max"), "1073741824\n").unwrap();
        let l = detect_in(r, "0::/kubepods/pod1/c1\n").unwrap();
        assert_eq!(l.bytes, Some(1 << 30));
        assert!(l.source.ends_with("kubepods/pod1/memory.max"));
    }

    #[test]
    fn v2_namespaced_root() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("memory.max"), "536870912\n").unwrap();
        let l = detect_in(d.path(), "0::/\n").unwrap();
        assert_eq!(l.bytes, Some(512 << 20));
    }

    #[test]
    fn v1_limit_and_unlimited() {
        let d = tempfile::tempdir().unwrap();
        let m = d.path().join("memory");
        fs::create_dir_all(m.join("docker/abc")).unwrap();
        fs::write(m.join("memory.limit_in_bytes"), "9223372036854771712\n").unwrap();
        fs::write(m.join("docker/abc/memory.limit_in_bytes"), "268435456\n").unwrap();
        let l = detect_in(d.path(), "4:memory:/docker/abc\n1:cpu:/\n").unwrap();
        assert_eq!(l.bytes, Some(256 << 20));
        let l = detect_in(d.path(), "4:memory:/\n").unwrap();
        assert_eq!(l.bytes, None);
    }

    #[test]
    fn nothing() {
        let d = tempfile::tempdir().unwrap();
        let l = detect_in(d.path(), "").unwrap();
        assert_eq!(l.bytes, None);
    }
}
