//! Every file-system operation that changes what is on disk goes through this module:
//! creating files and directories, positioned writes, `set_len`, `fdatasync`/`fsync`,
//! `msync`, renames, removals and directory syncs.
//!
//! Funnelling them gives three things:
//! - one place that decides permissions: files are created `0600` and directories `0700`,
//!   because audit records are personal data and the key check in `meta` is key material;
//! - a named fault-injection point in front of every step (feature `failpoints`; see
//!   [`crate::failpoints`] for the names). Without the feature each point compiles to nothing;
//! - a trace of every durable change, in order, from which the crash simulator rebuilds
//!   what a power loss at any step could leave behind (also feature `failpoints`).
//!
//! Files are opened with `O_NOFOLLOW`: a symbolic link planted under a name the engine writes
//! (`LOCK`, `checkpoints.jsonl`, `policy.log`, a temporary) is an error (`ELOOP`), never a way
//! to make the engine write elsewhere. Reads do not come through here (see `nofollow`).

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::Path;

use crate::mmap::SharedMap;

/// Permission bits of every file the engine creates.
pub const FILE_MODE: u32 = 0o600;
/// Permission bits of every directory the engine creates.
pub const DIR_MODE: u32 = 0o700;

/// A named fault-injection point with no I/O of its own (for steps such as copying a frame
/// into the map, which is a store, not a system call).
#[inline]
pub(crate) fn point(name: &'static str) -> io::Result<()> {
    #[cfg(feature = "failpoints")]
    crate::failpoints::eval(name)?;
    let _ = name;
    Ok(())
}

/// Creates a new, empty file for reading and writing; fails if it exists.
pub(crate) fn create_new(name: &'static str, path: &Path) -> io::Result<File> {
    point(name)?;
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    trace_create(path, &f);
    Ok(f)
}

