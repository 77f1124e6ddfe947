// Batched TAP reads and writes through io_uring: one io_uring_enter submits a batch of reads
// or writes on a TAP's fd and waits for their completions. A TAP supports non-blocking
// issue, so each request runs inline, in submission order, within that call: the frames go
// out in order. Every request carries RWF_NOWAIT, so that one that cannot complete at once
// (a read that finds the device empty, a write that would block) ends with EAGAIN instead of
// waiting or going to a worker thread: the call never blocks the event loop. Reads are not linked: a linked read that returns less than asked
// (every frame is shorter than its slot) would cancel the rest of the chain.
//
// One ring per thread (Node's main thread, or a worker's), set up on first use and kept for
// the life of the thread. NODEPLANE_URING=0 in the environment turns it off. Built without
// liburing's headers (binding.gyp defines NODEPLANE_URING only when they are there), there is
// no ring and tap.c keeps to read() and write().
#include "uring-batch.h"

#ifndef NODEPLANE_URING

bool uring_batch_ready(void) { return false; }

int32_t uring_batch_write(int fd, uint8_t* pool, const int32_t* offs, const int32_t* lens,
                          int32_t count, int* err) {
  *err = 0;
  return 0;
}

int32_t uring_batch_read(int fd, uint8_t* pool, const int32_t* offs, int32_t* lens,
                         uint32_t cap, int32_t count, int* err, bool* more) {
  *err = 0;
  *more = true;
  return 0;
}

#else

#include <errno.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

static __thread struct io_uring ring;
static __thread int ring_state;  // 0: not tried, 1: ready, -1: unavailable

bool uring_batch_ready(void) {
  if (ring_state == 0) {
    // NODEPLANE_URING=0 keeps to read() and write(), to compare.
    const char* off = getenv("NODEPLANE_URING");
    if (off && strcmp(off, "0") == 0) ring_state = -1;
    else ring_state = io_uring_queue_init(URING_BATCH_MAX, &ring, 0) == 0 ? 1 : -1;
  }
  return ring_state == 1;
}

// Submits what was prepared and waits for `n` completions. If the kernel refuses, the ring
// is given up for this thread (the callers fall back to plain system calls for good).
static bool submit_wait(unsigned n) {
  int rc;
  do rc = io_uring_submit_and_wait(&ring, n);
  while (rc == -EINTR);
  if (rc >= 0) return true;
  io_uring_queue_exit(&ring);
  ring_state = -1;
  return false;
}

int32_t uring_batch_write(int fd, uint8_t* pool, const int32_t* offs, const int32_t* lens,
                          int32_t count, int* err) {
  int32_t written = 0;
  *err = 0;
  for (int32_t at = 0; at < count;) {
    int32_t k = count - at < URING_BATCH_MAX ? count - at : URING_BATCH_MAX;
    for (int32_t i = 0; i < k; i++) {
      struct io_uring_sqe* sqe = io_uring_get_sqe(&ring);
      io_uring_prep_write(sqe, fd, pool + offs[at + i], (unsigned)lens[at + i], 0);
      sqe->rw_flags = RWF_NOWAIT;  // never left waiting (nor handed to a worker, out of order)
      sqe->user_data = (uint64_t)i;
    }
    if (!submit_wait((unsigned)k)) return written;
    struct io_uring_cqe* cqe;
    unsigned head, seen = 0;
    io_uring_for_each_cqe(&ring, head, cqe) {
      seen++;
      if (cqe->res >= 0) written++;
      else if (*err == 0) *err = -cqe->res;
    }
    io_uring_cq_advance(&ring, seen);
    at += k;
  }
  return written;
}

int32_t uring_batch_read(int fd, uint8_t* pool, const int32_t* offs, int32_t* lens,
                         uint32_t cap, int32_t count, int* err, bool* more) {
  *err = 0;
  *more = false;
  if (count > URING_BATCH_MAX) count = URING_BATCH_MAX;
  for (int32_t i = 0; i < count; i++) {
    struct io_uring_sqe* sqe = io_uring_get_sqe(&ring);
    io_uring_prep_read(sqe, fd, pool + offs[i], cap, 0);
    sqe->rw_flags = RWF_NOWAIT;
    sqe->user_data = (uint64_t)i;
    lens[i] = -1;
  }
  if (!submit_wait((unsigned)count)) {
    *more = true;  // nothing was read: the caller reads with read()
    return 0;
  }
  struct io_uring_cqe* cqe;
  unsigned head, seen = 0;
  io_uring_for_each_cqe(&ring, head, cqe) {
    seen++;
    int32_t i = (int32_t)cqe->user_data;
    if (cqe->res >= 0) lens[i] = cqe->res;
    else if (cqe->res != -EAGAIN && *err == 0) *err = -cqe->res;
  }
  io_uring_cq_advance(&ring, seen);
  // A frame that arrived after an earlier read found the device empty sits in a later slot:
  // move it down, so that the frames read are the first slots.
  int32_t n = 0;
  for (int32_t i = 0; i < count; i++) {
    if (lens[i] < 0) continue;
    if (i != n) {
      memmove(pool + offs[n], pool + offs[i], (size_t)lens[i]);
      lens[n] = lens[i];
    }
    n++;
  }
  *more = n == count;
  return n;
}

#endif
