/* C quick start: track writes, take a checkpoint, read its extents, commit.
 * Every result is checked: an error is never mistaken for the end of the extents.
 * Built and run by `cargo test` (tests/c_abi.rs) against the static and the shared library. */
#include <inttypes.h>
#include <stdio.h>

#include "blockdelta.h"

/* Prints the calling thread's last error and returns 1 when rc is not OK. */
static int failed(blockdelta_result rc, const char *what) {
  if (rc == BLOCKDELTA_RESULT_OK) return 0;
  char msg[256];
  blockdelta_last_error(msg, sizeof msg, NULL);
  fprintf(stderr, "%s: %s: %s\n", what, blockdelta_result_name(rc), msg);
  return 1;
}

int main(void) {
  blockdelta_tracker *tracker = NULL;
  /* 1 GiB disk, 512 B sectors, 64 KiB granularity, no memory budget, no extra capacity,
   * start clean (the replica is known to match the disk right now). */
  if (failed(blockdelta_tracker_new(1ull << 30, 512, 65536, 0, 0, BLOCKDELTA_TRACKER_START_CLEAN,
                                    &tracker), "tracker_new"))
    return 1;

  /* On every completed write, from any I/O thread: lock-free, never blocks. */
  if (failed(blockdelta_tracker_mark_write(tracker, 4096, 8192), "mark_write") ||
      failed(blockdelta_tracker_mark_write(tracker, 1u << 20, 4096), "mark_write") ||
      failed(blockdelta_tracker_mark_discard(tracker, 1u << 24, 1u << 20), "mark_discard"))
    goto fail;

  /* On the replication thread: freeze, read, ship, commit. */
  blockdelta_checkpoint cp;
  if (failed(blockdelta_tracker_take(tracker, &cp), "take")) goto fail;
  blockdelta_extent_cursor cursor;
  if (failed(blockdelta_extent_cursor_init(&cp, &cursor), "cursor_init")) goto fail;
  blockdelta_extent batch[64];
  size_t n = 0, seen = 0;
  for (;;) {
    if (failed(blockdelta_tracker_extents(tracker, &cursor, batch, 64, &n), "extents")) {
      blockdelta_tracker_abort(tracker, cp.sequence); /* nothing is lost: merged back */
      goto fail;
    }
    if (n == 0) break; /* the end: only an OK call with a count of 0 says so */
    for (size_t i = 0; i < n; i++, seen++)
      printf("checkpoint %" PRIu64 " (from %" PRIu64 "): %s %" PRIu64 "+%" PRIu64 "\n",
             cp.sequence, cp.from_sequence,
             batch[i].kind == BLOCKDELTA_EXTENT_KIND_DISCARD ? "discard" : "ship", batch[i].offset,
             batch[i].len);
  }
  /* A stream for this checkpoint carries from_seq = cp.from_sequence, to_seq = cp.sequence.
   * Commit only what the replica reports it applied (blockdelta_applier_header after a
   * successful blockdelta_applier_finish); here the replica is assumed to report cp itself.
   * If shipping failed: blockdelta_tracker_abort(tracker, cp.sequence). */
  if (failed(blockdelta_tracker_commit(tracker, cp.generation, cp.sequence), "commit")) goto fail;

  blockdelta_tracker_free(tracker);
  return cp.extent_count == 3 && seen == 3 ? 0 : 1;
fail:
  blockdelta_tracker_free(tracker);
  return 1;
}
