// A delaying TCP relay: the network hop of `make bench --rtt` (bench/netns.ts builds and starts it
// inside the bench's network namespace). Every chunk read from one side is written to the other
// side ONE_WAY_US microseconds after it was read, in order, so a request and its reply each cross
// a fixed delay, as over a link with that propagation delay and ample bandwidth. The kernel here
// has no netem (nor fq/etf) and no iptables for NFQUEUE, hence user space; see bench/README.md for
// why this is faithful enough and where it differs from a real link.
//
// usage: delay-relay LISTEN_ADDR LISTEN_PORT UPSTREAM_ADDR UPSTREAM_PORT ECHO_PORT ONE_WAY_US
//   LISTEN_ADDR:LISTEN_PORT  relayed to UPSTREAM_ADDR:UPSTREAM_PORT (one upstream connection per client)
//   LISTEN_ADDR:ECHO_PORT    echoes what it reads, after the delay both ways: the "ping" of this hop
//                            (no ICMP here: no ping binary, and a relay carries TCP only)
// Prints "delay-relay listening" once both listeners are up. SIGUSR1 prints one line of statistics
// ("stats chunks=N bytes=N late_avg_us=X late_max_us=X"): how late chunks left relative to their
// deadline (timer and scheduling lateness of this process). SIGTERM/SIGINT exit.
//
// One thread, epoll, one timerfd. The delay is the same for every chunk, so deadlines grow in read
// order and one global FIFO ordered by arrival is also ordered by deadline: the timer is always
// armed for the FIFO's head. A write the destination socket cannot take at once is kept in that
// destination's pending buffer (EPOLLOUT) and later chunks queue behind it, so order is kept. A
// direction with more than HIGH_WATER bytes queued stops reading its source until it drains.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define READ_SIZE 65536
#define HIGH_WATER (4u << 20)
#define LOW_WATER (1u << 20)

struct conn;

/** One side of a relayed connection: a socket, what still has to be written to it, and its peer. */
struct side {
  int fd;
  struct conn *conn;
  struct side *peer; /* where what this side reads goes; NULL on the echo connection's client */
  char *pending;     /* bytes due but not yet taken by the socket */
  size_t pending_len, pending_cap;
  size_t queued;     /* bytes read from this side and not yet written to its destination */
  int reading;       /* EPOLLIN armed */
  int eof_read;      /* this side sent EOF: nothing more to read */
  int eof_due;       /* EOF read from the peer has reached its deadline: shut down writing after pending */
  int write_shut;
};

struct conn {
  struct side a, b; /* a: the client; b: the upstream (unused for echo) */
  int echo;
  int closed;
  int refs; /* chunks in the FIFO that point here, plus one while open */
  struct conn *next_dead;
};

/** Bytes read from `from`, due at `deadline` on its destination (the peer, or back to it for echo). */
struct chunk {
  uint64_t deadline;
  struct side *from;
  struct side *to;
  size_t len; /* 0: end of stream */
  int echo_return; /* an echo chunk on its way back */
  struct chunk *next;
  char data[];
};

static int ep, tfd, sfd, relay_listener, echo_listener;
static uint64_t one_way_ns;
static struct chunk *fifo_head, *fifo_tail;
static struct sockaddr_in upstream_addr;
/** Connections no longer referenced, freed after the epoll batch (a later event in it may name them). */
static struct conn *graveyard;
static uint64_t st_chunks, st_bytes, st_late_sum_ns, st_late_max_ns;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what) {
  perror(what);
  exit(1);
}

static void arm_timer(void) {
  struct itimerspec its = {0};
  if (fifo_head) {
    its.it_value.tv_sec = (time_t)(fifo_head->deadline / 1000000000ull);
    its.it_value.tv_nsec = (long)(fifo_head->deadline % 1000000000ull);
  }
  if (timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL) < 0) die("timerfd_settime");
}

static void set_events(struct side *s) {
  if (s->fd < 0) return;
  struct epoll_event ev = {.events = (s->reading ? EPOLLIN : 0) | (s->pending_len ? EPOLLOUT : 0), .data.ptr = s};
  epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &ev);
}

static void release(struct conn *c) {
  if (--c->refs == 0) {
    c->next_dead = graveyard;
    graveyard = c;
  }
}

static void bury(void) {
  while (graveyard) {
    struct conn *c = graveyard;
    graveyard = c->next_dead;
    free(c->a.pending);
    free(c->b.pending);
    free(c);
  }
}

