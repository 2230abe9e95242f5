/* The replica store through the C ABI, a full cycle in a temporary directory: streams are
 * encoded with the C encoder from an in-memory source disk (a full one, then incrementals, one
 * with an application-consistent bookmark), ingested into a store in odd-sized chunks, and
 * every old point is read back byte for byte against copies of the disk kept at each
 * checkpoint. Then retention to 2 points, a rollback (new generation, extents to re-send, the
 * detached point discarded), the re-sent stream, an export compared with its point, a scrub,
 * two stream files merged and the merged stream ingested, and the error codes of a stale stream
 * and of a second open of the same store. */
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include "blockdelta.h"

#define DISK (1024u * 1024u)
#define BLOCK 4096u
#define MAX_STREAM (3u * 1024u * 1024u)
#define POINTS 4

static uint8_t disk[DISK];
static uint8_t copies[POINTS + 2][DISK];
static uint8_t readback[DISK];
static uint8_t *wire;
static const uint8_t disk_id[16] = "c-replica-disk01";
static const char secret[] = "replica.c stream secret";
static char tmp[64];

#define CHECK(what, expr)                                                                  \
  do {                                                                                     \
    blockdelta_result r_ = (expr);                                                         \
    if (r_ != BLOCKDELTA_RESULT_OK) return fail(what, r_);                                 \
  } while (0)
#define EXPECT(what, cond)                                                                 \
  do {                                                                                     \
    if (!(cond)) {                                                                         \
      fprintf(stderr, "replica.c: FAIL: %s (line %d)\n", what, __LINE__);                  \
      return 1;                                                                            \
    }                                                                                      \
  } while (0)

static int fail(const char *what, blockdelta_result r) {
  char msg[512];
  blockdelta_last_error(msg, sizeof msg, NULL);
  fprintf(stderr, "replica.c: FAIL: %s: %s (%s)\n", what, blockdelta_result_name(r), msg);
  return 1;
}

static int read_disk(void *ctx, uint64_t offset, uint8_t *buf, size_t len) {
  const uint8_t *d = ctx;
  if (offset > DISK || len > DISK - offset) return 22;
  memcpy(buf, d + offset, len);
  return 0;
}

/* Fills `len` bytes at `offset` of the source with a pattern. */
static void write_disk(uint64_t offset, uint64_t len, unsigned seed) {
  for (uint64_t i = 0; i < len; i++) disk[offset + i] = (uint8_t)((i * 131u + seed * 17u) ^ (i >> 7));
}

/* Encodes the extents of `src` as the stream gen:from->to into `wire`; returns its length. An
 * optional bookmark (kind 2 = application-consistent) labels the point. */
static size_t encode(const uint8_t gen[16], uint64_t from, uint64_t to, const blockdelta_extent *ext,
                     size_t n_ext, const uint8_t *src, const char *label) {
  blockdelta_encoder *enc = NULL;
  blockdelta_result r = blockdelta_encoder_new(
      disk_id, gen, from, to, DISK, BLOCK, 65536, BLOCKDELTA_ENCODE_LZ4 | BLOCKDELTA_ENCODE_ZERO_DETECTION,
      (const uint8_t *)secret, strlen(secret), read_disk, (void *)src, &enc);
  if (r != BLOCKDELTA_RESULT_OK) return fail("encoder_new", r), 0;
  size_t bound = blockdelta_encoder_bound(enc), len = 0, n = 0;
  r = blockdelta_encoder_header(enc, wire, bound, &n);
  len += n;
  if (r == BLOCKDELTA_RESULT_OK) r = blockdelta_encoder_set_extents(enc, ext, n_ext);
  while (r == BLOCKDELTA_RESULT_OK) {
    if (len + bound > MAX_STREAM) return 0;
    r = blockdelta_encoder_next(enc, wire + len, bound, &n);
    len += n;
    if (n == 0) break;
  }
  if (r == BLOCKDELTA_RESULT_OK && label != NULL) {
    r = blockdelta_encoder_bookmark(enc, to, 1700000000000000000ull + to, 2, (const uint8_t *)label,
                                    strlen(label), wire + len, bound, &n);
    len += r == BLOCKDELTA_RESULT_OK ? n : 0;
  }
  if (r == BLOCKDELTA_RESULT_OK) r = blockdelta_encoder_finish(enc, wire + len, bound, &n);
  len += r == BLOCKDELTA_RESULT_OK ? n : 0;
  blockdelta_encoder_free(enc);
  if (r != BLOCKDELTA_RESULT_OK) return fail("encode", r), 0;
  return len;
}

