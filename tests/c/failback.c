/* Failback without a full copy through the C ABI (docs/FAILBACK.md). The original disk A
 * replicates three points into a store through a loaded (persistent) tracker, writes blocks the
 * replica never sees and closes cleanly; failover at the second point (a rollback) makes B, a
 * copy of it tracked from there; B writes; A reloads (resumed). The plan is a delta: its
 * extents, encoded from B with the ordinary encoder under the plan's header and applied to A
 * with the ordinary applier, make A byte-identical to B, and the bytes the applier wrote are
 * exactly the plan's union, far less than the disk. Then: A unproven -> a checksum resync
 * (hash lists of both disks) that also makes A identical; A gone -> a full copy; and the error
 * codes of a point not in the store, a wrong disk size, a bad original state and NULL. */
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blockdelta.h"

#define DISK (1024u * 1024u)
#define BLOCK 4096u
#define MAX_STREAM (3u * 1024u * 1024u)
#define MAX_EXTENTS 512

static uint8_t disk_a[DISK];  /* the original */
static uint8_t before[DISK];  /* the original before failback, for the resync */
static uint8_t disk_b[DISK];  /* the new primary */
static uint8_t *wire;
static const uint8_t disk_id[16] = "c-failback-disk1";
static char tmp[64];
static uint64_t applied_bytes; /* bytes the applier wrote, zeroed or discarded */

#define CHECK(what, expr)                                                  \
  do {                                                                     \
    blockdelta_result r_ = (expr);                                         \
    if (r_ != BLOCKDELTA_RESULT_OK) return fail(what, r_, __LINE__);       \
  } while (0)
#define EXPECT(what, cond)                                                 \
  do {                                                                     \
    if (!(cond)) {                                                         \
      fprintf(stderr, "failback.c: FAIL: %s (line %d)\n", what, __LINE__); \
      return 1;                                                            \
    }                                                                      \
  } while (0)
#define EXPECT_RC(what, expr, want)                                        \
  do {                                                                     \
    blockdelta_result r_ = (expr);                                         \
    if (r_ != (want)) return fail(what, r_, __LINE__);                     \
  } while (0)

static int fail(const char *what, blockdelta_result r, int line) {
  char msg[512];
  blockdelta_last_error(msg, sizeof msg, NULL);
  fprintf(stderr, "failback.c: FAIL: %s (line %d): %s (%s)\n", what, line,
          blockdelta_result_name(r), msg);
  return 1;
}

static int read_disk(void *ctx, uint64_t offset, uint8_t *buf, size_t len) {
  const uint8_t *d = ctx;
  if (offset > DISK || len > DISK - offset) return 22;
  memcpy(buf, d + offset, len);
  return 0;
}

static int write_disk(void *ctx, uint64_t offset, const uint8_t *buf, size_t len) {
  uint8_t *d = ctx;
  if (offset > DISK || len > DISK - offset) return 22;
  memcpy(d + offset, buf, len);
  applied_bytes += len;
  return 0;
}

static int zero_disk(void *ctx, uint64_t offset, uint64_t len) {
  uint8_t *d = ctx;
  if (offset > DISK || len > DISK - offset) return 22;
  memset(d + offset, 0, (size_t)len);
  applied_bytes += len;
  return 0;
}

/* Writes a pattern over blocks `first`..`first + n` of `d` and marks them on `t`. */
static void change(uint8_t *d, blockdelta_tracker *t, unsigned first, unsigned n, unsigned seed) {
  for (size_t i = (size_t)first * BLOCK; i < (size_t)(first + n) * BLOCK; i++)
    d[i] = (uint8_t)(i * 13u + seed * 101u + (i >> 12));
  blockdelta_tracker_mark_write(t, (uint64_t)first * BLOCK, (uint64_t)n * BLOCK);
}

