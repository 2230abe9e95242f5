/* A full replication cycle through the C ABI: a tracker records writes to an in-memory source
 * disk; each cycle takes a checkpoint, reads its extents, encodes them (lz4 + zero detection +
 * AES-256-GCM), decodes and applies the stream to a replica through callbacks, commits, and
 * checks the replica byte for byte. One cycle's stream is corrupted in flight: the applier
 * refuses it, the checkpoint is aborted, and the next cycle still brings the replica level. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blockdelta.h"

#define DISK (4u * 1024u * 1024u)
#define BLOCK 4096u
#define MAX_STREAM (8u * 1024u * 1024u)

static uint8_t source[DISK];
static uint8_t replica[DISK];
static uint8_t wire[MAX_STREAM];
static const uint8_t disk_id[16] = "c-replicate-0001";
static const char secret[] = "replicate.c secret";
/* The receiver's state, as it reports it: the last checkpoint it applied. */
static uint8_t replica_generation[16];
static uint64_t replica_seq = 0;

static int fail(const char *what, blockdelta_result r) {
  char msg[512];
  blockdelta_last_error(msg, sizeof msg, NULL);
  fprintf(stderr, "replicate.c: FAIL: %s: %s (%s)\n", what, blockdelta_result_name(r), msg);
  return 1;
}

static int read_source(void *ctx, uint64_t offset, uint8_t *buf, size_t len) {
  (void)ctx;
  if (offset > DISK || len > DISK - offset) return 22;
  memcpy(buf, source + offset, len);
  return 0;
}

static int write_replica(void *ctx, uint64_t offset, const uint8_t *buf, size_t len) {
  (void)ctx;
  if (offset > DISK || len > DISK - offset) return 22;
  memcpy(replica + offset, buf, len);
  return 0;
}

static int zero_replica(void *ctx, uint64_t offset, uint64_t len) {
  (void)ctx;
  if (offset > DISK || len > DISK - offset) return 22;
  memset(replica + offset, 0, (size_t)len);
  return 0;
}

/* Writes `len` bytes of a pattern at `offset` of the source, then marks it (on completion). */
static void write_source(blockdelta_tracker *t, uint64_t offset, uint64_t len, unsigned seed) {
  for (uint64_t i = 0; i < len; i++) source[offset + i] = (uint8_t)((i * 31u + seed * 7u) ^ (i >> 9));
  blockdelta_tracker_mark_write(t, offset, len);
}

/* Take, encode, (optionally corrupt), apply, then commit or abort. Returns 0 when applied. */
static int cycle(blockdelta_tracker *t, int corrupt, blockdelta_result *apply_rc) {
  blockdelta_checkpoint cp;
  blockdelta_result r = blockdelta_tracker_take(t, &cp);
  if (r != BLOCKDELTA_RESULT_OK) return fail("take", r);

  /* The taken set as an extent list for the encoder. */
  static blockdelta_extent extents[4096];
  size_t count = 0, n = 0;
  blockdelta_extent_cursor cursor;
  blockdelta_extent_cursor_init(&cp, &cursor);
  do {
    r = blockdelta_tracker_extents(t, &cursor, extents + count, 4096 - count, &n);
    if (r != BLOCKDELTA_RESULT_OK) return fail("extents", r);
    count += n;
  } while (n > 0 && count < 4096);
  if (count != cp.extent_count) return fail("extent count", BLOCKDELTA_RESULT_OK);

  blockdelta_encoder *enc = NULL;
  /* The set is every change since the last commit (cp.from_sequence): correct on a replica
   * anywhere from there up to this checkpoint. */
  r = blockdelta_encoder_new(disk_id, cp.generation, cp.from_sequence, cp.sequence, cp.disk_size,
                             cp.block_size, 65536,
                             BLOCKDELTA_ENCODE_LZ4 | BLOCKDELTA_ENCODE_ZERO_DETECTION,
                             (const uint8_t *)secret, strlen(secret), read_source, NULL, &enc);
  if (r != BLOCKDELTA_RESULT_OK) return fail("encoder_new", r);
  size_t bound = blockdelta_encoder_bound(enc), len = 0;
  if (len + bound > MAX_STREAM) return 1;
  r = blockdelta_encoder_header(enc, wire, bound, &n);
  len += n;
  if (r == BLOCKDELTA_RESULT_OK) r = blockdelta_encoder_set_extents(enc, extents, count);
  while (r == BLOCKDELTA_RESULT_OK) {
    if (len + bound > MAX_STREAM) return 1;
    r = blockdelta_encoder_next(enc, wire + len, bound, &n);
    len += n;
    if (n == 0) break;
  }
  if (r == BLOCKDELTA_RESULT_OK)
    r = blockdelta_encoder_bookmark(enc, cp.sequence, 0, 1, (const uint8_t *)"cycle", 5, wire + len,
                                    bound, &n);
  len += r == BLOCKDELTA_RESULT_OK ? n : 0;
  if (r == BLOCKDELTA_RESULT_OK) r = blockdelta_encoder_finish(enc, wire + len, bound, &n);
  len += r == BLOCKDELTA_RESULT_OK ? n : 0;
  blockdelta_encoder_free(enc);
  if (r != BLOCKDELTA_RESULT_OK) return fail("encode", r);

  if (corrupt) wire[len / 2] ^= 0x10; /* a flipped bit somewhere in the middle */

  blockdelta_applier *app = NULL;
  r = blockdelta_applier_new(DISK, 0, (const uint8_t *)secret, strlen(secret), write_replica,
                             zero_replica, NULL, NULL, NULL, NULL, &app);
  if (r != BLOCKDELTA_RESULT_OK) return fail("applier_new", r);
  /* The replica accepts a stream iff from_seq <= replica_seq < to_seq (same disk and
   * generation), so a stream that was already applied can never be applied again. */
  r = blockdelta_applier_expect(app, disk_id, cp.generation, replica_seq, true);
  size_t consumed = 0;
  if (r == BLOCKDELTA_RESULT_OK) r = blockdelta_applier_push(app, wire, len, &consumed);
  if (r == BLOCKDELTA_RESULT_OK && consumed != len) r = BLOCKDELTA_RESULT_STREAM_TRUNCATED;
  if (r == BLOCKDELTA_RESULT_OK) r = blockdelta_applier_finish(app);
  if (r == BLOCKDELTA_RESULT_OK) {
    /* What the receiver reports it applied: the generation and to_seq of the stream it
     * verified to END. That, not the checkpoint the sender meant to send, is what gets
     * committed. */
    uint8_t applied_generation[16];
    uint64_t applied_to = 0;
    r = blockdelta_applier_header(app, NULL, applied_generation, NULL, &applied_to, NULL);
    if (r == BLOCKDELTA_RESULT_OK) {
      memcpy(replica_generation, applied_generation, 16);
      replica_seq = applied_to;
    }
  }
  blockdelta_applier_free(app);
  *apply_rc = r;

  /* Commit only what the replica reports as applied; otherwise merge it back. */
  if (r == BLOCKDELTA_RESULT_OK)
    return blockdelta_tracker_commit(t, replica_generation, replica_seq) != BLOCKDELTA_RESULT_OK;
  return blockdelta_tracker_abort(t, cp.sequence) != BLOCKDELTA_RESULT_OK;
}

