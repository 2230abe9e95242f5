/*
 * The applier on several threads through the C ABI: a 4 MiB disk (text, random and zero runs)
 * encoded with lz4 + AES-256-GCM in 64 KiB records, applied with blockdelta_applier_set_threads
 * (app, 2) in pieces as from a socket. The replica must equal the source byte for byte, and
 * every callback must run on the thread that calls push or finish. Then set_threads is refused
 * after the first push, and a corrupted frame leaves exactly the frames before it applied.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

#define DISK_SIZE (4u * 1024u * 1024u)
#define RECORD (64u * 1024u)

static uint8_t *source;
static uint8_t *stream_buf;
static size_t stream_len;

struct target {
    uint8_t *disk;
    pthread_t owner;
    unsigned calls;
    unsigned off_thread;
};

static void note(struct target *t) {
    t->calls++;
    if (!pthread_equal(pthread_self(), t->owner)) t->off_thread++;
}

static int read_source(void *ctx, uint64_t offset, uint8_t *buf, size_t len) {
    (void)ctx;
    if (offset > DISK_SIZE || len > DISK_SIZE - offset) return 22;
    memcpy(buf, source + offset, len);
    return 0;
}

static int t_write(void *ctx, uint64_t offset, const uint8_t *buf, size_t len) {
    struct target *t = ctx;
    note(t);
    if (offset > DISK_SIZE || len > DISK_SIZE - offset) return 22;
    memcpy(t->disk + offset, buf, len);
    return 0;
}

static int t_zero(void *ctx, uint64_t offset, uint64_t len) {
    struct target *t = ctx;
    note(t);
    if (offset > DISK_SIZE || len > DISK_SIZE - offset) return 22;
    memset(t->disk + offset, 0, (size_t)len);
    return 0;
}

static int t_sync(void *ctx) {
    note(ctx);
    return 0;
}

static const uint8_t disk_id[16] = "c-parallel-disk1";
static const uint8_t generation[16] = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2, 3, 4, 5, 6};
static const char secret[] = "parallel apply c test secret";

static void make_source(void) {
    uint32_t x = 12345;
    static const char text[] = "replication keeps a second copy of every block. ";
    for (size_t i = 0; i < DISK_SIZE; i++) {
        switch ((i / 20000) % 3) {
        case 0:
            source[i] = (uint8_t)text[i % (sizeof text - 1)];
            break;
        case 1:
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            source[i] = (uint8_t)x;
            break;
        default:
            source[i] = 0;
        }
    }
}

static int encode(void) {
    blockdelta_encoder *enc = NULL;
    CHECK_RC(blockdelta_encoder_new(disk_id, generation, 41, 42, DISK_SIZE, 4096, RECORD,
                                    BLOCKDELTA_ENCODE_LZ4 | BLOCKDELTA_ENCODE_ZERO_DETECTION,
                                    (const uint8_t *)secret, strlen(secret), read_source, NULL,
                                    &enc),
             BLOCKDELTA_RESULT_OK);
    if (!enc) return 1;
    size_t bound = blockdelta_encoder_bound(enc), n = 0;
    const blockdelta_extent all = {.offset = 0, .len = DISK_SIZE};
    CHECK_RC(blockdelta_encoder_header(enc, stream_buf, bound, &n), BLOCKDELTA_RESULT_OK);
    stream_len = n;
    CHECK_RC(blockdelta_encoder_set_extents(enc, &all, 1), BLOCKDELTA_RESULT_OK);
    for (;;) {
        blockdelta_result r =
            blockdelta_encoder_next(enc, stream_buf + stream_len, bound, &n);
        CHECK_RC(r, BLOCKDELTA_RESULT_OK);
        if (r != BLOCKDELTA_RESULT_OK || n == 0) break;
        stream_len += n;
    }
    CHECK_RC(blockdelta_encoder_finish(enc, stream_buf + stream_len, bound, &n),
             BLOCKDELTA_RESULT_OK);
    stream_len += n;
    blockdelta_encoder_free(enc);
    return 0;
}

/* Applies `len` bytes of `buf` with `threads` threads, in pieces of `chunk` bytes. */
static blockdelta_result apply(const uint8_t *buf, size_t len, uint32_t threads, size_t chunk,
                               struct target *t) {
    blockdelta_applier *app = NULL;
    blockdelta_result r = blockdelta_applier_new(DISK_SIZE, 0, (const uint8_t *)secret,
                                                 strlen(secret), t_write, t_zero, NULL, NULL,
                                                 t_sync, t, &app);
    if (r != BLOCKDELTA_RESULT_OK) return r;
    CHECK_RC(blockdelta_applier_set_threads(app, threads), BLOCKDELTA_RESULT_OK);
    CHECK_RC(blockdelta_applier_expect(app, disk_id, generation, 41, true), BLOCKDELTA_RESULT_OK);
    size_t start = 0, avail = 0, consumed = 0;
    while (r == BLOCKDELTA_RESULT_OK && start < len) {
        avail = avail + chunk > len - start ? len - start : avail + chunk;
        r = blockdelta_applier_push(app, buf + start, avail, &consumed);
        if (r == BLOCKDELTA_RESULT_OK && start == 0) {
            /* The thread count is fixed once input came. */
            CHECK_RC(blockdelta_applier_set_threads(app, 4), BLOCKDELTA_RESULT_STREAM_INVALID_STATE);
        }
        if (consumed == 0 && start + avail == len) break;
        start += consumed;
        avail -= consumed;
    }
    if (r == BLOCKDELTA_RESULT_OK) r = blockdelta_applier_finish(app);
    if (r == BLOCKDELTA_RESULT_OK) {
        uint64_t to = 0;
        CHECK_RC(blockdelta_applier_header(app, NULL, NULL, NULL, &to, NULL), BLOCKDELTA_RESULT_OK);
        CHECK(to == 42);
    }
    blockdelta_applier_free(app);
    return r;
}

