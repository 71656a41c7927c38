#include "worker/data/readers.h"

#include "common/data_paths.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "common/status.h"

namespace ps::data {
namespace {

constexpr size_t kChunk = 1 << 20;
// A longer line is certainly not a text example (e.g. a binary file read as CSV).
constexpr size_t kMaxLineBytes = size_t{64} << 20;

// An open gzip or plain file; closes on destruction. Not thread-safe.
class GzFile {
 public:
  static absl::StatusOr<GzFile> Open(const std::string& path) {
    errno = 0;
    gzFile f = gzopen(path.c_str(), "rb");
    if (f == nullptr) {
      return absl::NotFoundError(absl::StrCat(
          path, ": cannot open: ", errno != 0 ? std::strerror(errno) : "out of memory"));
    }
    gzbuffer(f, 1 << 17);
    return GzFile(f, path);
  }

  GzFile(GzFile&& other) noexcept : file_(other.file_), path_(std::move(other.path_)) {
    other.file_ = nullptr;
  }
  GzFile& operator=(GzFile&&) = delete;
  GzFile(const GzFile&) = delete;
  ~GzFile() {
    if (file_ != nullptr) gzclose(file_);
  }

  // Reads up to `n` bytes; returns how many (0 at the end), or DATA_LOSS.
  absl::StatusOr<size_t> Read(char* buf, size_t n) {
    const int got = gzread(file_, buf, static_cast<unsigned>(n));
    if (got < 0) {
      int code = 0;
      const char* msg = gzerror(file_, &code);
      return absl::DataLossError(absl::StrCat(path_, ": read failed: ", msg));
    }
    if (got == 0) {
      // zlib reports a truncated gzip stream as the end of the data, leaving
      // Z_BUF_ERROR ("unexpected end of file") to gzerror().
      int code = Z_OK;
      const char* msg = gzerror(file_, &code);
      if (code != Z_OK) {
        return absl::DataLossError(absl::StrCat(path_, ": read failed: ", msg));
      }
    }
    return static_cast<size_t>(got);
  }

  // Reads exactly `n` bytes; INVALID_ARGUMENT naming `what` when the file ends early.
  absl::Status ReadExactly(char* buf, size_t n, absl::string_view what) {
    size_t done = 0;
    while (done < n) {
      const size_t want = std::min(kChunk, n - done);
      PS_ASSIGN_OR_RETURN(const size_t got, Read(buf + done, want));
      if (got == 0) {
        return absl::InvalidArgumentError(absl::StrCat(path_, ": truncated: the file ends inside ", what));
      }
      done += got;
    }
    return absl::OkStatus();
  }

  // True when no byte is left.
  absl::StatusOr<bool> AtEnd() {
    char c;
    PS_ASSIGN_OR_RETURN(const size_t got, Read(&c, 1));
    return got == 0;
  }

  const std::string& path() const { return path_; }

 private:
  GzFile(gzFile f, std::string path) : file_(f), path_(std::move(path)) {}

  gzFile file_;
  std::string path_;
};

// Splits a file into lines ('\n', with a trailing '\r' removed); the last line
// needs no newline. Not thread-safe.
class LineReader {
 public:
  explicit LineReader(GzFile file) : file_(std::move(file)) {}

  // Sets *line to the next line (valid until the next call) and returns true, or
  // returns false at the end of the file or on error (check status()).
  bool Next(absl::string_view* line) {
    while (true) {
      const size_t nl = buf_.find('\n', pos_);
      if (nl != std::string::npos) {
        Emit(nl - pos_, nl + 1, line);
        return true;
      }
      if (eof_) {
        if (pos_ >= buf_.size()) return false;
        Emit(buf_.size() - pos_, buf_.size(), line);
        return true;
      }
      if (buf_.size() - pos_ > kMaxLineBytes) {
        status_ = absl::InvalidArgumentError(absl::StrCat(
            file_.path(), ":", line_number_ + 1, ": line longer than ", kMaxLineBytes,
            " bytes"));
        return false;
      }
      buf_.erase(0, pos_);
      pos_ = 0;
      const size_t old = buf_.size();
      buf_.resize(old + kChunk);
      absl::StatusOr<size_t> got = file_.Read(buf_.data() + old, kChunk);
      if (!got.ok()) {
        status_ = got.status();
        return false;
      }
      buf_.resize(old + *got);
      if (*got == 0) eof_ = true;
    }
  }

