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

/// Removes what the child test process `pid` left in `/dev/shm`: the names [`unique`] made in
/// it (`nsm-it-<tag>-<pid>-<nanos>-<n>`). A child scenario that ends by its signal (the point of
/// most of them) never runs its [`Cleanup`] guards.
pub fn remove_left_by(pid: u32) {
    let Ok(dir) = std::fs::read_dir("/dev/shm") else {
        return;
    };
    for entry in dir.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let Some(rest) = name.strip_prefix("nsm-it-") else {
            continue;
        };
        // <tag>-<pid>-<nanos>-<n>: the pid is the third field from the right.
        if rest.rsplit('-').nth(2) == Some(pid.to_string().as_str()) {
            let _ = std::fs::remove_file(entry.path());
        }
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