int main(void) {
    source = malloc(DISK_SIZE);
    stream_buf = malloc(2 * DISK_SIZE);
    uint8_t *one = malloc(DISK_SIZE), *two = malloc(DISK_SIZE);
    if (!source || !stream_buf || !one || !two) return 1;
    make_source();
    if (encode() || failures) return 1;

    /* Whole, and in pieces smaller and larger than a frame. */
    const size_t chunks[] = {stream_len, 1000, 100000};
    for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
        memset(two, 0xee, DISK_SIZE);
        struct target t = {.disk = two, .owner = pthread_self()};
        CHECK_RC(apply(stream_buf, stream_len, 2, chunks[i], &t), BLOCKDELTA_RESULT_OK);
        CHECK(memcmp(two, source, DISK_SIZE) == 0);
        CHECK(t.calls > 40);
        CHECK(t.off_thread == 0);
    }

    /* A flipped bit in the middle of the stream: one thread and two threads write the same
     * frames before it, and nothing of it or after it. */
    stream_buf[stream_len / 2] ^= 0x10;
    memset(one, 0xee, DISK_SIZE);
    memset(two, 0xee, DISK_SIZE);
    struct target t1 = {.disk = one, .owner = pthread_self()};
    struct target t2 = {.disk = two, .owner = pthread_self()};
    blockdelta_result r1 = apply(stream_buf, stream_len, 1, stream_len, &t1);
    blockdelta_result r2 = apply(stream_buf, stream_len, 2, 100000, &t2);
    CHECK(r1 != BLOCKDELTA_RESULT_OK);
    CHECK_RC(r2, r1);
    CHECK(t1.calls == t2.calls);
    CHECK(t2.off_thread == 0);
    CHECK(memcmp(one, two, DISK_SIZE) == 0);
    CHECK(memcmp(two, source, DISK_SIZE / 4) == 0);

    free(source);
    free(stream_buf);
    free(one);
    free(two);
    if (failures) fprintf(stderr, "parallel_apply.c: %d failures\n", failures);
    return failures != 0;
}
