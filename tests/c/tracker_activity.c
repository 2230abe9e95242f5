/* The tracker's activity log through the C ABI (issue 10 section 5): a child process loads a
 * tracker with an activity log, writes random data to a file-backed disk through a writer handle
 * (waiting on cold tickets) and now and then ships a checkpoint to a replica file and commits;
 * the parent kills it with SIGKILL at random moments, then reloads (RECOVERED: same generation),
 * ships the next checkpoint and checks that the replica is byte-identical to the disk (0 lost
 * writes) and that the checkpoint over-reports at most active_regions * region_size; a clean
 * close then reloads RESUMED. Also the error paths: a writer without a log, too many writers,
 * bad settings, NULLs, a token of a write told to wait, a close while writers remain.
 *
 * BLOCKDELTA_C_KILLS sets the number of kills (default 100). */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "blockdelta.h"
#include "check.h"

#define BLOCK 4096u
#define REGION (64u * 1024u)
#define ACTIVE 8u
#define DISK (8ull * 1024ull * 1024ull)
#define BLOCKS (DISK / BLOCK)
#define WRITERS 2u

static const uint8_t disk_id[16] = "c-activity-log1";

static blockdelta_activity_log_config log_config(void) {
  blockdelta_activity_log_config c;
  memset(&c, 0, sizeof c);
  c.region_size = REGION;
  c.active_regions = ACTIVE;
  c.writers = WRITERS;
  c.log_limit = 16384; /* small: state rewrites happen during the run too */
  return c;
}

static blockdelta_result load(const char *path, const blockdelta_activity_log_config *c,
                              blockdelta_tracker **t, uint32_t *reason) {
  return blockdelta_tracker_load_with_log(path, DISK, 512, BLOCK, 0, 0, disk_id, NULL, 0, 0, c, t,
                                          reason);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void) { /* xorshift64* */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545f4914f6cdd1dull;
}

/* Copies len bytes at off from one file to another (pread/pwrite, whole or die). */
static int copy_range(int from, int to, uint64_t off, uint64_t len) {
  static uint8_t buf[256 * 1024];
  while (len > 0) {
    size_t n = len < sizeof buf ? (size_t)len : sizeof buf;
    if (pread(from, buf, n, (off_t)off) != (ssize_t)n) return -1;
    if (pwrite(to, buf, n, (off_t)off) != (ssize_t)n) return -1;
    off += n;
    len -= n;
  }
  return 0;
}

/* Removes a state file and its siblings (the lock file and the activity log). */
static void remove_state(const char *path) {
  char p[160];
  unlink(path);
  snprintf(p, sizeof p, "%s.lock", path);
  unlink(p);
  snprintf(p, sizeof p, "%s.al", path);
  unlink(p);
}

/* What the child leaves for the parent, in memory shared across the fork (it survives the kill). */
struct shared {
  volatile int loaded; /* the child's load returned */
  volatile uint64_t writes;
  volatile uint64_t ships;
  /* The sequence the child is committing (set after its take, cleared once `written` is
   * cleared after the commit returned): if the recovered tracker committed it, `written` is
   * stale (those blocks were shipped). */
  volatile uint64_t committing;
  volatile uint8_t written[BLOCKS]; /* blocks written since the last commit */
};

/* Takes a checkpoint, copies its extents from disk to replica and commits it. `in_cp`, when not
 * NULL, receives a byte per block of the checkpoint; `committing`, when not NULL, the sequence
 * before the commit starts; `cp_out`, when not NULL, the checkpoint. Returns the checkpoint's
 * block count, or -1. */
