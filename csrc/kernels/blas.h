// vitc_blas.h: the one place vitc names BLAS symbols.
// The scipy-openblas32 wheel prefixes every symbol with `scipy_`; a system OpenBLAS does not.
// setup.py defines BLAS_SYMBOL_PREFIX (empty or scipy_) and every call goes through BLAS_FUNC.
#ifndef VITC_BLAS_H
#define VITC_BLAS_H

#include <cblas.h>

#ifndef BLAS_SYMBOL_PREFIX
#define BLAS_SYMBOL_PREFIX
#endif

#define VITC_CAT_(a, b) a##b
#define VITC_CAT(a, b) VITC_CAT_(a, b)
// BLAS_FUNC(cblas_sgemm) -> scipy_cblas_sgemm or cblas_sgemm
#define BLAS_FUNC(name) VITC_CAT(BLAS_SYMBOL_PREFIX, name)

// OpenBLAS extensions (not in the CBLAS standard), declared here so a system cblas.h
// without them still compiles.
void BLAS_FUNC(openblas_set_num_threads)(int num_threads);
int BLAS_FUNC(openblas_get_num_threads)(void);
char *BLAS_FUNC(openblas_get_config)(void);
char *BLAS_FUNC(openblas_get_corename)(void);

#endif  // VITC_BLAS_H
