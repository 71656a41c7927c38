// Server-side optimizers. Slots (momentum, accumulators, Adam moments) live beside the
// weights and are checkpointed with them.
//
// The gradient g given to a step is, per DESIGN.md: in SYNC the mean of the workers'
// pushes for that clock; in BOUNDED and ASYNC each push as it arrives. Weight decay is
// L2 as in torch.optim: g <- g + weight_decay * w before the update.
//
//   SGD       w -= lr * g
//   Momentum  v = m * v + g;  w -= lr * v            (Nesterov: w -= lr * (g + m * v))
//   Adagrad   a += g^2;       w -= lr * g / (sqrt(a) + eps)
//   Adam      m1 = b1 m1 + (1 - b1) g;  m2 = b2 m2 + (1 - b2) g^2;
//             w -= lr * (m1 / (1 - b1^t)) / (sqrt(m2 / (1 - b2^t)) + eps)
//
// Adam's t is the table's step count (1 for the first step), shared by all its
// elements and sparse rows, as in lazy Adam.
#ifndef PS_SERVER_OPTIMIZER_H_
#define PS_SERVER_OPTIMIZER_H_

#include <cstddef>
#include <cstdint>

namespace ps {

enum class OptimizerKind { kSgd, kMomentum, kAdagrad, kAdam };

struct OptimizerConfig {
  OptimizerKind kind = OptimizerKind::kSgd;
  float learning_rate = 0.01f;
  float weight_decay = 0.0f;
  float momentum = 0.0f;
  bool nesterov = false;
  float epsilon = 0.0f;  // 0 = the kind's default (Adagrad 1e-10, Adam 1e-8).
  float initial_accumulator = 0.0f;  // Adagrad.
  float beta1 = 0.0f;  // 0 = 0.9.
  float beta2 = 0.0f;  // 0 = 0.999.
};

// Number of float slots per weight the kind keeps (0, 1 or 2).
int NumSlots(OptimizerKind kind);

// Initial value of slot `i` (Adagrad's accumulator may start above 0).
float InitialSlotValue(const OptimizerConfig& config, int slot);

// One step over n weights. `grad` is n packed float32 at any alignment (a received
// message's bytes are applied where they lie); `slots` holds NumSlots(kind) arrays of n
// floats; `step` is the table's step count including this one (>= 1). Pure function of
// its inputs, so results are bitwise reproducible. The arrays must not overlap.
void ApplyOptimizer(const OptimizerConfig& config, uint64_t step, const void* grad,
                    float* weights, float* const* slots, size_t n);

// A term of a step's gradient, where several are summed first (a SYNC clock's
// workers, a key repeated in a sparse push).
enum class GradTerm {
  kFirst,        // dst = g
  kFirstOfMean,  // dst = 0 + g: a mean's sum starts from 0, as it always did (-0 -> +0)
  kNext,         // dst += g
};

// Adds the n packed float32 at `grad` (any alignment) into `dst` as `term` says; with
// `zero_nonfinite`, a NaN or infinite value counts as 0. Vectorised, same bits as the
// scalar loop. `dst` must not overlap `grad`.
void AddGradient(GradTerm term, const void* grad, float* dst, size_t n, bool zero_nonfinite);

// v[i] /= by: a SYNC clock's mean (divided, not multiplied by 1 / W, so that W = 3
// rounds as expected).
void DivideBy(float* v, size_t n, float by);

}  // namespace ps

#endif  // PS_SERVER_OPTIMIZER_H_
