#include "worker/compute/backend.h"

#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

namespace ps::compute {
namespace {

const char* TypeName(DType t) { return t == DType::kFloat32 ? "float32" : "int32"; }

}  // namespace

Buffer::Buffer(Buffer&& other) noexcept
    : owner_(other.owner_), ptr_(other.ptr_), size_(other.size_), dtype_(other.dtype_) {
  other.owner_ = nullptr;
  other.ptr_ = nullptr;
  other.size_ = 0;
}

Buffer& Buffer::operator=(Buffer&& other) noexcept {
  if (this != &other) {
    Reset();
    owner_ = other.owner_;
    ptr_ = other.ptr_;
    size_ = other.size_;
    dtype_ = other.dtype_;
    other.owner_ = nullptr;
    other.ptr_ = nullptr;
    other.size_ = 0;
  }
  return *this;
}

void Buffer::Reset() {
  if (owner_ != nullptr && ptr_ != nullptr) owner_->FreeImpl(ptr_);
  owner_ = nullptr;
  ptr_ = nullptr;
  size_ = 0;
}

void Backend::SetError(ComputeStatus status) {
  if (error_.ok()) error_ = std::move(status);
}

bool Backend::Check(const char* op, const char* what, const Buffer& buf, DType dtype,
                    int64_t n) {
  std::string problem;
  if (buf.owner() != this) {
    problem = buf.owner() == nullptr ? "is an empty buffer" : "belongs to another backend";
  } else if (buf.dtype() != dtype) {
    problem = std::string("is ") + TypeName(buf.dtype()) + ", needs " + TypeName(dtype);
  } else if (buf.size() < n) {
    problem = "has " + std::to_string(buf.size()) + " elements, needs " + std::to_string(n);
  } else {
    return true;
  }
  SetError(ComputeStatus::InvalidArgument(std::string(op) + ": " + what + " " + problem));
  return false;
}

bool Backend::CheckDims(const char* op, std::initializer_list<int64_t> dims) {
  for (int64_t d : dims) {
    if (d < 0) {
      SetError(ComputeStatus::InvalidArgument(std::string(op) + ": negative dimension " +
                                              std::to_string(d)));
      return false;
    }
  }
  return true;
}

Buffer Backend::Allocate(DType dtype, int64_t n) {
  if (has_error() || !CheckDims("Allocate", {n})) return Buffer();
  if (n == 0) return Buffer(this, nullptr, 0, dtype);
  void* ptr = AllocateImpl(n * 4);
  if (ptr == nullptr) {
    SetError(ComputeStatus::ResourceExhausted("Allocate: cannot allocate " +
                                              std::to_string(n * 4) + " bytes on " + name()));
    return Buffer();
  }
  return Buffer(this, ptr, n, dtype);
}

void Backend::CopyIn(const void* host, int64_t n, DType dtype, Buffer* dst) {
  if (has_error() || !CheckDims("CopyToDevice", {n}) ||
      !Check("CopyToDevice", "dst", *dst, dtype, n) || n == 0) {
    return;
  }
  CopyToDeviceImpl(host, n * 4, dst->raw());
}

void Backend::CopyToDevice(const float* host, int64_t n, Buffer* dst) {
  CopyIn(host, n, DType::kFloat32, dst);
}

void Backend::CopyToDevice(const int32_t* host, int64_t n, Buffer* dst) {
  CopyIn(host, n, DType::kInt32, dst);
}

ComputeStatus Backend::CopyOut(const Buffer& src, int64_t n, DType dtype, void* host) {
  if (!has_error() && CheckDims("CopyToHost", {n}) &&
      Check("CopyToHost", "src", src, dtype, n)) {
    if (n > 0) CopyToHostImpl(src.raw(), n * 4, host);
  }
  return Sync();
}

ComputeStatus Backend::CopyToHost(const Buffer& src, int64_t n, float* host) {
  return CopyOut(src, n, DType::kFloat32, host);
}

ComputeStatus Backend::CopyToHost(const Buffer& src, int64_t n, int32_t* host) {
  return CopyOut(src, n, DType::kInt32, host);
}

ComputeStatus Backend::Sync() {
  if (!has_error()) SyncImpl();
  ComputeStatus out = std::move(error_);
  error_ = ComputeStatus();
  return out;
}

Buffer Backend::Upload(const std::vector<float>& values) {
  const auto n = static_cast<int64_t>(values.size());
  Buffer b = Allocate(DType::kFloat32, n);
  CopyToDevice(values.data(), n, &b);
  return b;
}

Buffer Backend::Upload(const std::vector<int32_t>& values) {
  const auto n = static_cast<int64_t>(values.size());
  Buffer b = Allocate(DType::kInt32, n);
  CopyToDevice(values.data(), n, &b);
  return b;
}

ComputeStatus Backend::Download(const Buffer& src, std::vector<float>* out) {
  out->resize(static_cast<size_t>(src.size()));
  return CopyToHost(src, src.size(), out->data());
}

void Backend::Gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                   const Buffer& a, const Buffer& b, float beta, Buffer* c) {
  constexpr auto kF = DType::kFloat32;
  if (has_error() || !CheckDims("Gemm", {m, n, k}) || !Check("Gemm", "A", a, kF, m * k) ||
      !Check("Gemm", "B", b, kF, k * n) || !Check("Gemm", "C", *c, kF, m * n)) {
    return;
  }
  if (m * n == 0) return;
  if (m > INT32_MAX || n > INT32_MAX || k > INT32_MAX) {
    SetError(ComputeStatus::InvalidArgument("Gemm: a dimension exceeds 2^31 - 1"));
    return;
  }
  if (&a == c || &b == c || (c->raw() == a.raw() || c->raw() == b.raw())) {
    SetError(ComputeStatus::InvalidArgument("Gemm: C aliases A or B"));
    return;
  }
  if (k == 0) {
    // op(A) * op(B) is all zeros: C = beta * C (not read when beta == 0).
    if (beta == 0.0f) {
      FillImpl(m * n, 0.0f, static_cast<float*>(c->raw()));
    } else {
      ScaleImpl(m * n, beta, static_cast<float*>(c->raw()));
    }
    return;
  }
  GemmImpl(trans_a, trans_b, m, n, k, alpha, static_cast<const float*>(a.raw()),
           static_cast<const float*>(b.raw()), beta, static_cast<float*>(c->raw()));
}

