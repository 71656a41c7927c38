// GEMM GFLOP/s and model step times, CPU (OpenBLAS) against GPU (cuBLAS + our
// kernels), printed as one JSON object on stdout. Without a GPU it prints the CPU
// numbers, "gpu": null and the reason. Usage: compute_bench [--quick]
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "worker/compute/backend.h"
#include "worker/compute/openblas_gemm.h"
#include "worker/cuda/cuda_backend.h"
#include "worker/cuda/device.h"
#include "worker/data/dataset.h"
#include "worker/model/model.h"

namespace ps::cuda {
namespace {

using compute::Backend;
using compute::Buffer;
using compute::DType;

std::vector<float> Random(size_t n, uint64_t seed) {
  std::vector<float> v(n);
  uint64_t x = seed * 0x9e3779b97f4a7c15ULL + 3;
  for (float& f : v) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    f = static_cast<float>(static_cast<double>(x >> 40) / (1 << 23) - 1.0);
  }
  return v;
}

std::string Escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) >= 0x20) out += c;
  }
  return out;
}

// Seconds per call of `fn`: one warm-up call, then calls until `budget` seconds pass
// (at least 3). `sync` waits for the backend. Negative on error.
double TimePerCall(const std::function<bool()>& fn, double budget) {
  if (!fn()) return -1;
  const auto start = std::chrono::steady_clock::now();
  int calls = 0;
  double elapsed = 0;
  while (calls < 3 || elapsed < budget) {
    if (!fn()) return -1;
    ++calls;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  return elapsed / calls;
}

// GFLOP/s of an n x n x n GEMM on `be`, or -1 on error.
double GemmGflops(Backend& be, int64_t n, double budget) {
  Buffer a = be.Upload(Random(static_cast<size_t>(n * n), 1));
  Buffer b = be.Upload(Random(static_cast<size_t>(n * n), 2));
  Buffer c = be.Allocate(DType::kFloat32, n * n);
  const double t = TimePerCall(
      [&] {
        be.Gemm(false, false, n, n, n, 1.0f, a, b, 0.0f, &c);
        return be.Sync().ok();
      },
      budget);
  return t < 0 ? -1 : 2.0 * static_cast<double>(n) * n * n / t / 1e9;
}

data::Dataset DenseBatch(int64_t n, uint32_t features, uint32_t classes) {
  data::Dataset d;
  d.num_examples = n;
  d.num_features = features;
  d.num_classes = classes;
  d.dense = Random(static_cast<size_t>(n * features), 3);
  for (int64_t i = 0; i < n; ++i) d.labels.push_back(static_cast<int32_t>(i % classes));
  return d;
}

data::Dataset SparseBatch(int64_t n, uint32_t features, int nnz) {
  data::Dataset d;
  d.sparse = true;
  d.num_examples = n;
  d.num_features = features;
  d.num_classes = 2;
  d.row_offsets.push_back(0);
  uint64_t x = 7;
  for (int64_t i = 0; i < n; ++i) {
    for (int j = 0; j < nnz; ++j) {
      x = x * 6364136223846793005ULL + 1442695040888963407ULL;
      d.indices.push_back((x >> 20) % features);
      d.values.push_back(1.0f);
    }
    d.row_offsets.push_back(static_cast<int64_t>(d.indices.size()));
    d.labels.push_back(static_cast<int32_t>(i % 2));
  }
  return d;
}

struct StepCase {
  std::string name;
  model::ModelConfig config;
  data::Dataset batch;
};

// Milliseconds per ComputeGradients (upload, forward, backward, download), or -1.
double StepMs(Backend& be, const StepCase& c, double budget) {
  std::unique_ptr<model::Model> m;
  if (!model::CreateModel(c.config, &be, &m).ok()) return -1;
  std::vector<model::TableValues> params, grads;
  if (!m->PrepareParams(c.batch, &params).ok()) return -1;
  uint64_t seed = 10;
  for (auto& t : params) t.values = Random(t.values.size(), seed++);
  double loss = 0;
  const double t =
      TimePerCall([&] { return m->ComputeGradients(c.batch, params, &grads, &loss).ok(); }, budget);
  return t < 0 ? -1 : t * 1e3;
}

std::string Number(double v) {
  if (v < 0) return "null";
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.4g", v);
  return buf;
}

int Main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  const double budget = quick ? 0.05 : 0.5;
  std::unique_ptr<Backend> cpu = compute::CreateOpenBlasBackend();
  std::string why;
  std::unique_ptr<Backend> gpu;
  if (DeviceCount(&why) > 0) gpu = CreateCudaBackend(0, &why);

  std::string json = "{\"cpu\": \"" + Escape(cpu->name()) + "\", \"gpu\": ";
  json += gpu ? "\"" + Escape(gpu->name()) + "\"" : "null, \"gpu_skipped\": \"" + Escape(why) + "\"";

  json += ", \"gemm\": [";
  const std::vector<int64_t> sizes = quick ? std::vector<int64_t>{128, 512}
                                           : std::vector<int64_t>{256, 1024, 2048, 4096};
  for (size_t i = 0; i < sizes.size(); ++i) {
    const int64_t n = sizes[i];
    // The CPU gets the largest sizes only in the full run, and they are slow there.
    const double cpu_gflops = GemmGflops(*cpu, n, budget);
    const double gpu_gflops = gpu ? GemmGflops(*gpu, n, budget) : -1;
    json += (i ? ", " : "") + std::string("{\"m\": ") + std::to_string(n) +
            ", \"n\": " + std::to_string(n) + ", \"k\": " + std::to_string(n) +
            ", \"cpu_gflops\": " + Number(cpu_gflops) + ", \"gpu_gflops\": " + Number(gpu_gflops) +
            "}";
  }
  json += "], \"step_ms\": [";

  std::vector<StepCase> steps;
  model::ModelConfig softmax;
  softmax.kind = model::ModelKind::kSoftmax;
  softmax.num_features = 784;
  softmax.num_classes = 10;
  steps.push_back({"softmax 784x10, batch 128", softmax, DenseBatch(128, 784, 10)});
  model::ModelConfig mlp = softmax;
  mlp.kind = model::ModelKind::kMlp;
  mlp.hidden = {1024, 256};
  steps.push_back({"mlp 784-1024-256-10, batch 512", mlp, DenseBatch(512, 784, 10)});
  model::ModelConfig lr;
  lr.kind = model::ModelKind::kLogisticSparse;
  lr.num_features = 1000000;
  lr.num_classes = 2;
  steps.push_back({"logistic_sparse 1M features, batch 1024, 40 nnz", lr,
                   SparseBatch(1024, 1000000, 40)});
  for (size_t i = 0; i < steps.size(); ++i) {
    const double cpu_ms = StepMs(*cpu, steps[i], budget);
    const double gpu_ms = gpu ? StepMs(*gpu, steps[i], budget) : -1;
    json += (i ? ", " : "") + std::string("{\"model\": \"") + steps[i].name +
            "\", \"cpu_ms\": " + Number(cpu_ms) + ", \"gpu_ms\": " + Number(gpu_ms) + "}";
  }
  json += "]}";
  std::printf("%s\n", json.c_str());
  return 0;
}

}  // namespace
}  // namespace ps::cuda

int main(int argc, char** argv) { return ps::cuda::Main(argc, argv); }
