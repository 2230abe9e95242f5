/* The checks the C test programs share: each failed check prints where and what, counts in
 * `failures`, and the program goes on (main returns failures != 0). */
#ifndef BLOCKDELTA_TEST_CHECK_H
#define BLOCKDELTA_TEST_CHECK_H

#include <stdio.h>

#include "blockdelta.h"

static int failures = 0;

#define CHECK(cond)                                                              \
  do {                                                                           \
    if (!(cond)) {                                                               \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      failures++;                                                                \
    }                                                                            \
  } while (0)

#define CHECK_RC(call, want)                                                          \
  do {                                                                                \
    blockdelta_result rc_ = (call);                                                   \
    if (rc_ != (want)) {                                                              \
      fprintf(stderr, "%s:%d: %s returned %s, wanted %s\n", __FILE__, __LINE__, #call, \
              blockdelta_result_name(rc_), blockdelta_result_name(want));            \
      failures++;                                                                     \
    }                                                                                 \
  } while (0)

#endif
