// See include/cmpi.h. Open MPI's handles are addresses of predefined objects: MPI_COMM_WORLD is
// &ompi_mpi_comm_world, MPI_FLOAT &ompi_mpi_float, MPI_SUM &ompi_mpi_op_sum; MPI_IN_PLACE is
// (void *)1. Only the calls used here are bound.
#define _GNU_SOURCE
#include "cmpi.h"
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

typedef void *handle;
static int (*p_init)(int *, char ***);
static int (*p_initialized)(int *);
static int (*p_finalize)(void);
static int (*p_rank)(handle, int *);
static int (*p_size)(handle, int *);
static int (*p_allreduce)(const void *, void *, int, handle, handle, handle);
static int (*p_bcast)(void *, int, handle, int, handle);
static int (*p_send)(const void *, int, handle, int, int, handle);
static int (*p_recv)(void *, int, handle, int, int, handle, void *);
static int (*p_barrier)(handle);
static int (*p_abort)(handle, int);
static handle comm_world, t_float, t_byte, op_sum;
static int up;

static int launched_by_mpi(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK") || getenv("PMI_SIZE");
}

int afm_init(int *rank, int *size, char *err, size_t errlen) {
    *rank = 0;
    *size = 1;
    if (up) goto ready;
    if (!launched_by_mpi()) return 1;
    void *lib = dlopen("libmpi.so.40", RTLD_NOW | RTLD_GLOBAL);  // GLOBAL: Open MPI's plugins need its symbols
    if (!lib) lib = dlopen("libmpi.so", RTLD_NOW | RTLD_GLOBAL);
    if (!lib) {
        snprintf(err, errlen, "started by an MPI launcher, but Open MPI's libmpi.so.40 cannot be loaded (%s); install openmpi-bin (make setup does)", dlerror());
        return -1;
    }
#define BIND(var, name)                                                                                            \
    if (!(*(void **)&var = dlsym(lib, name))) {                                                                   \
        snprintf(err, errlen, "the loaded libmpi has no '%s' (afusion needs Open MPI 4 or later; MPICH is not supported)", name); \
        return -1;                                                                                                 \
    }
    BIND(p_init, "MPI_Init") BIND(p_initialized, "MPI_Initialized") BIND(p_finalize, "MPI_Finalize")
    BIND(p_rank, "MPI_Comm_rank") BIND(p_size, "MPI_Comm_size") BIND(p_allreduce, "MPI_Allreduce")
    BIND(p_bcast, "MPI_Bcast") BIND(p_send, "MPI_Send") BIND(p_recv, "MPI_Recv") BIND(p_barrier, "MPI_Barrier")
    BIND(p_abort, "MPI_Abort")
    BIND(comm_world, "ompi_mpi_comm_world") BIND(t_float, "ompi_mpi_float")
    BIND(t_byte, "ompi_mpi_byte") BIND(op_sum, "ompi_mpi_op_sum")
#undef BIND
    int already = 0;
    p_initialized(&already);
    if (!already && p_init(NULL, NULL) != 0) {
        snprintf(err, errlen, "MPI_Init failed");
        return -1;
    }
    up = 1;
ready:
    p_rank(comm_world, rank);
    p_size(comm_world, size);
    return 0;
}

// Counts are ints in MPI: large buffers go in chunks.
#define CHUNKED(total, body)                                                     \
    for (size_t off = 0; off < (total);) {                                       \
        int n = (total) - off > (size_t)(INT_MAX / 8) ? INT_MAX / 8 : (int)((total) - off); \
        if (body) return -1;                                                     \
        off += (size_t)n;                                                        \
    }                                                                            \
    return 0;

int afm_allreduce_sum_float(float *buf, size_t count) {
    if (!up) return 0;
    CHUNKED(count, p_allreduce((void *)1, buf + off, n, t_float, op_sum, comm_world) != 0)
}

int afm_bcast(void *buf, size_t count, int root) {
    if (!up) return 0;
    CHUNKED(count, p_bcast((char *)buf + off, n, t_byte, root, comm_world) != 0)
}

int afm_send(const void *buf, size_t count, int dest, int tag) {
    if (!up) return -1;
    CHUNKED(count, p_send((const char *)buf + off, n, t_byte, dest, tag, comm_world) != 0)
}

int afm_recv(void *buf, size_t count, int source, int tag) {
    if (!up) return -1;
    CHUNKED(count, p_recv((char *)buf + off, n, t_byte, source, tag, comm_world, NULL) != 0)
}

int afm_barrier(void) { return up ? p_barrier(comm_world) : 0; }

void afm_finalize(void) {
    if (up) p_finalize();
    up = 0;
}

void afm_abort(int code) {
    if (up) p_abort(comm_world, code);
    exit(code);
}
