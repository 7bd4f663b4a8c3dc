//! The Rust peer of node-shared-mem's message channel: one named shared-memory segment holding a
//! header and a ring of length-prefixed records, any number of producers (or exactly one) and one
//! consumer, futex wake-ups only when a side must sleep. `docs/channel.md` (layout version 2) is
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
    pub const VERSION: i32 = 2;
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
    /// The segment is not a version-2 channel, or its header, an index or a record is garbage.
    Layout(String),
    /// Another live participant (token) is the consumer (or the one-to-one producer).
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
            Error::Busy(token) => write!(f, "participant {token} (alive) already holds that role"),
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

/// Bytes a record with `length` payload bytes occupies (docs/channel.md §2); `length ≤ 2³⁰`.
pub fn record_size(length: usize) -> usize {
    (8 + length + 7) & !7
}

/// Whether participant `token` (any word read from the segment) of channel `name` is alive
/// (docs/channel.md §6): its lock file beside the segment is locked. Never panics.
pub fn participant_alive(name: &str, token: i64) -> bool {
    shm_core::liveness::participant_alive(name, token)
}

/// Padding records one call passes before it reports "nothing yet" (bounded work per call).
const PADDING_BUDGET: usize = 4096;
/// Longest single futex wait of a side that relies on a peer's wake-up (§4).
const RECHECK: Duration = Duration::from_secs(5);
/// The re-check period once a sleeper count was found negative (peers then never wake us).
const GARBAGE_RECHECK: Duration = Duration::from_millis(10);
/// How long `try_send` may wait for the claim lock.
const TRY_LOCK: Duration = Duration::from_millis(50);
/// How long a producer facing a full ring polls `head` before napping (0 on one CPU).
static SPIN: std::sync::LazyLock<Duration> =
    std::sync::LazyLock::new(|| match std::thread::available_parallelism() {
        Ok(n) if n.get() > 1 => Duration::from_micros(50),
        _ => Duration::ZERO,
    });
/// The producer's private naps on a full ring: first, longest, and in all before it sleeps.
const NAP_FIRST: Duration = Duration::from_micros(20);
const NAP_MAX: Duration = Duration::from_micros(200);
const NAP_TOTAL: Duration = Duration::from_millis(2);
/// Room a polling producer waits for before it claims again (a batch of records).
const BATCH_ROOM: usize = 16 * 1024;

/// What `next` found.
enum Next {
    Message(usize, usize),
    Empty,
    Blocked,
    More,
}

/// A handle on a channel: producer, consumer or both (the first send/receive takes the role).
pub struct Channel {
    region: Region,
    name: String,
    cap: usize,
    one_to_one: bool,
    recovery: Duration,
    lock: Option<shm_core::liveness::ParticipantLock>,
    producing: bool,
    consuming: bool,
    /// One-to-one producer: its private tail. Consumer: its private head.
    tail: u32,
    head: u32,
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
        if !capacity.is_power_of_two()
            || !(256..=1 << 30).contains(&capacity)
            || !(1..=i32::MAX as u32).contains(&recovery_ms)
        {
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
        region.notify(MAGIC_O, u32::MAX)?;
        Self::attach(region, name)
    }

    /// Attaches to an existing channel, checking its header (docs/channel.md §1).
    pub fn open(name: &str) -> Result<Channel, Error> {
        let segment = Segment::open(name, Access::ReadWrite)?;
        // SAFETY: peers following docs/channel.md never truncate a channel's segment.
        let region = unsafe { Region::open(segment, None)? };
        Self::attach(region, name)
    }

