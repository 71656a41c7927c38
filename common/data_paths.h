// Confinement of a job's data files to the daemons' --data_root: one directory or a
// colon-separated list of them (e.g. "/srv/data:/usr/share/datasets"). Both the
// coordinator (when it accepts a job) and the workers (when they open the files)
// resolve paths here.
#ifndef PS_COMMON_DATA_PATHS_H_
#define PS_COMMON_DATA_PATHS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proto/job.pb.h"

namespace ps {

// Resolves `path` to the canonical path of an existing regular file inside one of the
// `roots`, following symlinks: a relative path is taken under the first root where it
// exists, an absolute one must lie inside some root. INVALID_ARGUMENT naming `field`
// when the path has a ".." component, does not exist, is not a regular file, or
// resolves (through a symlink or as an absolute path) outside every root.
// FAILED_PRECONDITION when no root can be resolved. Thread-safe (touches only the
// file system).
absl::StatusOr<std::string> ResolveDataPath(const std::string& root, absl::string_view path,
                                            absl::string_view field);

// Splits a --data_root value into its directories (empty items dropped; "" is ".").
std::vector<std::string> SplitDataRoots(const std::string& roots);

// Checks every non-empty path of `data` (train_path, train_labels_path, test_path,
// test_labels_path) with ResolveDataPath; fields are named "spec.data.<name>".
absl::Status CheckDataFiles(const DataSpec& data, const std::string& root);

}  // namespace ps

#endif  // PS_COMMON_DATA_PATHS_H_
