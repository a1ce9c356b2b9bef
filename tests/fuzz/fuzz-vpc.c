/* fuzz-vpc.c: libFuzzer target for the vpc (VHD) driver (see format-target.h). */
#define FUZZ_DRIVER "vpc"
#include "format-target.h"