/// Creates or truncates a file for writing.
pub(crate) fn create_truncate(name: &'static str, path: &Path) -> io::Result<File> {
    point(name)?;
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .mode(FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    trace_create(path, &f);
    Ok(f)
}

/// Opens a file for reading and writing (`append`: every write goes to the end, atomically
/// with respect to other appenders), creating it empty when absent. Returns whether it was
/// created.
pub(crate) fn open_or_create(
    name: &'static str,
    path: &Path,
    append: bool,
) -> io::Result<(File, bool)> {
    point(name)?;
    let opts = |create: bool| {
        let mut o = OpenOptions::new();
        o.read(true)
            .create_new(create)
            .mode(FILE_MODE)
            .custom_flags(libc::O_NOFOLLOW);
        if append {
            o.append(true);
        } else {
            o.write(true);
        }
        o
    };
    match opts(true).open(path) {
        Ok(f) => {
            trace_create(path, &f);
            Ok((f, true))
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok((opts(false).open(path)?, false)),
        Err(e) => Err(e),
    }
}

/// Appends all of `buf` to a file opened with `append`.
pub(crate) fn append(name: &'static str, file: &File, buf: &[u8]) -> io::Result<()> {
    point(name)?;
    let mut f = file;
    f.write_all(buf)?;
    #[cfg(feature = "failpoints")]
    {
        use std::io::Seek;
        let end = f.stream_position()?;
        crate::failpoints::trace::write(file, end - buf.len() as u64, buf);
    }
    Ok(())
}

/// Creates `dir` and its missing parents with mode `0700` (an existing directory is kept as
/// it is: its permissions are its owner's choice).
pub(crate) fn create_dir_all(name: &'static str, dir: &Path) -> io::Result<()> {
    point(name)?;
    if dir.is_dir() {
        return Ok(());
    }
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)?;
    #[cfg(feature = "failpoints")]
    crate::failpoints::trace::mkdir(dir);
    Ok(())
}

/// Writes all of `buf` at `off`.
pub(crate) fn write_at(name: &'static str, file: &File, buf: &[u8], off: u64) -> io::Result<()> {
    point(name)?;
    file.write_all_at(buf, off)?;
    #[cfg(feature = "failpoints")]
    crate::failpoints::trace::write(file, off, buf);
    Ok(())
}

/// Sets the file's length (cuts or extends with a hole).
pub(crate) fn set_len(name: &'static str, file: &File, len: u64) -> io::Result<()> {
    point(name)?;
    file.set_len(len)?;
    #[cfg(feature = "failpoints")]
    crate::failpoints::trace::set_len(file, len);
    Ok(())
}

/// Reserves the blocks of `[0, len)` and sets the length (`posix_fallocate`): reads as zeros
/// like `set_len`, but a later store into the range never needs a new block.
pub(crate) fn allocate(name: &'static str, file: &File, len: u64) -> io::Result<()> {
    point(name)?;
    crate::mmap::allocate(file, len)?;
    #[cfg(feature = "failpoints")]
    crate::failpoints::trace::set_len(file, len);
    Ok(())
}

/// `fdatasync`: the file's data (and the size, when it changed) is durable.
pub(crate) fn sync_data(name: &'static str, file: &File) -> io::Result<()> {
    point(name)?;
    file.sync_data()?;
    #[cfg(feature = "failpoints")]
    crate::failpoints::trace::sync(file);
    Ok(())
}

/// `fsync`: the file's data and metadata are durable.
pub(crate) fn sync_all(name: &'static str, file: &File) -> io::Result<()> {
    point(name)?;
    file.sync_all()?;
    #[cfg(feature = "failpoints")]
    crate::failpoints::trace::sync(file);
    Ok(())
}

/// `syncfs` of the file system holding `file`: every dirty page and inode on it is written
/// back, with one journal commit and one cache flush (a sync of many small files at once).
pub(crate) fn syncfs(name: &'static str, file: &File) -> io::Result<()> {
    point(name)?;
    rustix::fs::syncfs(file)?;
    Ok(())
}

/// `fdatasync` of a file whose records were stored through `map`: the same durability as
/// [`sync_data`]; the trace also sees the stores, which reach the file through the map.
pub(crate) fn sync_data_mapped(name: &'static str, file: &File, map: &SharedMap) -> io::Result<()> {
    point(name)?;
    file.sync_data()?;
    #[cfg(feature = "failpoints")]
    crate::failpoints::trace::msync(map, file, 0, map.committed().len());
    #[cfg(not(feature = "failpoints"))]
    let _ = map;
    Ok(())
}

/// `msync(MS_SYNC)` of `[off, off + len)` of a shared map of `file`.
pub(crate) fn msync(
    name: &'static str,
    map: &SharedMap,
    file: &File,
    off: usize,
    len: usize,
) -> io::Result<()> {
    point(name)?;
    map.flush_range(off, len)?;
    #[cfg(feature = "failpoints")]
    crate::failpoints::trace::msync(map, file, off, len);
    #[cfg(not(feature = "failpoints"))]
    let _ = file;
    Ok(())
}

/// Atomically renames `from` to `to` (replacing `to`). Durable once the directory is synced.
pub(crate) fn rename(name: &'static str, from: &Path, to: &Path) -> io::Result<()> {
    point(name)?;
    std::fs::rename(from, to)?;
    #[cfg(feature = "failpoints")]
    crate::failpoints::trace::rename(from, to);
    Ok(())
}

/// Removes a file. Durable once the directory is synced.
pub(crate) fn remove(name: &'static str, path: &Path) -> io::Result<()> {
    point(name)?;
    std::fs::remove_file(path)?;
    #[cfg(feature = "failpoints")]
    crate::failpoints::trace::remove(path);
    Ok(())
}

/// Removes a file if it exists; an absent file is not an error.
pub(crate) fn remove_if_exists(name: &'static str, path: &Path) -> io::Result<()> {
    match remove(name, path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// `fsync` of a directory, so that entries created, renamed or removed in it are durable.
pub(crate) fn sync_dir(name: &'static str, dir: &Path) -> io::Result<()> {
    point(name)?;
    File::open(dir)?.sync_all()?;
    #[cfg(feature = "failpoints")]
    crate::failpoints::trace::sync_dir(dir);
    Ok(())
}

#[inline]
fn trace_create(path: &Path, file: &File) {
    #[cfg(feature = "failpoints")]
    crate::failpoints::trace::create(path, file);
    let _ = (path, file);
}
