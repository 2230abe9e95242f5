/*
 * The encoder with threads, through the C ABI: blockdelta_encoder_set_threads(2), a 4 MiB disk
 * of text, zeros and random bytes encoded (lz4 + AES-256-GCM) with the read callback checked to
 * run only on the calling thread, applied through callbacks, compared byte for byte; then the
 * same with 1 thread gives a stream of the same length (the bytes differ only by the random
 * salt). The source reports a hole through the region callback: it is never read. Every
 * source callback runs on the calling thread. set_threads after the header, or with 0 threads,
 * is refused.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blockdelta.h"
#include "check.h"

/* A call that must succeed for the test to go on. */
#define CHECK_OK(call)                                                               \
  do {                                                                               \
    blockdelta_result r_ = (call);                                                   \
    if (r_ != BLOCKDELTA_RESULT_OK) {                                                \
      fprintf(stderr, "%s:%d: %s returned %s\n", __FILE__, __LINE__, #call,          \
              blockdelta_result_name(r_));                                           \
      return 1;                                                                      \
    }                                                                                \
  } while (0)

#define DISK_SIZE (4u * 1024u * 1024u)
#define MAX_STREAM (8u * 1024u * 1024u)

static uint8_t source[DISK_SIZE];
static uint8_t replica[DISK_SIZE];
static uint8_t stream_buf[MAX_STREAM];
static size_t stream_len;
static pthread_t caller;
static unsigned foreign_calls, hole_reads, hints;

/* The source's one hole, reported by the region callback: it must never be read. */
#define HOLE_START (1u << 20)
#define HOLE_END (3u << 19)

static int read_source(void *ctx, uint64_t offset, uint8_t *buf, size_t len) {
    (void)ctx;
    if (!pthread_equal(pthread_self(), caller)) foreign_calls++;
    if (offset < HOLE_END && offset + len > HOLE_START) hole_reads++;
    if (offset > DISK_SIZE || len > DISK_SIZE - offset) return 22;
    memcpy(buf, source + offset, len);
    return 0;
}

static int region(void *ctx, uint64_t offset, uint64_t end, bool *hole, uint64_t *len) {
    (void)ctx;
    if (!pthread_equal(pthread_self(), caller)) foreign_calls++;
    uint64_t stop;
    if (offset < HOLE_START) {
        *hole = false;
        stop = HOLE_START;
    } else if (offset < HOLE_END) {
        *hole = true;
        stop = HOLE_END;
    } else {
        *hole = false;
        stop = DISK_SIZE;
    }
    *len = (stop < end ? stop : end) - offset;
    return 0;
}

static void will_read(void *ctx, uint64_t offset, uint64_t len) {
    (void)ctx;
    (void)offset;
    (void)len;
    if (!pthread_equal(pthread_self(), caller)) foreign_calls++;
    hints++;
}

static int t_write(void *ctx, uint64_t offset, const uint8_t *buf, size_t len) {
    (void)ctx;
    if (offset > DISK_SIZE || len > DISK_SIZE - offset) return 22;
    memcpy(replica + offset, buf, len);
    return 0;
}

static int t_zero(void *ctx, uint64_t offset, uint64_t len) {
    (void)ctx;
    if (offset > DISK_SIZE || len > DISK_SIZE - offset) return 22;
    memset(replica + offset, 0, (size_t)len);
    return 0;
}

static int t_sync(void *ctx) {
    (void)ctx;
    return 0;
}

static const uint8_t disk_id[16] = "c-threads-disk-1";
static const uint8_t generation[16] = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2, 3, 4, 5, 6};
static const char secret[] = "c threads secret, 16+ bytes";

static int encode(uint32_t threads) {
    blockdelta_encoder *enc = NULL;
    stream_len = 0;
    CHECK_OK(blockdelta_encoder_new(disk_id, generation, 1, 2, DISK_SIZE, 4096, 0,
                                    BLOCKDELTA_ENCODE_LZ4 | BLOCKDELTA_ENCODE_ZERO_DETECTION,
                                    (const uint8_t *)secret, strlen(secret), read_source, NULL,
                                    &enc));
    CHECK_RC(blockdelta_encoder_set_threads(enc, 0), BLOCKDELTA_RESULT_INVALID_ARGUMENT);
    CHECK_OK(blockdelta_encoder_set_threads(enc, threads));
    CHECK_OK(blockdelta_encoder_set_source_hints(enc, region, will_read));
    size_t bound = blockdelta_encoder_bound(enc), n = 0;
    uint8_t *frame = malloc(bound);
    if (!frame) return 1;
    CHECK_OK(blockdelta_encoder_header(enc, frame, bound, &n));
    memcpy(stream_buf, frame, n);
    stream_len = n;
    CHECK_RC(blockdelta_encoder_set_threads(enc, 2), BLOCKDELTA_RESULT_STREAM_INVALID_STATE);
    const blockdelta_extent extents[] = {
        {.offset = 0, .len = 1500000},
        {.offset = 2u << 20, .len = 2u << 20},
    };
    CHECK_OK(blockdelta_encoder_set_extents(enc, extents, 2));
    for (;;) {
        CHECK_OK(blockdelta_encoder_next(enc, frame, bound, &n));
        if (n == 0) break;
        CHECK(stream_len + n <= MAX_STREAM);
        memcpy(stream_buf + stream_len, frame, n);
        stream_len += n;
    }
    CHECK_OK(blockdelta_encoder_finish(enc, frame, bound, &n));
    memcpy(stream_buf + stream_len, frame, n);
    stream_len += n;
    blockdelta_encoder_free(enc);
    free(frame);
    return 0;
}

static int apply(void) {
    blockdelta_applier *app = NULL;
    memset(replica, 0xEE, sizeof replica);
    CHECK_OK(blockdelta_applier_new(DISK_SIZE, 0, (const uint8_t *)secret, strlen(secret), t_write,
                                    t_zero, NULL, NULL, t_sync, NULL, &app));
    size_t consumed = 0;
    CHECK_OK(blockdelta_applier_push(app, stream_buf, stream_len, &consumed));
    CHECK(consumed == stream_len);
    CHECK_OK(blockdelta_applier_finish(app));
    blockdelta_applier_free(app);
    CHECK(memcmp(replica, source, 1500000) == 0);
    CHECK(memcmp(replica + (2u << 20), source + (2u << 20), 2u << 20) == 0);
    for (size_t i = 1500000; i < (2u << 20); i++) CHECK(replica[i] == 0xEE);
    return 0;
}

int main(void) {
    caller = pthread_self();
    const char *text = "threads: the same stream whatever their number. ";
    size_t tl = strlen(text);
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < DISK_SIZE; i++) {
        size_t block = i / 4096;
        if (block % 5 == 0 || (i >= HOLE_START && i < HOLE_END)) source[i] = 0;
        else if (block % 5 < 3) source[i] = (uint8_t)text[i % tl];
        else {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            source[i] = (uint8_t)x;
        }
    }
    if (encode(2) || apply()) return 1;
    size_t threaded = stream_len;
    CHECK(foreign_calls == 0);
    CHECK(hole_reads == 0);
    CHECK(hints > 0);
    if (encode(1) || apply()) return 1;
    CHECK(stream_len == threaded);
    if (failures) return 1;
    printf("stream_threads.c: ok\n");
    return 0;
}
