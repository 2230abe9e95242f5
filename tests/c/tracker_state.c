/* Restart without resync through the C ABI: load (missing file: a full resync), mark, take,
 * commit, close; load again continues the generation with exactly the changed blocks; a run
 * freed without close, a foreign disk id and a stale replica point reset; the error paths. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blockdelta.h"
#include "check.h"

#define DISK (1024ull * 1024ull)
#define BLOCK 4096u

static const uint8_t disk_id[16] = "c-state-test-id";

static blockdelta_result load(const char *path, const uint8_t *replica_gen, uint64_t replica_seq,
                              blockdelta_tracker **t, uint32_t *reason) {
  return blockdelta_tracker_load(path, DISK, 512, BLOCK, 0, 0, disk_id, replica_gen, replica_seq, 0,
                                 t, reason);
}

int main(void) {
  char dir[64], path[96], tmp_path[112];
  snprintf(dir, sizeof dir, "/tmp/blockdelta-tracker-state-XXXXXX");
  if (mkdtemp(dir) == NULL) return 1;
  snprintf(path, sizeof path, "%s/disk0.tracker", dir);
  snprintf(tmp_path, sizeof tmp_path, "%s.tmp", path);

  blockdelta_tracker *t = NULL;
  uint32_t reason = 99;
  blockdelta_checkpoint cp;
  uint8_t gen[16];

  /* First start: no file, every block dirty. */
  CHECK_RC(load(path, NULL, 0, &t, &reason), BLOCKDELTA_RESULT_OK);
  CHECK(reason == BLOCKDELTA_TRACKER_LOAD_MISSING);
  CHECK(strcmp(blockdelta_tracker_load_reason_name(reason), "BLOCKDELTA_TRACKER_LOAD_MISSING") == 0);
  CHECK_RC(blockdelta_tracker_take(t, &cp), BLOCKDELTA_RESULT_OK);
  CHECK(cp.sequence == 1 && cp.dirty_bytes == DISK);
  memcpy(gen, cp.generation, 16);
  CHECK_RC(blockdelta_tracker_commit(t, cp.generation, cp.sequence), BLOCKDELTA_RESULT_OK);
  CHECK_RC(blockdelta_tracker_mark_write(t, 3 * BLOCK, 10), BLOCKDELTA_RESULT_OK);
  CHECK_RC(blockdelta_tracker_mark_discard(t, 8 * BLOCK, 4 * BLOCK), BLOCKDELTA_RESULT_OK);
  CHECK_RC(blockdelta_tracker_close(t), BLOCKDELTA_RESULT_OK);

  /* A clean restart: same generation, numbers go on, exactly the changed blocks. */
  CHECK_RC(load(path, gen, 1, &t, &reason), BLOCKDELTA_RESULT_OK);
  CHECK(reason == BLOCKDELTA_TRACKER_LOAD_RESUMED);
  CHECK_RC(blockdelta_tracker_take(t, &cp), BLOCKDELTA_RESULT_OK);
  CHECK(memcmp(cp.generation, gen, 16) == 0 && cp.sequence == 2 && cp.from_sequence == 1);
  CHECK(cp.dirty_blocks == 5 && cp.extent_count == 2);
  {
    blockdelta_extent_cursor cursor;
    blockdelta_extent e[4];
    size_t n = 0;
    CHECK_RC(blockdelta_extent_cursor_init(&cp, &cursor), BLOCKDELTA_RESULT_OK);
    CHECK_RC(blockdelta_tracker_extents(t, &cursor, e, 4, &n), BLOCKDELTA_RESULT_OK);
    CHECK(n == 2);
    CHECK(e[0].offset == 3 * BLOCK && e[0].len == BLOCK && e[0].kind == BLOCKDELTA_EXTENT_KIND_WRITE);
    CHECK(e[1].offset == 8 * BLOCK && e[1].len == 4 * BLOCK && e[1].kind == BLOCKDELTA_EXTENT_KIND_DISCARD);
  }
  /* Left pending at close: merged back, its number spent. */
  CHECK_RC(blockdelta_tracker_close(t), BLOCKDELTA_RESULT_OK);
  CHECK_RC(load(path, gen, 2, &t, &reason), BLOCKDELTA_RESULT_OK);
  CHECK(reason == BLOCKDELTA_TRACKER_LOAD_RESUMED);
  CHECK_RC(blockdelta_tracker_take(t, &cp), BLOCKDELTA_RESULT_OK);
  CHECK(memcmp(cp.generation, gen, 16) == 0 && cp.sequence == 3 && cp.from_sequence == 1);
  CHECK(cp.dirty_blocks == 5);

  /* One tracker per state file at a time. */
  {
    blockdelta_tracker *second = NULL;
    reason = 99;
    CHECK_RC(load(path, NULL, 0, &second, &reason), BLOCKDELTA_RESULT_TRACKER_STATE_LOCKED);
    CHECK(second == NULL && reason == 99);
  }

  /* A crash (freed without close): never trusted. */
  blockdelta_tracker_free(t);
  CHECK_RC(load(path, NULL, 0, &t, &reason), BLOCKDELTA_RESULT_OK);
  CHECK(reason == BLOCKDELTA_TRACKER_LOAD_UNCLEAN);
  CHECK_RC(blockdelta_tracker_take(t, &cp), BLOCKDELTA_RESULT_OK);
  CHECK(memcmp(cp.generation, gen, 16) != 0 && cp.sequence == 1 && cp.dirty_bytes == DISK);
  memcpy(gen, cp.generation, 16);
  CHECK_RC(blockdelta_tracker_commit(t, cp.generation, cp.sequence), BLOCKDELTA_RESULT_OK);
  CHECK_RC(blockdelta_tracker_close(t), BLOCKDELTA_RESULT_OK);

  /* A replica ahead of the state (a stale file): reset. */
  CHECK_RC(load(path, gen, 7, &t, &reason), BLOCKDELTA_RESULT_OK);
  CHECK(reason == BLOCKDELTA_TRACKER_LOAD_REPLICA_AHEAD);
  CHECK_RC(blockdelta_tracker_close(t), BLOCKDELTA_RESULT_OK);

  /* Another disk: reset. */
  {
    static const uint8_t other[16] = "another-disk-id";
    CHECK_RC(blockdelta_tracker_load(path, DISK, 512, BLOCK, 0, 0, other, NULL, 0, 0, &t, &reason),
             BLOCKDELTA_RESULT_OK);
    CHECK(reason == BLOCKDELTA_TRACKER_LOAD_FOREIGN_DISK);
    CHECK_RC(blockdelta_tracker_close(t), BLOCKDELTA_RESULT_OK);
  }

  /* Error paths: nothing written to the outputs. */
  blockdelta_tracker *none = NULL;
  reason = 99;
  CHECK_RC(load(NULL, NULL, 0, &none, &reason), BLOCKDELTA_RESULT_NULL_PARAMETER);
  CHECK_RC(load("", NULL, 0, &none, &reason), BLOCKDELTA_RESULT_INVALID_ARGUMENT);
  CHECK_RC(load(path, NULL, 0, NULL, &reason), BLOCKDELTA_RESULT_NULL_PARAMETER);
  CHECK_RC(load(path, NULL, 0, &none, NULL), BLOCKDELTA_RESULT_NULL_PARAMETER);
  CHECK_RC(blockdelta_tracker_load(path, DISK, 512, BLOCK, 0, 0, NULL, NULL, 0, 0, &none, &reason),
           BLOCKDELTA_RESULT_NULL_PARAMETER);
  CHECK_RC(blockdelta_tracker_load(path, DISK, 512, BLOCK, 0, 0, disk_id, NULL, 0, 1, &none, &reason),
           BLOCKDELTA_RESULT_INVALID_ARGUMENT);
  CHECK_RC(blockdelta_tracker_load(path, DISK, 512, 3000, 0, 0, disk_id, NULL, 0, 0, &none, &reason),
           BLOCKDELTA_RESULT_TRACKER_INVALID_GEOMETRY);
  /* The in-use record cannot be written (its temporary file's name is taken by a directory). */
  CHECK(mkdir(tmp_path, 0700) == 0);
  CHECK_RC(load(path, NULL, 0, &none, &reason), BLOCKDELTA_RESULT_TRACKER_STATE_IO);
  CHECK(none == NULL && reason == 99);
  CHECK(rmdir(tmp_path) == 0);
  CHECK_RC(blockdelta_tracker_close(NULL), BLOCKDELTA_RESULT_OK);
  /* A tracker from blockdelta_tracker_new has no state file: close just frees it. */
  CHECK_RC(blockdelta_tracker_new(DISK, 512, BLOCK, 0, 0, 0, &none), BLOCKDELTA_RESULT_OK);
  CHECK_RC(blockdelta_tracker_close(none), BLOCKDELTA_RESULT_OK);
  CHECK(strcmp(blockdelta_tracker_load_reason_name(1000), "BLOCKDELTA_TRACKER_LOAD_UNKNOWN") == 0);

  char lock_path[112];
  snprintf(lock_path, sizeof lock_path, "%s.lock", path);
  unlink(path);
  unlink(lock_path);
  rmdir(dir);
  if (failures) {
    fprintf(stderr, "tracker_state.c: %d check(s) failed\n", failures);
    return 1;
  }
  printf("tracker_state.c: all checks passed\n");
  return 0;
}