int main(void) {
  blockdelta_tracker *t = NULL;
  blockdelta_result r = blockdelta_tracker_new(DISK, 512, BLOCK, 0, 0, 0, &t);
  if (r != BLOCKDELTA_RESULT_OK) return fail("tracker_new", r);
  for (size_t i = 0; i < DISK; i++) source[i] = (uint8_t)(i * 2654435761u >> 13);
  memset(replica, 0xAA, DISK); /* garbage: the first cycle is a full sync */

  blockdelta_result rc;
  if (cycle(t, 0, &rc) || rc != BLOCKDELTA_RESULT_OK) return fail("initial sync", rc);
  if (memcmp(source, replica, DISK) != 0) return fail("replica after the initial sync", rc);

  for (unsigned c = 1; c <= 4; c++) {
    write_source(t, (c * 37u % 900u) * BLOCK + 100, 3 * BLOCK, c);      /* unaligned, spanning */
    write_source(t, 2 * 1024 * 1024 + c * 8192, 64 * 1024, c + 10);
    memset(source + 1024 * 1024 + c * BLOCK * 4, 0, 2 * BLOCK);           /* a zero fill */
    blockdelta_tracker_mark_write(t, 1024 * 1024 + c * BLOCK * 4, 2 * BLOCK);
    int corrupt = c == 2;
    if (cycle(t, corrupt, &rc)) return fail("cycle", rc);
    if (corrupt) {
      if (rc != BLOCKDELTA_RESULT_STREAM_AUTHENTICATION_FAILED && rc != BLOCKDELTA_RESULT_STREAM_CHECKSUM_MISMATCH)
        return fail("a corrupted stream must be refused", rc);
      continue;
    }
    if (rc != BLOCKDELTA_RESULT_OK) return fail("apply", rc);
    if (memcmp(source, replica, DISK) != 0) {
      fprintf(stderr, "replicate.c: FAIL: replica differs after cycle %u\n", c);
      return 1;
    }
  }
  uint64_t aborted = 0, committed = 0;
  blockdelta_tracker_stat(t, BLOCKDELTA_TRACKER_STAT_ID_CHECKPOINTS_ABORTED, &aborted);
  blockdelta_tracker_stat(t, BLOCKDELTA_TRACKER_STAT_ID_CHECKPOINTS_COMMITTED, &committed);
  blockdelta_tracker_free(t);
  if (aborted != 1 || committed != 4) {
    fprintf(stderr, "replicate.c: FAIL: %llu aborted, %llu committed\n", (unsigned long long)aborted,
            (unsigned long long)committed);
    return 1;
  }
  printf("replicate.c: 5 cycles, 1 corrupted stream refused and re-shipped, replica identical\n");
  return 0;
}
