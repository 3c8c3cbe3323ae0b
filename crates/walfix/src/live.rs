//! Is a Prometheus using this data dir right now?
//!
//! The `lock` flock is the reliable answer, but Prometheus 2.x takes it only with
//! `--storage.tsdb.use-lockfile`. Without it two weaker signs remain: a process (that we may
//! inspect) holding a file of the data dir open, and a newest segment that grows while we
//! watch. Neither sees a Prometheus in another PID namespace that is idle, which is why the
//! watch is only a last line and the docs recommend the lock file.

use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

/// Evidence that something is writing the data dir.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "evidence", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Live {
    /// A process holds a file of the data dir open.
    OpenFile {
        /// Its pid.
        pid: u32,
        /// Its command name (`/proc/PID/comm`).
        command: String,
        /// The file.
        #[serde(serialize_with = "crate::report::lossless_path")]
        path: PathBuf,
    },
    /// The newest segment changed while we watched.
    Growing {
        /// The segment.
        #[serde(serialize_with = "crate::report::lossless_path")]
        path: PathBuf,
        /// Its size before and after.
        size_before: u64,
        /// Its size after the watch.
        size_after: u64,
        /// How long we watched.
        watched_ms: u64,
    },
}

impl fmt::Display for Live {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Live::OpenFile { pid, command, path } => write!(
                f,
                "process {pid} ({}) has {} open: a Prometheus without a lock file is running on this data dir",
                walfix_format::text::escape_controls(command),
                crate::report::show_path(path)
            ),
            Live::Growing {
                path,
                size_before,
                size_after,
                watched_ms,
            } => write!(
                f,
                "{} changed while watched for {} ms ({size_before} -> {size_after} bytes): something, likely a Prometheus without a lock file, is writing this WAL",
                crate::report::show_path(path),
                watched_ms
            ),
        }
    }
}

/// The first process (other than us) found holding a file under `data_root` open, from
/// `/proc/*/fd`. Processes we may not inspect (another user's, without root) are skipped.
pub fn open_by_process(data_root: &Path) -> Option<Live> {
    let root = fs::canonicalize(data_root).ok()?;
    open_by_process_in(Path::new("/proc"), &root, std::process::id())
}

/// [`open_by_process`] over a given procfs (tests use a fake one).
pub fn open_by_process_in(proc_dir: &Path, root: &Path, me: u32) -> Option<Live> {
    let mut pids: Vec<u32> = fs::read_dir(proc_dir)
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&p| p != me)
        .collect();
    pids.sort_unstable();
    for pid in pids {
        let Ok(fds) = fs::read_dir(proc_dir.join(pid.to_string()).join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(target) = fs::read_link(fd.path()) else {
                continue;
            };
            if target.starts_with(root) {
                let command = fs::read_to_string(proc_dir.join(pid.to_string()).join("comm"))
                    .map(|c| c.trim_end().to_string())
                    .unwrap_or_default();
                return Some(Live::OpenFile {
                    pid,
                    command,
                    path: target,
                });
            }
        }
    }
    None
}

/// The newest segment of `data_root`'s `wal/` (or of `data_root` itself when it is a log dir).
pub fn newest_segment(data_root: &Path) -> io::Result<Option<PathBuf>> {
    let wal = data_root.join("wal");
    let dir = if wal.is_dir() {
        wal
    } else {
        data_root.to_path_buf()
    };
    let mut best: Option<(u64, PathBuf)> = None;
    for e in fs::read_dir(&dir)? {
        let e = e?;
        let Some(n) = e.file_name().to_str().and_then(crate::layout::parse_index) else {
            continue;
        };
        if best.as_ref().is_none_or(|(b, _)| n > *b) {
            best = Some((n, e.path()));
        }
    }
    Ok(best.map(|(_, p)| p))
}