  // 1-based number of the line Next() returned last.
  int64_t line_number() const { return line_number_; }
  const absl::Status& status() const { return status_; }
  const std::string& path() const { return file_.path(); }

 private:
  void Emit(size_t len, size_t next, absl::string_view* line) {
    absl::string_view l(buf_.data() + pos_, len);
    if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
    *line = l;
    pos_ = next;
    ++line_number_;
  }

  GzFile file_;
  std::string buf_;
  size_t pos_ = 0;
  bool eof_ = false;
  int64_t line_number_ = 0;
  absl::Status status_;
};

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

absl::string_view Trim(absl::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}

// Shows a field in an error message, shortened when long.
std::string Quote(absl::string_view s) {
  if (s.size() > 40) return absl::StrCat("\"", s.substr(0, 40), "...\"");
  return absl::StrCat("\"", s, "\"");
}

// Drops one leading '+' (which from_chars does not accept); false when what follows
// is another sign or nothing.
bool StripPlus(absl::string_view* s) {
  if (s->empty()) return false;
  if (s->front() != '+') return true;
  s->remove_prefix(1);
  return !s->empty() && s->front() != '+' && s->front() != '-';
}

// Parses a whole token as a finite float (a leading '+' allowed).
bool ParseFloat(absl::string_view s, float* out) {
  if (!StripPlus(&s)) return false;
  const char* end = s.data() + s.size();
  const auto r = std::from_chars(s.data(), end, *out);
  return r.ec == std::errc() && r.ptr == end && std::isfinite(*out);
}

// Parses a whole token as an integer-valued number ("3", "+1", "-1.0", "2e0").
bool ParseIntegral(absl::string_view s, int64_t* out) {
  if (!StripPlus(&s)) return false;
  const char* end = s.data() + s.size();
  auto r = std::from_chars(s.data(), end, *out);
  if (r.ec == std::errc() && r.ptr == end) return true;
  double d = 0;
  r = std::from_chars(s.data(), end, d);
  if (r.ec != std::errc() || r.ptr != end || !std::isfinite(d) || std::floor(d) != d ||
      std::fabs(d) > 1e15) {
    return false;
  }
  *out = static_cast<int64_t>(d);
  return true;
}

bool ParseUint(absl::string_view s, uint64_t* out) {
  const char* end = s.data() + s.size();
  const auto r = std::from_chars(s.data(), end, *out);
  return !s.empty() && r.ec == std::errc() && r.ptr == end;
}

absl::Status CheckOptions(const ReadOptions& o, const std::string& path) {
  if (o.num_features == 0) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": num_features must be >= 1"));
  }
  if (o.num_classes < 2) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": num_classes must be >= 2"));
  }
  if (!std::isfinite(o.feature_scale)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": feature_scale must be finite"));
  }
  return absl::OkStatus();
}

uint32_t BigEndian32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) |
         uint32_t{p[3]};
}

