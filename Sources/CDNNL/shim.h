#ifndef BONSAI_CDNNL_SHIM_H
#define BONSAI_CDNNL_SHIM_H
#include <stdint.h>
#include <oneapi/dnnl/dnnl.h>
#endif
