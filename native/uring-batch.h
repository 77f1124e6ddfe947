// Batched TAP reads and writes through io_uring (uring-batch.c): a batch of frames in one
// system call instead of one read() or write() each. tap.c uses these when the ring could be
// set up, and plain read()/write() otherwise (io_uring disabled, or refused by a sandbox).
#ifndef NODEPLANE_URING_BATCH_H
#define NODEPLANE_URING_BATCH_H
#include <stdbool.h>
#include <stdint.h>

// Frames per io_uring_enter at most (the ring's size).
#define URING_BATCH_MAX 256

// Whether this thread has a ring (set up on first use; false if io_uring is unavailable).
bool uring_batch_ready(void);

// Writes frames i = 0..count-1 (pool + offs[i], lens[i] bytes) to fd, in order. Returns the
// frames written; *err is the first failure's errno (0 if none). If the ring was refused
// (uring_batch_ready() is then false), the frames from the returned count on were not tried.
int32_t uring_batch_write(int fd, uint8_t* pool, const int32_t* offs, const int32_t* lens,
                          int32_t count, int* err);

// Reads up to `count` frames from fd without waiting, frame i into pool + offs[i] (at most
// `cap` bytes), its length into lens[i]. Returns the frames read, always a prefix of the
// slots; *err is an errno other than EAGAIN that ended reading (0 if none); *more is set
// when every read found a frame (the device may hold more), and when the ring was refused
// (nothing read: read the rest with read()).
int32_t uring_batch_read(int fd, uint8_t* pool, const int32_t* offs, int32_t* lens,
                         uint32_t cap, int32_t count, int* err, bool* more);

#endif