static long ship(blockdelta_tracker *t, int disk, int replica, uint8_t *in_cp,
                 volatile uint64_t *committing, blockdelta_checkpoint *cp_out) {
  blockdelta_checkpoint cp;
  blockdelta_extent_cursor cursor;
  blockdelta_extent e[16];
  size_t n = 0;
  long blocks = 0;
  if (blockdelta_tracker_take(t, &cp) != BLOCKDELTA_RESULT_OK) return -1;
  if (blockdelta_extent_cursor_init(&cp, &cursor) != BLOCKDELTA_RESULT_OK) return -1;
  do {
    if (blockdelta_tracker_extents(t, &cursor, e, 16, &n) != BLOCKDELTA_RESULT_OK) return -1;
    for (size_t i = 0; i < n; i++) {
      if (e[i].kind != BLOCKDELTA_EXTENT_KIND_WRITE) return -1;
      if (copy_range(disk, replica, e[i].offset, e[i].len) != 0) return -1;
      for (uint64_t b = e[i].offset / BLOCK; b < (e[i].offset + e[i].len + BLOCK - 1) / BLOCK; b++) {
        if (in_cp) in_cp[b] = 1;
        blocks++;
      }
    }
  } while (n > 0);
  if (committing) *committing = cp.sequence;
  if (cp_out) *cp_out = cp;
  if (blockdelta_tracker_commit(t, cp.generation, cp.sequence) != BLOCKDELTA_RESULT_OK) return -1;
  return blocks;
}

/* The child: writes until killed. Exits (with a code naming the step) only on an error. */
static void child(const char *state_path, const char *disk_path, const char *replica_path,
                  struct shared *sh, uint64_t seed) {
  blockdelta_activity_log_config c = log_config();
  blockdelta_tracker *t = NULL;
  blockdelta_tracker_writer *w = NULL;
  uint32_t reason = 99;
  static uint8_t buf[4 * BLOCK];
  rng_state = seed;
  if (load(state_path, &c, &t, &reason) != BLOCKDELTA_RESULT_OK) _exit(10);
  /* The parent always closes cleanly before it starts a child. */
  if (reason != BLOCKDELTA_TRACKER_LOAD_RESUMED) _exit(11);
  if (blockdelta_tracker_writer_new(t, &w) != BLOCKDELTA_RESULT_OK) _exit(12);
  int disk = open(disk_path, O_RDWR);
  int replica = open(replica_path, O_RDWR);
  if (disk < 0 || replica < 0) _exit(13);
  sh->loaded = 1;
  for (;;) {
    unsigned burst = 1 + (unsigned)(rnd() % 64);
    for (unsigned i = 0; i < burst; i++) {
      uint64_t first = rnd() % BLOCKS;
      uint64_t count = 1 + rnd() % 4;
      if (first + count > BLOCKS) count = BLOCKS - first;
      uint64_t off = first * BLOCK, len = count * BLOCK;
      bool admitted = false;
      uint64_t token = 0, ticket = 0;
      for (;;) {
        if (blockdelta_tracker_writer_begin(w, off, len, &admitted, &token, &ticket) !=
            BLOCKDELTA_RESULT_OK)
          _exit(14);
        if (admitted) break;
        if (rnd() % 2) {
          if (blockdelta_tracker_wait(t, ticket) != BLOCKDELTA_RESULT_OK) _exit(15);
        } else {
          /* The polling style: a flush (here on this thread), then the ticket is durable. */
          bool durable = false;
          if (blockdelta_tracker_flush(t) != BLOCKDELTA_RESULT_OK) _exit(16);
          if (blockdelta_tracker_ticket_durable(t, ticket, &durable) != BLOCKDELTA_RESULT_OK ||
              !durable)
            _exit(17);
        }
      }
      /* Recorded before the write is issued: a kill can leave a block recorded and not
       * written, never the reverse. */
      for (uint64_t b = first; b < first + count; b++) sh->written[b] = 1;
      for (size_t k = 0; k < len; k += 8) {
        uint64_t r = rnd();
        memcpy(buf + k, &r, 8);
      }
      if (pwrite(disk, buf, (size_t)len, (off_t)off) != (ssize_t)len) _exit(18);
      if (blockdelta_tracker_writer_complete(w, token, off, len) != BLOCKDELTA_RESULT_OK) _exit(19);
      sh->writes++;
    }
    if (rnd() % 3 == 0) {
      if (ship(t, disk, replica, NULL, &sh->committing, NULL) < 0) _exit(20);
      /* Committed durably: nothing before it needs shipping again (no write ran between the
       * take and the commit). */
      for (uint64_t b = 0; b < BLOCKS; b++) sh->written[b] = 0;
      sh->committing = 0;
      sh->ships++;
    }
  }
}