/* Ingests `(data, len)` in odd-sized chunks; the point's id goes to *id. */
static blockdelta_result ingest(blockdelta_store *s, const uint8_t *data, size_t len, blockdelta_point_id *id) {
  static const size_t chunks[] = {1, 777, 4093, 65537, 13, 100003};
  blockdelta_ingest *ing = NULL;
  blockdelta_result r = blockdelta_store_ingest_begin(s, (const uint8_t *)secret, strlen(secret), &ing);
  if (r != BLOCKDELTA_RESULT_OK) return r;
  size_t pos = 0;
  for (unsigned i = 0; pos < len && r == BLOCKDELTA_RESULT_OK; i++) {
    size_t n = chunks[i % 6];
    if (n > len - pos) n = len - pos;
    r = blockdelta_ingest_push(ing, data + pos, n);
    pos += n;
  }
  if (r == BLOCKDELTA_RESULT_OK) r = blockdelta_ingest_finish(ing, id);
  blockdelta_ingest_free(ing); /* always, finished or not */
  return r;
}

/* Reads point `id` back in odd-sized pieces and compares it with `want`. */
static int check_point(const blockdelta_store *s, const blockdelta_point_id *id, const uint8_t *want) {
  memset(readback, 0xAA, DISK);
  uint64_t off = 0;
  for (unsigned i = 0; off < DISK; i++) {
    size_t n = (size_t)(1 + (i * 7919u) % 200000u);
    if (n > DISK - off) n = (size_t)(DISK - off);
    CHECK("read_at", blockdelta_store_read_at(s, id, off, readback + off, n));
    off += n;
  }
  EXPECT("a point reads back as the disk was", memcmp(readback, want, DISK) == 0);
  return 0;
}

static int write_file(const char *path, const uint8_t *data, size_t len) {
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(data, 1, len, f) != len) return 1;
  return fclose(f) != 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(path);
}