/* Every extent of the pending checkpoint `cp` of `t`. */
static int extents_of(blockdelta_tracker *t, const blockdelta_checkpoint *cp, blockdelta_extent *e,
                      size_t *count) {
  blockdelta_extent_cursor cursor;
  size_t n = 0;
  *count = 0;
  CHECK("cursor", blockdelta_extent_cursor_init(cp, &cursor));
  do {
    CHECK("extents", blockdelta_tracker_extents(t, &cursor, e + *count, MAX_EXTENTS - *count, &n));
    *count += n;
  } while (n > 0 && *count < MAX_EXTENTS);
  return 0;
}

/* Encodes `extents` of `source` into `wire` under the given header; `*len` its length. */
static int encode(const uint8_t *gen, uint64_t from, uint64_t to, const blockdelta_extent *extents,
                  size_t count, uint8_t *source, size_t *len) {
  blockdelta_encoder *enc = NULL;
  size_t n = 0;
  *len = 0;
  CHECK("encoder_new", blockdelta_encoder_new(disk_id, gen, from, to, DISK, BLOCK, 0,
                                              BLOCKDELTA_ENCODE_LZ4 | BLOCKDELTA_ENCODE_ZERO_DETECTION,
                                              NULL, 0, read_disk, source, &enc));
  size_t bound = blockdelta_encoder_bound(enc);
  blockdelta_result r = blockdelta_encoder_header(enc, wire, bound, &n);
  *len += n;
  if (r == BLOCKDELTA_RESULT_OK) r = blockdelta_encoder_set_extents(enc, extents, count);
  while (r == BLOCKDELTA_RESULT_OK) {
    if (*len + bound > MAX_STREAM) r = BLOCKDELTA_RESULT_BUFFER_TOO_SMALL;
    else r = blockdelta_encoder_next(enc, wire + *len, bound, &n);
    if (r != BLOCKDELTA_RESULT_OK || n == 0) break;
    *len += n;
  }
  if (r == BLOCKDELTA_RESULT_OK) r = blockdelta_encoder_finish(enc, wire + *len, bound, &n);
  *len += r == BLOCKDELTA_RESULT_OK ? n : 0;
  blockdelta_encoder_free(enc);
  CHECK("encode", r);
  return 0;
}

/* Applies the stream in `wire` to `target` with the ordinary applier. */
static int apply(size_t len, uint8_t *target) {
  blockdelta_applier *app = NULL;
  size_t used = 0;
  applied_bytes = 0;
  CHECK("applier_new", blockdelta_applier_new(DISK, 0, NULL, 0, write_disk, zero_disk, zero_disk,
                                              NULL, NULL, target, &app));
  blockdelta_result r = blockdelta_applier_push(app, wire, len, &used);
  if (r == BLOCKDELTA_RESULT_OK && used != len) r = BLOCKDELTA_RESULT_STREAM_TRUNCATED;
  if (r == BLOCKDELTA_RESULT_OK) r = blockdelta_applier_finish(app);
  blockdelta_applier_free(app);
  CHECK("apply", r);
  return 0;
}

/* A's next checkpoint into the store, committed after the store's durable ack. */
static int ship(blockdelta_store *s, blockdelta_tracker *a, blockdelta_point_id *point) {
  static blockdelta_extent e[MAX_EXTENTS];
  blockdelta_checkpoint cp;
  blockdelta_ingest *ing = NULL;
  size_t count = 0, len = 0;
  CHECK("take", blockdelta_tracker_take(a, &cp));
  if (extents_of(a, &cp, e, &count)) return 1;
  if (encode(cp.generation, cp.from_sequence, cp.sequence, e, count, disk_a, &len)) return 1;
  CHECK("ingest_begin", blockdelta_store_ingest_begin(s, NULL, 0, &ing));
  blockdelta_result r = blockdelta_ingest_push(ing, wire, len);
  if (r == BLOCKDELTA_RESULT_OK) r = blockdelta_ingest_finish(ing, point);
  blockdelta_ingest_free(ing);
  CHECK("ingest", r);
  CHECK("commit", blockdelta_tracker_commit(a, cp.generation, cp.sequence));
  return 0;
}

