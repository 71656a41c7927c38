// `psctl export`: reads a job's trained parameters from the shards into a NumPy .npz.
#ifndef PS_CLIENT_EXPORT_H_
#define PS_CLIENT_EXPORT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/coordinator_client.h"
#include "proto/job.pb.h"

namespace ps {

// One table of the export.
struct ExportedTable {
  std::string name;
  std::vector<uint64_t> shape;  // Empty when skipped.
  std::string note;             // Why it was skipped; empty otherwise.
};

// The shape a dense table gets in the archive: a weight matrix of layer i, named
// "w<i>" (also "W<i>", "w_<i>", "weights<i>"; "w"/"weights" alone is layer 0), whose
// size is in*out for the layer widths [num_features, mlp.hidden..., outputs] of the
// spec (outputs: num_classes, or 1 for an mlp with a SIGMOID head) gets (in, out),
// row-major: element [r][c] at r*out + c, the layout x·W of the worker's models.
// Everything else (biases, unknown names, sizes that do not match) is 1-D (size,).
std::vector<uint64_t> ExportShape(const JobSpec& spec, const TableSpec& table);

// Finds the job's shards through `client` (GetCluster), dials them with the client's
// credentials() (plaintext when none), lists the job's tables on
// each (ShardService.ListTables), reads every dense table's parts without waiting
// (Pull with no_wait) and writes them, as float32 arrays named after the tables, to
// `out_path`. Sparse tables are skipped (ExportedTable::note says so): the shards
// have no call that lists a sparse table's keys yet. Returns what was written, in
// name order.
//
// A registered shard that cannot be reached yet (restarting) is waited for, 30 s at
// most for its table list and 60 s for each read.
// Errors: NOT_FOUND for an unknown job or a shard without the job; UNAVAILABLE when
// a shard is not registered; DEADLINE_EXCEEDED when a shard stays unreachable; DATA_LOSS when the shards' parts do
// not cover a table exactly; OUT_OF_RANGE past the archive's 4 GiB; the file's error
// when `out_path` cannot be written. `client` is borrowed for the call.
absl::StatusOr<std::vector<ExportedTable>> ExportJob(CoordinatorClient* client,
                                                     const std::string& job_id,
                                                     const std::string& out_path);

}  // namespace ps

#endif  // PS_CLIENT_EXPORT_H_