    fn attach(region: Region, name: &str) -> Result<Channel, Error> {
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
        if magic != MAGIC {
            return Err(Error::Layout(format!("magic {magic:#x}")));
        }
        if version != VERSION {
            return Err(Error::Layout(format!(
                "layout version {version}; this peer speaks version {VERSION} only"
            )));
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
            name: name.trim_start_matches('/').to_owned(),
            cap,
            one_to_one: mode == 1,
            recovery: Duration::from_millis(recovery as u64),
            lock: None,
            producing: false,
            consuming: false,
            tail: 0,
            head: 0,
            stuck: None,
            head_seen: 0,
        })
    }

    /// The largest message, `capacity - 8` bytes.
    pub fn max_message(&self) -> usize {
        self.cap - 8
    }

    /// This handle's participant token (§6), with its lock file taken on first use.
    fn token(&mut self) -> Result<i32, Error> {
        if self.lock.is_none() {
            self.lock = Some(shm_core::liveness::ParticipantLock::acquire(&self.name)?);
        }
        Ok(self.lock.as_ref().map_or(0, |l| l.token()))
    }

    fn alive(&self, token: i32) -> bool {
        self.lock.as_ref().map(|l| l.token()) == Some(token)
            || participant_alive(&self.name, token as i64)
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

    /// `tail − head` (unsigned), checked: garbage is `Error::Layout` (§1).
    fn used(&self, tail: u32, head: u32) -> Result<usize, Error> {
        let used = tail.wrapping_sub(head) as usize;
        if used > self.cap || !used.is_multiple_of(8) {
            return Err(Error::Layout(format!(
                "tail {tail} - head {head} is {used}, not a multiple of 8 within {}",
                self.cap
            )));
        }
        Ok(used)
    }

    /// Takes a role word (`producerLock` one-to-one, or `consumer`), or takes it over from a
    /// dead participant (§6); a live holder is `Error::Busy`.
    fn register(&mut self, word: usize) -> Result<(), Error> {
        let me = self.token()?;
        loop {
            let holder = self.cas(word, 0, me);
            if holder == 0 || holder == me {
                return Ok(());
            }
            if self.alive(holder) {
                return Err(Error::Busy(holder));
            }
            if self.cas(word, holder, me) == holder {
                return Ok(());
            }
        }
    }

    /// The many-to-one claim lock (§3.1), taken over from a dead holder; `false` at `deadline`.
    fn lock_claim(&mut self, deadline: Option<Instant>) -> Result<bool, Error> {
        let me = self.token()?;
        let mut spins = 0;
        loop {
            let holder = self.cas(LOCK, 0, me);
            if holder == 0 || holder == me {
                return Ok(true);
            }
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
                continue;
            }
            if !self.alive(holder) {
                if self.cas(LOCK, holder, me) == holder {
                    return Ok(true);
                }
                continue;
            }
            let mut t = Duration::from_millis(10);
            if let Some(d) = deadline {
                match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => t = t.min(left),
                    _ => return Ok(false),
                }
            }
            self.add(LOCK_SLEEPERS, 1);
            if self.ld(LOCK) == holder {
                let _ = self.region.wait(LOCK, holder, Some(t));
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
        // SAFETY: the record at `index` is claimed by this handle (§3), so no other peer following
        // the protocol writes these `data.len()` bytes, which lie inside the ring
        // (record_size ≤ cap - index).
        unsafe {
            std::ptr::copy_nonoverlapping(
                data.as_ptr(),
                self.region.as_ptr().as_ptr().add(HEADER + index + 8),
                data.len(),
            )
        }
    }

    /// Claim (§3 steps 1–3): the ring index of a record published as claimed, or `None` when
    /// full (or the lock was not free by `deadline`).
    fn claim(&mut self, n: usize, deadline: Option<Instant>) -> Result<Option<usize>, Error> {
        let size = record_size(n);
        let me = self.token()?;
        if self.one_to_one && !self.producing {
            self.register(LOCK)?;
            self.producing = true;
            self.tail = self.ld(TAIL) as u32;
            self.head_seen = self.ld(HEAD);
        }
        if !self.one_to_one && !self.lock_claim(deadline)? {
            return Ok(None);
        }
        let r = self.claim_locked(n, size, me);
        if !self.one_to_one {
            self.unlock()?;
        }
        r
    }

    fn claim_locked(&mut self, n: usize, size: usize, me: i32) -> Result<Option<usize>, Error> {
        loop {
            let t = if self.one_to_one {
                self.tail
            } else {
                self.ld(TAIL) as u32
            };
            let i = t as usize & (self.cap - 1);
            let to_end = self.cap - i;
            let need = size.min(to_end);
            // One-to-one: the cached `head` is never ahead of the real one (only this producer
            // moves `tail`), so room it shows is there; `head` is read (and its cache line
            // pulled from the consumer's core) only when the cached one shows too little.
            // Many-to-one: other producers move `tail`, so read it every time.
            let cached_room = self.one_to_one
                && (t.wrapping_sub(self.head_seen as u32) as usize) <= self.cap
                && need <= self.cap - t.wrapping_sub(self.head_seen as u32) as usize;
            if !cached_room {
                let h = self.ld(HEAD) as u32;
                self.head_seen = h as i32;
                let used = self.used(t, h)?;
                if need > self.cap - used {
                    return Ok(None);
                }
            }
            let at = HEADER + i;
            if size > to_end {
                self.st(at + 4, (to_end - 8) as i32);
                self.st(at, PADDING);
                self.tail = t.wrapping_add(to_end as u32);
                self.st(TAIL, self.tail as i32);
                self.wake_consumer()?;
                continue;
            }
            self.st(at + 4, n as i32);
            self.st(at, -me);
            self.tail = t.wrapping_add(size as u32);
            self.st(TAIL, self.tail as i32);
            return Ok(Some(i));
        }
    }

    fn try_send_until(
        &mut self,
        data: &[u8],
        lock_deadline: Option<Instant>,
    ) -> Result<bool, Error> {
        let n = data.len();
        if n > self.cap - 8 {
            return Err(Error::TooLarge(n));
        }
        if self.ld(ENDED_O) != 0 {
            return Err(Error::Ended);
        }
        let Some(i) = self.claim(n, lock_deadline)? else {
            return Ok(false);
        };
        let at = HEADER + i;
        if self.ld(ENDED_O) != 0 {
            // Claimed after the end (§5): abort, so that the send is refused, not lost.
            self.st(at + 4, (record_size(n) - 8) as i32);
            self.st(at, PADDING);
            self.wake_consumer()?;
            return Err(Error::Ended);
        }
        self.copy_in(i, data);
        self.st(at, MESSAGE);
        self.wake_consumer()?;
        Ok(true)
    }

    /// Sends `data` if there is room now (§3); `Ok(false)` when the channel is full.
    pub fn try_send(&mut self, data: &[u8]) -> Result<bool, Error> {
        self.try_send_until(data, Some(Instant::now() + TRY_LOCK))
    }

    /// Sends `data`, sleeping while the channel is full, up to `timeout` (`None`: forever).
    pub fn send(&mut self, data: &[u8], timeout: Option<Duration>) -> Result<(), Error> {
        let deadline = timeout.map(|t| Instant::now() + t);
        while !self.try_send_until(data, deadline)? {
            if self.wait_for_space_polling(deadline) {
                continue;
            }
            let left = match deadline {
                Some(d) => d
                    .checked_duration_since(Instant::now())
                    .filter(|l| !l.is_zero())
                    .ok_or(Error::TimedOut)?,
                None => RECHECK,
            };
            let h = self.head_seen;
            let v = self.ld(SPACE_SEQ);
            let before = self.add(PRODUCER_SLEEPERS, 1);
            let r = if self.ld(HEAD) == h && self.ld(ENDED_O) == 0 {
                let period = if before < 0 { GARBAGE_RECHECK } else { RECHECK };
                self.region
                    .wait(SPACE_SEQ, v, Some(left.min(period)))
                    .map(|_| ())
            } else {
                Ok(())
            };
            self.add(PRODUCER_SLEEPERS, -1);
            r?;
        }
        Ok(())
    }

    /// Ring full: polls `head` (and `ended`) for up to `SPIN` (machines with more than one CPU),
    /// then takes short private naps for up to `NAP_TOTAL`, before the caller registers as a
    /// sleeper (§4): `true` as soon as the consumer released something. A consumer that keeps up
    /// frees room within microseconds, and a registered sleeper makes it pay a `wake` syscall per
    /// release until this producer runs (the Rust → Node bench fell to 0.44 M msgs/s that way).
    /// While polling, waits for a quarter of the ring (at most `BATCH_ROOM`) to come free, so that
    /// producer and consumer do not trade the record's cache lines one message at a time.
    fn wait_for_space_polling(&mut self, deadline: Option<Instant>) -> bool {
        let seen = self.head_seen as u32;
        let want = (self.cap / 4).min(BATCH_ROOM) as u32;
        let t0 = Instant::now();
        let past = |now: Instant| deadline.is_some_and(|d| now >= d);
        if *SPIN > Duration::ZERO {
            let mut k = 0u32;
            loop {
                let h = self.ld(HEAD) as u32;
                if self.ld(ENDED_O) != 0 || h.wrapping_sub(seen) >= want {
                    return true;
                }
                k = k.wrapping_add(1);
                if k.is_multiple_of(64) {
                    let now = Instant::now();
                    if now - t0 >= *SPIN || past(now) {
                        break;
                    }
                }
                std::hint::spin_loop();
            }
            if self.ld(HEAD) as u32 != seen {
                return true;
            }
        }
        let mut nap = NAP_FIRST;
        while Instant::now() - t0 < NAP_TOTAL && !past(Instant::now()) {
            std::thread::sleep(nap);
            nap = (nap * 2).min(NAP_MAX);
            if self.ld(HEAD) as u32 != seen || self.ld(ENDED_O) != 0 {
                return true;
            }
        }
        false
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

    /// The next ready message (§4, §6), with every length validated (§2).
    fn next(&mut self) -> Result<Next, Error> {
        if !self.consuming {
            self.register(CONSUMER)?;
            self.consuming = true;
            self.head = self.ld(HEAD) as u32;
        }
        for _ in 0..PADDING_BUDGET {
            let h = self.head;
            let t = self.ld(TAIL) as u32;
            if h == t {
                return Ok(Next::Empty);
            }
            let used = self.used(t, h)?;
            let i = h as usize & (self.cap - 1);
            let s = self.ld(HEADER + i);
            if s == MESSAGE || s == PADDING {
                let n = self.ld(HEADER + i + 4) as u32 as usize;
                if n > self.cap - i - 8 || record_size(n) > used {
                    return Err(Error::Layout(format!("record at {h} has length {n}")));
                }
                if s == MESSAGE {
                    return Ok(Next::Message(i, n));
                }
                self.release(record_size(n))?;
                continue;
            }
            if s >= 0 {
                return Err(Error::Layout(format!("record at {h} has state {s}")));
            }
            let now = Instant::now();
            match self.stuck {
                Some((at, st, since)) if at == h && st == s => {
                    if now - since < self.recovery || self.alive(s.wrapping_neg()) {
                        return Ok(Next::Blocked);
                    }
                    self.cas(HEADER + i, s, PADDING); // the producer died between claim and commit
                }
                _ => {
                    self.stuck = Some((h, s, now));
                    return Ok(Next::Blocked);
                }
            }
        }
        Ok(Next::More)
    }

    fn release(&mut self, size: usize) -> Result<(), Error> {
        self.head = self.head.wrapping_add(size as u32);
        self.st(HEAD, self.head as i32);
        if self.ld(PRODUCER_SLEEPERS) > 0 {
            self.add(SPACE_SEQ, 1);
            self.wake(SPACE_SEQ, u32::MAX)?;
        }
        Ok(())
    }

    fn take_message(&mut self, i: usize, n: usize, out: &mut Vec<u8>) -> Result<(), Error> {
        out.clear();
        out.reserve(n);
        // SAFETY: the committed record's `n` bytes lie inside the ring (checked in `next`) and no
        // producer following the protocol writes them until `release` moves `head` past them;
        // `out` has room for `n`.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.region.as_ptr().as_ptr().add(HEADER + i + 8),
                out.as_mut_ptr(),
                n,
            );
            out.set_len(n);
        }
        self.release(record_size(n))
    }

    /// Receives the next message into `out` if one is ready now (bounded work).
    pub fn try_receive(&mut self, out: &mut Vec<u8>) -> Result<bool, Error> {
        match self.next()? {
            Next::Message(i, n) => self.take_message(i, n, out).map(|_| true),
            _ => Ok(false),
        }
    }

    /// Receives the next message into `out`, sleeping up to `timeout`: `Ok(true)` with a
    /// message, `Ok(false)` once the channel has ended and is drained.
    pub fn receive(&mut self, out: &mut Vec<u8>, timeout: Option<Duration>) -> Result<bool, Error> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let blocked = match self.next()? {
                Next::Message(i, n) => return self.take_message(i, n, out).map(|_| true),
                Next::More => continue,
                Next::Blocked => true,
                Next::Empty => false,
            };
            // §5: `ended` first, then `tail` again (a claim made before the end is waited for).
            if !blocked && self.ld(ENDED_O) != 0 && matches!(self.next()?, Next::Empty) {
                return Ok(false);
            }
            let mut left = match deadline {
                Some(d) => d
                    .checked_duration_since(Instant::now())
                    .filter(|l| !l.is_zero())
                    .ok_or(Error::TimedOut)?,
                None => RECHECK,
            };
            if blocked {
                left = left.min(self.recovery);
            }
            let v = self.ld(DATA_SEQ);
            let before = self.add(CONSUMER_SLEEPERS, 1);
            if before < 0 {
                left = left.min(GARBAGE_RECHECK);
            }
            // Blocked: sleep even once ended (a claim made before the end is still to come);
            // skipping the wait there spun a whole CPU until the claim was committed.
            let still = match self.next() {
                Ok(Next::Blocked) => true,
                Ok(Next::Empty) => self.ld(ENDED_O) == 0,
                _ => false,
            };
            let r = if still {
                self.region
                    .wait(DATA_SEQ, v, Some(left.min(RECHECK)))
                    .map(|_| ())
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
        if let Some(token) = self.lock.as_ref().map(|l| l.token()) {
            if self.consuming {
                self.cas(CONSUMER, token, 0);
            }
            if self.producing {
                self.cas(LOCK, token, 0);
            }
        }
        // Then the lock file goes (the field's own Drop).
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