// Reads an IDX header of `dims` dimensions with type unsigned byte.
absl::StatusOr<std::vector<uint32_t>> ReadIdxHeader(GzFile* f, int dims) {
  unsigned char header[16];
  PS_RETURN_IF_ERROR(f->ReadExactly(reinterpret_cast<char*>(header), 4, "the IDX header"));
  const uint32_t magic = BigEndian32(header);
  const uint32_t want = 0x00000800u | static_cast<uint32_t>(dims);
  if (magic != want) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: bad magic 0x%08x, want 0x%08x (unsigned bytes, %d dimensions)", f->path(),
        magic, want, dims));
  }
  PS_RETURN_IF_ERROR(f->ReadExactly(reinterpret_cast<char*>(header) + 4,
                                    4 * static_cast<size_t>(dims), "the IDX header"));
  std::vector<uint32_t> shape;
  for (int i = 0; i < dims; ++i) shape.push_back(BigEndian32(header + 4 * (i + 1)));
  return shape;
}

absl::StatusOr<Dataset> ReadIdxImpl(const std::string& images_path,
                                    const std::string& labels_path,
                                    const ReadOptions& o) {
  PS_RETURN_IF_ERROR(CheckOptions(o, images_path));
  PS_ASSIGN_OR_RETURN(GzFile images, GzFile::Open(images_path));
  PS_ASSIGN_OR_RETURN(GzFile labels, GzFile::Open(labels_path));
  PS_ASSIGN_OR_RETURN(const std::vector<uint32_t> ishape, ReadIdxHeader(&images, 3));
  PS_ASSIGN_OR_RETURN(const std::vector<uint32_t> lshape, ReadIdxHeader(&labels, 1));
  const uint64_t pixels = uint64_t{ishape[1]} * ishape[2];
  if (pixels != o.num_features) {
    return absl::InvalidArgumentError(
        absl::StrCat(images_path, ": images are ", ishape[1], "x", ishape[2], " = ",
                     pixels, " features, the spec says num_features ", o.num_features));
  }
  if (ishape[0] != lshape[0]) {
    return absl::InvalidArgumentError(absl::StrCat(labels_path, ": ", lshape[0],
                                                   " labels for ", ishape[0], " images in ",
                                                   images_path));
  }
  if (!std::isfinite(255.0f * o.feature_scale)) {
    return absl::InvalidArgumentError(absl::StrCat(
        images_path, ": pixel 255 times feature_scale ", o.feature_scale, " is not finite"));
  }
  const uint64_t n = ishape[0];
  Dataset d;
  d.num_examples = static_cast<int64_t>(n);
  d.num_features = o.num_features;
  d.num_classes = o.num_classes;

  // Read in chunks and append, so a corrupt header's huge count fails as "truncated"
  // instead of allocating for it.
  std::string raw(kChunk, '\0');
  d.labels.reserve(static_cast<size_t>(std::min<uint64_t>(n, kChunk)));
  for (uint64_t done = 0; done < n;) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(kChunk, n - done));
    PS_RETURN_IF_ERROR(labels.ReadExactly(raw.data(), want, "the labels"));
    for (size_t i = 0; i < want; ++i) {
      const auto label = static_cast<unsigned char>(raw[i]);
      if (label >= o.num_classes) {
        return absl::InvalidArgumentError(absl::StrCat(labels_path, ": label ", done + i,
                                                       " is ", label, ", num_classes is ",
                                                       o.num_classes));
      }
      d.labels.push_back(label);
    }
    done += want;
  }
  PS_ASSIGN_OR_RETURN(const bool labels_end, labels.AtEnd());
  if (!labels_end) {
    return absl::InvalidArgumentError(
        absl::StrCat(labels_path, ": trailing bytes after ", n, " labels"));
  }

  const uint64_t total = n * pixels;
  d.dense.reserve(static_cast<size_t>(std::min<uint64_t>(total, uint64_t{1} << 26)));
  for (uint64_t done = 0; done < total;) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(kChunk, total - done));
    PS_RETURN_IF_ERROR(images.ReadExactly(raw.data(), want, "the images"));
    for (size_t i = 0; i < want; ++i) {
      d.dense.push_back(static_cast<float>(static_cast<unsigned char>(raw[i])) *
                        o.feature_scale);
    }
    done += want;
  }
  PS_ASSIGN_OR_RETURN(const bool images_end, images.AtEnd());
  if (!images_end) {
    return absl::InvalidArgumentError(
        absl::StrCat(images_path, ": trailing bytes after ", n, " images"));
  }
  return d;
}

}  // namespace