static void close_conn(struct conn *c) {
  if (c->closed) return;
  c->closed = 1;
  if (c->a.fd >= 0) close(c->a.fd);
  if (c->b.fd >= 0) close(c->b.fd);
  c->a.fd = c->b.fd = -1;
  release(c);
}

static void enqueue(struct side *from, struct side *to, const char *data, size_t len, int echo_return) {
  struct chunk *ch = malloc(sizeof *ch + len);
  if (!ch) die("malloc");
  ch->deadline = now_ns() + one_way_ns;
  ch->from = from;
  ch->to = to;
  ch->len = len;
  ch->echo_return = echo_return;
  ch->next = NULL;
  memcpy(ch->data, data, len);
  from->conn->refs++;
  from->queued += len;
  if (fifo_tail) fifo_tail->next = ch;
  else fifo_head = ch;
  fifo_tail = ch;
}

/** Writes what `to` has pending, then `data`; keeps the rest pending. False when the socket failed. */
static int write_side(struct side *to, const char *data, size_t len) {
  if (to->pending_len == 0 && len > 0) {
    ssize_t n = write(to->fd, data, len);
    if (n < 0 && errno != EAGAIN) return 0;
    if (n > 0) {
      data += n;
      len -= (size_t)n;
    }
  }
  if (len > 0) {
    if (to->pending_len + len > to->pending_cap) {
      size_t cap = to->pending_cap ? to->pending_cap : 65536;
      while (cap < to->pending_len + len) cap *= 2;
      to->pending = realloc(to->pending, cap);
      if (!to->pending) die("realloc");
      to->pending_cap = cap;
    }
    memcpy(to->pending + to->pending_len, data, len);
    to->pending_len += len;
    set_events(to);
  }
  return 1;
}

static void maybe_shut(struct side *to) {
  if (to->eof_due && !to->write_shut && to->pending_len == 0) {
    shutdown(to->fd, SHUT_WR);
    to->write_shut = 1;
  }
  struct conn *c = to->conn;
  if (!c->echo && c->a.write_shut && c->b.write_shut) close_conn(c);
}

static void deliver(struct chunk *ch) {
  struct conn *c = ch->from->conn;
  ch->from->queued -= ch->len;
  if (!c->closed) {
    if (ch->from->queued < LOW_WATER && !ch->from->reading && !ch->from->eof_read) {
      ch->from->reading = 1;
      set_events(ch->from);
    }
    if (c->echo && !ch->echo_return) {
      // Reached the echo end: sent straight back across the same delay.
      if (ch->len == 0) close_conn(c);
      else enqueue(ch->from, ch->from, ch->data, ch->len, 1);
    } else if (ch->len == 0) {
      ch->to->eof_due = 1;
      maybe_shut(ch->to);
    } else if (!write_side(ch->to, ch->data, ch->len)) {
      close_conn(c);
    }
  }
  release(c);
  free(ch);
}

static void on_timer(void) {
  uint64_t expirations;
  if (read(tfd, &expirations, sizeof expirations) < 0 && errno != EAGAIN) die("read timerfd");
  uint64_t now = now_ns();
  while (fifo_head && fifo_head->deadline <= now) {
    struct chunk *ch = fifo_head;
    fifo_head = ch->next;
    if (!fifo_head) fifo_tail = NULL;
    uint64_t late = now - ch->deadline;
    st_chunks++;
    st_bytes += ch->len;
    st_late_sum_ns += late;
    if (late > st_late_max_ns) st_late_max_ns = late;
    deliver(ch);
    now = now_ns();
  }
  arm_timer();
}

static void on_readable(struct side *s) {
  static char buf[READ_SIZE];
  int was_empty = fifo_head == NULL;
  ssize_t n = read(s->fd, buf, sizeof buf);
  if (n < 0) {
    if (errno == EAGAIN) return;
    close_conn(s->conn);
  } else {
    struct side *to = s->conn->echo ? s : s->peer;
    enqueue(s, to, buf, (size_t)n, 0);
    if (n == 0) s->eof_read = 1;
    if (n == 0 || s->queued > HIGH_WATER) {
      s->reading = 0; // EOF: nothing more to read; full: wait for the queue to drain
      set_events(s);
    }
  }
  if (was_empty && fifo_head) arm_timer();
}

static void on_writable(struct side *s) {
  ssize_t n = write(s->fd, s->pending, s->pending_len);
  if (n < 0) {
    if (errno != EAGAIN) close_conn(s->conn);
    return;
  }
  memmove(s->pending, s->pending + n, s->pending_len - (size_t)n);
  s->pending_len -= (size_t)n;
  set_events(s);
  maybe_shut(s);
}

static void add_side(struct side *s) {
  s->reading = 1;
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = s};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev) < 0) die("epoll_ctl add");
}

