/* Checksum resync through the C ABI: a source file and a replica file that differ in a few
 * blocks (one made all zeros, one in the short last block); both hashed with the sender's
 * salt; the replica's list crosses "the wire" authenticated and is decoded by the sender; the
 * plan names exactly the differing blocks; copying those ranges makes the replica identical
 * (hashed again: nothing differs). Tampered and unauthenticated lists are refused. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blockdelta.h"
#include "check.h"

#define BLOCK 4096u
#define DISK (256u * BLOCK + 1000u) /* a short last block */

static int write_file(const char *path, const uint8_t *data, size_t len) {
  FILE *f = fopen(path, "wb");
  if (!f) return -1;
  size_t n = fwrite(data, 1, len, f);
  return fclose(f) == 0 && n == len ? 0 : -1;
}

static blockdelta_hash_list *hash(const char *path, const uint8_t *salt) {
  blockdelta_hash_list *l = NULL;
  CHECK_RC(blockdelta_hash_list_compute_file(path, 0, BLOCK, 0, salt, &l), BLOCKDELTA_RESULT_OK);
  return l;
}

int main(void) {
  char dir[] = "/tmp/blockdelta-resync-c.XXXXXX";
  if (!mkdtemp(dir)) return 1;
  char src_path[128], rep_path[128];
  snprintf(src_path, sizeof src_path, "%s/source.img", dir);
  snprintf(rep_path, sizeof rep_path, "%s/replica.img", dir);

  uint8_t *src = malloc(DISK), *rep = malloc(DISK);
  if (!src || !rep) return 1;
  uint32_t x = 12345;
  for (size_t i = 0; i < DISK; i++) {
    x ^= x << 13, x ^= x >> 17, x ^= x << 5;
    src[i] = (uint8_t)x;
  }
  memset(src + 10 * BLOCK, 0, BLOCK); /* a zero block on both sides */
  memcpy(rep, src, DISK);
  /* The replica differs in blocks 3, 4 (adjacent: one extent), 100 (zeroed on the replica),
   * 10 (data on the replica where the source is zero) and the short last block. */
  rep[3 * BLOCK + 7] ^= 1;
  rep[4 * BLOCK + 4000] ^= 0x80;
  memset(rep + 100 * BLOCK, 0, BLOCK);
  rep[10 * BLOCK + 1] = 9;
  rep[DISK - 1] ^= 0xff;
  CHECK(write_file(src_path, src, DISK) == 0);
  CHECK(write_file(rep_path, rep, DISK) == 0);

  uint8_t salt[16];
  CHECK_RC(blockdelta_resync_random_salt(salt), BLOCKDELTA_RESULT_OK);
  const uint8_t secret[32] = "resync secret, 32 bytes long...";

  /* Replica side: hash, encode authenticated. */
  blockdelta_hash_list *theirs_local = hash(rep_path, salt);
  uint64_t disk_size = 0, data_blocks = 0, zero_blocks = 0;
  uint32_t block_size = 0;
  CHECK_RC(blockdelta_hash_list_info(theirs_local, &disk_size, &block_size, &data_blocks,
                                     &zero_blocks),
           BLOCKDELTA_RESULT_OK);
  CHECK(disk_size == DISK && block_size == BLOCK);
  CHECK(data_blocks + zero_blocks == 257 && zero_blocks == 1);
  size_t cap = blockdelta_hash_list_wire_len(theirs_local, true);
  CHECK(cap > 16 * data_blocks);
  uint8_t *wire = malloc(cap);
  size_t len = 0;
  CHECK_RC(blockdelta_hash_list_encode(theirs_local, secret, sizeof secret, wire, cap - 1, &len),
           BLOCKDELTA_RESULT_BUFFER_TOO_SMALL);
  CHECK_RC(blockdelta_hash_list_encode(theirs_local, secret, sizeof secret, wire, cap, &len),
           BLOCKDELTA_RESULT_OK);
  CHECK(len == cap);
  blockdelta_hash_list_free(theirs_local);

  /* Sender side: a tampered or unauthenticated list is refused; the real one decodes. */
  blockdelta_hash_list *theirs = NULL;
  wire[len / 2] ^= 1;
  CHECK(blockdelta_hash_list_decode(wire, len, secret, sizeof secret, &theirs) !=
        BLOCKDELTA_RESULT_OK);
  CHECK(theirs == NULL);
  wire[len / 2] ^= 1;
  CHECK(blockdelta_hash_list_decode(wire, len, NULL, 0, &theirs) != BLOCKDELTA_RESULT_OK);
  CHECK(theirs == NULL);
  CHECK_RC(blockdelta_hash_list_decode(wire, len, secret, sizeof secret, &theirs),
           BLOCKDELTA_RESULT_OK);
  free(wire);

  blockdelta_hash_list *ours = hash(src_path, salt);
  blockdelta_resync_plan *plan = NULL;
  CHECK_RC(blockdelta_resync_diff(theirs, ours, &plan), BLOCKDELTA_RESULT_OK);
  size_t n_extents = 0;
  uint64_t blocks = 0, bytes = 0, rsize = 0, ssize = 0;
  CHECK_RC(blockdelta_resync_plan_info(plan, &n_extents, &blocks, &bytes, &rsize, &ssize),
           BLOCKDELTA_RESULT_OK);
  CHECK(blocks == 5 && rsize == DISK && ssize == DISK);
  CHECK(n_extents == 4);
  blockdelta_extent ext[8];
  size_t got = 0;
  CHECK_RC(blockdelta_resync_plan_extents(plan, 0, ext, 8, &got), BLOCKDELTA_RESULT_OK);
  CHECK(got == n_extents);
  uint64_t want[4][2] = {{3 * BLOCK, 2 * BLOCK}, {10 * BLOCK, BLOCK}, {100 * BLOCK, BLOCK},
                         {256 * BLOCK, 1000}};
  uint64_t sum = 0;
  for (size_t i = 0; i < got && i < 4; i++) {
    CHECK(ext[i].offset == want[i][0] && ext[i].len == want[i][1]);
    sum += ext[i].len;
    /* Ship the range (what a delta stream of the plan does). */
    memcpy(rep + ext[i].offset, src + ext[i].offset, ext[i].len);
  }
  CHECK(sum == bytes);
  CHECK(memcmp(rep, src, DISK) == 0);
  CHECK(write_file(rep_path, rep, DISK) == 0);
  blockdelta_resync_plan_free(plan);
  blockdelta_hash_list_free(theirs);

  /* Hashed again, the replica matches the source: nothing left to ship. */
  blockdelta_hash_list *again = hash(rep_path, salt);
  CHECK_RC(blockdelta_resync_diff(again, ours, &plan), BLOCKDELTA_RESULT_OK);
  CHECK_RC(blockdelta_resync_plan_info(plan, &n_extents, &blocks, NULL, NULL, NULL),
           BLOCKDELTA_RESULT_OK);
  CHECK(n_extents == 0 && blocks == 0);
  blockdelta_resync_plan_free(plan);
  blockdelta_hash_list_free(again);

  /* A different salt is a mismatch, not a diff of everything. */
  uint8_t other[16];
  CHECK_RC(blockdelta_resync_random_salt(other), BLOCKDELTA_RESULT_OK);
  blockdelta_hash_list *salted = hash(src_path, other);
  plan = NULL;
  CHECK_RC(blockdelta_resync_diff(salted, ours, &plan), BLOCKDELTA_RESULT_RESYNC_LIST_MISMATCH);
  CHECK(plan == NULL);
  blockdelta_hash_list_free(salted);
  blockdelta_hash_list_free(ours);

  unlink(src_path);
  unlink(rep_path);
  rmdir(dir);
  free(src);
  free(rep);
  if (failures) {
    fprintf(stderr, "%d checks failed\n", failures);
    return 1;
  }
  printf("resync: ok\n");
  return 0;
}
