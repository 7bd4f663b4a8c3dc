//! Participant liveness without PIDs (Unix): a participant of a cross-process protocol (the
//! message channel, docs/channel.md §6) holds an exclusive `flock` on its own lock file
//! `<dir>/<name>.p<token>` for as long as it lives. The kernel drops the lock when the last
//! descriptor of that open file closes, i.e. when the process dies however it dies, and `flock`
//! works on the file, not on a PID: it answers the same in every PID namespace that shares the
//! directory (containers sharing `/dev/shm`), is immune to PID reuse, and a stopped (`SIGSTOP`)
//! holder still holds it. Linux: `<dir>` is `/dev/shm`, beside the segment; other Unixes have no
//! shm directory, so `/tmp` is used: every peer must look in the same directory (a peer that does
//! not find a live participant's file takes it for dead), and `$TMPDIR` is per user on macOS.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use rustix::fs::{fchmod, flock, fstat, open, stat, FileType, FlockOperation, Mode, OFlags};
use rustix::io::Errno;

use crate::Error;

fn lock_dir() -> PathBuf {
    // Never `$TMPDIR` / `std::env::temp_dir()`: per user (and per sandbox) on macOS, so peers of
    // two users would each see the other's lock files missing, i.e. every live participant dead.
    PathBuf::from(if cfg!(target_os = "linux") {
        "/dev/shm"
    } else {
        "/tmp"
    })
}

/// The lock file of participant `token` of the segment `name` (leading `/` ignored).
pub fn lock_path(name: &str, token: i32) -> PathBuf {
    lock_dir().join(format!("{}.p{token}", name.trim_start_matches('/')))
}

fn check_name(name: &str) -> Result<(), Error> {
    let n = name.trim_start_matches('/');
    if n.is_empty() || n.contains('/') || n.contains('\0') || n == "." || n == ".." {
        return Err(Error::os(
            "open",
            std::io::Error::from(std::io::ErrorKind::InvalidInput),
        ));
    }
    Ok(())
}

/// A token in `1 ..= i32::MAX`, from the per-process random seed of std's `RandomState`.
fn random_token(attempt: u32) -> i32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u32(attempt);
    if let Ok(d) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(d.as_nanos());
    }
    ((h.finish() >> 33) as i32).max(1)
}

/// This process's proof of life as one participant: an exclusive `flock` on a fresh lock file.
/// Dropping it (or the process dying) releases it; [`participant_alive`] then answers `false`.
#[derive(Debug)]
pub struct ParticipantLock {
    token: i32,
    path: PathBuf,
    fd: Option<OwnedFd>,
}

impl ParticipantLock {
    /// Creates and locks a lock file under a fresh random token (`O_CREAT | O_EXCL`, so two
    /// participants never share a token). The file is created before the token is published.
    pub fn acquire(name: &str) -> Result<ParticipantLock, Error> {
        check_name(name)?;
        let mut last = Errno::EXIST;
        for attempt in 0..64 {
            let token = random_token(attempt);
            let path = lock_path(name, token);
            let flags = OFlags::CREATE | OFlags::EXCL | OFlags::RDONLY | OFlags::CLOEXEC;
            let fd = match open(&path, flags, Mode::from_raw_mode(0o644)) {
                Ok(fd) => fd,
                Err(Errno::EXIST) => continue,
                Err(e) => return Err(Error::os("open", e.into())),
            };
            // The documented mode, whatever the umask: peers of other uids must be able to open it.
            let _ = fchmod(&fd, Mode::from_raw_mode(0o644));
            match flock(&fd, FlockOperation::NonBlockingLockExclusive) {
                // A stale-file cleaner may have removed the fresh, not yet locked file between our
                // create and lock: then the lock is on an unlinked inode and peers would see this
                // live participant as dead. Keep the lock only if the path is still our file.
                Ok(()) if !same_file(&fd, &path) => {
                    last = Errno::NOENT;
                }
                Ok(()) => {
                    return Ok(ParticipantLock {
                        token,
                        path,
                        fd: Some(fd),
                    })
                }
                Err(e) => {
                    // A stale-file cleaner opened it between our create and lock: try another.
                    let _ = std::fs::remove_file(&path);
                    last = e;
                }
            }
        }
        Err(Error::os("flock", last.into()))
    }

    /// The participant's token (what the protocol stores where v1 stored a PID).
    pub fn token(&self) -> i32 {
        self.token
    }

    /// Removes the lock file, then unlocks it (by closing it). A second call does nothing.
    pub fn release(&mut self) {
        if let Some(fd) = self.fd.take() {
            let _ = std::fs::remove_file(&self.path);
            drop(fd);
        }
    }
}

impl Drop for ParticipantLock {
    fn drop(&mut self) {
        self.release();
    }
}

/// Whether `path` names the open file `fd` (same device and inode).
fn same_file(fd: &OwnedFd, path: &std::path::Path) -> bool {
    match (fstat(fd), stat(path)) {
        (Ok(a), Ok(b)) => a.st_dev == b.st_dev && a.st_ino == b.st_ino,
        _ => false,
    }
}

/// Opens a candidate lock file without blocking (a FIFO would block `open` for ever) and without
/// following a symlink: `Ok(Some(fd))` for a regular file, `Ok(None)` for anything else (no
/// participant ever creates one), `Err` for an open error.
fn open_lock_file(path: &std::path::Path) -> Result<Option<OwnedFd>, Errno> {
    let fd = open(
        path,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NONBLOCK,
        Mode::empty(),
    )?;
    Ok(fstat(&fd)
        .ok()
        .filter(|st| FileType::from_raw_mode(st.st_mode) == FileType::RegularFile)
        .map(|_| fd))
}

