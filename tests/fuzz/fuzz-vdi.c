/* fuzz-vdi.c: libFuzzer target for the vdi driver (see format-target.h). */
#define FUZZ_DRIVER "vdi"
#include "format-target.h"
