/*
 * mq-relay: the smallest TAP-to-TAP forwarder that can use multi-queue TAPs, for the
 * e2e-multiqueue bench (bench/e2e-multiqueue.bench.ts). Every frame read from a queue of one
 * TAP is written to the queue of the same index of the other: one read() and one write() per
 * frame, poll() for readiness, no offload (plain frames, no virtio-net header).
 *
 *   mq-relay TAP_A TAP_B QUEUES THREADS
 *
 * QUEUES "plain": each TAP opened once without IFF_MULTI_QUEUE (the baseline); THREADS must
 * be 1. QUEUES N (1..8): each TAP created with IFF_MULTI_QUEUE and N file descriptors, one
 * TUNSETIFF of the same name on each. THREADS 1: one thread polls every descriptor; THREADS
 * N: thread i polls queue i of A and queue i of B only.
 *
 * Prints "ready" on stdout once every queue is attached (the TAPs may then be moved to other
 * namespaces); on SIGUSR1, a line "frames A->B q0 q1 ... B->A q0 q1 ..." on stdout with the
 * frames moved so far per queue (so a caller can see how flows spread over the queues); on
 * SIGTERM or SIGINT, the same per queue pair on stderr, and it exits.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define MAX_QUEUES 8
/* Frames taken from one descriptor before looking at the others again. */
#define BURST 64

struct pair {
  int fd[2];                      /* queue i of A, queue i of B */
  unsigned long long moved[2];    /* frames read from fd[k] and written to fd[1 - k] */
  unsigned long long lost[2];     /* frames read from fd[k] whose write failed */
};

struct worker {
  struct pair *pairs;
  int first, count;               /* the pairs this thread serves */
};

static struct pair pairs[MAX_QUEUES];
static int queues;
static volatile sig_atomic_t stopping, report;

static void on_signal(int sig) {
  if (sig == SIGUSR1) report = 1;
  else stopping = 1;
}

/* Counters of other threads read without a lock: 64-bit loads, a frame or two stale at most. */
static void print_counts(void) {
  printf("frames A->B");
  for (int q = 0; q < queues; q++) printf(" %llu", pairs[q].moved[0]);
  printf(" B->A");
  for (int q = 0; q < queues; q++) printf(" %llu", pairs[q].moved[1]);
  printf("\n");
  fflush(stdout);
}

static int attach_queue(const char *name, int multi) {
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK);
  if (fd < 0) {
    perror("mq-relay: /dev/net/tun");
    exit(1);
  }
  struct ifreq req;
  memset(&req, 0, sizeof req);
  req.ifr_flags = IFF_TAP | IFF_NO_PI | (multi ? IFF_MULTI_QUEUE : 0);
  snprintf(req.ifr_name, IFNAMSIZ, "%s", name);
  if (ioctl(fd, TUNSETIFF, &req) < 0) {
    fprintf(stderr, "mq-relay: TUNSETIFF %s: %s\n", name, strerror(errno));
    exit(1);
  }
  return fd;
}

static void *serve(void *arg) {
  struct worker *w = arg;
  struct pollfd watch[2 * MAX_QUEUES];
  int n = 0;
  for (int p = w->first; p < w->first + w->count; p++)
    for (int side = 0; side < 2; side++) watch[n++] = (struct pollfd){ .fd = w->pairs[p].fd[side], .events = POLLIN };
  /* 64 KiB: a frame is at most the MTU here, but a short buffer would truncate silently. */
  static __thread unsigned char frame[65536];
  while (!stopping) {
    if (w->first == 0 && report) {
      report = 0;
      print_counts();
    }
    int ready = poll(watch, n, 200);
    if (ready < 0) {
      if (errno == EINTR) continue;
      perror("mq-relay: poll");
      exit(1);
    }
    for (int i = 0; i < n && ready > 0; i++) {
      if (!(watch[i].revents & POLLIN)) continue;
      ready--;
      struct pair *pr = &w->pairs[w->first + i / 2];
      int from = i % 2;
      for (int b = 0; b < BURST; b++) {
        ssize_t len = read(pr->fd[from], frame, sizeof frame);
        if (len <= 0) break;
        if (write(pr->fd[1 - from], frame, (size_t)len) == len) pr->moved[from]++;
        else pr->lost[from]++;
      }
    }
  }
  return NULL;
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: %s TAP_A TAP_B QUEUES|plain THREADS\n", argv[0]);
    return 2;
  }
  int multi = strcmp(argv[3], "plain") != 0;
  queues = multi ? atoi(argv[3]) : 1;
  int threads = atoi(argv[4]);
  if (queues < 1 || queues > MAX_QUEUES || (threads != 1 && threads != queues)) {
    fprintf(stderr, "mq-relay: QUEUES must be plain or 1..%d, THREADS 1 or QUEUES\n", MAX_QUEUES);
    return 2;
  }
  for (int q = 0; q < queues; q++) {
    pairs[q].fd[0] = attach_queue(argv[1], multi);
    pairs[q].fd[1] = attach_queue(argv[2], multi);
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;   /* no SA_RESTART: poll() returns EINTR and the loop ends */
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGUSR1, &sa, NULL);
  printf("ready\n");
  fflush(stdout);

  struct worker workers[MAX_QUEUES];
  pthread_t tids[MAX_QUEUES];
  int per = queues / threads;
  for (int t = 0; t < threads; t++) {
    workers[t] = (struct worker){ .pairs = pairs, .first = t * per, .count = per };
    if (t > 0 && pthread_create(&tids[t], NULL, serve, &workers[t]) != 0) {
      perror("mq-relay: pthread_create");
      return 1;
    }
  }
  serve(&workers[0]);
  for (int t = 1; t < threads; t++) pthread_join(tids[t], NULL);
  for (int q = 0; q < queues; q++)
    fprintf(stderr, "mq-relay: queue %d: A->B %llu frames (%llu lost), B->A %llu frames (%llu lost)\n", q, pairs[q].moved[0],
            pairs[q].lost[0], pairs[q].moved[1], pairs[q].lost[1]);
  return 0;
}
