//! Command-line peer for tests, the bench and demos (same commands as examples/channel.py):
//!   shm-channel create NAME CAPACITY [many-to-one|one-to-one] [RECOVERY_MS]
//!   shm-channel produce NAME ID COUNT MIN MAX    test messages of MIN..MAX bytes
//!   shm-channel consume NAME COUNT               checks test messages, prints a JSON summary
//!   shm-channel flood NAME COUNT SIZE            COUNT messages of SIZE bytes, as fast as it can
//!   shm-channel drain NAME COUNT                 receives COUNT messages, prints the seconds taken
//!   shm-channel churn NAME SECONDS               every call, 200 ms timeouts, for SECONDS (the
//!                                                hostile-peer fuzzer): prints call counts and the
//!                                                worst overrun of a timeout; exit 3 on a bad error
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use shm_channel::{test_message, Channel, Error, Mode};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = run(&args) {
        eprintln!("shm-channel: {e}");
        std::process::exit(1);
    }
}

fn num(args: &[String], i: usize) -> usize {
    args.get(i).and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        eprintln!("shm-channel: argument {i} must be a number (see the source for usage)");
        std::process::exit(2)
    })
}

fn run(args: &[String]) -> Result<(), Error> {
    let (cmd, name) = (
        args.first().map(String::as_str).unwrap_or(""),
        args.get(1).map(String::as_str).unwrap_or(""),
    );
    let minute = Some(Duration::from_secs(60));
    match cmd {
        "create" => {
            let mode = if args.get(3).map(String::as_str) == Some("one-to-one") {
                Mode::OneToOne
            } else {
                Mode::ManyToOne
            };
            let recovery = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(1000);
            Channel::create(name, num(args, 2), mode, recovery)?;
        }
        "produce" => {
            let (id, count, lo, hi) = (
                num(args, 2) as u32,
                num(args, 3),
                num(args, 4),
                num(args, 5),
            );
            let mut ch = Channel::open(name)?;
            let mut x = id.wrapping_mul(2654435761);
            let mut msg = Vec::new();
            for seq in 0..count as u32 {
                x = x.wrapping_mul(1103515245).wrapping_add(12345) & 0x7FFF_FFFF;
                test_message(id, seq, lo + x as usize % (hi - lo + 1), &mut msg);
                ch.send(&msg, minute)?;
            }
            let last_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis());
            println!("{{\"sent\": {count}, \"last_ms\": {last_ms}}}");
        }
        "consume" => {
            let count = num(args, 2);
            let mut ch = Channel::open(name)?;
            let (mut m, mut want) = (Vec::new(), Vec::new());
            let mut last: BTreeMap<u32, u32> = BTreeMap::new();
            let mut bad = 0;
            for _ in 0..count {
                if !ch.receive(&mut m, minute)? {
                    break;
                }
                if m.len() < 8 {
                    bad += 1;
                    continue;
                }
                let id = u32::from_le_bytes(m[0..4].try_into().unwrap());
                let seq = u32::from_le_bytes(m[4..8].try_into().unwrap());
                test_message(id, seq, m.len(), &mut want);
                if m != want || last.get(&id).map_or(0, |s| s + 1) != seq {
                    bad += 1;
                }
                last.insert(id, seq);
            }
            let last: Vec<String> = last.iter().map(|(k, v)| format!("\"{k}\": {v}")).collect();
            println!(
                "{{\"received\": {count}, \"bad\": {bad}, \"last\": {{{}}}}}",
                last.join(", ")
            );
        }
        "flood" => {
            let (count, size) = (num(args, 2), num(args, 3));
            let mut ch = Channel::open(name)?;
            let data = vec![0x5a_u8; size];
            let t0 = Instant::now();
            for _ in 0..count {
                ch.send(&data, minute)?;
            }
            println!("{}", t0.elapsed().as_secs_f64());
        }
        "drain" => {
            let count = num(args, 2);
            let mut ch = Channel::open(name)?;
            let mut m = Vec::new();
            let t0 = Instant::now();
            for _ in 0..count {
                ch.receive(&mut m, minute)?;
            }
            println!("{}", t0.elapsed().as_secs_f64());
        }
        "churn" => churn(name, num(args, 2) as u64)?,
        _ => {
            eprintln!("usage: shm-channel create|produce|consume|flood|drain|churn NAME … (see src/bin/shm-channel.rs)");
            std::process::exit(2);
        }
    }
    Ok(())
}

/// Calls every entry point in turn while another process writes garbage into the segment: each
/// must return (by its timeout, or after bounded work) with a message of at most
/// `capacity - 8` bytes or one of the protocol's errors.
fn churn(name: &str, seconds: u64) -> Result<(), Error> {
    let mut ch = Channel::open(name)?;
    println!("ready");
    let max = ch.max_message();
    let until = Instant::now() + Duration::from_secs(seconds);
    let timeout = Duration::from_millis(200);
    let (mut calls, mut errors, mut worst) = (0u64, BTreeMap::<&str, u64>::new(), Duration::ZERO);
    let (mut m, data) = (Vec::new(), vec![7u8; 40.min(max)]);
    let mut k = 0u32;
    while Instant::now() < until {
        k = k.wrapping_mul(1103515245).wrapping_add(12345);
        let op = (k >> 16) % 4;
        let t0 = Instant::now();
        let r = match op {
            0 => ch.try_send(&data).map(|_| ()),
            1 => ch.send(&data, Some(timeout)),
            2 => ch.try_receive(&mut m).map(|_| ()),
            _ => ch.receive(&mut m, Some(timeout)).map(|_| ()),
        };
        let took = t0.elapsed();
        let budget = if op % 2 == 1 { timeout } else { Duration::ZERO };
        worst = worst.max(took.saturating_sub(budget));
        calls += 1;
        if m.len() > max {
            eprintln!("shm-channel churn: a message of {} bytes > {max}", m.len());
            std::process::exit(3);
        }
        if let Err(e) = r {
            let kind = match e {
                Error::Layout(_) => "layout",
                Error::TimedOut => "timeout",
                Error::Busy(_) => "busy",
                Error::Ended => "ended",
                other => {
                    eprintln!("shm-channel churn: unexpected error {other}");
                    std::process::exit(3);
                }
            };
            *errors.entry(kind).or_default() += 1;
        }
    }
    let errors: Vec<String> = errors
        .iter()
        .map(|(k, v)| format!("\"{k}\": {v}"))
        .collect();
    println!(
        "{{\"calls\": {calls}, \"worstOverMs\": {}, \"errors\": {{{}}}}}",
        worst.as_millis(),
        errors.join(", ")
    );
    Ok(())
}
