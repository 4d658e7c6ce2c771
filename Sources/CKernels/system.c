// The few system calls Swift's Glibc module does not expose (they need _GNU_SOURCE).
#define _GNU_SOURCE
#include "ckernels.h"
#include <dlfcn.h>
#include <sched.h>

int afk_available_cpus(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0) return 0;
    return CPU_COUNT(&set);
}

const char *afk_library_path(const void *symbol) {
    Dl_info info;
    if (!symbol || dladdr(symbol, &info) == 0) return 0;
    return info.dli_fname;
}
