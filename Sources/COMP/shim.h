#ifndef BONSAI_COMP_SHIM_H
#define BONSAI_COMP_SHIM_H
#include <malloc.h>
// libgomp (GNU OpenMP): the thread pool that oneDNN's GEMMs and Bonsai's kernels share.
// Thread counts are per calling thread.
void omp_set_num_threads(int);
int omp_get_max_threads(void);
int omp_get_thread_num(void);
int omp_in_parallel(void);
// libgomp's entry point for `#pragma omp parallel`: runs fn(data) on num_threads threads of its pool.
void GOMP_parallel(void (*fn)(void *), void *data, unsigned num_threads, unsigned int flags);
#endif
