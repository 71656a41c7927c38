#include "worker/compute/openblas_gemm.h"

#include <cblas.h>

#include <cstdint>
#include <memory>

#include "absl/strings/str_cat.h"
#include "worker/compute/cpu_backend.h"

namespace ps::compute {

void OpenBlasGemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                  const float* a, const float* b, float beta, float* c) {
  // Row-major leading dimensions: the stored width of each matrix.
  const auto lda = static_cast<blasint>(trans_a ? m : k);
  const auto ldb = static_cast<blasint>(trans_b ? k : n);
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, static_cast<blasint>(m),
              static_cast<blasint>(n), static_cast<blasint>(k), alpha, a, lda, b, ldb, beta, c,
              static_cast<blasint>(n));
}

std::unique_ptr<Backend> CreateOpenBlasBackend() {
  return CreateCpuBackend(OpenBlasGemm, "cpu (openblas)");
}

absl::Status SetCpuGemmThreads(int threads) {
  if (threads < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("cpu gemm threads: must be at least 1, got ", threads));
  }
  openblas_set_num_threads(threads);
  return absl::OkStatus();
}

int CpuGemmThreads() { return openblas_get_num_threads(); }

}  // namespace ps::compute
