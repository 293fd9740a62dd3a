/* OpenMP calls that also compile without OpenMP (serial build). */
#ifndef SL_OMP_H
#define SL_OMP_H
#ifdef _OPENMP
#include <omp.h>
#define SL_OPENMP 1
#else
#define SL_OPENMP 0
static inline int omp_get_max_threads(void) { return 1; }
static inline int omp_get_thread_num(void) { return 0; }
#endif
#endif
