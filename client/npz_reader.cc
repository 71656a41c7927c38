#include "client/npz_reader.h"

#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "client/npz.h"

namespace ps {
namespace {

uint32_t Get(const std::string& b, size_t at, int bytes) {
  uint32_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(b[at + i]);
  return v;
}

absl::StatusOr<NpyArray> ParseNpy(absl::string_view npy) {
  if (npy.size() < 10 || npy.substr(0, 8) != absl::string_view("\x93NUMPY\x01\x00", 8)) {
    return absl::DataLossError("bad npy magic");
  }
  const size_t hlen = static_cast<unsigned char>(npy[8]) | (static_cast<unsigned char>(npy[9]) << 8);
  if ((10 + hlen) % 64 != 0 || npy.size() < 10 + hlen) {
    return absl::DataLossError("bad npy header length");
  }
  const absl::string_view header = npy.substr(10, hlen);
  if (header.find("'descr': '<f4'") == absl::string_view::npos ||
      header.find("'fortran_order': False") == absl::string_view::npos) {
    return absl::DataLossError(absl::StrCat("unexpected npy header ", header));
  }
  const size_t open = header.find("'shape': (");
  const size_t close = header.find(')', open);
  if (open == absl::string_view::npos || close == absl::string_view::npos) {
    return absl::DataLossError("no shape");
  }
  NpyArray a;
  uint64_t n = 1;
  for (absl::string_view d : absl::StrSplit(header.substr(open + 10, close - open - 10), ',',
                                            absl::SkipWhitespace())) {
    uint64_t v = 0;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(d), &v)) {
      return absl::DataLossError(absl::StrCat("bad dimension ", d));
    }
    a.shape.push_back(v);
    n *= v;
  }
  const absl::string_view data = npy.substr(10 + hlen);
  if (data.size() != n * sizeof(float)) return absl::DataLossError("data size != shape");
  a.values.resize(n);
  std::memcpy(a.values.data(), data.data(), data.size());
  return a;
}

}  // namespace

absl::StatusOr<std::map<std::string, NpyArray>> ReadNpzForTest(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string b = ss.str();
  if (b.size() < 22) return absl::DataLossError("too short for a zip");
  const size_t eocd = b.size() - 22;
  if (Get(b, eocd, 4) != 0x06054b50) return absl::DataLossError("no end of central directory");
  const uint32_t entries = Get(b, eocd + 10, 2);
  size_t cd = Get(b, eocd + 16, 4);
  std::map<std::string, NpyArray> out;
  for (uint32_t i = 0; i < entries; ++i) {
    if (cd + 46 > b.size() || Get(b, cd, 4) != 0x02014b50) {
      return absl::DataLossError("bad central directory header");
    }
    const uint32_t crc = Get(b, cd + 16, 4), size = Get(b, cd + 20, 4);
    const uint32_t name_len = Get(b, cd + 28, 2), offset = Get(b, cd + 42, 4);
    const std::string name = b.substr(cd + 46, name_len);
    cd += 46 + name_len + Get(b, cd + 30, 2) + Get(b, cd + 32, 2);
    if (offset + 30 > b.size() || Get(b, offset, 4) != 0x04034b50 ||
        Get(b, offset + 8, 2) != 0 || Get(b, offset + 18, 4) != size ||
        Get(b, offset + 14, 4) != crc) {
      return absl::DataLossError(absl::StrCat("bad local header of ", name));
    }
    const size_t data = offset + 30 + Get(b, offset + 26, 2) + Get(b, offset + 28, 2);
    if (data + size > b.size()) return absl::DataLossError("entry past the end");
    const absl::string_view npy(b.data() + data, size);
    if (Crc32(npy) != crc) return absl::DataLossError(absl::StrCat("crc mismatch in ", name));
    absl::string_view stem = name;
    if (!absl::ConsumeSuffix(&stem, ".npy")) return absl::DataLossError("entry not .npy");
    absl::StatusOr<NpyArray> a = ParseNpy(npy);
    if (!a.ok()) return a.status();
    out[std::string(stem)] = *std::move(a);
  }
  return out;
}

}  // namespace ps
