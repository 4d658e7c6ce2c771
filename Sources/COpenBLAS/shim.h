#ifndef AFUSION_COPENBLAS_SHIM_H
#define AFUSION_COPENBLAS_SHIM_H
#include <cblas.h>
#endif
