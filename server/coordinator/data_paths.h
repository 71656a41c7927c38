// Confinement of a job's data files to the coordinator's --data_root.
#ifndef PS_SERVER_COORDINATOR_DATA_PATHS_H_
#define PS_SERVER_COORDINATOR_DATA_PATHS_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proto/job.pb.h"

namespace ps {

// Resolves `path` (relative paths under `root`) to the canonical path of an existing
// regular file inside `root`, following symlinks. INVALID_ARGUMENT naming `field` when
// the path has a ".." component, does not exist, is not a regular file, or resolves
// (through a symlink or as an absolute path) outside `root`. FAILED_PRECONDITION when
// `root` itself cannot be resolved. Thread-safe (touches only the file system).
absl::StatusOr<std::string> ResolveDataPath(const std::string& root, absl::string_view path,
                                            absl::string_view field);

// Checks every non-empty path of `data` (train_path, train_labels_path, test_path,
// test_labels_path) with ResolveDataPath; fields are named "spec.data.<name>".
absl::Status CheckDataFiles(const DataSpec& data, const std::string& root);

}  // namespace ps

#endif  // PS_SERVER_COORDINATOR_DATA_PATHS_H_