static int files_equal(const char *a, const char *b) {
  static uint8_t x[256 * 1024], y[256 * 1024];
  int fa = open(a, O_RDONLY), fb = open(b, O_RDONLY);
  int same = fa >= 0 && fb >= 0;
  for (uint64_t off = 0; same && off < DISK; off += sizeof x) {
    same = pread(fa, x, sizeof x, (off_t)off) == (ssize_t)sizeof x &&
           pread(fb, y, sizeof y, (off_t)off) == (ssize_t)sizeof y && memcmp(x, y, sizeof x) == 0;
  }
  if (fa >= 0) close(fa);
  if (fb >= 0) close(fb);
  return same;
}

/* Kills a writing child at random moments; after each kill, recovers, ships and checks. */
static void crash_loop(const char *dir, int kills) {
  char state_path[128], disk_path[128], replica_path[128];
  snprintf(state_path, sizeof state_path, "%s/disk.tracker", dir);
  snprintf(disk_path, sizeof disk_path, "%s/disk.img", dir);
  snprintf(replica_path, sizeof replica_path, "%s/replica.img", dir);
  blockdelta_activity_log_config c = log_config();
  static uint8_t in_cp[BLOCKS];

  /* A disk of random data and an empty replica. */
  int disk = open(disk_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
  int replica = open(replica_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
  CHECK(disk >= 0 && replica >= 0);
  {
    static uint8_t buf[64 * 1024];
    for (uint64_t off = 0; off < DISK; off += sizeof buf) {
      for (size_t k = 0; k < sizeof buf; k += 8) {
        uint64_t r = rnd();
        memcpy(buf + k, &r, 8);
      }
      CHECK(pwrite(disk, buf, sizeof buf, (off_t)off) == (ssize_t)sizeof buf);
    }
    CHECK(ftruncate(replica, (off_t)DISK) == 0);
  }

  /* The first load: no state file, a full sync. */
  blockdelta_tracker *t = NULL;
  uint32_t reason = 99;
  uint8_t generation[16];
  CHECK_RC(load(state_path, &c, &t, &reason), BLOCKDELTA_RESULT_OK);
  CHECK(reason == BLOCKDELTA_TRACKER_LOAD_MISSING);
  CHECK(ship(t, disk, replica, NULL, NULL, NULL) == (long)BLOCKS);
  CHECK_RC(blockdelta_tracker_generation(t, &generation), BLOCKDELTA_RESULT_OK);
  CHECK_RC(blockdelta_tracker_close(t), BLOCKDELTA_RESULT_OK);
  CHECK(files_equal(disk_path, replica_path));

  struct shared *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  CHECK(sh != MAP_FAILED);
  if (sh == MAP_FAILED) return;
  memset((void *)sh, 0, sizeof *sh);

  int killed = 0, recovered = 0;
  uint64_t max_excess = 0, shipped_by_parent = 0;
  for (int round = 0; round < kills && failures == 0; round++) {
    sh->loaded = 0;
    uint64_t seed = rnd() | 1;
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid < 0) break;
    if (pid == 0) child(state_path, disk_path, replica_path, sh, seed);

    /* A random moment: one round in five from the fork on (possibly during the load), the
     * others once the child is writing. */
    struct timespec pause = {0, 0};
    if (rnd() % 5 != 0) {
      for (int i = 0; i < 10000 && !sh->loaded; i++) {
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
      }
      CHECK(sh->loaded);
    }
    pause.tv_nsec = (long)(rnd() % 30000000);
    nanosleep(&pause, NULL);
    int loaded = sh->loaded;
    CHECK(kill(pid, SIGKILL) == 0);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)) {
      fprintf(stderr, "round %d: the child was not killed but ended with status %#x (exit %d)\n",
              round, status, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
      failures++;
      break;
    }
    killed++;

    /* Recovery: the same generation, every written block in the next checkpoint. */
    CHECK_RC(load(state_path, &c, &t, &reason), BLOCKDELTA_RESULT_OK);
    if (loaded) {
      CHECK(reason == BLOCKDELTA_TRACKER_LOAD_RECOVERED);
    } else {
      CHECK(reason == BLOCKDELTA_TRACKER_LOAD_RECOVERED || reason == BLOCKDELTA_TRACKER_LOAD_RESUMED);
    }
    if (reason != BLOCKDELTA_TRACKER_LOAD_RECOVERED && reason != BLOCKDELTA_TRACKER_LOAD_RESUMED) {
      fprintf(stderr, "round %d: load reason %s\n", round, blockdelta_tracker_load_reason_name(reason));
    }
    recovered += reason == BLOCKDELTA_TRACKER_LOAD_RECOVERED;
    {
      uint8_t g[16];
      CHECK_RC(blockdelta_tracker_generation(t, &g), BLOCKDELTA_RESULT_OK);
      CHECK(memcmp(g, generation, 16) == 0);
    }
    memset(in_cp, 0, sizeof in_cp);
    blockdelta_checkpoint cp;
    memset(&cp, 0, sizeof cp);
    long blocks = ship(t, disk, replica, in_cp, NULL, &cp);
    CHECK(blocks >= 0);
    /* Killed after the child's commit was durable, before it cleared `written`: nothing of it
     * is owed. */
    int stale = sh->committing != 0 && cp.from_sequence == sh->committing;
    uint64_t lost = 0, excess = 0;
    for (uint64_t b = 0; b < BLOCKS; b++) {
      int owed = sh->written[b] && !stale;
      if (owed && !in_cp[b]) lost++;
      if (in_cp[b] && !owed) excess++;
    }
    CHECK(lost == 0);
    CHECK(excess * BLOCK <= (uint64_t)ACTIVE * REGION);
    if (lost != 0 || excess * BLOCK > (uint64_t)ACTIVE * REGION) {
      fprintf(stderr, "round %d: %llu blocks lost, %llu over-reported (bound %u)\n", round,
              (unsigned long long)lost, (unsigned long long)excess, ACTIVE * REGION / BLOCK);
    }
    if (excess > max_excess) max_excess = excess;
    shipped_by_parent += (uint64_t)(blocks > 0 ? blocks : 0);
    CHECK(files_equal(disk_path, replica_path));
    memset((void *)sh->written, 0, sizeof sh->written);
    sh->committing = 0;
    CHECK_RC(blockdelta_tracker_close(t), BLOCKDELTA_RESULT_OK);
  }

  /* A clean close reloads RESUMED, with nothing left to ship. */
  CHECK_RC(load(state_path, &c, &t, &reason), BLOCKDELTA_RESULT_OK);
  CHECK(reason == BLOCKDELTA_TRACKER_LOAD_RESUMED);
  {
    blockdelta_checkpoint cp;
    CHECK_RC(blockdelta_tracker_take(t, &cp), BLOCKDELTA_RESULT_OK);
    CHECK(cp.dirty_blocks == 0 && memcmp(cp.generation, generation, 16) == 0);
    CHECK_RC(blockdelta_tracker_commit(t, cp.generation, cp.sequence), BLOCKDELTA_RESULT_OK);
  }
  CHECK_RC(blockdelta_tracker_close(t), BLOCKDELTA_RESULT_OK);
  CHECK(killed == kills || failures > 0);
  printf("tracker_activity.c: %d kills (%d loads recovered), %llu writes and %llu ships "
         "by the children, %llu blocks shipped after the kills, largest excess %llu blocks "
         "(bound %u)\n",
         killed, recovered, (unsigned long long)sh->writes, (unsigned long long)sh->ships,
         (unsigned long long)shipped_by_parent, (unsigned long long)max_excess,
         ACTIVE * REGION / BLOCK);

  munmap((void *)sh, sizeof *sh);
  close(disk);
  close(replica);
  unlink(disk_path);
  unlink(replica_path);
  remove_state(state_path);
}

