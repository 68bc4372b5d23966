//! File locks: one runner per queue per machine, and one run at a time of a
//! command marked `lock`.
//!
//! Locks are `flock` locks (through `fd-lock`) on files in the lock folder,
//! named after the database and the queue or command. The operating system
//! releases them when the process exits, however it exits, so a crash or a
//! reboot never leaves one stuck.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

/// The environment variable that sets the lock folder.
pub const LOCK_DIR_VAR: &str = "QUICKSILVER_LOCK_DIR";

/// The errors of file locking.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// The lock file could not be created or locked.
    #[error("cannot use lock file `{path}`: check that the lock folder exists and is writable, or set {LOCK_DIR_VAR}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
}

/// The kind of thing a lock protects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LockKind {
    Queue,
    Command,
}

/// Returns the lock folder: `QUICKSILVER_LOCK_DIR`, or the system's
/// temporary folder.
pub(crate) fn default_lock_dir() -> PathBuf {
    std::env::var_os(LOCK_DIR_VAR)
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
}

/// Returns the path of the lock of `name` for the database with `key`.
pub(crate) fn lock_path(dir: &Path, database_key: &str, kind: LockKind, name: &str) -> PathBuf {
    let kind = match kind {
        LockKind::Queue => "queue",
        LockKind::Command => "command",
    };
    dir.join(format!(
        "quicksilver-{database_key}-{kind}-{}.lock",
        file_safe(name)
    ))
}

/// Keeps letters, digits, `-` and `_`, and writes every other byte as `%XX`,
/// so that distinct names give distinct file names.
fn file_safe(name: &str) -> String {
    let mut safe = String::with_capacity(name.len());
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' {
            safe.push(char::from(byte));
        } else {
            safe.push_str(&format!("%{byte:02X}"));
        }
    }
    safe
}

/// A held lock; dropping it closes the file, which releases the lock.
#[derive(Debug)]
pub(crate) struct HeldLock {
    _file: fd_lock::RwLock<File>,
}

/// The result of trying a lock that may be taken.
#[derive(Debug)]
pub(crate) enum Attempt {
    Acquired(HeldLock),
    /// Another process has it. `holder` is the note the holder wrote in the
    /// file (its pid and identity), if readable.
    Taken {
        holder: String,
    },
}

/// Tries to take the lock at `path` without waiting, writing `holder` into
/// the file when it succeeds.
pub(crate) fn try_lock(path: &Path, holder: &str) -> Result<Attempt, LockError> {
    let io_error = |source| LockError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io_error)?;
    let mut lock = fd_lock::RwLock::new(file);

    let acquired = match lock.try_write() {
        Ok(mut guard) => {
            // Best effort: the note only helps people who find the file.
            let _ = guard.set_len(0);
            let _ = guard.rewind();
            let _ = guard.write_all(holder.as_bytes());
            // Leave the lock held until the file closes, when `HeldLock`
            // drops, instead of when this guard drops.
            std::mem::forget(guard);
            true
        }
        Err(error) if error.kind() == io::ErrorKind::WouldBlock => false,
        Err(error) => return Err(io_error(error)),
    };

    if acquired {
        tracing::trace!(lock.path = %path.display(), "lock taken");
        return Ok(Attempt::Acquired(HeldLock { _file: lock }));
    }

    let mut holder = String::new();
    let mut reader = File::open(path).map_err(io_error)?;
    let _ = reader.read_to_string(&mut holder);
    tracing::trace!(lock.path = %path.display(), "lock not taken: held by another process");
    Ok(Attempt::Taken {
        holder: holder.trim().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_attempt_sees_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = lock_path(dir.path(), "abc", LockKind::Command, "send mail");
        let first = try_lock(&path, "pid 1").unwrap();
        assert!(matches!(first, Attempt::Acquired(_)));
        match try_lock(&path, "pid 2").unwrap() {
            Attempt::Taken { holder } => assert_eq!(holder, "pid 1"),
            Attempt::Acquired(_) => panic!("lock taken twice"),
        }
        drop(first);
        assert!(matches!(
            try_lock(&path, "pid 3").unwrap(),
            Attempt::Acquired(_)
        ));
    }

    #[test]
    fn names_are_escaped_distinctly() {
        assert_eq!(file_safe("a/b c"), "a%2Fb%20c");
        assert_ne!(file_safe("a.b"), file_safe("a_b"));
    }
}
