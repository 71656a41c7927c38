#include "common/data_paths.h"

#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace ps {
namespace {

absl::StatusOr<std::string> RealPath(const std::string& path) {
  char buf[PATH_MAX];
  if (::realpath(path.c_str(), buf) == nullptr) {
    const int err = errno;
    return absl::Status(err == ENOENT || err == ENOTDIR ? absl::StatusCode::kNotFound
                                                        : absl::StatusCode::kInvalidArgument,
                        std::strerror(err));
  }
  return std::string(buf);
}

}  // namespace

std::vector<std::string> SplitDataRoots(const std::string& roots) {
  std::vector<std::string> out;
  for (absl::string_view r : absl::StrSplit(roots, ':')) {
    if (!r.empty()) out.emplace_back(r);
  }
  if (out.empty()) out.emplace_back(".");
  return out;
}

namespace {

absl::StatusOr<std::string> ResolveInRoot(const std::string& root, absl::string_view path,
                                          absl::string_view field) {
  if (path.empty()) return absl::InvalidArgumentError(absl::StrCat(field, ": is empty"));
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    if (part == "..") {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": \"", path, "\" must not contain \"..\""));
    }
  }
  absl::StatusOr<std::string> real_root = RealPath(root.empty() ? "." : root);
  if (!real_root.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("--data_root \"", root, "\": ", real_root.status().message()));
  }
  const std::string full =
      path.front() == '/' ? std::string(path) : absl::StrCat(*real_root, "/", path);
  absl::StatusOr<std::string> real = RealPath(full);
  if (!real.ok()) {
    if (absl::IsNotFound(real.status())) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ": \"", path, "\" does not exist under --data_root ", *real_root));
    }
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": \"", path, "\": ", real.status().message()));
  }
  const bool inside = *real_root == "/" || *real == *real_root ||
                      (real->size() > real_root->size() &&
                       real->compare(0, real_root->size(), *real_root) == 0 &&
                       (*real)[real_root->size()] == '/');
  if (!inside) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": \"", path, "\" resolves outside --data_root ", *real_root));
  }
  struct stat st;
  if (::stat(real->c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": \"", path, "\" is not a regular file"));
  }
  return std::move(real).value();
}

}  // namespace

absl::StatusOr<std::string> ResolveDataPath(const std::string& roots, absl::string_view path,
                                            absl::string_view field) {
  const std::vector<std::string> list = SplitDataRoots(roots);
  absl::Status first = absl::OkStatus();
  bool any_root = false;
  for (const std::string& root : list) {
    absl::StatusOr<std::string> r = ResolveInRoot(root, path, field);
    if (r.ok()) return r;
    if (!absl::IsFailedPrecondition(r.status())) any_root = true;
    // Keep the most telling error: a path outside a root beats a missing root.
    if (first.ok() || absl::IsFailedPrecondition(first)) first = r.status();
  }
  if (!any_root) return first;
  if (list.size() == 1) return first;
  return absl::InvalidArgumentError(absl::StrCat(first.message(), " (and not under any of --data_root ",
                                                 roots, ")"));
}

absl::Status CheckDataFiles(const DataSpec& data, const std::string& root) {
  const std::pair<const std::string*, const char*> paths[] = {
      {&data.train_path(), "spec.data.train_path"},
      {&data.train_labels_path(), "spec.data.train_labels_path"},
      {&data.test_path(), "spec.data.test_path"},
      {&data.test_labels_path(), "spec.data.test_labels_path"},
  };
  for (const auto& [path, field] : paths) {
    if (path->empty()) continue;
    absl::StatusOr<std::string> resolved = ResolveDataPath(root, *path, field);
    if (!resolved.ok()) return resolved.status();
  }
  return absl::OkStatus();
}

}  // namespace ps
