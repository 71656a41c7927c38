#include "server/optimizer.h"

#include <cmath>
#include <cstring>

namespace ps {

int NumSlots(OptimizerKind kind) {
  switch (kind) {
    case OptimizerKind::kSgd:
      return 0;
    case OptimizerKind::kMomentum:
    case OptimizerKind::kAdagrad:
      return 1;
    case OptimizerKind::kAdam:
      return 2;
  }
  return 0;
}

float InitialSlotValue(const OptimizerConfig& config, int slot) {
  if (config.kind == OptimizerKind::kAdagrad && slot == 0) return config.initial_accumulator;
  return 0.0f;
}

namespace {

// The loops below are written for the vectoriser (the target is built with -O3 and
// -fno-math-errno, see BUILD): one kind per function, restrict-qualified arrays, the
// gradient loaded with memcpy so that any alignment is fine. Elementwise float math
// gives the same bits vectorised or not.

float GradAt(const unsigned char* __restrict grad, size_t i) {
  float g;
  std::memcpy(&g, grad + i * sizeof(float), sizeof(float));
  return g;
}

void Sgd(const unsigned char* __restrict grad, float* __restrict w, size_t n, float lr,
         float wd) {
  for (size_t i = 0; i < n; ++i) {
    const float g = GradAt(grad, i) + wd * w[i];
    w[i] -= lr * g;
  }
}

void Momentum(const unsigned char* __restrict grad, float* __restrict w, float* __restrict v,
              size_t n, float lr, float wd, float m, bool nesterov) {
  if (nesterov) {
    for (size_t i = 0; i < n; ++i) {
      const float g = GradAt(grad, i) + wd * w[i];
      const float vi = m * v[i] + g;
      v[i] = vi;
      w[i] -= lr * (g + m * vi);
    }
    return;
  }
  for (size_t i = 0; i < n; ++i) {
    const float g = GradAt(grad, i) + wd * w[i];
    const float vi = m * v[i] + g;
    v[i] = vi;
    w[i] -= lr * vi;
  }
}

void Adagrad(const unsigned char* __restrict grad, float* __restrict w, float* __restrict a,
             size_t n, float lr, float wd, float eps) {
  for (size_t i = 0; i < n; ++i) {
    const float g = GradAt(grad, i) + wd * w[i];
    const float ai = a[i] + g * g;
    a[i] = ai;
    w[i] -= lr * g / (std::sqrt(ai) + eps);
  }
}

void Adam(const unsigned char* __restrict grad, float* __restrict w, float* __restrict m1,
          float* __restrict m2, size_t n, float lr, float wd, float b1, float b2, float c1,
          float c2, float eps) {
  for (size_t i = 0; i < n; ++i) {
    const float g = GradAt(grad, i) + wd * w[i];
    const float m1i = b1 * m1[i] + (1.0f - b1) * g;
    const float m2i = b2 * m2[i] + (1.0f - b2) * g * g;
    m1[i] = m1i;
    m2[i] = m2i;
    const float mhat = m1i / c1;
    const float vhat = m2i / c2;
    w[i] -= lr * mhat / (std::sqrt(vhat) + eps);
  }
}

}  // namespace

void ApplyOptimizer(const OptimizerConfig& c, uint64_t step, const void* grad_bytes,
                    float* w, float* const* slots, size_t n) {
  const auto* grad = static_cast<const unsigned char*>(grad_bytes);
  const float lr = c.learning_rate;
  const float wd = c.weight_decay;
  switch (c.kind) {
    case OptimizerKind::kSgd:
      Sgd(grad, w, n, lr, wd);
      return;
    case OptimizerKind::kMomentum:
      Momentum(grad, w, slots[0], n, lr, wd, c.momentum, c.nesterov);
      return;
    case OptimizerKind::kAdagrad:
      Adagrad(grad, w, slots[0], n, lr, wd, c.epsilon > 0 ? c.epsilon : 1e-10f);
      return;
    case OptimizerKind::kAdam: {
      const float b1 = c.beta1 > 0 ? c.beta1 : 0.9f;
      const float b2 = c.beta2 > 0 ? c.beta2 : 0.999f;
      const double t = static_cast<double>(step == 0 ? 1 : step);
      const float c1 = static_cast<float>(1.0 - std::pow(static_cast<double>(b1), t));
      const float c2 = static_cast<float>(1.0 - std::pow(static_cast<double>(b2), t));
      Adam(grad, w, slots[0], slots[1], n, lr, wd, b1, b2, c1, c2,
           c.epsilon > 0 ? c.epsilon : 1e-8f);
      return;
    }
  }
}

namespace {

// Gradient terms as kTerm says, one loop per combination for the vectoriser.
template <GradTerm kTerm, bool kZero>
void AddTerms(const unsigned char* __restrict grad, float* __restrict dst, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    float g = GradAt(grad, i);
    if (kZero) g = std::isfinite(g) ? g : 0.0f;
    if (kTerm == GradTerm::kFirst) {
      dst[i] = g;
    } else if (kTerm == GradTerm::kFirstOfMean) {
      dst[i] = 0.0f + g;
    } else {
      dst[i] += g;
    }
  }
}

template <GradTerm kTerm>
void AddTermsOf(const unsigned char* grad, float* dst, size_t n, bool zero_nonfinite) {
  if (zero_nonfinite) {
    AddTerms<kTerm, true>(grad, dst, n);
  } else {
    AddTerms<kTerm, false>(grad, dst, n);
  }
}

}  // namespace

void AddGradient(GradTerm term, const void* grad, float* dst, size_t n, bool zero_nonfinite) {
  const auto* g = static_cast<const unsigned char*>(grad);
  switch (term) {
    case GradTerm::kFirst:
      AddTermsOf<GradTerm::kFirst>(g, dst, n, zero_nonfinite);
      return;
    case GradTerm::kFirstOfMean:
      AddTermsOf<GradTerm::kFirstOfMean>(g, dst, n, zero_nonfinite);
      return;
    case GradTerm::kNext:
      AddTermsOf<GradTerm::kNext>(g, dst, n, zero_nonfinite);
      return;
  }
}

void DivideBy(float* __restrict v, size_t n, float by) {
  for (size_t i = 0; i < n; ++i) v[i] /= by;
}

}  // namespace ps
