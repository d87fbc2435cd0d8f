#ifndef BONSAI_CDNNL_SHIM_H
#define BONSAI_CDNNL_SHIM_H
#include <stdint.h>
#include <oneapi/dnnl/dnnl.h>
#include <malloc.h>
// libgomp (oneDNN's threading runtime): thread counts are per calling thread.
void omp_set_num_threads(int);
int omp_get_max_threads(void);
#endif