/// Whether participant `token` of segment `name` is alive: its lock file exists and is locked.
/// A token outside `1 ..= i32::MAX` or a missing file is dead; a file this process cannot open
/// or lock for another reason than "locked" (`EACCES`, …) counts as alive, so that space of a
/// participant that may still be alive is never reused.
pub fn participant_alive(name: &str, token: i64) -> bool {
    if !(1..=i32::MAX as i64).contains(&token) || check_name(name).is_err() {
        return false;
    }
    let path = lock_path(name, token as i32);
    let fd = match open_lock_file(&path) {
        Ok(Some(fd)) => fd,
        // ELOOP: a symlink (O_NOFOLLOW); ENXIO: a socket. Neither is ever a participant's file.
        Ok(None) | Err(Errno::NOENT | Errno::LOOP | Errno::NXIO) => return false,
        Err(_) => return true,
    };
    !matches!(flock(&fd, FlockOperation::NonBlockingLockShared), Ok(()))
}

/// Removes the lock files of `name`'s dead participants (unlocked files named `<name>.p<digits>`),
/// as left by processes that died. Returns how many were removed.
pub fn remove_stale_locks(name: &str) -> usize {
    if check_name(name).is_err() {
        return 0;
    }
    let prefix = format!("{}.p", name.trim_start_matches('/'));
    let Ok(dir) = std::fs::read_dir(lock_dir()) else {
        return 0;
    };
    let mut removed = 0;
    for entry in dir.flatten() {
        let file = entry.file_name();
        let Some(rest) = file.to_str().and_then(|f| f.strip_prefix(&prefix)) else {
            continue;
        };
        if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let path = entry.path();
        // Only empty regular files: a FIFO would block, and a segment that happens to be named
        // `<name>.p<digits>` (another channel, another program's segment) is not a lock file.
        let Ok(Some(fd)) = open_lock_file(&path) else {
            continue;
        };
        if fstat(&fd).map_or(true, |st| st.st_size != 0) {
            continue;
        }
        if flock(&fd, FlockOperation::NonBlockingLockExclusive).is_ok()
            && same_file(&fd, &path)
            && std::fs::remove_file(&path).is_ok()
        {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name() -> String {
        format!("shm-core-live-{}-{}", std::process::id(), random_token(7))
    }

    #[test]
    fn a_held_lock_is_alive_and_a_released_one_dead() {
        let n = name();
        let mut me = ParticipantLock::acquire(&n).unwrap();
        let other = ParticipantLock::acquire(&n).unwrap();
        assert_ne!(me.token(), other.token());
        assert!(participant_alive(&n, me.token() as i64));
        assert!(lock_path(&n, me.token()).exists());
        me.release();
        me.release();
        assert!(!participant_alive(&n, me.token() as i64));
        assert!(!lock_path(&n, me.token()).exists());
        assert!(participant_alive(&n, other.token() as i64));
        drop(other);
    }

    #[test]
    fn garbage_tokens_and_stale_files_are_dead() {
        let n = name();
        for t in [0, -1, i32::MIN as i64, 1 << 31, i64::MAX] {
            assert!(!participant_alive(&n, t));
        }
        let stale = lock_path(&n, 12345);
        std::fs::write(&stale, b"").unwrap();
        assert!(
            !participant_alive(&n, 12345),
            "an unlocked file is a dead participant's"
        );
        let live = ParticipantLock::acquire(&n).unwrap();
        assert_eq!(remove_stale_locks(&n), 1);
        assert!(!stale.exists());
        assert!(
            participant_alive(&n, live.token() as i64),
            "a live lock file is kept"
        );
        assert!(!participant_alive("bad/name", 1));
    }

    #[test]
    fn a_fifo_or_a_segment_named_like_a_lock_file_neither_blocks_nor_is_removed() {
        let n = name();
        let fifo = lock_path(&n, 4242);
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc_mkfifo(c.as_ptr(), 0o644) }, 0);
        assert!(
            !participant_alive(&n, 4242),
            "a FIFO is no participant's lock file (and must not block)"
        );
        // A symlink (even to a live participant's file) and a socket are no lock files either.
        let live = ParticipantLock::acquire(&n).unwrap();
        let link = lock_path(&n, 4243);
        std::os::unix::fs::symlink(lock_path(&n, live.token()), &link).unwrap();
        assert!(
            !participant_alive(&n, 4243),
            "a symlink is not a participant's lock file"
        );
        let sock = lock_path(&n, 4244);
        let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        assert!(
            !participant_alive(&n, 4244),
            "a socket is not a participant's lock file"
        );
        assert!(participant_alive(&n, live.token().into()));
        drop((live, listener));
        let _ = std::fs::remove_file(&link);
        let _ = std::fs::remove_file(&sock);
        let seg = lock_path(&n, 7);
        std::fs::write(&seg, b"not empty: a segment").unwrap();
        assert_eq!(remove_stale_locks(&n), 0);
        assert!(seg.exists() && fifo.exists());
        let _ = std::fs::remove_file(&seg);
        let _ = std::fs::remove_file(&fifo);
    }

    extern "C" {
        #[link_name = "mkfifo"]
        fn libc_mkfifo(path: *const std::os::raw::c_char, mode: u32) -> i32;
    }
}
