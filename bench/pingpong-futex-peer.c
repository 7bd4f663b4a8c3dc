/* The kernel-sleeping peer of the ping-pong bench (bench/pingpong.mjs).
 *
 *   pingpong-futex-peer NAME
 *
 * Opens the POSIX shared-memory segment NAME and answers on the Int32 at offset 0 exactly like
 * bench/pingpong-peer.mjs: it waits until the word is 1 (a ping) or 3 (quit), answers a ping by
 * storing 2 and FUTEX_WAKE-ing every waiter. Unlike the Node peer it NEVER spins: every wait is a
 * plain FUTEX_WAIT (shared, no FUTEX_PRIVATE_FLAG, so the kernel keys it by the shared page as our
 * addon does), so each round trip pays one real kernel sleep and wake-up on this side.
 * Prints "ready" once it can answer. Linux only. Build: cc -O2 -o peer pingpong-futex-peer.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

static long futex(int32_t *addr, int op, int32_t val) {
  return syscall(SYS_futex, addr, op, val, NULL, NULL, 0);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s NAME\n", argv[0]);
    return 2;
  }
  char name[300];
  snprintf(name, sizeof name, "%s%s", argv[1][0] == '/' ? "" : "/", argv[1]);
  int fd = shm_open(name, O_RDWR, 0);
  if (fd < 0) {
    perror("shm_open");
    return 1;
  }
  int32_t *word = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (word == MAP_FAILED) {
    perror("mmap");
    return 1;
  }
  close(fd);
  printf("ready\n");
  fflush(stdout);
  for (;;) {
    int32_t v = __atomic_load_n(word, __ATOMIC_SEQ_CST);
    while (v != 1 && v != 3) {
      if (futex(word, FUTEX_WAIT, v) < 0 && errno != EAGAIN && errno != EINTR) {
        perror("futex wait");
        return 1;
      }
      v = __atomic_load_n(word, __ATOMIC_SEQ_CST);
    }
    if (v == 3) break;
    __atomic_store_n(word, 2, __ATOMIC_SEQ_CST);
    futex(word, FUTEX_WAKE, INT_MAX);
  }
  munmap(word, 4096);
  return 0;
}