/// If the newest segment was written less than `wait` ago, watches it until it is `wait` old;
/// a change of size or mtime in that time means a writer. A segment older than `wait` is not
/// watched (a crashed Prometheus's last segment is quiet by the time it restarts).
pub fn growing_segment(data_root: &Path, wait: Duration) -> io::Result<Option<Live>> {
    let Some(seg) = newest_segment(data_root)? else {
        return Ok(None);
    };
    let stat = |p: &Path| -> io::Result<(u64, i64, i64)> {
        let m = fs::metadata(p)?;
        Ok((m.len(), m.mtime(), m.mtime_nsec()))
    };
    let before = stat(&seg)?;
    let modified = fs::metadata(&seg)?.modified()?;
    let age = SystemTime::now()
        .duration_since(modified)
        .unwrap_or(Duration::ZERO);
    if age >= wait {
        return Ok(None);
    }
    // Polled, so a writer is caught at its first write rather than at the end of the wait.
    let start = std::time::Instant::now();
    let watch = wait - age;
    loop {
        let left = watch.saturating_sub(start.elapsed());
        std::thread::sleep(left.min(Duration::from_millis(200)));
        let after = stat(&seg)?;
        if after != before {
            return Ok(Some(Live::Growing {
                path: seg,
                size_before: before.0,
                size_after: after.0,
                watched_ms: start.elapsed().as_millis() as u64,
            }));
        }
        if left.is_zero() || start.elapsed() >= watch {
            return Ok(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_process_holding_a_file_under_the_root() {
        let t = tempfile::tempdir().unwrap();
        let proc_dir = t.path().join("proc");
        let data = t.path().join("data");
        fs::create_dir_all(data.join("wal")).unwrap();
        fs::write(data.join("wal/00000000"), b"").unwrap();
        for (pid, target, comm) in [
            (7u32, t.path().join("elsewhere"), "sh"),
            (42, data.join("wal/00000000"), "prometheus"),
            (99, data.join("wal/00000000"), "walfix"),
        ] {
            let fd = proc_dir.join(pid.to_string()).join("fd");
            fs::create_dir_all(&fd).unwrap();
            std::os::unix::fs::symlink(&target, fd.join("3")).unwrap();
            fs::write(
                proc_dir.join(pid.to_string()).join("comm"),
                format!("{comm}\n"),
            )
            .unwrap();
        }
        // pid 99 is "us" and is skipped; 7 holds nothing under the root.
        let got = open_by_process_in(&proc_dir, &data, 99).unwrap();
        assert_eq!(
            got,
            Live::OpenFile {
                pid: 42,
                command: "prometheus".into(),
                path: data.join("wal/00000000")
            }
        );
        assert_eq!(
            open_by_process_in(&proc_dir, &data.join("wal/none"), 99),
            None
        );
    }

    #[test]
    fn a_segment_written_during_the_watch_is_live_an_old_one_is_not() {
        let t = tempfile::tempdir().unwrap();
        let wal = t.path().join("wal");
        fs::create_dir_all(&wal).unwrap();
        fs::write(wal.join("00000001"), b"a").unwrap();
        fs::write(wal.join("00000003"), b"a").unwrap();
        let seg = wal.join("00000003");
        let writer = {
            let seg = seg.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(150));
                fs::write(&seg, b"abc").unwrap();
            })
        };
        let t0 = std::time::Instant::now();
        let got = growing_segment(t.path(), Duration::from_secs(5)).unwrap();
        // Caught at the first poll after the write, not at the end of the 5 s.
        assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
        writer.join().unwrap();
        match got {
            Some(Live::Growing {
                path,
                size_before: 1,
                size_after: 3,
                ..
            }) => assert_eq!(path, seg),
            other => panic!("{other:?}"),
        }
        // Quiet for longer than the wait: not watched, not live.
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(
            growing_segment(t.path(), Duration::from_millis(200)).unwrap(),
            None
        );
        // Recent but quiet through the watch: not live.
        fs::write(&seg, b"abcd").unwrap();
        assert_eq!(
            growing_segment(t.path(), Duration::from_millis(200)).unwrap(),
            None
        );
    }
}