absl::StatusOr<Dataset> ReadIdx(const std::string& images_path,
                                const std::string& labels_path,
                                const ReadOptions& options) {
  return ReadIdxImpl(images_path, labels_path, options);
}

absl::StatusOr<Dataset> ReadCsv(const std::string& path, const ReadOptions& o,
                                int32_t label_column, bool header) {
  PS_RETURN_IF_ERROR(CheckOptions(o, path));
  const int64_t columns = int64_t{o.num_features} + 1;
  if (label_column < -1 || label_column >= columns) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": label_column ", label_column, " outside [-1, ", columns, ")"));
  }
  const int64_t label_at = label_column == -1 ? columns - 1 : label_column;
  PS_ASSIGN_OR_RETURN(GzFile file, GzFile::Open(path));
  LineReader lines(std::move(file));
  Dataset d;
  d.num_features = o.num_features;
  d.num_classes = o.num_classes;
  absl::string_view line;
  std::vector<absl::string_view> fields;
  const auto bad = [&](auto&&... parts) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ":", lines.line_number(), ": ", parts...));
  };
  while (lines.Next(&line)) {
    if (header && lines.line_number() == 1) continue;
    if (Trim(line).empty()) continue;
    fields = absl::StrSplit(line, ',');
    if (static_cast<int64_t>(fields.size()) != columns) {
      return bad("expected ", columns, " columns, got ", fields.size());
    }
    for (int64_t c = 0; c < columns; ++c) {
      const absl::string_view field = Trim(fields[static_cast<size_t>(c)]);
      if (c == label_at) {
        int64_t label = 0;
        if (!ParseIntegral(field, &label)) {
          return bad("column ", c + 1, ": label ", Quote(field), " is not an integer");
        }
        if (label < 0 || label >= o.num_classes) {
          return bad("label ", label, " outside [0, ", o.num_classes, ")");
        }
        d.labels.push_back(static_cast<int32_t>(label));
      } else {
        float v = 0;
        if (!ParseFloat(field, &v)) {
          return bad("column ", c + 1, ": ", Quote(field), " is not a finite number");
        }
        if (!std::isfinite(v * o.feature_scale)) {
          return bad("column ", c + 1, ": ", Quote(field), " times feature_scale is not finite");
        }
        d.dense.push_back(v * o.feature_scale);
      }
    }
    ++d.num_examples;
  }
  PS_RETURN_IF_ERROR(lines.status());
  return d;
}

