//! The Rust peer of node-shared-mem's message channel: one named shared-memory segment holding a
//! header and a ring of length-prefixed records, any number of producers (or exactly one) and one
//! consumer, futex wake-ups only when a side must sleep. `docs/channel.md` (layout version 1) is
//! the contract; every step below cites its section.
//!
//! ```no_run
//! use shm_channel::{Channel, Mode};
//! let mut tx = Channel::create("jobs", 1 << 20, Mode::ManyToOne, 1000)?;
//! tx.send(b"hello", None)?;
//! let mut rx = Channel::open("jobs")?;
//! let mut buf = Vec::new();
//! assert!(rx.receive(&mut buf, None)?);
//! # Ok::<(), shm_channel::Error>(())
//! ```

#![deny(clippy::undocumented_unsafe_blocks)]

use std::fmt;
use std::sync::atomic::{AtomicI32, Ordering::SeqCst};
use std::time::{Duration, Instant};

use shm_core::{Access, CreateOptions, Region, RegionError, Segment};

/// Header words (docs/channel.md §1), as byte offsets.
pub mod layout {
    #![allow(missing_docs)]
    pub const MAGIC: i32 = 0x434D_534E;
    pub const VERSION: i32 = 1;
    pub const HEADER: usize = 1024;
    pub const MAGIC_O: usize = 0;
    pub const VERSION_O: usize = 4;
    pub const CAPACITY_O: usize = 8;
    pub const MODE_O: usize = 12;
    pub const RECOVERY_O: usize = 16;
    pub const ENDED_O: usize = 20;
    pub const TAIL: usize = 128;
    pub const LOCK: usize = 132;
    pub const LOCK_SLEEPERS: usize = 136;
    pub const HEAD: usize = 256;
    pub const CONSUMER: usize = 260;
    pub const DATA_SEQ: usize = 384;
    pub const CONSUMER_SLEEPERS: usize = 388;
    pub const SPACE_SEQ: usize = 512;
    pub const PRODUCER_SLEEPERS: usize = 516;
    pub const MESSAGE: i32 = 1;
    pub const PADDING: i32 = 2;
}
use layout::*;

/// How many producers a channel has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Any number of producers (a claim lock per message).
    ManyToOne,
    /// Exactly one producer (registered once; no lock per message).
    OneToOne,
}

/// What can go wrong.
#[derive(Debug)]
pub enum Error {
    /// Opening, creating or mapping the segment failed.
    Core(shm_core::Error),
    /// A wait or notify failed.
    Region(RegionError),
    /// The segment is not a version-1 channel, or its header or a record is torn.
    Layout(String),
    /// Another live process is the consumer (or the one-to-one producer).
    Busy(i32),
    /// The channel has ended (docs/channel.md §5).
    Ended,
    /// The timeout passed.
    TimedOut,
    /// The message is longer than `capacity - 8`.
    TooLarge(usize),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Core(e) => e.fmt(f),
            Error::Region(e) => e.fmt(f),
            Error::Layout(why) => write!(f, "not a usable channel: {why}"),
            Error::Busy(pid) => write!(f, "process {pid} already holds that role"),
            Error::Ended => f.write_str("the channel has ended"),
            Error::TimedOut => f.write_str("timed out"),
            Error::TooLarge(n) => write!(f, "a message of {n} bytes does not fit the channel"),
        }
    }
}

impl std::error::Error for Error {}

impl From<shm_core::Error> for Error {
    fn from(e: shm_core::Error) -> Self {
        Error::Core(e)
    }
}

impl From<RegionError> for Error {
    fn from(e: RegionError) -> Self {
        Error::Region(e)
    }
}

/// Bytes a record with `length` payload bytes occupies (docs/channel.md §2).
pub fn record_size(length: usize) -> usize {
    (8 + length + 7) & !7
}

