#include "server/optimizer.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace ps {
namespace {

// Runs `steps` steps of one weight with the given gradients and returns the weights
// after each step.
std::vector<double> RunSteps(const OptimizerConfig& c, float w0, const std::vector<float>& grads) {
  float w = w0;
  float s0 = InitialSlotValue(c, 0), s1 = InitialSlotValue(c, 1);
  float* slots[2] = {&s0, &s1};
  std::vector<double> out;
  for (size_t t = 0; t < grads.size(); ++t) {
    ApplyOptimizer(c, t + 1, &grads[t], &w, slots, 1);
    out.push_back(w);
  }
  return out;
}

// Expected values below are worked by hand from the formulas in optimizer.h.
TEST(OptimizerTest, SgdWithWeightDecay) {
  OptimizerConfig c;
  c.kind = OptimizerKind::kSgd;
  c.learning_rate = 0.1f;
  c.weight_decay = 0.5f;
  // w=1, g=2: g'=2+0.5=2.5, w=1-0.25=0.75; g=2: g'=2+0.375=2.375, w=0.75-0.2375=0.5125.
  auto w = RunSteps(c, 1.0f, {2.0f, 2.0f});
  EXPECT_NEAR(w[0], 0.75, 1e-6);
  EXPECT_NEAR(w[1], 0.5125, 1e-6);
}

TEST(OptimizerTest, Momentum) {
  OptimizerConfig c;
  c.kind = OptimizerKind::kMomentum;
  c.learning_rate = 0.1f;
  c.momentum = 0.9f;
  // v=1, w=1-0.1=0.9; v=0.9+1=1.9, w=0.9-0.19=0.71; v=1.71+1=2.71, w=0.71-0.271=0.439.
  auto w = RunSteps(c, 1.0f, {1.0f, 1.0f, 1.0f});
  EXPECT_NEAR(w[0], 0.9, 1e-6);
  EXPECT_NEAR(w[1], 0.71, 1e-6);
  EXPECT_NEAR(w[2], 0.439, 1e-6);
  c.nesterov = true;
  // v=1, w=1-0.1*(1+0.9)=0.81; v=1.9, w=0.81-0.1*(1+1.71)=0.539.
  auto n = RunSteps(c, 1.0f, {1.0f, 1.0f});
  EXPECT_NEAR(n[0], 0.81, 1e-6);
  EXPECT_NEAR(n[1], 0.539, 1e-6);
}

TEST(OptimizerTest, Adagrad) {
  OptimizerConfig c;
  c.kind = OptimizerKind::kAdagrad;
  c.learning_rate = 0.5f;
  c.initial_accumulator = 0.0f;
  // a=4, w=0-0.5*2/2=-0.5; a=4+16=20, w=-0.5-0.5*4/sqrt(20).
  auto w = RunSteps(c, 0.0f, {2.0f, 4.0f});
  EXPECT_NEAR(w[0], -0.5, 1e-6);
  EXPECT_NEAR(w[1], -0.5 - 2.0 / std::sqrt(20.0), 1e-6);
  c.initial_accumulator = 5.0f;
  // a=9, w=-0.5*2/3.
  EXPECT_NEAR(RunSteps(c, 0.0f, {2.0f})[0], -1.0 / 3.0, 1e-6);
}

TEST(OptimizerTest, AdamWithBiasCorrection) {
  OptimizerConfig c;
  c.kind = OptimizerKind::kAdam;
  c.learning_rate = 0.01f;
  // Step 1: m1=0.1g, m2=0.001g^2; mhat=g, vhat=g^2, so w -= lr * g/(|g|+eps) = lr*sign.
  auto w = RunSteps(c, 1.0f, {3.0f, -1.0f});
  EXPECT_NEAR(w[0], 1.0 - 0.01, 1e-6);
  // Step 2: m1 = 0.9*0.3 + 0.1*(-1) = 0.17, m2 = 0.999*0.009 + 0.001*1 = 0.009991.
  const double mhat = 0.17 / (1 - 0.81);
  const double vhat = 0.009991 / (1 - 0.998001);
  EXPECT_NEAR(w[1], 0.99 - 0.01 * mhat / (std::sqrt(vhat) + 1e-8), 1e-6);
}

TEST(OptimizerTest, SlotCounts) {
  EXPECT_EQ(NumSlots(OptimizerKind::kSgd), 0);
  EXPECT_EQ(NumSlots(OptimizerKind::kMomentum), 1);
  EXPECT_EQ(NumSlots(OptimizerKind::kAdagrad), 1);
  EXPECT_EQ(NumSlots(OptimizerKind::kAdam), 2);
}

// The library is built vectorised (-O3); this file is not. Each kind over many lengths
// (remainder loops of every size), with the gradient at every misalignment, must give
// the bits of the one-element-at-a-time steps.
TEST(OptimizerTest, VectorisedAndMisalignedStepsMatchElementwiseSteps) {
  for (OptimizerKind kind : {OptimizerKind::kSgd, OptimizerKind::kMomentum,
                             OptimizerKind::kAdagrad, OptimizerKind::kAdam}) {
    for (bool nesterov : {false, true}) {
      OptimizerConfig c;
      c.kind = kind;
      c.learning_rate = 0.05f;
      c.weight_decay = 0.01f;
      c.momentum = 0.9f;
      c.nesterov = nesterov;
      c.initial_accumulator = 0.1f;
      for (size_t n : {size_t{1}, size_t{7}, size_t{16}, size_t{37}, size_t{1000}}) {
        std::vector<float> grad(n), w0(n);
        for (size_t i = 0; i < n; ++i) {
          grad[i] = std::sin(static_cast<float>(i) * 0.7f) * 3.0f;
          w0[i] = std::cos(static_cast<float>(i) * 0.3f);
        }
        for (size_t shift = 0; shift < sizeof(float); ++shift) {
          SCOPED_TRACE(testing::Message() << "kind " << static_cast<int>(kind) << " nesterov "
                                          << nesterov << " n " << n << " shift " << shift);
          std::string bytes(shift + n * sizeof(float), '\0');
          std::memcpy(&bytes[shift], grad.data(), n * sizeof(float));
          std::vector<float> w = w0, s0(n, InitialSlotValue(c, 0)), s1(n, InitialSlotValue(c, 1));
          std::vector<float> we = w0, e0 = s0, e1 = s1;
          for (uint64_t step = 1; step <= 3; ++step) {
            float* slots[2] = {s0.data(), s1.data()};
            ApplyOptimizer(c, step, bytes.data() + shift, w.data(), slots, n);
            for (size_t i = 0; i < n; ++i) {
              float* one[2] = {&e0[i], &e1[i]};
              ApplyOptimizer(c, step, &grad[i], &we[i], one, 1);
            }
          }
          ASSERT_EQ(std::memcmp(w.data(), we.data(), n * sizeof(float)), 0);
          ASSERT_EQ(std::memcmp(s0.data(), e0.data(), n * sizeof(float)), 0);
          ASSERT_EQ(std::memcmp(s1.data(), e1.data(), n * sizeof(float)), 0);
        }
      }
    }
  }
}

// Each term, at every alignment and length (vectorised bodies and their remainders),
// against the scalar expressions; -0 as a mean's first term becomes +0; under the ZERO
// policy NaN and infinities count as 0.
TEST(OptimizerTest, GradientTermsAndTheMeanMatchScalarMath) {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (size_t n : {size_t{1}, size_t{7}, size_t{16}, size_t{37}, size_t{1000}}) {
    std::vector<float> grad(n), base(n);
    for (size_t i = 0; i < n; ++i) {
      grad[i] = std::sin(static_cast<float>(i) * 0.9f) * 5.0f;
      base[i] = std::cos(static_cast<float>(i) * 0.4f);
    }
    grad[0] = -0.0f;
    if (n > 3) {
      grad[2] = inf;
      grad[3] = nan;
    }
    for (bool zero : {false, true}) {
      for (size_t shift = 0; shift < sizeof(float); ++shift) {
        SCOPED_TRACE(testing::Message() << "n " << n << " zero " << zero << " shift " << shift);
        std::string bytes(shift + n * sizeof(float), '\0');
        std::memcpy(&bytes[shift], grad.data(), n * sizeof(float));
        auto g = [&](size_t i) { return zero && !std::isfinite(grad[i]) ? 0.0f : grad[i]; };
        std::vector<float> first(n, 7.0f), mean(n, 7.0f), next = base;
        AddGradient(GradTerm::kFirst, bytes.data() + shift, first.data(), n, zero);
        AddGradient(GradTerm::kFirstOfMean, bytes.data() + shift, mean.data(), n, zero);
        AddGradient(GradTerm::kNext, bytes.data() + shift, next.data(), n, zero);
        for (size_t i = 0; i < n; ++i) {
          const float want_first = g(i), want_mean = 0.0f + g(i), want_next = base[i] + g(i);
          ASSERT_EQ(std::memcmp(&first[i], &want_first, sizeof(float)), 0) << i;
          ASSERT_EQ(std::memcmp(&mean[i], &want_mean, sizeof(float)), 0) << i;
          ASSERT_EQ(std::memcmp(&next[i], &want_next, sizeof(float)), 0) << i;
        }
        EXPECT_TRUE(std::signbit(first[0]));  // -0 as it came...
        EXPECT_FALSE(std::signbit(mean[0]));  // ...and +0 as a mean's first term.
        std::vector<float> divided = next;
        DivideBy(divided.data(), n, 3.0f);
        for (size_t i = 0; i < n; ++i) {
          const float want = next[i] / 3.0f;
          ASSERT_EQ(std::memcmp(&divided[i], &want, sizeof(float)), 0) << i;
        }
      }
    }
  }
}

}  // namespace
}  // namespace ps