static int run(void) {
  char dir[128], path[160], in1[160], in2[160], merged[160];
  snprintf(dir, sizeof dir, "%s/store", tmp);
  uint8_t gen[16];
  memcpy(gen, "c-replica-gen-01", 16);

  blockdelta_store *s = NULL;
  CHECK("store_create", blockdelta_store_create(dir, disk_id, &s));

  /* A full stream, then incrementals; a copy of the disk at every checkpoint. */
  blockdelta_point_id ids[POINTS + 2];
  for (size_t i = 0; i < DISK; i++) disk[i] = (uint8_t)(i * 2654435761u >> 13);
  memset(disk + 256 * 1024, 0, 64 * 1024); /* zeros, sent as ZERO records */
  blockdelta_extent full = {0, DISK, BLOCKDELTA_EXTENT_KIND_WRITE, 0};
  size_t len = encode(gen, 0, 1, &full, 1, disk, NULL);
  EXPECT("encode the full stream", len > 0);
  memcpy(copies[0], disk, DISK);
  CHECK("ingest the full stream", ingest(s, wire, len, &ids[0]));
  EXPECT("point 1", ids[0].sequence == 1 && memcmp(ids[0].generation, gen, 16) == 0);
  for (uint64_t k = 2; k <= POINTS; k++) {
    blockdelta_extent ext[2] = {{(k * 5) * BLOCK, 3 * BLOCK, BLOCKDELTA_EXTENT_KIND_WRITE, 0},
                                {(100 + k * 9) * BLOCK, 8 * BLOCK, BLOCKDELTA_EXTENT_KIND_WRITE, 0}};
    write_disk(ext[0].offset, ext[0].len, (unsigned)k);
    write_disk(ext[1].offset, ext[1].len, (unsigned)k + 50);
    len = encode(gen, k - 1, k, ext, 2, disk, k == 3 ? "c-app-point" : NULL);
    EXPECT("encode an incremental", len > 0);
    memcpy(copies[k - 1], disk, DISK);
    CHECK("ingest an incremental", ingest(s, wire, len, &ids[k - 1]));
    EXPECT("incremental point id", ids[k - 1].sequence == k);
  }
  /* The last stream once more: stale. */
  blockdelta_point_id untouched = {{0}, 777};
  blockdelta_result r = ingest(s, wire, len, &untouched);
  if (r != BLOCKDELTA_RESULT_STREAM_ALREADY_APPLIED) return fail("a stale stream must be refused", r);
  EXPECT("outputs untouched on failure", untouched.sequence == 777);

  /* The list, and every old point read back. */
  blockdelta_point_list *list = NULL;
  CHECK("points", blockdelta_store_points(s, &list));
  EXPECT("four points", blockdelta_point_list_len(list) == POINTS);
  for (size_t i = 0; i < POINTS; i++) {
    blockdelta_point_id id;
    uint64_t size = 0, consistency = 0, detached = 1, from = 99;
    CHECK("point_list_get", blockdelta_point_list_get(list, i, &id));
    EXPECT("listed in order", memcmp(&id, &ids[i], sizeof id) == 0);
    CHECK("disk size", blockdelta_point_list_value(list, i, BLOCKDELTA_POINT_FIELD_DISK_SIZE, &size));
    CHECK("consistency", blockdelta_point_list_value(list, i, BLOCKDELTA_POINT_FIELD_CONSISTENCY, &consistency));
    CHECK("detached", blockdelta_point_list_value(list, i, BLOCKDELTA_POINT_FIELD_DETACHED, &detached));
    CHECK("from", blockdelta_point_list_value(list, i, BLOCKDELTA_POINT_FIELD_FROM_SEQUENCE, &from));
    char label[BLOCKDELTA_MAX_LABEL_LEN + 1];
    size_t label_len = 99;
    CHECK("label", blockdelta_point_list_label(list, i, label, sizeof label, &label_len));
    EXPECT("size", size == DISK);
    EXPECT("not detached", detached == 0);
    EXPECT("from_sequence", from == i);
    if (i == 2) {
      EXPECT("application-consistent", consistency == 2);
      EXPECT("label", label_len == 11 && strcmp(label, "c-app-point") == 0);
    } else {
      EXPECT("crash-consistent", consistency == 1);
      EXPECT("no label", label_len == 0 && label[0] == 0);
    }
    if (check_point(s, &ids[i], copies[i])) return 1;
  }
  uint64_t v = 0;
  EXPECT("index past the end",
         blockdelta_point_list_value(list, POINTS, BLOCKDELTA_POINT_FIELD_DISK_SIZE, &v) ==
             BLOCKDELTA_RESULT_INVALID_ARGUMENT);
  blockdelta_point_list_free(list);

  /* A page: the newest two points, and a page cut short at the end. */
  size_t count = 0;
  CHECK("point_count", blockdelta_store_point_count(s, &count));
  EXPECT("point count", count == POINTS);
  blockdelta_point_list *page = NULL;
  CHECK("points_in", blockdelta_store_points_in(s, POINTS - 2, 5, &page));
  EXPECT("a page of two", blockdelta_point_list_len(page) == 2);
  for (size_t i = 0; i < 2; i++) {
    blockdelta_point_id id;
    CHECK("page get", blockdelta_point_list_get(page, i, &id));
    EXPECT("the newest two", memcmp(&id, &ids[POINTS - 2 + i], sizeof id) == 0);
  }
  blockdelta_point_list_free(page);

  /* Retention: 2 points. */
  size_t expired = 0;
  blockdelta_point_list *gone = NULL;
  CHECK("set_retention", blockdelta_store_set_retention(s, 0, 0, 0, 2, 0));
  CHECK("retain", blockdelta_store_retain(s, 0, &expired, &gone));
  EXPECT("two points expired", expired == 2 && blockdelta_point_list_len(gone) == 2);
  CHECK("expiry reason", blockdelta_point_list_value(gone, 0, BLOCKDELTA_POINT_FIELD_EXPIRY_REASON, &v));
  EXPECT("expired by count", v == BLOCKDELTA_EXPIRY_REASON_COUNT);
  blockdelta_point_list_free(gone);
  uint8_t one;
  EXPECT("an expired point is gone",
         blockdelta_store_read_at(s, &ids[0], 0, &one, 1) == BLOCKDELTA_RESULT_REPLICA_NO_SUCH_POINT);
  if (check_point(s, &ids[2], copies[2]) || check_point(s, &ids[3], copies[3])) return 1;
  CHECK("store_stat", blockdelta_store_stat(s, BLOCKDELTA_STORE_STAT_ID_POINTS, &v));
  EXPECT("two points listed", v == 2);

  /* Rollback to point 3: a new generation, and the ranges to re-send. */
  uint8_t new_gen[16];
  uint64_t seq = 0;
  blockdelta_extent_list *resend = NULL;
  CHECK("rollback", blockdelta_store_rollback(s, &ids[2], new_gen, &seq, &resend));
  size_t n_resend = blockdelta_extent_list_len(resend);
  EXPECT("rollback extents", n_resend > 0 && n_resend <= 16);
  EXPECT("new generation", memcmp(new_gen, gen, 16) != 0 && seq == 3);
  blockdelta_extent ext[16];
  size_t copied = 0;
  CHECK("extent_list_copy", blockdelta_extent_list_copy(resend, 0, ext, 16, &copied));
  EXPECT("all extents copied", copied == n_resend);
  blockdelta_extent_list_free(resend);
  size_t discarded = 0;
  CHECK("discard_detached", blockdelta_store_discard_detached(s, &discarded));
  EXPECT("one point discarded", discarded == 1);

  /* The source rolls back too: it re-sends those ranges from point 3, under the new
   * generation, plus a new change; the result is stream 3->4, written to a file. */
  memcpy(disk, copies[2], DISK);
  write_disk(ext[0].offset, BLOCK, 200);
  len = encode(new_gen, 3, 4, ext, copied, disk, NULL);
  memcpy(copies[4], disk, DISK);
  snprintf(in1, sizeof in1, "%s/s34", tmp);
  EXPECT("write stream file 1", len > 0 && write_file(in1, wire, len) == 0);
  blockdelta_extent e5 = {200 * BLOCK, 16 * BLOCK, BLOCKDELTA_EXTENT_KIND_WRITE, 0};
  write_disk(e5.offset, e5.len, 201);
  len = encode(new_gen, 4, 5, &e5, 1, disk, NULL);
  memcpy(copies[5], disk, DISK);
  snprintf(in2, sizeof in2, "%s/s45", tmp);
  EXPECT("write stream file 2", len > 0 && write_file(in2, wire, len) == 0);

  /* Merge the two files into one and ingest that. */
  const char *inputs[2] = {in1, in2};
  uint64_t mfrom = 0, mto = 0, mbytes = 0;
  snprintf(merged, sizeof merged, "%s/merged", tmp);
  CHECK("merge", blockdelta_stream_merge_files(inputs, 2, (const uint8_t *)secret, strlen(secret), merged,
                                               (const uint8_t *)secret, strlen(secret),
                                               BLOCKDELTA_ENCODE_LZ4, 0, &mfrom, &mto, &mbytes));
  EXPECT("merged checkpoints", mfrom == 3 && mto == 5 && mbytes > 0 && mbytes <= MAX_STREAM);
  FILE *f = fopen(merged, "rb");
  EXPECT("open merged", f != NULL);
  size_t got = fread(wire, 1, MAX_STREAM, f);
  fclose(f);
  EXPECT("read merged", got == mbytes);
  blockdelta_point_id p5;
  CHECK("ingest the merged stream", ingest(s, wire, got, &p5));
  EXPECT("merged point", p5.sequence == 5 && memcmp(p5.generation, new_gen, 16) == 0);
  if (check_point(s, &p5, copies[5]) || check_point(s, &ids[2], copies[2])) return 1;
  /* The first input alone is stale now. */
  f = fopen(in1, "rb");
  got = fread(wire, 1, MAX_STREAM, f);
  fclose(f);
  r = ingest(s, wire, got, &untouched);
  if (r != BLOCKDELTA_RESULT_STREAM_ALREADY_APPLIED) return fail("stale merged input", r);

  /* Export, compared with the point. */
  snprintf(path, sizeof path, "%s/export.img", tmp);
  CHECK("export_file", blockdelta_store_export_file(s, &p5, path));
  f = fopen(path, "rb");
  EXPECT("open export", f != NULL);
  got = fread(readback, 1, DISK, f);
  fclose(f);
  EXPECT("export matches the point", got == DISK && memcmp(readback, copies[5], DISK) == 0);

  uint64_t scrubbed = 0, freed = 0;
  CHECK("scrub", blockdelta_store_scrub(s, &scrubbed));
  EXPECT("scrub verified data", scrubbed > 0);
  CHECK("compact", blockdelta_store_compact(s, &freed));
  CHECK("checkpoint", blockdelta_store_checkpoint(s));

  blockdelta_extent_list *changed = NULL;
  CHECK("changed_between", blockdelta_store_changed_between(s, &ids[2], &p5, &changed));
  EXPECT("changed ranges", blockdelta_extent_list_len(changed) > 0);
  blockdelta_extent_list_free(changed);

  /* A second handle on the same store is refused while this one lives. */
  blockdelta_store *again = NULL;
  r = blockdelta_store_open(dir, &again);
  if (r != BLOCKDELTA_RESULT_REPLICA_LOCKED) return fail("a second open must be LOCKED", r);
  EXPECT("no handle on failure", again == NULL);
  char msg[256];
  CHECK("store_last_error", blockdelta_store_last_error(s, msg, sizeof msg, NULL));
  blockdelta_store_free(s);

  /* Reopened, the points are there. */
  CHECK("store_open", blockdelta_store_open(dir, &again));
  CHECK("points after reopen", blockdelta_store_points(again, &list));
  EXPECT("two points after reopen", blockdelta_point_list_len(list) == 2);
  blockdelta_point_list_free(list);
  if (check_point(again, &p5, copies[5])) return 1;

  /* A stream cut at a third, suspended, the store closed and reopened, then resumed. */
  uint8_t lgen[16];
  uint64_t lseq = 0;
  bool present = false;
  CHECK("lineage", blockdelta_store_lineage(again, lgen, &lseq, &present));
  memcpy(disk, copies[5], DISK);
  blockdelta_extent cut_ext = {64 * BLOCK, 40 * BLOCK, BLOCKDELTA_EXTENT_KIND_WRITE, 0};
  write_disk(cut_ext.offset, cut_ext.len, 99);
  memcpy(copies[POINTS + 1], disk, DISK);
  len = encode(lgen, lseq, lseq + 1, &cut_ext, 1, disk, NULL);
  EXPECT("encode the stream to cut", len > 0);
  blockdelta_ingest *ing = NULL;
  uint64_t offset = 0, offset2 = 0;
  CHECK("ingest_begin", blockdelta_store_ingest_begin(again, (const uint8_t *)secret, strlen(secret), &ing));
  CHECK("push a third", blockdelta_ingest_push(ing, wire, len / 3));
  CHECK("suspend", blockdelta_ingest_suspend(ing, &offset));
  blockdelta_ingest_free(ing);
  EXPECT("resume offset within what was pushed", offset > 0 && offset <= len / 3);
  blockdelta_store_free(again);
  CHECK("store_open", blockdelta_store_open(dir, &again));
  blockdelta_point_id target;
  CHECK("pending_ingest", blockdelta_store_pending_ingest(again, &target, &offset2, &present));
  EXPECT("a resumable stream", present && offset2 == offset && target.sequence == lseq + 1);
  size_t header_len = 24 + (size_t)(wire[16] | wire[17] << 8 | wire[18] << 16 | (uint32_t)wire[19] << 24);
  uint8_t other_header[4096];
  memcpy(other_header, wire, header_len);
  other_header[header_len - 1] ^= 1; /* not this stream's header */
  r = blockdelta_store_resume_ingest(again, (const uint8_t *)secret, strlen(secret), other_header, header_len, &ing,
                                     &offset2);
  if (r != BLOCKDELTA_RESULT_REPLICA_RESUME_MISMATCH) return fail("another header must not resume", r);
  CHECK("resume_ingest", blockdelta_store_resume_ingest(again, (const uint8_t *)secret, strlen(secret), wire,
                                                        header_len, &ing, &offset2));
  EXPECT("resumes where it stopped", offset2 == offset);
  CHECK("push the rest", blockdelta_ingest_push(ing, wire + offset2, len - offset2));
  blockdelta_point_id resumed;
  CHECK("finish the resumed stream", blockdelta_ingest_finish(ing, &resumed));
  blockdelta_ingest_free(ing);
  EXPECT("resumed point", resumed.sequence == lseq + 1);
  if (check_point(again, &resumed, copies[POINTS + 1])) return 1;
  CHECK("pending after", blockdelta_store_pending_ingest(again, &target, &offset2, &present));
  EXPECT("nothing pending", !present);
  blockdelta_store_free(again);
  return 0;
}

