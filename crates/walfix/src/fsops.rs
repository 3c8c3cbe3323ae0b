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
    /// Cuts or extends (with zeros, as a hole) the file at `path` to `len` bytes, in place, and
    /// fsyncs it. Repair uses it only where the bytes kept are unchanged (a torn tail cut off,
    /// a last page zero-padded), so a crash leaves the old file or the new one, and it needs no
    /// free space.
    fn set_len(&self, path: &Path, len: u64) -> io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        // Never through a symlink (repair checks before; this closes the race).
        let f = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)?;
        f.set_len(len)?;
        f.sync_all()
    }
    /// Sets the owner (when `owner` is given) and the permission bits of `path`.
    fn set_owner_mode(&self, path: &Path, owner: Option<(u32, u32)>, mode: u32) -> io::Result<()> {
        set_owner_mode(path, owner, mode)
    }
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

/// Who owns a file walfix writes, and its mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Perms {
    /// The owner, group and mode of the file it replaces; a new file gets its directory's
    /// owner and group, mode 0644 (Prometheus, maybe another user, must read it).
    Keep,
    /// The directory's owner and group, mode 0600 (backups: only their owner reads them).
    Private,
}

/// Writes `path` atomically: a temp file in the same directory, fsync, rename over `path`,
/// fsync the directory. A crash leaves either the old file or the new one, plus maybe a temp
/// file that the next run removes. The new file keeps the owner, group and mode of the one it
/// replaces ([`Perms::Keep`]), so a repair run as root leaves files Prometheus's user can
/// still write.
pub fn replace_file(
    fs: &dyn Fs,
    path: &Path,
    write: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    replace_file_as(fs, path, Perms::Keep, write)
}

/// [`replace_file`] with the owner and mode `perms` gives.
pub fn replace_file_as(
    fs: &dyn Fs,
    path: &Path,
    perms: Perms,
    write: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let tmp = temp_name(path);
    if tmp.exists() {
        fs.remove_file(&tmp)?;
    }
    let (owner, mode) = target_owner_mode(path, dir, perms)?;
    {
        let mut f = fs.create(&tmp)?;
        write(&mut f)?;
        fs.set_owner_mode(&tmp, owner, mode)?;
        f.sync()?;
    }
    fs.rename(&tmp, path)?;
    fs.sync_dir(dir)
}

/// The owner to give (None: leave it, we could not change it anyway) and the mode.
fn target_owner_mode(
    path: &Path,
    dir: &Path,
    perms: Perms,
) -> io::Result<(Option<(u32, u32)>, u32)> {
    use std::os::unix::fs::MetadataExt;
    let existing = match (perms, fs::symlink_metadata(path)) {
        (Perms::Keep, Ok(m)) if m.is_file() => Some(m),
        _ => None,
    };
    let (meta, mode) = match existing {
        Some(m) => {
            let mode = m.mode() & 0o7777;
            (m, mode)
        }
        None => (
            fs::metadata(dir)?,
            if perms == Perms::Private {
                0o600
            } else {
                0o644
            },
        ),
    };
    Ok((wanted_owner(meta.uid(), meta.gid()), mode))
}

/// `Some((uid, gid))` when the file should be chowned to them: only root may give files away,
/// and for anyone else the new file is theirs already.
pub fn wanted_owner(uid: u32, gid: u32) -> Option<(u32, u32)> {
    let me = rustix::process::geteuid().as_raw();
    (me == 0 && (uid, gid) != (0, 0)).then_some((uid, gid))
}

/// chown (when asked) and chmod, without following symlinks for the chown.
pub fn set_owner_mode(path: &Path, owner: Option<(u32, u32)>, mode: u32) -> io::Result<()> {
    use rustix::fs::{chmodat, chownat, AtFlags, Gid, Mode, Uid, CWD};
    if let Some((u, g)) = owner {
        chownat(
            CWD,
            path,
            Some(Uid::from_raw(u)),
            Some(Gid::from_raw(g)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(io::Error::from)?;
    }
    chmodat(CWD, path, Mode::from_raw_mode(mode), AtFlags::empty()).map_err(io::Error::from)
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

/// Copies file `from` to `to` atomically (temp file, fsync, rename, fsync dir), with the owner
/// and mode `perms` gives.
pub fn copy_file(fs: &dyn Fs, from: &Path, to: &Path, perms: Perms) -> io::Result<()> {
    let mut src = File::open(from)?;
    replace_file_as(fs, to, perms, &mut |w| io::copy(&mut src, w).map(|_| ()))
}
