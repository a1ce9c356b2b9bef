/*
 * fuzz-vmdk.c: libFuzzer target for the vmdk driver's sparse extents
 * (monolithicSparse, streamOptimized; see format-target.h).  Only inputs
 * with the KDMV magic are opened: a text descriptor names extent files,
 * and the fuzzer must never open, let alone write, the host's files.
 */
#define FUZZ_DRIVER "vmdk"
#define FUZZ_REQUIRE_PREFIX "KDMV"
#include "format-target.h"
