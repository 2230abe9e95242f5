/*
 * Delta stream through the C ABI: encode an in-memory disk with an explicit extent list
 * (lz4 + zero detection + AES-256-GCM), decode it with the decoder, apply it with the applier
 * into another buffer through callbacks, and compare the replica byte for byte. Then check that
 * a flipped bit and a wrong key are refused with their own codes and that nothing of the bad
 * frame reaches the target.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blockdelta.h"

#define DISK_SIZE (512u * 1024u)
#define MAX_STREAM (2u * 1024u * 1024u)

static uint8_t source[DISK_SIZE];
static uint8_t replica[DISK_SIZE];
static uint8_t expected[DISK_SIZE];
static uint8_t stream_buf[MAX_STREAM];
static size_t stream_len;

struct target {
    uint8_t *disk;
    size_t size;
    unsigned writes;
    unsigned syncs;
};

static int fail(const char *what, blockdelta_result r) {
    char msg[512];
    blockdelta_last_error(msg, sizeof msg, NULL);
    fprintf(stderr, "FAIL: %s: %s (%s)\n", what, blockdelta_result_name(r), msg);
    return 1;
}

static int read_source(void *ctx, uint64_t offset, uint8_t *buf, size_t len) {
    const uint8_t *disk = ctx;
    if (offset > DISK_SIZE || len > DISK_SIZE - offset) return 22; /* EINVAL */
    memcpy(buf, disk + offset, len);
    return 0;
}

static int t_write(void *ctx, uint64_t offset, const uint8_t *buf, size_t len) {
    struct target *t = ctx;
    if (offset > t->size || len > t->size - offset) return 22;
    memcpy(t->disk + offset, buf, len);
    t->writes++;
    return 0;
}

static int t_zero(void *ctx, uint64_t offset, uint64_t len) {
    struct target *t = ctx;
    if (offset > t->size || len > t->size - offset) return 22;
    memset(t->disk + offset, 0, (size_t)len);
    t->writes++;
    return 0;
}

static int t_sync(void *ctx) {
    struct target *t = ctx;
    t->syncs++;
    return 0;
}