static int write_file(const char *path, const uint8_t *d) {
  FILE *f = fopen(path, "wb");
  if (f == NULL) return 1;
  size_t n = fwrite(d, 1, DISK, f);
  return fclose(f) != 0 || n != DISK;
}

static blockdelta_result load(const char *path, blockdelta_tracker **t, uint32_t *reason) {
  return blockdelta_tracker_load(path, DISK, 512, BLOCK, 0, 0, disk_id, NULL, 0, 0, t, reason);
}

static int run(void) {
  static blockdelta_extent eb[MAX_EXTENTS], ea[MAX_EXTENTS], plan_ext[MAX_EXTENTS];
  char dir[96], state[96], fa[96], fb[96];
  blockdelta_store *s = NULL;
  blockdelta_tracker *a = NULL, *b = NULL;
  blockdelta_point_id points[3];
  uint32_t reason = 99;
  snprintf(dir, sizeof dir, "%s/store", tmp);
  snprintf(state, sizeof state, "%s/a.tracker", tmp);
  snprintf(fa, sizeof fa, "%s/a.img", tmp);
  snprintf(fb, sizeof fb, "%s/b.img", tmp);

  /* A replicates three points, then writes 3 blocks the replica never sees. */
  CHECK("store_create", blockdelta_store_create(dir, disk_id, &s));
  CHECK("load A", load(state, &a, &reason));
  EXPECT("a first load is a full resync", reason == BLOCKDELTA_TRACKER_LOAD_MISSING);
  change(disk_a, a, 0, 64, 1);
  for (int i = 0; i < 3; i++) {
    if (i > 0) change(disk_a, a, 10u * (unsigned)i, 4, 2u + (unsigned)i);
    if (ship(s, a, &points[i])) return 1;
  }
  change(disk_a, a, 100, 3, 9);
  CHECK("close A", blockdelta_tracker_close(a));
  memcpy(before, disk_a, DISK);

  /* Failover at the second point: a rollback; B is its image, tracked from there. */
  uint8_t gen[16];
  uint64_t seq = 0;
  CHECK("failover", blockdelta_failback_failover(s, &points[1], gen, &seq));
  EXPECT("the lineage continues the point", seq == points[1].sequence);
  CHECK("read F", blockdelta_store_read_at(s, &points[1], 0, disk_b, DISK));
  CHECK("tracker B", blockdelta_tracker_new(DISK, 512, BLOCK, 0, 0, BLOCKDELTA_TRACKER_START_CLEAN, &b));
  CHECK("adopt", blockdelta_tracker_adopt_lineage(b, gen, seq, NULL, 0));
  change(disk_b, b, 200, 5, 21);
  change(disk_b, b, 12, 1, 22); /* inside what the third point changed */
  blockdelta_checkpoint cpb, cpa;
  size_t nb = 0, na = 0;
  CHECK("take B", blockdelta_tracker_take(b, &cpb));
  if (extents_of(b, &cpb, eb, &nb)) return 1;

  /* A comes back clean: its unshipped blocks. */
  CHECK("reload A", load(state, &a, &reason));
  EXPECT("a clean close resumes", reason == BLOCKDELTA_TRACKER_LOAD_RESUMED);
  CHECK("take A", blockdelta_tracker_take(a, &cpa));
  if (extents_of(a, &cpa, ea, &na)) return 1;

  /* The delta. */
  blockdelta_failback_plan *plan = NULL;
  CHECK("plan", blockdelta_failback_plan_new(s, &points[1], &cpb, eb, nb,
                                             BLOCKDELTA_FAILBACK_ORIGINAL_RESUMED, &cpa, ea, na, &plan));
  uint32_t method = 9, why = 9;
  uint64_t b_bytes = 0, between = 0, a_bytes = 0, total = 0;
  size_t count = 0, n = 0;
  CHECK("info", blockdelta_failback_plan_info(plan, &method, &why, &b_bytes, &between, &a_bytes,
                                              &total, &count));
  EXPECT("a delta", method == BLOCKDELTA_FAILBACK_DELTA && why == BLOCKDELTA_FAILBACK_REASON_NONE);
  EXPECT("sources", b_bytes == 6 * BLOCK && a_bytes == 3 * BLOCK && between == 4 * BLOCK);
  /* B's 6 blocks (12 lies in what the second point changed, not the third), A's 3, and the
   * third point's 4 (20..24, which F never had): disjoint, so the union is 13 blocks. */
  EXPECT("the union", total == 13 * BLOCK && total * 16 < DISK);
  CHECK("plan extents", blockdelta_failback_plan_extents(plan, 0, plan_ext, MAX_EXTENTS, &n));
  EXPECT("extent count", n == count);
  uint8_t id[16], g2[16];
  uint64_t from = 0, to = 0, size = 0;
  CHECK("header", blockdelta_failback_plan_header(plan, id, g2, &from, &to, &size));
  EXPECT("the header names B's checkpoint",
         memcmp(id, disk_id, 16) == 0 && memcmp(g2, gen, 16) == 0 && from == seq &&
             to == cpb.sequence && size == DISK);
  size_t len = 0;
  if (encode(g2, from, to, plan_ext, n, disk_b, &len)) return 1;
  if (apply(len, disk_a)) return 1;
  EXPECT("A is byte-identical to B", memcmp(disk_a, disk_b, DISK) == 0);
  EXPECT("exactly the union was written", applied_bytes == total);
  CHECK("commit B", blockdelta_tracker_commit(b, cpb.generation, cpb.sequence));

  /* A unproven: a checksum resync from A's old contents, never a full copy. */
  blockdelta_failback_plan *rp = NULL;
  CHECK("plan unproven", blockdelta_failback_plan_new(s, &points[1], &cpb, eb, nb,
                                                      BLOCKDELTA_FAILBACK_ORIGINAL_UNPROVEN, NULL,
                                                      NULL, 0, &rp));
  CHECK("info", blockdelta_failback_plan_info(rp, &method, &why, NULL, NULL, NULL, &total, &count));
  EXPECT("a checksum resync", method == BLOCKDELTA_FAILBACK_CHECKSUM_RESYNC &&
                                  why == BLOCKDELTA_FAILBACK_REASON_ORIGINAL_UNTRUSTED &&
                                  total == 0 && count == 0);
  memcpy(disk_a, before, DISK);
  if (write_file(fa, disk_a) || write_file(fb, disk_b)) return 1;
  uint8_t salt[16];
  blockdelta_hash_list *ha = NULL, *hb = NULL, *half = NULL;
  blockdelta_resync_plan *resync = NULL;
  CHECK("salt", blockdelta_resync_random_salt(salt));
  CHECK("hash A", blockdelta_hash_list_compute_file(fa, 0, 0, 0, salt, &ha));
  CHECK("hash B", blockdelta_hash_list_compute_file(fb, 0, 0, 0, salt, &hb));
  CHECK("hash half", blockdelta_hash_list_compute_file(fa, DISK / 2, 0, 0, salt, &half));
  EXPECT_RC("a list of another size", blockdelta_failback_plan_resync(rp, half, hb, &resync),
            BLOCKDELTA_RESULT_FAILBACK_DISK_SIZE_MISMATCH);
  CHECK("resync", blockdelta_failback_plan_resync(rp, ha, hb, &resync));
  uint64_t differing = 0;
  CHECK("resync info", blockdelta_resync_plan_info(resync, &count, NULL, &differing, NULL, NULL));
  CHECK("resync extents", blockdelta_resync_plan_extents(resync, 0, plan_ext, MAX_EXTENTS, &n));
  CHECK("header", blockdelta_failback_plan_header(rp, id, g2, &from, &to, &size));
  if (encode(g2, from, to, plan_ext, n, disk_b, &len)) return 1;
  if (apply(len, disk_a)) return 1;
  EXPECT("A is byte-identical to B after the resync", memcmp(disk_a, disk_b, DISK) == 0);
  EXPECT("only the differing blocks", applied_bytes == differing && differing * 16 < DISK);
  blockdelta_resync_plan_free(resync);
  blockdelta_hash_list_free(ha);
  blockdelta_hash_list_free(hb);
  blockdelta_hash_list_free(half);

  /* A gone: a full copy. */
  blockdelta_failback_plan *fp = NULL;
  CHECK("plan gone", blockdelta_failback_plan_new(s, &points[1], &cpb, eb, nb,
                                                  BLOCKDELTA_FAILBACK_ORIGINAL_GONE, NULL, NULL, 0, &fp));
  CHECK("info", blockdelta_failback_plan_info(fp, &method, NULL, NULL, NULL, NULL, &total, &count));
  EXPECT("a full copy", method == BLOCKDELTA_FAILBACK_FULL_COPY && total == DISK && count == 1);

  /* Errors, each its own code. */
  blockdelta_failback_plan *none = NULL;
  blockdelta_point_id nowhere = points[1];
  nowhere.sequence = 77;
  EXPECT_RC("no such point",
            blockdelta_failback_plan_new(s, &nowhere, &cpb, eb, nb, BLOCKDELTA_FAILBACK_ORIGINAL_GONE,
                                         NULL, NULL, 0, &none),
            BLOCKDELTA_RESULT_FAILBACK_NO_SUCH_POINT);
  blockdelta_checkpoint big = cpa;
  big.disk_size = 2 * DISK;
  EXPECT_RC("wrong size",
            blockdelta_failback_plan_new(s, &points[1], &cpb, eb, nb,
                                         BLOCKDELTA_FAILBACK_ORIGINAL_RESUMED, &big, ea, na, &none),
            BLOCKDELTA_RESULT_FAILBACK_DISK_SIZE_MISMATCH);
  EXPECT_RC("bad state",
            blockdelta_failback_plan_new(s, &points[1], &cpb, eb, nb, 42, NULL, NULL, 0, &none),
            BLOCKDELTA_RESULT_INVALID_ARGUMENT);
  EXPECT_RC("NULL out",
            blockdelta_failback_plan_new(s, &points[1], &cpb, eb, nb,
                                         BLOCKDELTA_FAILBACK_ORIGINAL_GONE, NULL, NULL, 0, NULL),
            BLOCKDELTA_RESULT_NULL_PARAMETER);
  EXPECT("nothing written on error", none == NULL);
  EXPECT_RC("failover to nowhere", blockdelta_failback_failover(s, &nowhere, gen, &seq),
            BLOCKDELTA_RESULT_FAILBACK_NO_SUCH_POINT);

  blockdelta_failback_plan_free(plan);
  blockdelta_failback_plan_free(rp);
  blockdelta_failback_plan_free(fp);
  blockdelta_failback_plan_free(NULL);
  blockdelta_tracker_free(b);
  CHECK("close A", blockdelta_tracker_close(a));
  blockdelta_store_free(s);
  return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(path);
}

int main(void) {
  wire = malloc(MAX_STREAM);
  if (wire == NULL) return 1;
  snprintf(tmp, sizeof tmp, "/tmp/blockdelta-failback-XXXXXX");
  if (mkdtemp(tmp) == NULL) return 1;
  int rc = run();
  nftw(tmp, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
  free(wire);
  if (rc == 0) printf("failback.c: delta, checksum resync, full copy, errors: OK\n");
  return rc;
}
