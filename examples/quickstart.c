/* C quick start: track writes, take a checkpoint, read its extents, commit.
 * Built and run by `cargo test` (tests/c_abi.rs) against the static and the shared library. */
#include <inttypes.h>
#include <stdio.h>

#include "blockdelta.h"

int main(void) {
  blockdelta_tracker *tracker = NULL;
  /* 1 GiB disk, 512 B sectors, 64 KiB granularity, no memory budget, no extra capacity,
   * start clean (the replica is known to match the disk right now). */
  blockdelta_result rc = blockdelta_tracker_new(1ull << 30, 512, 65536, 0, 0,
                                                BLOCKDELTA_TRACKER_START_CLEAN, &tracker);
  if (rc != BLOCKDELTA_RESULT_OK) {
    char msg[256];
    blockdelta_last_error(msg, sizeof msg, NULL);
    fprintf(stderr, "%s: %s\n", blockdelta_result_name(rc), msg);
    return 1;
  }

  /* On every completed write, from any I/O thread: lock-free, never blocks. */
  blockdelta_tracker_mark_write(tracker, 4096, 8192);
  blockdelta_tracker_mark_write(tracker, 1u << 20, 4096);

  /* On the replication thread: freeze, read, ship, commit. */
  blockdelta_checkpoint cp;
  blockdelta_tracker_take(tracker, &cp);
  blockdelta_extent_cursor cursor;
  blockdelta_extent_cursor_init(&cp, &cursor);
  blockdelta_extent batch[64];
  size_t n = 0;
  while (blockdelta_tracker_extents(tracker, &cursor, batch, 64, &n) == BLOCKDELTA_RESULT_OK && n > 0) {
    for (size_t i = 0; i < n; i++)
      printf("checkpoint %" PRIu64 ": ship %" PRIu64 "+%" PRIu64 "\n", cp.sequence, batch[i].offset, batch[i].len);
  }
  /* ...after the replica reports it applied (generation, sequence) (blockdelta_tracker_abort
     instead if shipping failed). Pass what the replica reported, not what was sent: */
  blockdelta_tracker_commit(tracker, cp.generation, cp.sequence);

  blockdelta_tracker_free(tracker);
  return cp.extent_count == 2 ? 0 : 1;
}