/// docs/channel.md §6: `kill(pid, 0)` fails with ESRCH, or /proc shows a zombie → dead.
#[cfg(unix)]
pub fn process_alive(pid: i32) -> bool {
    let Some(p) = rustix::process::Pid::from_raw(pid) else {
        return false;
    };
    if let Err(rustix::io::Errno::SRCH) = rustix::process::test_kill_process(p) {
        return false;
    }
    if cfg!(target_os = "linux") {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => {
                let state = stat
                    .rfind(')')
                    .and_then(|i| stat.as_bytes().get(i + 2).copied());
                return !matches!(state, Some(b'Z') | Some(b'X'));
            }
            Err(_) => return false,
        }
    }
    true
}

/// Without a portable liveness check every process counts as alive (no recovery).
#[cfg(not(unix))]
pub fn process_alive(_pid: i32) -> bool {
    true
}

fn my_pid() -> i32 {
    std::process::id() as i32
}

/// A handle on a channel: producer, consumer or both (the first send/receive takes the role).
pub struct Channel {
    region: Region,
    cap: usize,
    one_to_one: bool,
    recovery: Duration,
    pid: i32,
    producing: bool,
    consuming: bool,
    stuck: Option<(u32, i32, Instant)>,
    /// The `head` the last full `try_send` saw: `send` sleeps only while it is unchanged.
    head_seen: i32,
}

impl Channel {
    /// Creates a channel (docs/channel.md §1): fails with `EEXIST` if the name exists.
    pub fn create(
        name: &str,
        capacity: usize,
        mode: Mode,
        recovery_ms: u32,
    ) -> Result<Channel, Error> {
        if !capacity.is_power_of_two() || !(256..=1 << 30).contains(&capacity) || recovery_ms == 0 {
            return Err(Error::Layout(format!(
                "capacity {capacity} / recoveryMs {recovery_ms} out of range"
            )));
        }
        let segment = Segment::create(name, (HEADER + capacity) as u64, CreateOptions::default())?;
        // SAFETY: we just created the segment at this size; peers following docs/channel.md never
        // truncate it.
        let region = unsafe { Region::open(segment, None)? };
        let w = |off: usize, v: i32| region.store(off, v).map(|_| ());
        w(VERSION_O, VERSION)?;
        w(CAPACITY_O, capacity as i32)?;
        w(MODE_O, (mode == Mode::OneToOne) as i32)?;
        w(RECOVERY_O, recovery_ms as i32)?;
        w(MAGIC_O, MAGIC)?;
        Self::attach(region)
    }

    /// Attaches to an existing channel, checking its header (docs/channel.md §1).
    pub fn open(name: &str) -> Result<Channel, Error> {
        let segment = Segment::open(name, Access::ReadWrite)?;
        // SAFETY: peers following docs/channel.md never truncate a channel's segment.
        let region = unsafe { Region::open(segment, None)? };
        Self::attach(region)
    }

