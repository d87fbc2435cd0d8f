// Open MPI's handles are macros Swift cannot import (MPI_COMM_WORLD, MPI_FLOAT, MPI_IN_PLACE, ...):
// these inline getters hand them over (shared/DISTRIBUTED.md section 2).
#include <mpi.h>
static inline MPI_Comm bonsai_mpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Datatype bonsai_mpi_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype bonsai_mpi_double(void) { return MPI_DOUBLE; }
static inline MPI_Datatype bonsai_mpi_byte(void) { return MPI_BYTE; }
static inline MPI_Datatype bonsai_mpi_int(void) { return MPI_INT; }
static inline MPI_Op bonsai_mpi_sum(void) { return MPI_SUM; }
static inline void *bonsai_mpi_in_place(void) { return MPI_IN_PLACE; }
