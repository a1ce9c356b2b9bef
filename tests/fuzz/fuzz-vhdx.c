/* fuzz-vhdx.c: libFuzzer target for the vhdx driver, log replay included (see format-target.h). */
#define FUZZ_DRIVER "vhdx"
#include "format-target.h"