    fn attach(region: Region) -> Result<Channel, Error> {
        if region.len() < HEADER {
            return Err(Error::Layout(format!(
                "the segment has {} bytes",
                region.len()
            )));
        }
        let until = Instant::now() + Duration::from_millis(100);
        while region.load(MAGIC_O)? == 0 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(2));
        }
        let (magic, version) = (region.load(MAGIC_O)?, region.load(VERSION_O)?);
        if magic != MAGIC || version != VERSION {
            return Err(Error::Layout(format!("magic {magic:#x} version {version}")));
        }
        let cap = region.load(CAPACITY_O)? as u32 as usize;
        let mode = region.load(MODE_O)?;
        let recovery = region.load(RECOVERY_O)?;
        let used = region.load(TAIL)?.wrapping_sub(region.load(HEAD)?) as u32 as usize;
        if !cap.is_power_of_two()
            || !(256..=1 << 30).contains(&cap)
            || region.len() < HEADER + cap
            || !(0..=1).contains(&mode)
            || recovery < 1
            || used > cap
            || !used.is_multiple_of(8)
        {
            return Err(Error::Layout(format!(
                "capacity {cap}, mode {mode}, recoveryMs {recovery}, tail - head {used}"
            )));
        }
        Ok(Channel {
            region,
            cap,
            one_to_one: mode == 1,
            recovery: Duration::from_millis(recovery as u64),
            pid: my_pid(),
            producing: false,
            consuming: false,
            stuck: None,
            head_seen: 0,
        })
    }

    /// The largest message, `capacity - 8` bytes.
    pub fn max_message(&self) -> usize {
        self.cap - 8
    }

    fn word(&self, off: usize) -> &AtomicI32 {
        debug_assert!(off.is_multiple_of(4) && off + 4 <= self.region.len());
        // SAFETY: `off` is 4-aligned and inside the mapping (header offsets, or ring indices that
        // are multiples of 8 below `cap`); the mapping lives as long as `self.region`, and shared
        // memory is only ever accessed through atomics and raw copies, never `&`/`&mut` to bytes.
        unsafe { AtomicI32::from_ptr(self.region.as_ptr().as_ptr().add(off).cast::<i32>()) }
    }

    fn ld(&self, off: usize) -> i32 {
        self.word(off).load(SeqCst)
    }

    fn st(&self, off: usize, v: i32) {
        self.word(off).store(v, SeqCst)
    }

    fn add(&self, off: usize, v: i32) -> i32 {
        self.word(off).fetch_add(v, SeqCst)
    }

    fn cas(&self, off: usize, old: i32, new: i32) -> i32 {
        match self.word(off).compare_exchange(old, new, SeqCst, SeqCst) {
            Ok(v) | Err(v) => v,
        }
    }

    fn wake(&self, off: usize, n: u32) -> Result<(), Error> {
        self.region.notify(off, n)?;
        Ok(())
    }

    fn sleep(
        &self,
        seq: usize,
        sleepers: usize,
        blocked: impl Fn() -> bool,
        t: Duration,
    ) -> Result<(), Error> {
        let v = self.ld(seq);
        self.add(sleepers, 1);
        let r = if blocked() {
            self.region.wait(seq, v, Some(t)).map(|_| ())
        } else {
            Ok(())
        };
        self.add(sleepers, -1);
        Ok(r?)
    }

    /// Takes `word` (`producerLock` or `consumerPid`), or takes it over from a dead pid (§6).
    fn take(&self, word: usize, exclusive_role: bool) -> Result<(), Error> {
        loop {
            let holder = self.cas(word, 0, self.pid);
            if holder == 0 {
                return Ok(());
            }
            if holder > 0 && holder != self.pid && !process_alive(holder) {
                if self.cas(word, holder, self.pid) == holder {
                    return Ok(());
                }
                continue;
            }
            if exclusive_role {
                return Err(Error::Busy(holder));
            }
            std::hint::spin_loop();
            self.add(LOCK_SLEEPERS, 1);
            if self.ld(LOCK) == holder {
                let _ = self
                    .region
                    .wait(LOCK, holder, Some(Duration::from_millis(10)));
            }
            self.add(LOCK_SLEEPERS, -1);
        }
    }

    fn unlock(&self) -> Result<(), Error> {
        self.st(LOCK, 0);
        if self.ld(LOCK_SLEEPERS) > 0 {
            self.wake(LOCK, 1)?;
        }
        Ok(())
    }

    fn wake_consumer(&self) -> Result<(), Error> {
        if self.ld(CONSUMER_SLEEPERS) > 0 {
            self.add(DATA_SEQ, 1);
            self.wake(DATA_SEQ, 1)?;
        }
        Ok(())
    }

    fn copy_in(&self, index: usize, data: &[u8]) {
        // SAFETY: the record at `index` is claimed by this process (§3), so no other process
        // writes these `data.len()` bytes, which lie inside the ring (record_size ≤ cap - index).
        unsafe {
            std::ptr::copy_nonoverlapping(
                data.as_ptr(),
                self.region.as_ptr().as_ptr().add(HEADER + index + 8),
                data.len(),
            )
        }
    }

    /// Sends `data` if there is room now (§3); `Ok(false)` when the channel is full.
    pub fn try_send(&mut self, data: &[u8]) -> Result<bool, Error> {
        let n = data.len();
        if n > self.cap - 8 {
            return Err(Error::TooLarge(n));
        }
        if self.ld(ENDED_O) != 0 {
            return Err(Error::Ended);
        }
        if self.one_to_one && !self.producing {
            self.take(LOCK, true)?;
            self.producing = true;
        }
        let size = record_size(n);
        loop {
            if !self.one_to_one {
                self.take(LOCK, false)?;
            }
            let (t, h) = (self.ld(TAIL) as u32, self.ld(HEAD) as u32);
            self.head_seen = h as i32;
            let i = t as usize & (self.cap - 1);
            let to_end = self.cap - i;
            let free = self.cap - t.wrapping_sub(h) as usize;
            if size.min(to_end) > free {
                if !self.one_to_one {
                    self.unlock()?;
                }
                return Ok(false);
            }
            let at = HEADER + i;
            if size > to_end {
                self.st(at + 4, (to_end - 8) as i32);
                self.st(at, PADDING);
                self.st(TAIL, t.wrapping_add(to_end as u32) as i32);
                if !self.one_to_one {
                    self.unlock()?;
                }
                self.wake_consumer()?;
                continue;
            }
            self.st(at + 4, n as i32);
            if self.one_to_one {
                self.copy_in(i, data);
                self.st(at, MESSAGE);
                self.st(TAIL, t.wrapping_add(size as u32) as i32);
            } else {
                self.st(at, -self.pid);
                self.st(TAIL, t.wrapping_add(size as u32) as i32);
                self.unlock()?;
                self.copy_in(i, data);
                self.st(at, MESSAGE);
            }
            self.wake_consumer()?;
            return Ok(true);
        }
    }

    /// Sends `data`, sleeping while the channel is full, up to `timeout` (`None`: forever).
    pub fn send(&mut self, data: &[u8], timeout: Option<Duration>) -> Result<(), Error> {
        let deadline = timeout.map(|t| Instant::now() + t);
        while !self.try_send(data)? {
            let left = match deadline {
                Some(d) => d
                    .checked_duration_since(Instant::now())
                    .filter(|l| !l.is_zero())
                    .ok_or(Error::TimedOut)?,
                None => Duration::from_secs(1),
            };
            let h = self.head_seen;
            self.sleep(
                SPACE_SEQ,
                PRODUCER_SLEEPERS,
                || self.ld(HEAD) == h && self.ld(ENDED_O) == 0,
                left,
            )?;
        }
        Ok(())
    }

    /// Ends the channel for every peer (§5).
    pub fn end(&self) -> Result<(), Error> {
        self.st(ENDED_O, 1);
        for seq in [DATA_SEQ, SPACE_SEQ] {
            self.add(seq, 1);
            self.wake(seq, u32::MAX)?;
        }
        Ok(())
    }

    /// The next ready message `(index, length)`, or `Err(blocked)` (§4, §6).
    fn next(&mut self) -> Result<Result<(usize, usize), bool>, Error> {
        if !self.consuming {
            self.take(CONSUMER, true)?;
            self.consuming = true;
        }
        loop {
            let h = self.ld(HEAD) as u32;
            if h == self.ld(TAIL) as u32 {
                return Ok(Err(false));
            }
            let i = h as usize & (self.cap - 1);
            let (s, n) = (self.ld(HEADER + i), self.ld(HEADER + i + 4) as u32 as usize);
            if s == MESSAGE || s == PADDING {
                if record_size(n) > self.cap - i {
                    return Err(Error::Layout(format!("record at {h} has length {n}")));
                }
                if s == MESSAGE {
                    return Ok(Ok((i, n)));
                }
                self.release(h, n)?;
                continue;
            }
            if s >= 0 {
                return Err(Error::Layout(format!("record at {h} has state {s}")));
            }
            let now = Instant::now();
            match self.stuck {
                Some((at, st, since)) if at == h && st == s => {
                    if now - since < self.recovery || process_alive(-s) {
                        return Ok(Err(true));
                    }
                    self.cas(HEADER + i, s, PADDING); // the producer died between claim and commit
                }
                _ => {
                    self.stuck = Some((h, s, now));
                    return Ok(Err(true));
                }
            }
        }
    }

    fn release(&self, h: u32, n: usize) -> Result<(), Error> {
        self.st(HEAD, h.wrapping_add(record_size(n) as u32) as i32);
        if self.ld(PRODUCER_SLEEPERS) > 0 {
            self.add(SPACE_SEQ, 1);
            self.wake(SPACE_SEQ, u32::MAX)?;
        }
        Ok(())
    }

    fn take_message(&mut self, (i, n): (usize, usize), out: &mut Vec<u8>) -> Result<(), Error> {
        out.clear();
        out.reserve(n);
        // SAFETY: the committed record's `n` bytes lie inside the ring (checked in `next`) and no
        // producer writes them until `release` moves `head` past them; `out` has room for `n`.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.region.as_ptr().as_ptr().add(HEADER + i + 8),
                out.as_mut_ptr(),
                n,
            );
            out.set_len(n);
        }
        self.release(self.ld(HEAD) as u32, n)
    }

    /// Receives the next message into `out` if one is ready now.
    pub fn try_receive(&mut self, out: &mut Vec<u8>) -> Result<bool, Error> {
        match self.next()? {
            Ok(m) => self.take_message(m, out).map(|_| true),
            Err(_) => Ok(false),
        }
    }

    /// Receives the next message into `out`, sleeping up to `timeout`: `Ok(true)` with a
    /// message, `Ok(false)` once the channel has ended and is drained.
    pub fn receive(&mut self, out: &mut Vec<u8>, timeout: Option<Duration>) -> Result<bool, Error> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let blocked = match self.next()? {
                Ok(m) => return self.take_message(m, out).map(|_| true),
                Err(blocked) => blocked,
            };
            if !blocked && self.ld(ENDED_O) != 0 && matches!(self.next()?, Err(false)) {
                return Ok(false);
            }
            let mut left = match deadline {
                Some(d) => d
                    .checked_duration_since(Instant::now())
                    .filter(|l| !l.is_zero())
                    .ok_or(Error::TimedOut)?,
                None => Duration::from_secs(1),
            };
            if blocked {
                left = left.min(self.recovery);
            }
            let v = self.ld(DATA_SEQ);
            self.add(CONSUMER_SLEEPERS, 1);
            let still = matches!(self.next(), Ok(Err(_))) && self.ld(ENDED_O) == 0;
            let r = if still {
                self.region.wait(DATA_SEQ, v, Some(left)).map(|_| ())
            } else {
                Ok(())
            };
            self.add(CONSUMER_SLEEPERS, -1);
            r?;
        }
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        if self.consuming {
            self.cas(CONSUMER, self.pid, 0);
        }
        if self.producing {
            self.cas(LOCK, self.pid, 0);
        }
    }
}

/// The test message format shared by every reference peer: producer id, sequence number, then
/// filler bytes `(id * 7 + seq * 13 + k) & 0xff` for byte `k ≥ 8`.
pub fn test_message(id: u32, seq: u32, len: usize, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend((8..len).map(|k| {
        (id.wrapping_mul(7)
            .wrapping_add(seq.wrapping_mul(13))
            .wrapping_add(k as u32)) as u8
    }));
}
