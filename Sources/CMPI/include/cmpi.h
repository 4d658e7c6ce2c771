// MPI, loaded at run time. Building needs no MPI headers or library; a process started by an
// MPI launcher (mpirun, srun) dlopens Open MPI's libmpi.so.40 and reaches the handles that
// <mpi.h> spells as macros (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, …) through the symbols those
// macros name. A process started any other way never loads MPI.
#pragma once
#include <stddef.h>

/// 1: this process was not started by an MPI launcher (run alone). 0: MPI is up; rank and size
/// are set. -1: it was, but MPI could not be loaded or initialised; `err` says why.
int afm_init(int *rank, int *size, char *err, size_t errlen);
/// In-place sum over all ranks. 0 on success.
int afm_allreduce_sum_float(float *buf, size_t count);
/// Copies `count` bytes from `root` to every rank. 0 on success.
int afm_bcast(void *buf, size_t count, int root);
/// Point to point, for collecting results on one rank. 0 on success.
int afm_send(const void *buf, size_t count, int dest, int tag);
int afm_recv(void *buf, size_t count, int source, int tag);
int afm_barrier(void);
void afm_finalize(void);
void afm_abort(int code);
