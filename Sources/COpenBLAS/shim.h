#ifndef BONSAI_COPENBLAS_SHIM_H
#define BONSAI_COPENBLAS_SHIM_H
#include <x86_64-linux-gnu/openblas-pthread/cblas.h>
#endif