void Backend::AddBias(int64_t m, int64_t n, const Buffer& bias, Buffer* y) {
  constexpr auto kF = DType::kFloat32;
  if (has_error() || !CheckDims("AddBias", {m, n}) || !Check("AddBias", "bias", bias, kF, n) ||
      !Check("AddBias", "Y", *y, kF, m * n) || m * n == 0) {
    return;
  }
  AddBiasImpl(m, n, static_cast<const float*>(bias.raw()), static_cast<float*>(y->raw()));
}

void Backend::ColumnSums(int64_t m, int64_t n, float alpha, const Buffer& x, float beta,
                         Buffer* out) {
  constexpr auto kF = DType::kFloat32;
  if (has_error() || !CheckDims("ColumnSums", {m, n}) ||
      !Check("ColumnSums", "X", x, kF, m * n) || !Check("ColumnSums", "out", *out, kF, n) ||
      n == 0) {
    return;
  }
  ColumnSumsImpl(m, n, alpha, static_cast<const float*>(x.raw()), beta,
                 static_cast<float*>(out->raw()));
}

void Backend::Relu(int64_t n, const Buffer& x, Buffer* y) {
  constexpr auto kF = DType::kFloat32;
  if (has_error() || !CheckDims("Relu", {n}) || !Check("Relu", "x", x, kF, n) ||
      !Check("Relu", "y", *y, kF, n) || n == 0) {
    return;
  }
  ReluImpl(n, static_cast<const float*>(x.raw()), static_cast<float*>(y->raw()));
}

void Backend::ReluBackward(int64_t n, const Buffer& y, const Buffer& dy, Buffer* dx) {
  constexpr auto kF = DType::kFloat32;
  if (has_error() || !CheckDims("ReluBackward", {n}) ||
      !Check("ReluBackward", "y", y, kF, n) || !Check("ReluBackward", "dy", dy, kF, n) ||
      !Check("ReluBackward", "dx", *dx, kF, n) || n == 0) {
    return;
  }
  ReluBackwardImpl(n, static_cast<const float*>(y.raw()), static_cast<const float*>(dy.raw()),
                   static_cast<float*>(dx->raw()));
}

void Backend::Axpy(int64_t n, float alpha, const Buffer& x, Buffer* y) {
  constexpr auto kF = DType::kFloat32;
  if (has_error() || !CheckDims("Axpy", {n}) || !Check("Axpy", "x", x, kF, n) ||
      !Check("Axpy", "y", *y, kF, n) || n == 0) {
    return;
  }
  AxpyImpl(n, alpha, static_cast<const float*>(x.raw()), static_cast<float*>(y->raw()));
}

