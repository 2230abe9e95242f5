/* The tracker's C ABI as a block driver uses it: create, mark from several threads, take,
 * read extents through a cursor, commit/abort, resize, statistics, and every error path. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blockdelta.h"
#include "check.h"

#define KIB 1024ull
#define MIB (1024ull * KIB)
#define DISK (256ull * MIB)
#define BLOCK 4096u
#define THREADS 4
#define WRITES_PER_THREAD 20000

static blockdelta_tracker *shared;

static void *writer(void *arg) {
  unsigned long long x = (unsigned long long)(size_t)arg * 2654435761ull + 1;
  for (int i = 0; i < WRITES_PER_THREAD; i++) {
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    uint64_t off = (x % (DISK / BLOCK - 16)) * BLOCK;
    if (blockdelta_tracker_mark_write(shared, off, 8192) != BLOCKDELTA_RESULT_OK) return (void *)1;
  }
  return NULL;
}

/* Reads all extents of a taken checkpoint, a few at a time; returns the bytes covered. */
static uint64_t read_all(const blockdelta_tracker *t, const blockdelta_checkpoint *cp, uint64_t *extents) {
  blockdelta_extent_cursor cursor;
  blockdelta_extent batch[5];
  size_t n = 0;
  uint64_t bytes = 0, prev_end = 0;
  *extents = 0;
  CHECK_RC(blockdelta_extent_cursor_init(cp, &cursor), BLOCKDELTA_RESULT_OK);
  for (;;) {
    CHECK_RC(blockdelta_tracker_extents(t, &cursor, batch, 5, &n), BLOCKDELTA_RESULT_OK);
    if (n == 0) break;
    for (size_t i = 0; i < n; i++) {
      CHECK(batch[i].offset >= prev_end); /* ascending, never overlapping */
      CHECK(batch[i].len > 0);
      prev_end = batch[i].offset + batch[i].len;
      bytes += batch[i].len;
      (*extents)++;
    }
  }
  CHECK(prev_end <= cp->disk_size);
  return bytes;
}

