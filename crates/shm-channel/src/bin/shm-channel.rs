//! Command-line peer for tests, the bench and demos (same commands as examples/channel.py):
//!   shm-channel create NAME CAPACITY [many-to-one|one-to-one] [RECOVERY_MS]
//!   shm-channel produce NAME ID COUNT MIN MAX    test messages of MIN..MAX bytes
//!   shm-channel consume NAME COUNT               checks test messages, prints a JSON summary
//!   shm-channel flood NAME COUNT SIZE            COUNT messages of SIZE bytes, as fast as it can
//!   shm-channel drain NAME COUNT                 receives COUNT messages, prints the seconds taken
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
        _ => {
            eprintln!("usage: shm-channel create|produce|consume|flood|drain NAME … (see src/bin/shm-channel.rs)");
            std::process::exit(2);
        }
    }
    Ok(())
}
