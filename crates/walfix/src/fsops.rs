//! The file operations repair performs, behind a small trait so tests can inject failures at any
//! step (and so every write follows the same atomic pattern).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// A file being written: bytes, then `sync`.
pub trait FileWriter: Write {
    /// Flushes and fsyncs the file.
    fn sync(&mut self) -> io::Result<()>;
}

impl FileWriter for File {
    fn sync(&mut self) -> io::Result<()> {
        self.flush()?;
        self.sync_all()
    }
}

/// The mutating file operations of a repair. Reads go through `std` directly.
pub trait Fs: Sync {
    /// Creates `path` (which must not exist) for writing, mode 0644.
    fn create(&self, path: &Path) -> io::Result<Box<dyn FileWriter + '_>>;
    /// Renames `from` to `to`, replacing a file at `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Removes a directory and everything in it.
    fn remove_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Creates a directory and its parents.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// fsyncs a directory, making renames and creations in it durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// Appends one line to `path` (created if missing) and fsyncs it.
    fn append_line(&self, path: &Path, line: &[u8]) -> io::Result<()>;
    /// Bytes an unprivileged writer may still use on the file system holding `path`.
    fn free_space(&self, path: &Path) -> io::Result<u64> {
        let st = rustix::fs::statvfs(path).map_err(io::Error::from)?;
        Ok(st.f_bavail.saturating_mul(st.f_frsize))
    }
}

/// The real file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealFs;

impl Fs for RealFs {
    fn create(&self, path: &Path) -> io::Result<Box<dyn FileWriter + '_>> {
        let mut o = OpenOptions::new();
        o.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            // Segments must stay readable by Prometheus, which may run as another user.
            o.mode(0o644);
        }
        Ok(Box::new(o.open(path)?))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }
    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::remove_dir_all(path)
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::create_dir_all(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }
    fn append_line(&self, path: &Path, line: &[u8]) -> io::Result<()> {
        let mut f = OpenOptions::new().create(true).append(true).open(path)?;
        f.write_all(line)?;
        f.write_all(b"\n")?;
        f.sync_all()
    }
}

/// Writes `path` atomically: a temp file in the same directory, fsync, rename over `path`,
/// fsync the directory. A crash leaves either the old file or the new one, plus maybe a temp
/// file that the next run removes.
pub fn replace_file(
    fs: &dyn Fs,
    path: &Path,
    write: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = temp_name(path);
    if tmp.exists() {
        fs.remove_file(&tmp)?;
    }
    {
        let mut f = fs.create(&tmp)?;
        write(&mut f)?;
        f.sync()?;
    }
    fs.rename(&tmp, path)?;
    fs.sync_dir(dir)
}

/// The temp name used for `path`: hidden and non-numeric, so Prometheus never takes it for a
/// segment.
pub fn temp_name(path: &Path) -> std::path::PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.walfix-tmp"))
}

/// True for names made by [`temp_name`].
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".walfix-tmp")
}

/// Copies file `from` to `to` atomically (temp file, fsync, rename, fsync dir).
pub fn copy_file(fs: &dyn Fs, from: &Path, to: &Path) -> io::Result<()> {
    let mut src = File::open(from)?;
    replace_file(fs, to, &mut |w| io::copy(&mut src, w).map(|_| ()))
}
