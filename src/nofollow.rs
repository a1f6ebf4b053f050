//! Opening the files of a data directory for reading: never through a symbolic link, and
//! never anything but a regular file.
//!
//! The data directory itself may be a symbolic link (that is its owner's choice, made when
//! the path is configured), but a file inside it is opened with `O_NOFOLLOW`: a segment,
//! `auditlog.meta`, an index side file, `checkpoints.jsonl`, `policy.log` or an archived
//! segment replaced by a link is refused with an error that says so, instead of making the
//! engine read (or map, or write through) whatever the link points to. `O_NONBLOCK` keeps a
//! FIFO planted under such a name from blocking the open; it has no effect on regular files.
//! Files are checked to be regular after the open, on the descriptor itself, so a name
//! swapped between a check and the open cannot slip through.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

fn open_with(path: &Path, write: bool) -> io::Result<File> {
    let f = OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| explain(path, e))?;
    let ft = f.metadata()?.file_type();
    if !ft.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file (a data directory holds only regular files)",
        ));
    }
    Ok(f)
}

/// `ELOOP` from `O_NOFOLLOW` means the name itself is a symbolic link: say so.
fn explain(path: &Path, e: io::Error) -> io::Error {
    let is_link = e.raw_os_error() == Some(libc::ELOOP)
        && std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    if is_link {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "is a symbolic link, and files inside a data directory are never followed; replace it with the file itself",
        )
    } else {
        e
    }
}

/// Opens an existing regular file for reading.
pub(crate) fn open(path: &Path) -> io::Result<File> {
    open_with(path, false)
}

/// Opens an existing regular file for reading and writing (a segment recovery may repair).
pub(crate) fn open_rw(path: &Path) -> io::Result<File> {
    open_with(path, true)
}

/// Reads a whole regular file.
pub(crate) fn read(path: &Path) -> io::Result<Vec<u8>> {
    let mut v = Vec::new();
    read_into(path, &mut v)?;
    Ok(v)
}

/// Reads a whole regular file into `buf` (cleared first), reusing its memory: a buffer
/// already touched costs no page faults, which on some machines cost more than the read.
pub(crate) fn read_into(path: &Path, buf: &mut Vec<u8>) -> io::Result<()> {
    let mut f = open(path)?;
    buf.clear();
    let len = f.metadata()?.len() as usize;
    buf.reserve(len);
    f.read_to_end(buf)?;
    Ok(())
}

/// Fails if `dir` exists and is not a real directory (a symbolic link, a file). An absent
/// directory is fine.
pub(crate) fn check_dir(dir: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_symlink() => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "is a symbolic link, and directories inside a data directory are never followed; replace it with the directory itself",
        )),
        Ok(m) if !m.is_dir() => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "is not a directory",
        )),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}