int main(void) {
  char msg[256];
  size_t len = 0;

  /* Version: the header's macros and the library agree. */
  char want[32];
  snprintf(want, sizeof want, "%d.%d.%d", BLOCKDELTA_VERSION_MAJOR, BLOCKDELTA_VERSION_MINOR,
           BLOCKDELTA_VERSION_PATCH);
  CHECK(strcmp(blockdelta_version(), want) == 0);

  /* Result names are stable strings; unknown numbers are named as such. */
  CHECK(strcmp(blockdelta_result_name(BLOCKDELTA_RESULT_OK), "BLOCKDELTA_RESULT_OK") == 0);
  CHECK(strcmp(blockdelta_result_name(BLOCKDELTA_RESULT_TRACKER_OUT_OF_RANGE),
               "BLOCKDELTA_RESULT_TRACKER_OUT_OF_RANGE") == 0);
  CHECK(strcmp(blockdelta_result_name(999999), "BLOCKDELTA_RESULT_UNKNOWN") == 0);

  /* Bad geometry: an error code, no handle, and a message that names the value. */
  blockdelta_tracker *t = NULL;
  CHECK_RC(blockdelta_tracker_new(DISK, 512, 3000, 0, 0, 0, &t), BLOCKDELTA_RESULT_TRACKER_INVALID_GEOMETRY);
  CHECK(t == NULL);
  CHECK_RC(blockdelta_last_error(msg, sizeof msg, &len), BLOCKDELTA_RESULT_OK);
  CHECK(strstr(msg, "power of two") != NULL && strstr(msg, "3000") != NULL);
  CHECK(len == strlen(msg));
  CHECK_RC(blockdelta_tracker_new(DISK, 512, BLOCK, 0, 0, 0x80, &t), BLOCKDELTA_RESULT_INVALID_ARGUMENT);
  CHECK_RC(blockdelta_tracker_new(DISK, 512, BLOCK, 0, 0, 0, NULL), BLOCKDELTA_RESULT_NULL_PARAMETER);
  CHECK_RC(blockdelta_tracker_new(DISK, 512, 0, 1024, 0, 0, &t), BLOCKDELTA_RESULT_TRACKER_BUDGET_TOO_SMALL);
  /* Resident or lazy bitmaps, not both (the default: resident up to the limit). */
  CHECK_RC(blockdelta_tracker_new(DISK, 512, BLOCK, 0, 0,
                                  BLOCKDELTA_TRACKER_RESIDENT | BLOCKDELTA_TRACKER_LAZY, &t),
           BLOCKDELTA_RESULT_INVALID_ARGUMENT);
  CHECK(t == NULL);
  CHECK(BLOCKDELTA_TRACKER_RESIDENT_LIMIT == 64ull * 1024 * 1024);
  CHECK_RC(blockdelta_tracker_new(DISK, 512, BLOCK, 0, 0,
                                  BLOCKDELTA_TRACKER_START_CLEAN | BLOCKDELTA_TRACKER_LAZY, &t),
           BLOCKDELTA_RESULT_OK);
  blockdelta_tracker_free(t);
  t = NULL;
  CHECK_RC(blockdelta_tracker_new(DISK, 512, BLOCK, 0, 0, BLOCKDELTA_TRACKER_RESIDENT, &t),
           BLOCKDELTA_RESULT_OK);
  blockdelta_tracker_free(t);
  t = NULL;

  /* NULL handles are rejected, NULL frees are no-ops. */
  CHECK_RC(blockdelta_tracker_mark_write(NULL, 0, 1), BLOCKDELTA_RESULT_NULL_PARAMETER);
  blockdelta_tracker_free(NULL);

  /* A fresh tracker starts dirty: its first checkpoint is the whole disk. */
  CHECK_RC(blockdelta_tracker_new(DISK, 512, BLOCK, 0, 2 * DISK, 0, &t), BLOCKDELTA_RESULT_OK);
  blockdelta_checkpoint cp;
  uint64_t count = 0;
  CHECK_RC(blockdelta_tracker_take(t, &cp), BLOCKDELTA_RESULT_OK);
  CHECK(cp.sequence == 1 && cp.dirty_bytes == DISK && cp.extent_count == 1);
  CHECK(cp.from_sequence == 0);
  CHECK(read_all(t, &cp, &count) == DISK && count == 1);
  /* Pending reports the taken checkpoint. */
  blockdelta_checkpoint pend;
  bool has = false;
  CHECK_RC(blockdelta_tracker_pending(t, &pend, &has), BLOCKDELTA_RESULT_OK);
  CHECK(has && pend.sequence == cp.sequence && memcmp(pend.generation, cp.generation, 16) == 0);
  CHECK_RC(blockdelta_tracker_pending(t, NULL, &has), BLOCKDELTA_RESULT_NULL_PARAMETER);
  /* A zero-sized batch while extents remain is an error, never the end signal. */
  {
    blockdelta_extent_cursor c0;
    size_t n0 = 99;
    CHECK_RC(blockdelta_extent_cursor_init(&cp, &c0), BLOCKDELTA_RESULT_OK);
    CHECK_RC(blockdelta_tracker_extents(t, &c0, NULL, 0, &n0), BLOCKDELTA_RESULT_BUFFER_TOO_SMALL);
    CHECK(n0 == 99 && c0.next_block == 0);
  }
  /* Commit needs the generation and sequence the replica applied. */
  uint8_t other_gen[16];
  memcpy(other_gen, cp.generation, 16);
  other_gen[0] ^= 1;
  CHECK_RC(blockdelta_tracker_commit(t, other_gen, cp.sequence), BLOCKDELTA_RESULT_TRACKER_WRONG_CHECKPOINT);
  CHECK_RC(blockdelta_tracker_commit(t, NULL, cp.sequence), BLOCKDELTA_RESULT_NULL_PARAMETER);
  CHECK_RC(blockdelta_tracker_commit(t, cp.generation, cp.sequence), BLOCKDELTA_RESULT_OK);
  CHECK_RC(blockdelta_tracker_pending(t, &pend, &has), BLOCKDELTA_RESULT_OK);
  CHECK(!has);

  /* Several threads mark at once. */
  shared = t;
  pthread_t th[THREADS];
  for (size_t i = 0; i < THREADS; i++) CHECK(pthread_create(&th[i], NULL, writer, (void *)(i + 1)) == 0);
  for (size_t i = 0; i < THREADS; i++) {
    void *r = NULL;
    pthread_join(th[i], &r);
    CHECK(r == NULL);
  }
  uint64_t writes = 0, bytes = 0;
  CHECK_RC(blockdelta_tracker_stat(t, BLOCKDELTA_TRACKER_STAT_ID_WRITES, &writes), BLOCKDELTA_RESULT_OK);
  CHECK_RC(blockdelta_tracker_stat(t, BLOCKDELTA_TRACKER_STAT_ID_BYTES_WRITTEN, &bytes), BLOCKDELTA_RESULT_OK);
  CHECK(writes == THREADS * WRITES_PER_THREAD && bytes == writes * 8192);
  CHECK_RC(blockdelta_tracker_stat(t, 9999, &bytes), BLOCKDELTA_RESULT_INVALID_ARGUMENT);

  /* Out of range: an error naming the values, nothing marked. */
  CHECK_RC(blockdelta_tracker_mark_write(t, DISK - 512, 1024), BLOCKDELTA_RESULT_TRACKER_OUT_OF_RANGE);
  CHECK_RC(blockdelta_tracker_last_error(t, msg, sizeof msg, &len), BLOCKDELTA_RESULT_OK);
  CHECK(strstr(msg, "268434944+1024") != NULL);
  /* A short buffer truncates but reports the full length. */
  char tiny[8];
  CHECK_RC(blockdelta_tracker_last_error(t, tiny, sizeof tiny, &len), BLOCKDELTA_RESULT_OK);
  CHECK(strlen(tiny) == 7 && len > 7);
  CHECK_RC(blockdelta_tracker_last_error(t, NULL, 0, &len), BLOCKDELTA_RESULT_OK);
  CHECK_RC(blockdelta_tracker_mark_write(t, 0, 0), BLOCKDELTA_RESULT_OK); /* len 0: no-op */

  /* Take; writes during the taken checkpoint go to the next one; abort merges back. */
  CHECK_RC(blockdelta_tracker_take(t, &cp), BLOCKDELTA_RESULT_OK);
  CHECK(cp.sequence == 2 && cp.from_sequence == 1 && cp.block_size == BLOCK && cp.dirty_blocks > 0);
  blockdelta_checkpoint again;
  CHECK_RC(blockdelta_tracker_take(t, &again), BLOCKDELTA_RESULT_TRACKER_TAKE_IN_PROGRESS);
  uint64_t taken_bytes = read_all(t, &cp, &count);
  CHECK(taken_bytes == cp.dirty_bytes && count == cp.extent_count);
  CHECK_RC(blockdelta_tracker_commit(t, cp.generation, cp.sequence + 1), BLOCKDELTA_RESULT_TRACKER_WRONG_CHECKPOINT);
  /* Resuming a cursor at a given block: plain data, any next_block is valid. */
  {
    blockdelta_extent_cursor c1;
    blockdelta_extent e1[1];
    size_t n1 = 0;
    CHECK_RC(blockdelta_extent_cursor_init(&cp, &c1), BLOCKDELTA_RESULT_OK);
    CHECK_RC(blockdelta_tracker_extents(t, &c1, e1, 1, &n1), BLOCKDELTA_RESULT_OK);
    CHECK(n1 == 1);
    blockdelta_extent_cursor resume = c1; /* a copy resumes where the original is */
    uint64_t at = e1[0].offset / BLOCK + 1; /* one block into the first extent, or past it */
    resume.next_block = at;
    CHECK_RC(blockdelta_tracker_extents(t, &resume, e1, 1, &n1), BLOCKDELTA_RESULT_OK);
    CHECK(n1 == 1 && e1[0].offset >= at * BLOCK && resume.next_block > at);
    resume.next_block = UINT64_MAX; /* past the end: the end */
    CHECK_RC(blockdelta_tracker_extents(t, &resume, e1, 1, &n1), BLOCKDELTA_RESULT_OK);
    CHECK(n1 == 0);
    resume.sequence = cp.sequence + 5; /* another checkpoint's cursor */
    CHECK_RC(blockdelta_tracker_extents(t, &resume, e1, 1, &n1), BLOCKDELTA_RESULT_TRACKER_WRONG_CHECKPOINT);
  }
  CHECK_RC(blockdelta_tracker_abort(t, cp.sequence), BLOCKDELTA_RESULT_OK);
  CHECK_RC(blockdelta_tracker_take(t, &again), BLOCKDELTA_RESULT_OK);
  /* An aborted number is never issued again: the next take has a new one, from the same base. */
  CHECK(again.sequence == cp.sequence + 1 && again.from_sequence == cp.from_sequence);
  CHECK(again.dirty_bytes == cp.dirty_bytes);
  CHECK_RC(blockdelta_tracker_commit(t, cp.generation, cp.sequence), BLOCKDELTA_RESULT_TRACKER_WRONG_CHECKPOINT);
  CHECK_RC(blockdelta_tracker_commit(t, again.generation, again.sequence), BLOCKDELTA_RESULT_OK);
  CHECK_RC(blockdelta_tracker_commit(t, again.generation, again.sequence), BLOCKDELTA_RESULT_TRACKER_NO_CHECKPOINT);

  /* Resize: growing marks the new region dirty; beyond the capacity is refused. */
  CHECK_RC(blockdelta_tracker_resize(t, DISK + MIB), BLOCKDELTA_RESULT_OK);
  CHECK_RC(blockdelta_tracker_resize(t, 4 * DISK), BLOCKDELTA_RESULT_TRACKER_CAPACITY_EXCEEDED);
  blockdelta_geometry g;
  CHECK_RC(blockdelta_tracker_geometry(t, &g), BLOCKDELTA_RESULT_OK);
  CHECK(g.disk_size == DISK + MIB && g.capacity == 2 * DISK && g.block_size == BLOCK && g.sector_size == 512);
  CHECK_RC(blockdelta_tracker_take(t, &cp), BLOCKDELTA_RESULT_OK);
  CHECK(cp.dirty_bytes == MIB && cp.extent_count == 1);
  CHECK_RC(blockdelta_tracker_commit(t, cp.generation, cp.sequence), BLOCKDELTA_RESULT_OK);

  /* Losing continuity: a new generation, sequence 1, everything dirty. */
  uint8_t gen_before[16], gen_after[16];
  CHECK_RC(blockdelta_tracker_generation(t, &gen_before), BLOCKDELTA_RESULT_OK);
  CHECK_RC(blockdelta_tracker_lose_continuity(t), BLOCKDELTA_RESULT_OK);
  CHECK_RC(blockdelta_tracker_generation(t, &gen_after), BLOCKDELTA_RESULT_OK);
  CHECK(memcmp(gen_before, gen_after, 16) != 0);
  CHECK_RC(blockdelta_tracker_take(t, &cp), BLOCKDELTA_RESULT_OK);
  CHECK(cp.sequence == 1 && cp.from_sequence == 0 && cp.dirty_bytes == DISK + MIB && memcmp(cp.generation, gen_after, 16) == 0);
  CHECK_RC(blockdelta_tracker_commit(t, cp.generation, cp.sequence), BLOCKDELTA_RESULT_OK);

  /* Whole-block discards come back as DISCARD extents; a write stays a write. */
  {
    CHECK(sizeof(blockdelta_extent) == 24);
    CHECK_RC(blockdelta_tracker_mark_discard(t, 0, 2 * BLOCK), BLOCKDELTA_RESULT_OK);
    CHECK_RC(blockdelta_tracker_mark_write(t, 2 * BLOCK, 1), BLOCKDELTA_RESULT_OK);
    CHECK_RC(blockdelta_tracker_take(t, &cp), BLOCKDELTA_RESULT_OK);
    blockdelta_extent_cursor cd;
    blockdelta_extent ed[4];
    size_t nd = 0;
    CHECK_RC(blockdelta_extent_cursor_init(&cp, &cd), BLOCKDELTA_RESULT_OK);
    CHECK_RC(blockdelta_tracker_extents(t, &cd, ed, 4, &nd), BLOCKDELTA_RESULT_OK);
    CHECK(nd == 2 && cp.extent_count == 2);
    CHECK(ed[0].offset == 0 && ed[0].len == 2 * BLOCK && ed[0].kind == BLOCKDELTA_EXTENT_KIND_DISCARD);
    CHECK(ed[1].offset == 2 * BLOCK && ed[1].len == BLOCK && ed[1].kind == BLOCKDELTA_EXTENT_KIND_WRITE);
    CHECK(ed[0].reserved == 0 && ed[1].reserved == 0);
    CHECK_RC(blockdelta_tracker_commit(t, cp.generation, cp.sequence), BLOCKDELTA_RESULT_OK);
  }

  /* Adopting a replica store's new lineage after it rolled back: the next take has the store's
   * generation, from_sequence == the store's sequence, and carries the store's extents (as
   * writes) plus everything not committed, including a taken checkpoint's blocks. */
  {
    uint8_t lineage[16];
    memset(lineage, 0xab, sizeof lineage);
    CHECK_RC(blockdelta_tracker_mark_write(t, 50 * BLOCK, 1), BLOCKDELTA_RESULT_OK);
    blockdelta_checkpoint old;
    CHECK_RC(blockdelta_tracker_take(t, &old), BLOCKDELTA_RESULT_OK); /* pending: block 50 */
    CHECK_RC(blockdelta_tracker_mark_discard(t, 60 * BLOCK, BLOCK), BLOCKDELTA_RESULT_OK); /* live */
    /* Unsorted, overlapping, unaligned; a DISCARD kind from the store is marked as a write. */
    blockdelta_extent store[3] = {
        {.offset = 10 * BLOCK, .len = 2 * BLOCK, .kind = BLOCKDELTA_EXTENT_KIND_WRITE},
        {.offset = 11 * BLOCK, .len = BLOCK + 1, .kind = BLOCKDELTA_EXTENT_KIND_DISCARD},
        {.offset = 0, .len = BLOCK, .kind = BLOCKDELTA_EXTENT_KIND_WRITE},
    };
    /* Refused calls change nothing. */
    blockdelta_extent bad = {.offset = g.disk_size - BLOCK, .len = 2 * BLOCK, .kind = BLOCKDELTA_EXTENT_KIND_WRITE};
    CHECK_RC(blockdelta_tracker_adopt_lineage(t, lineage, 40, &bad, 1), BLOCKDELTA_RESULT_TRACKER_OUT_OF_RANGE);
    bad.offset = 0;
    bad.len = BLOCK;
    bad.kind = 7;
    CHECK_RC(blockdelta_tracker_adopt_lineage(t, lineage, 40, &bad, 1), BLOCKDELTA_RESULT_INVALID_ARGUMENT);
    CHECK_RC(blockdelta_tracker_last_error(t, msg, sizeof msg, &len), BLOCKDELTA_RESULT_OK);
    CHECK(strstr(msg, "kind 7") != NULL);
    CHECK_RC(blockdelta_tracker_adopt_lineage(t, lineage, 40, NULL, 1), BLOCKDELTA_RESULT_NULL_PARAMETER);
    CHECK_RC(blockdelta_tracker_adopt_lineage(t, NULL, 40, store, 3), BLOCKDELTA_RESULT_NULL_PARAMETER);
    CHECK_RC(blockdelta_tracker_adopt_lineage(NULL, lineage, 40, store, 3), BLOCKDELTA_RESULT_NULL_PARAMETER);
    /* The current generation below a number already issued would issue it twice. */
    CHECK_RC(blockdelta_tracker_adopt_lineage(t, old.generation, old.sequence - 1, NULL, 0),
             BLOCKDELTA_RESULT_TRACKER_LINEAGE_REJECTED);
    CHECK_RC(blockdelta_tracker_last_error(t, msg, sizeof msg, &len), BLOCKDELTA_RESULT_OK);
    CHECK(strstr(msg, "issued twice") != NULL);
    CHECK_RC(blockdelta_tracker_adopt_lineage(t, lineage, UINT64_MAX, NULL, 0), BLOCKDELTA_RESULT_TRACKER_LINEAGE_REJECTED);
    CHECK_RC(blockdelta_tracker_pending(t, &pend, &has), BLOCKDELTA_RESULT_OK);
    CHECK(has && pend.sequence == old.sequence && memcmp(pend.generation, old.generation, 16) == 0);

    CHECK_RC(blockdelta_tracker_adopt_lineage(t, lineage, 40, store, 3), BLOCKDELTA_RESULT_OK);
    /* Again before a take: idempotent; (NULL, 0) is no extents. */
    CHECK_RC(blockdelta_tracker_adopt_lineage(t, lineage, 40, NULL, 0), BLOCKDELTA_RESULT_OK);
    CHECK_RC(blockdelta_tracker_pending(t, &pend, &has), BLOCKDELTA_RESULT_OK);
    CHECK(!has);
    uint8_t now[16];
    CHECK_RC(blockdelta_tracker_generation(t, &now), BLOCKDELTA_RESULT_OK);
    CHECK(memcmp(now, lineage, 16) == 0);
    CHECK_RC(blockdelta_tracker_commit(t, old.generation, old.sequence), BLOCKDELTA_RESULT_TRACKER_NO_CHECKPOINT);

    CHECK_RC(blockdelta_tracker_take(t, &cp), BLOCKDELTA_RESULT_OK);
    CHECK(memcmp(cp.generation, lineage, 16) == 0 && cp.from_sequence == 40 && cp.sequence == 41);
    blockdelta_extent_cursor ca;
    blockdelta_extent ea[8];
    size_t na = 0;
    CHECK_RC(blockdelta_extent_cursor_init(&cp, &ca), BLOCKDELTA_RESULT_OK);
    CHECK_RC(blockdelta_tracker_extents(t, &ca, ea, 8, &na), BLOCKDELTA_RESULT_OK);
    CHECK(na == 4 && cp.extent_count == 4);
    if (na == 4) {
      CHECK(ea[0].offset == 0 && ea[0].len == BLOCK && ea[0].kind == BLOCKDELTA_EXTENT_KIND_WRITE);
      /* 10..11 and 11 + one byte: blocks 10, 11, 12. */
      CHECK(ea[1].offset == 10 * BLOCK && ea[1].len == 3 * BLOCK && ea[1].kind == BLOCKDELTA_EXTENT_KIND_WRITE);
      CHECK(ea[2].offset == 50 * BLOCK && ea[2].len == BLOCK && ea[2].kind == BLOCKDELTA_EXTENT_KIND_WRITE);
      CHECK(ea[3].offset == 60 * BLOCK && ea[3].len == BLOCK && ea[3].kind == BLOCKDELTA_EXTENT_KIND_DISCARD);
    }
    CHECK_RC(blockdelta_tracker_commit(t, old.generation, cp.sequence), BLOCKDELTA_RESULT_TRACKER_WRONG_CHECKPOINT);
    CHECK_RC(blockdelta_tracker_commit(t, cp.generation, cp.sequence), BLOCKDELTA_RESULT_OK);
    /* Numbers go on from there in the adopted lineage. */
    CHECK_RC(blockdelta_tracker_take(t, &cp), BLOCKDELTA_RESULT_OK);
    CHECK(memcmp(cp.generation, lineage, 16) == 0 && cp.from_sequence == 41 && cp.sequence == 42 && cp.dirty_blocks == 0);
    CHECK_RC(blockdelta_tracker_commit(t, cp.generation, cp.sequence), BLOCKDELTA_RESULT_OK);
  }

  /* Memory: reported, and predictable before creation. */
  uint64_t mem = 0;
  CHECK_RC(blockdelta_tracker_memory_usage(t, &mem), BLOCKDELTA_RESULT_OK);
  CHECK(mem == blockdelta_tracker_memory_for(2 * DISK, BLOCK));
  CHECK_RC(blockdelta_tracker_memory_usage(t, NULL), BLOCKDELTA_RESULT_NULL_PARAMETER);
  /* memory_for is total: huge capacities saturate instead of panicking; block size 0 is 0. */
  CHECK(blockdelta_tracker_memory_for(UINT64_MAX, 512) >= 2 * (UINT64_MAX / 512 / 8));
  CHECK(blockdelta_tracker_memory_for(UINT64_MAX, 1) >= 2 * (UINT64_MAX / 8));
  CHECK(blockdelta_tracker_memory_for(UINT64_MAX, 0) == 0);
  CHECK(blockdelta_tracker_memory_for(0, 512) > 0);
  for (unsigned sh = 40; sh < 64; sh++) {
    uint64_t cap = 1ull << sh, m = blockdelta_tracker_memory_for(cap, 512);
    CHECK(m > 0 && m >= blockdelta_tracker_memory_for(cap >> 1, 512));
  }

  blockdelta_tracker_free(t);
  if (failures) {
    fprintf(stderr, "tracker.c: %d check(s) failed\n", failures);
    return 1;
  }
  printf("tracker.c: all checks passed\n");
  return 0;
}
