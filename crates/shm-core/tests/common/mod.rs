//! Helpers shared by the integration tests (each test file includes this module).
#![allow(dead_code)] // not every test file uses every helper

use std::sync::atomic::{AtomicU32, Ordering};

/// A segment name no other test, run or process uses.
pub fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "nsm-it-{tag}-{}-{nanos:08x}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Removes `/dev/shm/<name>` when dropped (whatever it is: a segment or a planted entry), so a
/// failing assertion leaves nothing behind.
pub struct Cleanup(pub String);
impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(format!("/dev/shm/{}", self.0.trim_start_matches('/')));
    }
}

/// A command that runs this test executable again, for child scenarios. Under an emulator (the
/// arm64 run of scripts/test-targets.sh: qemu-user, no binfmt_misc) `SHM_TEST_RUNNER` holds the
/// runner's words (`qemu-aarch64 -L /usr/aarch64-linux-gnu`): the child is started through it.
pub fn self_command() -> std::process::Command {
    let exe = std::env::current_exe().unwrap();
    let runner = std::env::var("SHM_TEST_RUNNER").unwrap_or_default();
    let mut words = runner.split_whitespace();
    match words.next() {
        None => std::process::Command::new(exe),
        Some(first) => {
            let mut cmd = std::process::Command::new(first);
            cmd.args(words).arg(exe);
            cmd
        }
    }
}