static const uint8_t disk_id[16] = "c-abi-disk-00001";
static const uint8_t generation[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
static const char secret[] = "c test secret, 16+ bytes";

static int append(size_t n) {
    stream_len += n;
    return stream_len > MAX_STREAM;
}

static int encode(void) {
    blockdelta_encoder *enc = NULL;
    blockdelta_result r = blockdelta_encoder_new(
        disk_id, generation, 41, 42, DISK_SIZE, 4096, 65536,
        BLOCKDELTA_ENCODE_LZ4 | BLOCKDELTA_ENCODE_ZERO_DETECTION, (const uint8_t *)secret,
        strlen(secret), read_source, source, &enc);
    if (r != BLOCKDELTA_RESULT_OK) return fail("encoder_new", r);
    size_t bound = blockdelta_encoder_bound(enc);
    if (bound < 65536 || bound > 70000) {
        fprintf(stderr, "FAIL: bound %zu\n", bound);
        return 1;
    }
    uint8_t *frame = malloc(bound);
    size_t n = 0;
    if (!frame) return 1;

    /* Too small a buffer is refused, and nothing is written. */
    r = blockdelta_encoder_header(enc, frame, 10, &n);
    if (r != BLOCKDELTA_RESULT_BUFFER_TOO_SMALL) return fail("small buffer", r);

    r = blockdelta_encoder_header(enc, frame, bound, &n);
    if (r != BLOCKDELTA_RESULT_OK) return fail("encoder_header", r);
    memcpy(stream_buf + stream_len, frame, n);
    if (append(n)) return 1;

    const blockdelta_extent extents[] = {
        {.offset = 0, .len = 100000},      /* text, compresses */
        {.offset = 131072, .len = 65536},  /* zeros: a ZERO record */
        {.offset = 262144, .len = 70000},  /* random: kept raw */
    };
    const blockdelta_extent unsorted[] = {{.offset = 8192, .len = 1}, {.offset = 0, .len = 1}};
    r = blockdelta_encoder_set_extents(enc, unsorted, 2);
    if (r != BLOCKDELTA_RESULT_STREAM_EXTENT_OVERLAP) return fail("unsorted extents", r);
    r = blockdelta_encoder_set_extents(enc, extents, 3);
    if (r != BLOCKDELTA_RESULT_OK) return fail("set_extents", r);
    for (;;) {
        r = blockdelta_encoder_next(enc, frame, bound, &n);
        if (r != BLOCKDELTA_RESULT_OK) return fail("encoder_next", r);
        if (n == 0) break;
        memcpy(stream_buf + stream_len, frame, n);
        if (append(n)) return 1;
    }
    r = blockdelta_encoder_discard(enc, 400000, 8192, frame, bound, &n);
    if (r != BLOCKDELTA_RESULT_OK) return fail("encoder_discard", r);
    memcpy(stream_buf + stream_len, frame, n);
    if (append(n)) return 1;
    r = blockdelta_encoder_bookmark(enc, 1, 1700000000000000000ull, 2, (const uint8_t *)"c-test", 6,
                                    frame, bound, &n);
    if (r != BLOCKDELTA_RESULT_OK) return fail("encoder_bookmark", r);
    memcpy(stream_buf + stream_len, frame, n);
    if (append(n)) return 1;
    r = blockdelta_encoder_finish(enc, frame, bound, &n);
    if (r != BLOCKDELTA_RESULT_OK) return fail("encoder_finish", r);
    memcpy(stream_buf + stream_len, frame, n);
    if (append(n)) return 1;
    r = blockdelta_encoder_next(enc, frame, bound, &n);
    if (r != BLOCKDELTA_RESULT_STREAM_INVALID_STATE) return fail("next after finish", r);
    blockdelta_encoder_free(enc);
    blockdelta_encoder_free(NULL);
    free(frame);
    return 0;
}

/* Walks the stream with the decoder and checks the record kinds and the DATA bytes. */
static int decode(void) {
    blockdelta_decoder *dec = NULL;
    blockdelta_result r = blockdelta_decoder_new((const uint8_t *)secret, strlen(secret), &dec);
    if (r != BLOCKDELTA_RESULT_OK) return fail("decoder_new", r);
    r = blockdelta_decoder_expect(dec, disk_id, generation, 41, true);
    if (r != BLOCKDELTA_RESULT_OK) return fail("decoder_expect", r);
    size_t at = 0, consumed = 0;
    unsigned counts[9] = {0};
    blockdelta_record rec;
    /* A partial frame asks for more input. */
    r = blockdelta_decoder_next(dec, stream_buf, 30, &consumed, &rec);
    if (r != BLOCKDELTA_RESULT_OK || rec.kind != BLOCKDELTA_RECORD_NEED_MORE || consumed != 0)
        return fail("need more", r);
    for (;;) {
        r = blockdelta_decoder_next(dec, stream_buf + at, stream_len - at, &consumed, &rec);
        if (r != BLOCKDELTA_RESULT_OK) return fail("decoder_next", r);
        if (rec.kind >= 9) return 1;
        counts[rec.kind]++;
        at += consumed;
        if (rec.kind == BLOCKDELTA_RECORD_DATA &&
            memcmp(rec.data, source + rec.offset, rec.data_len) != 0) {
            fprintf(stderr, "FAIL: DATA at %llu differs\n", (unsigned long long)rec.offset);
            return 1;
        }
        if (rec.kind == BLOCKDELTA_RECORD_END) break;
    }
    if (at != stream_len) return 1;
    uint64_t from = 0, to = 0, size = 0;
    uint8_t id[16];
    r = blockdelta_decoder_header(dec, id, NULL, &from, &to, &size);
    if (r != BLOCKDELTA_RESULT_OK || from != 41 || to != 42 || size != DISK_SIZE ||
        memcmp(id, disk_id, 16) != 0)
        return fail("decoder_header", r);
    r = blockdelta_decoder_finish(dec);
    if (r != BLOCKDELTA_RESULT_OK) return fail("decoder_finish", r);
    /* 100000 bytes = 2 records, 65536 zeros = 1 ZERO, 70000 = 2 records. */
    if (counts[BLOCKDELTA_RECORD_HEADER] != 1 || counts[BLOCKDELTA_RECORD_DATA] != 4 ||
        counts[BLOCKDELTA_RECORD_ZERO] != 1 || counts[BLOCKDELTA_RECORD_DISCARD] != 1 ||
        counts[BLOCKDELTA_RECORD_BOOKMARK] != 1 || counts[BLOCKDELTA_RECORD_END] != 1) {
        fprintf(stderr, "FAIL: record counts data=%u zero=%u\n", counts[BLOCKDELTA_RECORD_DATA],
                counts[BLOCKDELTA_RECORD_ZERO]);
        return 1;
    }
    blockdelta_decoder_free(dec);
    return 0;
}

/* Applies `len` bytes of `buf` in pieces of `chunk` bytes, as from a socket. */
static blockdelta_result apply(const uint8_t *buf, size_t len, const char *key, size_t chunk,
                               struct target *t) {
    blockdelta_applier *app = NULL;
    /* The replica's size; 0: it may not grow. */
    blockdelta_result r = blockdelta_applier_new(DISK_SIZE, 0, (const uint8_t *)key, strlen(key),
                                                 t_write, t_zero, NULL, NULL, t_sync, t, &app);
    if (r != BLOCKDELTA_RESULT_OK) return r;
    r = blockdelta_applier_expect(app, disk_id, generation, 41, true);
    size_t start = 0, avail = 0, consumed = 0;
    while (r == BLOCKDELTA_RESULT_OK && start < len) {
        avail = avail + chunk > len - start ? len - start : avail + chunk;
        r = blockdelta_applier_push(app, buf + start, avail, &consumed);
        if (consumed == 0 && start + avail == len) break; /* the rest is an incomplete frame */
        start += consumed;
        avail -= consumed;
    }
    if (r == BLOCKDELTA_RESULT_OK) r = blockdelta_applier_finish(app);
    if (r == BLOCKDELTA_RESULT_OK) {
        /* What was applied: the sender commits exactly this to_seq. */
        uint64_t from = 0, to = 0, records = 0;
        uint8_t gen[16];
        r = blockdelta_applier_header(app, NULL, gen, &from, &to, NULL);
        if (r == BLOCKDELTA_RESULT_OK) r = blockdelta_applier_end(app, &records, NULL, NULL);
        if (r == BLOCKDELTA_RESULT_OK &&
            (from != 41 || to != 42 || records == 0 || memcmp(gen, generation, 16) != 0))
            r = BLOCKDELTA_RESULT_PANIC;
    }
    if (r != BLOCKDELTA_RESULT_OK) {
        char msg[512];
        size_t full = 0;
        blockdelta_applier_last_error(app, msg, sizeof msg, &full);
        if (full == 0) r = BLOCKDELTA_RESULT_PANIC; /* every failure must explain itself */
    }
    blockdelta_applier_free(app);
    return r;
}

int main(void) {
    /* Source: text, then zeros, then pseudo-random bytes. */
    const char *text = "blockdelta C ABI test: encode, decode, apply. ";
    size_t tl = strlen(text);
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < DISK_SIZE; i++) {
        if (i < 131072) source[i] = (uint8_t)text[i % tl];
        else if (i < 262144) source[i] = 0;
        else {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            source[i] = (uint8_t)x;
        }
    }
    /* The old replica: 0xEE everywhere. Expected: old bytes, with the extents copied from
     * the source and the discarded range zeroed (the NULL discard callback falls back to
     * write_zeroes). */
    memset(replica, 0xEE, sizeof replica);
    memcpy(expected, replica, sizeof expected);
    memcpy(expected, source, 100000);
    memset(expected + 131072, 0, 65536);
    memcpy(expected + 262144, source + 262144, 70000);
    memset(expected + 400000, 0, 8192);

    if (encode() || decode()) return 1;

    struct target t = {replica, DISK_SIZE, 0, 0};
    blockdelta_result r = apply(stream_buf, stream_len, secret, 7777, &t);
    if (r != BLOCKDELTA_RESULT_OK) return fail("apply", r);
    if (memcmp(replica, expected, DISK_SIZE) != 0) {
        fprintf(stderr, "FAIL: replica differs from the source\n");
        return 1;
    }
    if (t.syncs != 2) { /* BOOKMARK and END */
        fprintf(stderr, "FAIL: %u syncs\n", t.syncs);
        return 1;
    }

    /* A flipped bit in the last byte of the stream (END's tag): refused, no sync for END. */
    static uint8_t replica2[DISK_SIZE];
    memset(replica2, 0xEE, sizeof replica2);
    stream_buf[stream_len - 1] ^= 0x01;
    struct target t2 = {replica2, DISK_SIZE, 0, 0};
    r = apply(stream_buf, stream_len, secret, 1u << 20, &t2);
    stream_buf[stream_len - 1] ^= 0x01;
    if (r != BLOCKDELTA_RESULT_STREAM_CHECKSUM_MISMATCH) return fail("flipped bit", r);
    if (t2.syncs != 1) {
        fprintf(stderr, "FAIL: a rejected END was synced (%u syncs)\n", t2.syncs);
        return 1;
    }

    /* A wrong key: refused at the first record, before any write. */
    memset(replica2, 0xEE, sizeof replica2);
    struct target t3 = {replica2, DISK_SIZE, 0, 0};
    r = apply(stream_buf, stream_len, "wrong secret, 16+ bytes", 4096, &t3);
    if (r != BLOCKDELTA_RESULT_STREAM_AUTHENTICATION_FAILED) return fail("wrong key", r);
    if (t3.writes != 0) {
        fprintf(stderr, "FAIL: %u writes with a wrong key\n", t3.writes);
        return 1;
    }

    /* Truncated before END. */
    struct target t4 = {replica2, DISK_SIZE, 0, 0};
    r = apply(stream_buf, stream_len - 10, secret, 4096, &t4);
    if (r != BLOCKDELTA_RESULT_STREAM_TRUNCATED) return fail("truncated", r);

    printf("stream.c: ok\n");
    return 0;
}
