//! Reading a file a user named (a scenario, a lab file) without trusting it: regular files only
//! (a symlink to `/dev/zero` or a FIFO is refused, not read until memory runs out or forever),
//! at most a few MiB, UTF-8. A leaf module: the parsers of every such file call it.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The largest file read: far above any real scenario or lab file (a few KiB), far below what
/// would hurt the machine.
pub const MAX_BYTES: u64 = 4 * 1024 * 1024;

/// Why a file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read the file: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a regular file but {0}; only regular files are read")]
    NotRegular(&'static str),
    #[error("the file is larger than {} MiB; a scenario or lab file is a few KiB", MAX_BYTES / (1024 * 1024))]
    TooLarge,
    #[error("the file is not UTF-8 text (first bad byte at offset {0})")]
    NotUtf8(usize),
}

fn kind(t: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_dir() {
        "a directory"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// Reads `path` as text, at most [`MAX_BYTES`].
pub fn read_capped(path: &Path) -> Result<String, ReadError> {
    read_capped_to(path, MAX_BYTES)
}

/// Reads `path` as text, at most `max` bytes.
pub fn read_capped_to(path: &Path, max: u64) -> Result<String, ReadError> {
    // Non-blocking open: opening a FIFO for reading would otherwise wait for a writer. The type
    // is then checked on the open descriptor, so a file swapped in between is not read either.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(ReadError::NotRegular(kind(meta.file_type())));
    }
    if meta.len() > max {
        return Err(ReadError::TooLarge);
    }
    let mut bytes = Vec::new();
    // The size can change after the check: read one byte past the cap to see it.
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(ReadError::TooLarge);
    }
    String::from_utf8(bytes).map_err(|e| ReadError::NotUtf8(e.utf8_error().valid_up_to()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symlink_to_dev_zero_is_refused_without_reading_it() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("zero.toml");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        let e = read_capped(&link).unwrap_err();
        assert!(
            matches!(e, ReadError::NotRegular("a character device")),
            "{e}"
        );
    }

    #[test]
    fn a_fifo_is_refused_without_waiting_for_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe.toml");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRUSR).unwrap();
        let e = read_capped(&fifo).unwrap_err();
        assert!(matches!(e, ReadError::NotRegular("a FIFO")), "{e}");
    }

    #[test]
    fn a_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let e = read_capped(dir.path()).unwrap_err();
        assert!(matches!(e, ReadError::NotRegular("a directory")), "{e}");
    }

    #[test]
    fn a_file_over_the_cap_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.toml");
        std::fs::write(&big, vec![b'#'; 101]).unwrap();
        assert!(matches!(
            read_capped_to(&big, 100).unwrap_err(),
            ReadError::TooLarge
        ));
        std::fs::write(&big, vec![b'#'; 100]).unwrap();
        assert_eq!(read_capped_to(&big, 100).unwrap().len(), 100);
    }

    #[test]
    fn bytes_that_are_not_utf8_are_refused_with_their_offset() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("bin.toml");
        std::fs::write(&f, b"name = \xff").unwrap();
        assert!(matches!(
            read_capped(&f).unwrap_err(),
            ReadError::NotUtf8(7)
        ));
    }
}