static void on_accept(int listener, int echo) {
  int fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK);
  if (fd < 0) return;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct conn *c = calloc(1, sizeof *c);
  if (!c) die("calloc");
  c->refs = 1;
  c->echo = echo;
  c->a.fd = fd;
  c->a.conn = c->b.conn = c;
  c->b.fd = -1;
  if (!echo) {
    // A blocking connect: the upstream is on this namespace's loopback and answers at once.
    int up = socket(AF_INET, SOCK_STREAM, 0);
    if (up < 0 || connect(up, (struct sockaddr *)&upstream_addr, sizeof upstream_addr) < 0) {
      if (up >= 0) close(up);
      close(fd);
      free(c);
      return;
    }
    setsockopt(up, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (fcntl(up, F_SETFL, O_NONBLOCK) < 0) die("fcntl");
    c->b.fd = up;
    c->a.peer = &c->b;
    c->b.peer = &c->a;
    add_side(&c->b);
  }
  add_side(&c->a);
}

static int listen_on(const char *addr, int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) die("listen address");
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) die("bind");
  if (listen(fd, 512) < 0) die("listen");
  return fd;
}

int main(int argc, char **argv) {
  if (argc != 7) {
    fprintf(stderr, "usage: delay-relay LISTEN_ADDR LISTEN_PORT UPSTREAM_ADDR UPSTREAM_PORT ECHO_PORT ONE_WAY_US\n");
    return 2;
  }
  one_way_ns = (uint64_t)strtoull(argv[6], NULL, 10) * 1000ull;
  upstream_addr.sin_family = AF_INET;
  upstream_addr.sin_port = htons((uint16_t)atoi(argv[4]));
  if (inet_pton(AF_INET, argv[3], &upstream_addr.sin_addr) != 1) die("upstream address");
  // The default timer slack (50 µs) would make every deadline up to 50 µs late.
  prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
  // Dies with the bench that started it, even when that is SIGKILLed (`ip netns exec` and `nice`
  // exec, so the parent is the bench itself).
  prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0);
  signal(SIGPIPE, SIG_IGN);
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGUSR1);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigprocmask(SIG_BLOCK, &mask, NULL);
  sfd = signalfd(-1, &mask, SFD_NONBLOCK);
  ep = epoll_create1(0);
  tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
  if (sfd < 0 || ep < 0 || tfd < 0) die("setup");
  relay_listener = listen_on(argv[1], atoi(argv[2]));
  echo_listener = listen_on(argv[1], atoi(argv[5]));
  int fixed[] = {relay_listener, echo_listener, tfd, sfd};
  for (int i = 0; i < 4; i++) {
    // Fixed descriptors are told apart from sides by a small integer in data.u64 (sides are pointers).
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)(i + 1)};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fixed[i], &ev) < 0) die("epoll_ctl");
  }
  printf("delay-relay listening\n");
  fflush(stdout);
  struct epoll_event events[64];
  for (;;) {
    int n = epoll_wait(ep, events, 64, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait");
    }
    for (int i = 0; i < n; i++) {
      uint64_t tag = events[i].data.u64;
      if (tag == 1) on_accept(relay_listener, 0);
      else if (tag == 2) on_accept(echo_listener, 1);
      else if (tag == 3) on_timer();
      else if (tag == 4) {
        struct signalfd_siginfo si;
        while (read(sfd, &si, sizeof si) == sizeof si) {
          if (si.ssi_signo != SIGUSR1) return 0;
          printf("stats chunks=%llu bytes=%llu late_avg_us=%.1f late_max_us=%.1f\n", (unsigned long long)st_chunks,
                 (unsigned long long)st_bytes, st_chunks ? (double)st_late_sum_ns / (double)st_chunks / 1000.0 : 0.0,
                 (double)st_late_max_ns / 1000.0);
          fflush(stdout);
        }
      } else {
        struct side *s = events[i].data.ptr;
        // A side whose connection closed earlier in this batch has fd -1.
        if (s->fd < 0) continue;
        uint32_t ev = events[i].events;
        if (ev & EPOLLERR) {
          close_conn(s->conn);
          continue;
        }
        if (ev & (EPOLLIN | EPOLLHUP)) {
          // After EOF a hung-up socket stays "ready" for ever: stop watching it; the connection
          // closes once both directions have delivered their EOF (maybe_shut).
          if (s->eof_read) epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL);
          else on_readable(s);
        }
        if (s->fd >= 0 && (ev & EPOLLOUT)) on_writable(s);
      }
    }
    bury();
  }
}