absl::StatusOr<Dataset> ReadLibsvm(const std::string& path, const ReadOptions& o,
                                   bool one_based) {
  PS_RETURN_IF_ERROR(CheckOptions(o, path));
  if (o.num_classes != 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": libsvm data is binary, num_classes must be 2, got ", o.num_classes));
  }
  PS_ASSIGN_OR_RETURN(GzFile file, GzFile::Open(path));
  LineReader lines(std::move(file));
  Dataset d;
  d.sparse = true;
  d.num_features = o.num_features;
  d.num_classes = 2;
  d.row_offsets.push_back(0);
  absl::string_view line;
  const auto bad = [&](auto&&... parts) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ":", lines.line_number(), ": ", parts...));
  };
  while (lines.Next(&line)) {
    const size_t hash = line.find('#');
    if (hash != absl::string_view::npos) line = line.substr(0, hash);
    std::vector<absl::string_view> tokens =
        absl::StrSplit(line, absl::ByAnyChar(" \t\r\v\f"), absl::SkipEmpty());
    if (tokens.empty()) continue;
    int64_t label = 0;
    if (!ParseIntegral(tokens[0], &label) || label < -1 || label > 1) {
      return bad("label ", Quote(tokens[0]), " is not one of -1, 0, +1");
    }
    d.labels.push_back(label == 1 ? 1 : 0);
    for (size_t t = 1; t < tokens.size(); ++t) {
      const absl::string_view tok = tokens[t];
      const size_t colon = tok.find(':');
      if (colon == absl::string_view::npos) {
        return bad("token ", t + 1, ": ", Quote(tok), " is not index:value");
      }
      uint64_t index = 0;
      if (!ParseUint(tok.substr(0, colon), &index)) {
        return bad("token ", t + 1, ": index ", Quote(tok.substr(0, colon)),
                   " is not a non-negative integer");
      }
      if (one_based) {
        if (index == 0) return bad("token ", t + 1, ": index 0 in 1-based data");
        --index;
      }
      if (index >= o.num_features) {
        return bad("token ", t + 1, ": feature ", index, " (", one_based ? "1" : "0",
                   "-based ", tok.substr(0, colon), ") >= num_features ", o.num_features);
      }
      float v = 0;
      if (!ParseFloat(tok.substr(colon + 1), &v)) {
        return bad("token ", t + 1, ": value ", Quote(tok.substr(colon + 1)),
                   " is not a finite number");
      }
      if (!std::isfinite(v * o.feature_scale)) {
        return bad("token ", t + 1, ": value ", Quote(tok.substr(colon + 1)),
                   " times feature_scale is not finite");
      }
      d.indices.push_back(index);
      d.values.push_back(v * o.feature_scale);
    }
    d.row_offsets.push_back(static_cast<int64_t>(d.indices.size()));
    ++d.num_examples;
  }
  PS_RETURN_IF_ERROR(lines.status());
  return d;
}

absl::StatusOr<std::string> ResolveDataPath(const std::string& path,
                                            const std::string& data_root,
                                            const std::string& field) {
  return ::ps::ResolveDataPath(data_root, path, field);
}

absl::StatusOr<TrainTest> LoadData(const DataSpec& spec, const std::string& data_root) {
  ReadOptions o;
  o.num_features = spec.num_features();
  o.num_classes = spec.num_classes();
  o.feature_scale = spec.feature_scale() == 0 ? 1.0f : spec.feature_scale();
  if (o.num_features == 0) {
    return absl::InvalidArgumentError("spec.data.num_features: must be >= 1");
  }
  if (o.num_classes < 2) {
    return absl::InvalidArgumentError("spec.data.num_classes: must be >= 2");
  }
  const auto read = [&](const std::string& path, const std::string& labels_path,
                        const std::string& field) -> absl::StatusOr<Dataset> {
    PS_ASSIGN_OR_RETURN(const std::string p,
                        ResolveDataPath(path, data_root, "spec.data." + field + "_path"));
    switch (spec.format()) {
      case IDX: {
        PS_ASSIGN_OR_RETURN(
            const std::string l,
            ResolveDataPath(labels_path, data_root, "spec.data." + field + "_labels_path"));
        return ReadIdx(p, l, o);
      }
      case CSV:
        return ReadCsv(p, o, spec.label_column(), spec.csv_header());
      case LIBSVM:
        return ReadLibsvm(p, o, spec.libsvm_one_based());
      default:
        return absl::InvalidArgumentError(
            absl::StrCat("spec.data.format: unsupported format ", spec.format()));
    }
  };
  TrainTest out;
  PS_ASSIGN_OR_RETURN(Dataset all, read(spec.train_path(), spec.train_labels_path(), "train"));
  if (!spec.test_path().empty()) {
    out.train = std::move(all);
    PS_ASSIGN_OR_RETURN(out.test, read(spec.test_path(), spec.test_labels_path(), "test"));
  } else if (spec.test_every() > 0) {
    SplitEvery(all, spec.test_every(), &out.train, &out.test);
  } else {
    out.test = EmptyLike(all);
    out.train = std::move(all);
  }
  return out;
}

}  // namespace ps::data
