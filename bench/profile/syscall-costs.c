/*
 * The OS floor under rows 3 and 4 of `npm run bench`: what the syscalls that node-shared-mem
 * makes cost on this machine, with no JS or Node-API around them.
 *   gcc -O2 -o /tmp/syscall-costs bench/profile/syscall-costs.c && taskset -c 1 /tmp/syscall-costs
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e9 + t.tv_nsec;
}

int main(void) {
  const char *name = "/nsm-bench-syscall-costs";
  int fd = shm_open(name, O_CREAT | O_RDWR, 0600);
  if (fd < 0 || ftruncate(fd, 4096) != 0) return perror("shm_open/ftruncate"), 1;
  char *p = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return perror("mmap"), 1;
  struct stat st;
  char buf[64];
  const int N = 1000000, M = 100000;
  for (int r = 0; r < 3; r++) {
    double t0 = now();
    for (int i = 0; i < N; i++) fstat(fd, &st);
    double t1 = now();
    for (int i = 0; i < N; i++) getppid();
    double t2 = now();
    for (int i = 0; i < N; i++) {
      memcpy(buf, p, 64);
      __asm__ volatile("" ::"r"(buf) : "memory");
    }
    double t3 = now();
    for (int i = 0; i < M; i++) { /* what new SharedMemory(name) + close() asks of the OS */
      int f = shm_open(name, O_RDWR, 0);
      fstat(f, &st);
      void *q = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, f, 0);
      munmap(q, 4096);
      close(f);
    }
    double t4 = now();
    for (int i = 0; i < M; i++) { /* what mmap-io's open + map + close + (GC) unmap asks */
      int f = shm_open(name, O_RDWR, 0);
      void *q = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, f, 0);
      close(f);
      munmap(q, 4096);
    }
    double t5 = now();
    for (int i = 0; i < M; i++) close(shm_open(name, O_RDWR, 0));
    double t6 = now();
    printf("fstat %.0f ns | getppid (bare syscall) %.0f ns | memcpy 64 B %.1f ns | "
           "shm_open+fstat+mmap+munmap+close %.0f ns | shm_open+mmap+close+munmap %.0f ns | shm_open+close %.0f ns\n",
           (t1 - t0) / N, (t2 - t1) / N, (t3 - t2) / N, (t4 - t3) / M, (t5 - t4) / M, (t6 - t5) / M);
  }
  munmap(p, 4096);
  close(fd);
  shm_unlink(name);
  return 0;
}
