#include "client/npz.h"

#include <cerrno>
#include <cstring>
#include <ctime>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace ps {
namespace {

constexpr uint64_t kZipLimit = 0xFFFFFFFFull;

struct CrcTable {
  uint32_t v[256];
  CrcTable() {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      v[i] = c;
    }
  }
};

void Put16(std::string* out, uint16_t v) {
  out->push_back(static_cast<char>(v & 0xff));
  out->push_back(static_cast<char>(v >> 8));
}

void Put32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

}  // namespace

uint32_t Crc32(absl::string_view data, uint32_t crc) {
  static const CrcTable* const table = new CrcTable();
  crc = ~crc;
  for (unsigned char b : data) crc = table->v[(crc ^ b) & 0xff] ^ (crc >> 8);
  return ~crc;
}

std::string NpyHeader(absl::Span<const uint64_t> shape) {
  std::string dims = absl::StrJoin(shape, ", ");
  if (shape.size() == 1) dims += ",";
  std::string dict = absl::StrCat("{'descr': '<f4', 'fortran_order': False, 'shape': (",
                                  dims, "), }");
  // Magic (6) + version (2) + length (2) + dict + padding + '\n', a multiple of 64.
  const size_t unpadded = 10 + dict.size() + 1;
  dict.append((64 - unpadded % 64) % 64, ' ');
  dict.push_back('\n');
  std::string out("\x93NUMPY\x01\x00", 8);
  Put16(&out, static_cast<uint16_t>(dict.size()));
  out += dict;
  return out;
}

absl::StatusOr<std::unique_ptr<NpzWriter>> NpzWriter::Create(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create ", path, ": ", std::strerror(errno)));
  }
  std::unique_ptr<NpzWriter> w(new NpzWriter(f, path));
  const std::time_t now = std::time(nullptr);
  struct tm tm;
  localtime_r(&now, &tm);
  w->dos_time_ = static_cast<uint16_t>((tm.tm_hour << 11) | (tm.tm_min << 5) | (tm.tm_sec / 2));
  w->dos_date_ = static_cast<uint16_t>(((tm.tm_year - 80) << 9) | ((tm.tm_mon + 1) << 5) |
                                       tm.tm_mday);
  return w;
}

NpzWriter::~NpzWriter() {
  if (file_ != nullptr) std::fclose(file_);
}

absl::Status NpzWriter::Write(absl::string_view bytes) {
  if (file_ == nullptr) return absl::FailedPreconditionError("npz writer is closed");
  if (!bytes.empty() && std::fwrite(bytes.data(), 1, bytes.size(), file_) != bytes.size()) {
    return absl::InternalError(absl::StrCat("writing ", path_, ": ", std::strerror(errno)));
  }
  offset_ += bytes.size();
  return absl::OkStatus();
}

absl::Status NpzWriter::Add(const std::string& name, absl::Span<const uint64_t> shape,
                            absl::Span<const float> values) {
  if (name.empty() || name.find('/') != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("npz entry name \"", name, "\" is invalid"));
  }
  uint64_t elements = 1;
  for (uint64_t d : shape) elements *= d;
  if (elements != values.size()) {
    return absl::InvalidArgumentError(absl::StrCat("npz entry ", name, ": shape (",
                                                   absl::StrJoin(shape, ", "), ") holds ",
                                                   elements, " values, got ", values.size()));
  }
  const std::string header = NpyHeader(shape);
  const absl::string_view data(reinterpret_cast<const char*>(values.data()),
                               values.size() * sizeof(float));
  const uint64_t size = header.size() + data.size();
  Entry e;
  e.name = name + ".npy";
  if (size >= kZipLimit || offset_ + size + 30 + e.name.size() >= kZipLimit) {
    return absl::OutOfRangeError(absl::StrCat(
        "npz entry ", name, ": the archive would exceed 4 GiB (zip64 is not supported)"));
  }
  e.crc = Crc32(data, Crc32(header));
  e.size = static_cast<uint32_t>(size);
  e.offset = static_cast<uint32_t>(offset_);
  std::string local;
  Put32(&local, 0x04034b50);  // Local file header.
  Put16(&local, 20);          // Version needed: 2.0.
  Put16(&local, 0);           // Flags.
  Put16(&local, 0);           // Method: STORED.
  Put16(&local, dos_time_);
  Put16(&local, dos_date_);
  Put32(&local, e.crc);
  Put32(&local, e.size);      // Compressed size.
  Put32(&local, e.size);      // Uncompressed size.
  Put16(&local, static_cast<uint16_t>(e.name.size()));
  Put16(&local, 0);           // Extra field length.
  local += e.name;
  if (absl::Status s = Write(local); !s.ok()) return s;
  if (absl::Status s = Write(header); !s.ok()) return s;
  if (absl::Status s = Write(data); !s.ok()) return s;
  entries_.push_back(std::move(e));
  return absl::OkStatus();
}

absl::Status NpzWriter::Close() {
  std::string dir;
  for (const Entry& e : entries_) {
    Put32(&dir, 0x02014b50);  // Central directory header.
    Put16(&dir, 20);          // Made by: 2.0.
    Put16(&dir, 20);          // Needed: 2.0.
    Put16(&dir, 0);
    Put16(&dir, 0);
    Put16(&dir, dos_time_);
    Put16(&dir, dos_date_);
    Put32(&dir, e.crc);
    Put32(&dir, e.size);
    Put32(&dir, e.size);
    Put16(&dir, static_cast<uint16_t>(e.name.size()));
    Put16(&dir, 0);  // Extra.
    Put16(&dir, 0);  // Comment.
    Put16(&dir, 0);  // Disk.
    Put16(&dir, 0);  // Internal attributes.
    Put32(&dir, 0);  // External attributes.
    Put32(&dir, e.offset);
    dir += e.name;
  }
  const uint64_t dir_offset = offset_;
  if (dir_offset + dir.size() >= kZipLimit || entries_.size() > 0xFFFF) {
    return absl::OutOfRangeError("the archive would exceed 4 GiB or 65535 entries");
  }
  std::string end;
  Put32(&end, 0x06054b50);  // End of central directory.
  Put16(&end, 0);
  Put16(&end, 0);
  Put16(&end, static_cast<uint16_t>(entries_.size()));
  Put16(&end, static_cast<uint16_t>(entries_.size()));
  Put32(&end, static_cast<uint32_t>(dir.size()));
  Put32(&end, static_cast<uint32_t>(dir_offset));
  Put16(&end, 0);  // Comment length.
  if (absl::Status s = Write(dir); !s.ok()) return s;
  if (absl::Status s = Write(end); !s.ok()) return s;
  const int rc = std::fclose(file_);
  file_ = nullptr;
  if (rc != 0) {
    return absl::InternalError(absl::StrCat("closing ", path_, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace ps
