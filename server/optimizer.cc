#include "server/optimizer.h"

#include <cmath>

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

void ApplyOptimizer(const OptimizerConfig& c, uint64_t step, const float* grad,
                    float* w, float* const* slots, size_t n) {
  const float lr = c.learning_rate;
  const float wd = c.weight_decay;
  switch (c.kind) {
    case OptimizerKind::kSgd:
      for (size_t i = 0; i < n; ++i) {
        const float g = grad[i] + wd * w[i];
        w[i] -= lr * g;
      }
      return;
    case OptimizerKind::kMomentum: {
      float* v = slots[0];
      const float m = c.momentum;
      for (size_t i = 0; i < n; ++i) {
        const float g = grad[i] + wd * w[i];
        v[i] = m * v[i] + g;
        w[i] -= lr * (c.nesterov ? g + m * v[i] : v[i]);
      }
      return;
    }
    case OptimizerKind::kAdagrad: {
      float* a = slots[0];
      const float eps = c.epsilon > 0 ? c.epsilon : 1e-10f;
      for (size_t i = 0; i < n; ++i) {
        const float g = grad[i] + wd * w[i];
        a[i] += g * g;
        w[i] -= lr * g / (std::sqrt(a[i]) + eps);
      }
      return;
    }
    case OptimizerKind::kAdam: {
      float* m1 = slots[0];
      float* m2 = slots[1];
      const float b1 = c.beta1 > 0 ? c.beta1 : 0.9f;
      const float b2 = c.beta2 > 0 ? c.beta2 : 0.999f;
      const float eps = c.epsilon > 0 ? c.epsilon : 1e-8f;
      const double t = static_cast<double>(step == 0 ? 1 : step);
      const float c1 = static_cast<float>(1.0 - std::pow(static_cast<double>(b1), t));
      const float c2 = static_cast<float>(1.0 - std::pow(static_cast<double>(b2), t));
      for (size_t i = 0; i < n; ++i) {
        const float g = grad[i] + wd * w[i];
        m1[i] = b1 * m1[i] + (1.0f - b1) * g;
        m2[i] = b2 * m2[i] + (1.0f - b2) * g * g;
        const float mhat = m1[i] / c1;
        const float vhat = m2[i] / c2;
        w[i] -= lr * mhat / (std::sqrt(vhat) + eps);
      }
      return;
    }
  }
}

}  // namespace ps