void Backend::Scale(int64_t n, float alpha, Buffer* x) {
  if (has_error() || !CheckDims("Scale", {n}) ||
      !Check("Scale", "x", *x, DType::kFloat32, n) || n == 0) {
    return;
  }
  ScaleImpl(n, alpha, static_cast<float*>(x->raw()));
}

void Backend::Fill(int64_t n, float value, Buffer* x) {
  if (has_error() || !CheckDims("Fill", {n}) ||
      !Check("Fill", "x", *x, DType::kFloat32, n) || n == 0) {
    return;
  }
  FillImpl(n, value, static_cast<float*>(x->raw()));
}

void Backend::SoftmaxCrossEntropy(int64_t m, int64_t c, const Buffer& logits,
                                  const Buffer& labels, float grad_scale, Buffer* loss,
                                  Buffer* dlogits) {
  constexpr auto kF = DType::kFloat32;
  const char* op = "SoftmaxCrossEntropy";
  if (has_error() || !CheckDims(op, {m, c}) || !Check(op, "logits", logits, kF, m * c) ||
      !Check(op, "labels", labels, DType::kInt32, m) || !Check(op, "loss", *loss, kF, m) ||
      (dlogits != nullptr && !Check(op, "dlogits", *dlogits, kF, m * c)) || m == 0) {
    return;
  }
  if (c == 0) {
    SetError(ComputeStatus::InvalidArgument(std::string(op) + ": no classes"));
    return;
  }
  SoftmaxCrossEntropyImpl(m, c, static_cast<const float*>(logits.raw()),
                          static_cast<const int32_t*>(labels.raw()), grad_scale,
                          static_cast<float*>(loss->raw()),
                          dlogits == nullptr ? nullptr : static_cast<float*>(dlogits->raw()));
}

void Backend::SigmoidCrossEntropy(int64_t m, const Buffer& logits, const Buffer& labels,
                                  float grad_scale, Buffer* loss, Buffer* dlogits,
                                  Buffer* prob) {
  constexpr auto kF = DType::kFloat32;
  const char* op = "SigmoidCrossEntropy";
  if (has_error() || !CheckDims(op, {m}) || !Check(op, "logits", logits, kF, m) ||
      !Check(op, "labels", labels, DType::kInt32, m) || !Check(op, "loss", *loss, kF, m) ||
      (dlogits != nullptr && !Check(op, "dlogits", *dlogits, kF, m)) ||
      (prob != nullptr && !Check(op, "prob", *prob, kF, m)) || m == 0) {
    return;
  }
  SigmoidCrossEntropyImpl(m, static_cast<const float*>(logits.raw()),
                          static_cast<const int32_t*>(labels.raw()), grad_scale,
                          static_cast<float*>(loss->raw()),
                          dlogits == nullptr ? nullptr : static_cast<float*>(dlogits->raw()),
                          prob == nullptr ? nullptr : static_cast<float*>(prob->raw()));
}

void Backend::CsrMatMul(int64_t rows, int64_t cols, int64_t dim, int64_t nnz,
                        const Buffer& offsets, const Buffer& indices, const Buffer& values,
                        float alpha, const Buffer& b, float beta, Buffer* c) {
  constexpr auto kF = DType::kFloat32;
  constexpr auto kI = DType::kInt32;
  const char* op = "CsrMatMul";
  if (has_error() || !CheckDims(op, {rows, cols, dim, nnz}) ||
      !Check(op, "offsets", offsets, kI, rows + 1) || !Check(op, "indices", indices, kI, nnz) ||
      !Check(op, "values", values, kF, nnz) || !Check(op, "B", b, kF, cols * dim) ||
      !Check(op, "C", *c, kF, rows * dim) || rows * dim == 0) {
    return;
  }
  if (nnz > INT32_MAX) {
    SetError(ComputeStatus::InvalidArgument(std::string(op) + ": nnz " + std::to_string(nnz) +
                                            " does not fit int32 offsets"));
    return;
  }
  CsrMatMulImpl(rows, cols, dim, nnz, static_cast<const int32_t*>(offsets.raw()),
                static_cast<const int32_t*>(indices.raw()),
                static_cast<const float*>(values.raw()), alpha,
                static_cast<const float*>(b.raw()), beta, static_cast<float*>(c->raw()));
}

}  // namespace ps::compute