/* The API and its error paths, in one process. */
static void api(const char *dir) {
  char path[128];
  snprintf(path, sizeof path, "%s/api.tracker", dir);
  blockdelta_activity_log_config c = log_config();
  blockdelta_tracker *t = NULL, *none = NULL;
  blockdelta_tracker_writer *w = NULL, *w2 = NULL, *w3 = NULL;
  uint32_t reason = 99;
  bool admitted = false, durable = true;
  uint64_t token = 7, ticket = 7;
  blockdelta_activity_stats stats;

  /* A tracker without an activity log has no writers, tickets or stats. */
  CHECK_RC(blockdelta_tracker_new(DISK, 512, BLOCK, 0, 0, 0, &t), BLOCKDELTA_RESULT_OK);
  CHECK_RC(blockdelta_tracker_writer_new(t, &w), BLOCKDELTA_RESULT_TRACKER_NO_ACTIVITY_LOG);
  CHECK(w == NULL);
  CHECK_RC(blockdelta_tracker_wait(t, 1), BLOCKDELTA_RESULT_TRACKER_NO_ACTIVITY_LOG);
  CHECK_RC(blockdelta_tracker_flush(t), BLOCKDELTA_RESULT_TRACKER_NO_ACTIVITY_LOG);
  CHECK_RC(blockdelta_tracker_ticket_durable(t, 1, &durable), BLOCKDELTA_RESULT_TRACKER_NO_ACTIVITY_LOG);
  CHECK_RC(blockdelta_tracker_activity_stats(t, &stats), BLOCKDELTA_RESULT_TRACKER_NO_ACTIVITY_LOG);
  CHECK_RC(blockdelta_tracker_complete(t, 1, 0, BLOCK), BLOCKDELTA_RESULT_TRACKER_NO_ACTIVITY_LOG);
  blockdelta_tracker_free(t);
  /* Nor does one loaded without a log. */
  CHECK_RC(blockdelta_tracker_load(path, DISK, 512, BLOCK, 0, 0, disk_id, NULL, 0, 0, &t, &reason),
           BLOCKDELTA_RESULT_OK);
  CHECK_RC(blockdelta_tracker_writer_new(t, &w), BLOCKDELTA_RESULT_TRACKER_NO_ACTIVITY_LOG);
  CHECK_RC(blockdelta_tracker_close(t), BLOCKDELTA_RESULT_OK);

  /* Bad settings and NULLs: nothing written to the outputs. */
  {
    blockdelta_activity_log_config bad = c;
    reason = 99;
    bad.region_size = 1000;
    CHECK_RC(load(path, &bad, &none, &reason), BLOCKDELTA_RESULT_TRACKER_BAD_ACTIVITY_LOG);
    {
      char msg[256];
      size_t len = 0;
      CHECK_RC(blockdelta_last_error(msg, sizeof msg, &len), BLOCKDELTA_RESULT_OK);
      CHECK(strstr(msg, "region size") != NULL && strstr(msg, "1000") != NULL);
    }
    bad.region_size = 4096; /* below 64 KiB */
    CHECK_RC(load(path, &bad, &none, &reason), BLOCKDELTA_RESULT_TRACKER_BAD_ACTIVITY_LOG);
    bad = c;
    bad.active_regions = 70000;
    CHECK_RC(load(path, &bad, &none, &reason), BLOCKDELTA_RESULT_TRACKER_BAD_ACTIVITY_LOG);
    bad = c;
    bad.writers = 5000;
    CHECK_RC(load(path, &bad, &none, &reason), BLOCKDELTA_RESULT_TRACKER_BAD_ACTIVITY_LOG);
    bad = c;
    bad.reserved[3] = 1;
    CHECK_RC(load(path, &bad, &none, &reason), BLOCKDELTA_RESULT_INVALID_ARGUMENT);
    CHECK_RC(load(path, NULL, &none, &reason), BLOCKDELTA_RESULT_NULL_PARAMETER);
    CHECK_RC(load(NULL, &c, &none, &reason), BLOCKDELTA_RESULT_NULL_PARAMETER);
    CHECK_RC(load(path, &c, NULL, &reason), BLOCKDELTA_RESULT_NULL_PARAMETER);
    CHECK_RC(load(path, &c, &none, NULL), BLOCKDELTA_RESULT_NULL_PARAMETER);
    CHECK(none == NULL && reason == 99);
  }
  /* All defaults (a zeroed struct) load. */
  {
    blockdelta_activity_log_config zero;
    memset(&zero, 0, sizeof zero);
    CHECK_RC(load(path, &zero, &t, &reason), BLOCKDELTA_RESULT_OK);
    CHECK(reason == BLOCKDELTA_TRACKER_LOAD_RESUMED);
    CHECK_RC(blockdelta_tracker_close(t), BLOCKDELTA_RESULT_OK);
  }

  CHECK_RC(load(path, &c, &t, &reason), BLOCKDELTA_RESULT_OK);
  CHECK(reason == BLOCKDELTA_TRACKER_LOAD_RESUMED);
  {
    blockdelta_checkpoint cp;
    CHECK_RC(blockdelta_tracker_take(t, &cp), BLOCKDELTA_RESULT_OK);
    CHECK_RC(blockdelta_tracker_commit(t, cp.generation, cp.sequence), BLOCKDELTA_RESULT_OK);
  }
  CHECK_RC(blockdelta_tracker_writer_new(NULL, &w), BLOCKDELTA_RESULT_NULL_PARAMETER);
  CHECK_RC(blockdelta_tracker_writer_new(t, NULL), BLOCKDELTA_RESULT_NULL_PARAMETER);
  CHECK_RC(blockdelta_tracker_writer_new(t, &w), BLOCKDELTA_RESULT_OK);
  CHECK_RC(blockdelta_tracker_writer_new(t, &w2), BLOCKDELTA_RESULT_OK);
  CHECK_RC(blockdelta_tracker_writer_new(t, &w3), BLOCKDELTA_RESULT_TRACKER_TOO_MANY_WRITERS);
  CHECK(w3 == NULL);
  blockdelta_tracker_writer_free(w2);
  CHECK_RC(blockdelta_tracker_writer_new(t, &w2), BLOCKDELTA_RESULT_OK);

  /* A cold region: told to wait, with a ticket and no token. */
  CHECK_RC(blockdelta_tracker_writer_begin(NULL, 0, BLOCK, &admitted, &token, &ticket),
           BLOCKDELTA_RESULT_NULL_PARAMETER);
  CHECK_RC(blockdelta_tracker_writer_begin(w, 0, BLOCK, NULL, &token, &ticket),
           BLOCKDELTA_RESULT_NULL_PARAMETER);
  CHECK_RC(blockdelta_tracker_writer_begin(w, 0, BLOCK, &admitted, NULL, &ticket),
           BLOCKDELTA_RESULT_NULL_PARAMETER);
  CHECK_RC(blockdelta_tracker_writer_begin(w, 0, BLOCK, &admitted, &token, NULL),
           BLOCKDELTA_RESULT_NULL_PARAMETER);
  CHECK(token == 7 && ticket == 7);
  CHECK_RC(blockdelta_tracker_writer_begin(w, 0, BLOCK, &admitted, &token, &ticket), BLOCKDELTA_RESULT_OK);
  CHECK(!admitted && token == 0 && ticket != 0);
  CHECK_RC(blockdelta_tracker_ticket_durable(t, ticket, &durable), BLOCKDELTA_RESULT_OK);
  CHECK(!durable);
  CHECK_RC(blockdelta_tracker_ticket_durable(t, ticket, NULL), BLOCKDELTA_RESULT_NULL_PARAMETER);
  /* Completing a write that was told to wait is refused. */
  CHECK_RC(blockdelta_tracker_writer_complete(w, token, 0, BLOCK), BLOCKDELTA_RESULT_INVALID_ARGUMENT);
  CHECK_RC(blockdelta_tracker_complete(t, 0, 0, BLOCK), BLOCKDELTA_RESULT_INVALID_ARGUMENT);
  CHECK_RC(blockdelta_tracker_wait(NULL, ticket), BLOCKDELTA_RESULT_NULL_PARAMETER);
  CHECK_RC(blockdelta_tracker_wait(t, ticket), BLOCKDELTA_RESULT_OK);
  CHECK_RC(blockdelta_tracker_ticket_durable(t, ticket, &durable), BLOCKDELTA_RESULT_OK);
  CHECK(durable);
  /* Hot now: admitted at once. */
  CHECK_RC(blockdelta_tracker_writer_begin(w, 0, BLOCK, &admitted, &token, &ticket), BLOCKDELTA_RESULT_OK);
  CHECK(admitted && token != 0 && ticket == 0);
  CHECK_RC(blockdelta_tracker_writer_complete(w, token, 0, BLOCK), BLOCKDELTA_RESULT_OK);
  CHECK_RC(blockdelta_tracker_writer_begin(w, 2 * BLOCK, BLOCK, &admitted, &token, &ticket),
           BLOCKDELTA_RESULT_OK);
  CHECK(admitted);
  CHECK_RC(blockdelta_tracker_writer_complete_discard(w, token, 2 * BLOCK, BLOCK), BLOCKDELTA_RESULT_OK);
  /* Past the disk end: refused, nothing admitted. */
  CHECK_RC(blockdelta_tracker_writer_begin(w, DISK - BLOCK, 2 * BLOCK, &admitted, &token, &ticket),
           BLOCKDELTA_RESULT_TRACKER_OUT_OF_RANGE);
  /* The polling style, and a completion from "another thread" (the tracker-level call). */
  CHECK_RC(blockdelta_tracker_writer_begin(w2, 5 * REGION, BLOCK, &admitted, &token, &ticket),
           BLOCKDELTA_RESULT_OK);
  CHECK(!admitted);
  CHECK_RC(blockdelta_tracker_flush(NULL), BLOCKDELTA_RESULT_NULL_PARAMETER);
  CHECK_RC(blockdelta_tracker_flush(t), BLOCKDELTA_RESULT_OK);
  CHECK_RC(blockdelta_tracker_ticket_durable(t, ticket, &durable), BLOCKDELTA_RESULT_OK);
  CHECK(durable);
  CHECK_RC(blockdelta_tracker_writer_begin(w2, 5 * REGION, BLOCK, &admitted, &token, &ticket),
           BLOCKDELTA_RESULT_OK);
  CHECK(admitted);
  CHECK_RC(blockdelta_tracker_complete(t, token, 5 * REGION, BLOCK), BLOCKDELTA_RESULT_OK);
  CHECK_RC(blockdelta_tracker_complete(NULL, token, 5 * REGION, BLOCK), BLOCKDELTA_RESULT_NULL_PARAMETER);
  CHECK_RC(blockdelta_tracker_writer_complete(NULL, token, 0, BLOCK), BLOCKDELTA_RESULT_NULL_PARAMETER);
  CHECK_RC(blockdelta_tracker_activity_stats(t, NULL), BLOCKDELTA_RESULT_NULL_PARAMETER);
  memset(&stats, 0xff, sizeof stats);
  CHECK_RC(blockdelta_tracker_activity_stats(t, &stats), BLOCKDELTA_RESULT_OK);
  CHECK(stats.group_commits == 2 && stats.activations == 2 && stats.active == 2);
  CHECK(stats.evictions == 0 && stats.membarrier <= 1 && stats.reserved0 == 0 && stats.reserved[0] == 0);

  /* Close refuses while writers remain, and leaves the tracker as it was. */
  CHECK_RC(blockdelta_tracker_close(t), BLOCKDELTA_RESULT_TRACKER_WRITERS_REMAIN);
  {
    blockdelta_checkpoint cp;
    CHECK_RC(blockdelta_tracker_take(t, &cp), BLOCKDELTA_RESULT_OK);
    CHECK(cp.dirty_blocks == 3);
    CHECK_RC(blockdelta_tracker_commit(t, cp.generation, cp.sequence), BLOCKDELTA_RESULT_OK);
  }
  blockdelta_tracker_writer_free(w);
  blockdelta_tracker_writer_free(w2);
  blockdelta_tracker_writer_free(NULL);
  CHECK_RC(blockdelta_tracker_close(t), BLOCKDELTA_RESULT_OK);

  /* A crash in-process: the tracker freed without close, its writer freed after it (allowed),
   * then the load recovers the write. */
  CHECK_RC(load(path, &c, &t, &reason), BLOCKDELTA_RESULT_OK);
  CHECK(reason == BLOCKDELTA_TRACKER_LOAD_RESUMED);
  CHECK_RC(blockdelta_tracker_writer_new(t, &w), BLOCKDELTA_RESULT_OK);
  for (;;) {
    CHECK_RC(blockdelta_tracker_writer_begin(w, 9 * REGION + BLOCK, BLOCK, &admitted, &token, &ticket),
             BLOCKDELTA_RESULT_OK);
    if (admitted) break;
    CHECK_RC(blockdelta_tracker_wait(t, ticket), BLOCKDELTA_RESULT_OK);
  }
  CHECK_RC(blockdelta_tracker_writer_complete(w, token, 9 * REGION + BLOCK, BLOCK), BLOCKDELTA_RESULT_OK);
  blockdelta_tracker_free(t);
  blockdelta_tracker_writer_free(w);
  CHECK_RC(load(path, &c, &t, &reason), BLOCKDELTA_RESULT_OK);
  CHECK(reason == BLOCKDELTA_TRACKER_LOAD_RECOVERED);
  CHECK(strcmp(blockdelta_tracker_load_reason_name(reason), "BLOCKDELTA_TRACKER_LOAD_RECOVERED") == 0);
  {
    blockdelta_checkpoint cp;
    blockdelta_extent_cursor cursor;
    blockdelta_extent e[4];
    size_t n = 0;
    CHECK_RC(blockdelta_tracker_take(t, &cp), BLOCKDELTA_RESULT_OK);
    /* The written block, and at most the region that was active. */
    CHECK(cp.dirty_blocks >= 1 && cp.dirty_bytes <= REGION);
    CHECK_RC(blockdelta_extent_cursor_init(&cp, &cursor), BLOCKDELTA_RESULT_OK);
    CHECK_RC(blockdelta_tracker_extents(t, &cursor, e, 4, &n), BLOCKDELTA_RESULT_OK);
    CHECK(n == 1 && e[0].offset <= 9 * REGION + BLOCK && e[0].offset + e[0].len >= 9 * REGION + 2 * BLOCK);
    CHECK_RC(blockdelta_tracker_commit(t, cp.generation, cp.sequence), BLOCKDELTA_RESULT_OK);
  }
  CHECK_RC(blockdelta_tracker_close(t), BLOCKDELTA_RESULT_OK);

  CHECK(strcmp(blockdelta_result_name(BLOCKDELTA_RESULT_TRACKER_NO_ACTIVITY_LOG),
               "BLOCKDELTA_RESULT_TRACKER_NO_ACTIVITY_LOG") == 0);
  CHECK(strcmp(blockdelta_result_name(BLOCKDELTA_RESULT_TRACKER_WRITERS_REMAIN),
               "BLOCKDELTA_RESULT_TRACKER_WRITERS_REMAIN") == 0);

  remove_state(path);
}

int main(void) {
  char dir[64];
  snprintf(dir, sizeof dir, "/tmp/blockdelta-activity-XXXXXX");
  if (mkdtemp(dir) == NULL) return 1;
  int kills = 100;
  const char *env = getenv("BLOCKDELTA_C_KILLS");
  if (env != NULL && atoi(env) > 0) kills = atoi(env);
  rng_state ^= (uint64_t)time(NULL) * 0x100000001b3ull ^ (uint64_t)getpid();
  printf("tracker_activity.c: seed %#llx\n", (unsigned long long)rng_state);

  api(dir);
  crash_loop(dir, kills);

  if (rmdir(dir) != 0) {
    fprintf(stderr, "tracker_activity.c: %s not empty: %s\n", dir, strerror(errno));
    failures++;
  }
  if (failures) {
    fprintf(stderr, "tracker_activity.c: %d check(s) failed\n", failures);
    return 1;
  }
  printf("tracker_activity.c: all checks passed\n");
  return 0;
}