/* Stores opened by URL: file:// works in every build; a scheme whose backend this library was
 * built without (the test libraries have no object-store feature) is a distinct error, and so
 * is an option a local directory does not take. */
static int urls(void) {
  char url[200];
  blockdelta_store *s = NULL;
  blockdelta_result r;
  snprintf(url, sizeof url, "file://%s/by-url", tmp);
  CHECK("store_create_url", blockdelta_store_create_url(url, NULL, NULL, 0, disk_id, &s));
  blockdelta_store_free(s);
  s = NULL;
  CHECK("store_open_url", blockdelta_store_open_url(url, NULL, NULL, 0, &s));
  blockdelta_store_free(s);
  s = NULL;
  const char *keys[] = {"part_size"}, *values[] = {"8388608"};
  r = blockdelta_store_open_url(url, keys, values, 1, &s);
  if (r != BLOCKDELTA_RESULT_REPLICA_INVALID_ARGUMENT) return fail("an option for a directory", r);
  /* A reader beside a writer: no lock taken, every change refused. */
  blockdelta_store *w = NULL, *ro = NULL;
  CHECK("store_open_url (writer)", blockdelta_store_open_url(url, NULL, NULL, 0, &w));
  CHECK("store_open_read_only_url", blockdelta_store_open_read_only_url(url, NULL, NULL, 0, &ro));
  blockdelta_ingest *ing = NULL;
  r = blockdelta_store_ingest_begin(ro, NULL, 0, &ing);
  if (r != BLOCKDELTA_RESULT_REPLICA_READ_ONLY) return fail("an ingest on a read-only store", r);
  EXPECT("no ingest on failure", ing == NULL);
  r = blockdelta_store_checkpoint(ro);
  if (r != BLOCKDELTA_RESULT_REPLICA_READ_ONLY) return fail("a checkpoint on a read-only store", r);
  blockdelta_store_free(ro);
  blockdelta_store_free(w);
  r = blockdelta_store_open_url("s3://bucket/prefix", keys, values, 1, &s);
  if (r != BLOCKDELTA_RESULT_REPLICA_UNSUPPORTED_SCHEME) return fail("s3 without the feature", r);
  r = blockdelta_store_create_url("az://container/prefix", NULL, NULL, 0, disk_id, &s);
  if (r != BLOCKDELTA_RESULT_REPLICA_UNSUPPORTED_SCHEME) return fail("az without the feature", r);
  r = blockdelta_store_open_url("ftp://host/x", NULL, NULL, 0, &s);
  if (r != BLOCKDELTA_RESULT_REPLICA_UNSUPPORTED_SCHEME) return fail("an unknown scheme", r);
  r = blockdelta_store_open_url(url, NULL, NULL, 1, &s);
  if (r != BLOCKDELTA_RESULT_NULL_PARAMETER) return fail("one option, NULL arrays", r);
  EXPECT("no handle on failure", s == NULL);
  char msg[256];
  blockdelta_last_error(msg, sizeof msg, NULL);
  return 0;
}

int main(void) {
  wire = malloc(MAX_STREAM);
  if (wire == NULL) return 1;
  snprintf(tmp, sizeof tmp, "/tmp/blockdelta-replica-XXXXXX");
  if (mkdtemp(tmp) == NULL) return 1;
  int rc = run();
  if (rc == 0) rc = urls();
  nftw(tmp, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
  free(wire);
  if (rc == 0) printf("replica.c: ingest, read-back, retention, rollback, merge, export, scrub, URLs: OK\n");
  return rc;
}
