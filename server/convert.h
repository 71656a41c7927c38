// Proto <-> core conversions of the shard, with validation. The only place where the
// shard's wire types meet its core types.
#ifndef PS_SERVER_CONVERT_H_
#define PS_SERVER_CONVERT_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "common/packing.h"
#include "proto/shard.pb.h"
#include "server/shard_core.h"
#include "server/shard_job.h"
#include "server/table.h"

namespace ps {

// Validates `config` (INVALID_ARGUMENT naming "config.<field>") and converts it; the
// serialized proto becomes the opaque config_blob.
absl::StatusOr<JobConfig> JobConfigFromProto(const ShardJobConfig& config);
// The same from a config_blob (checkpoint restart).
absl::StatusOr<JobConfig> JobConfigFromBlob(const std::string& blob);
// Whether `offered` sets up the job whose config_blob is `held`: equal, except that a
// total_clocks of 0 (unknown: sent or recorded by a build without the field) matches
// any. A job checkpointed before total_clocks existed is then carried on by workers of
// a build that sends it, and the other way round.
// Both are ShardJobConfig blobs; false when either does not parse.
bool SameJobConfig(const std::string& held, const std::string& offered);
// Sets the options' readers of config blobs (decode_job, decode_table, same_job) to
// the functions above.
void UseProtoConfigs(ShardCore::Options* options);

// Validates `spec` (INVALID_ARGUMENT naming "table.<field>") and converts it.
absl::StatusOr<TableConfig> TableConfigFromProto(const TableSpec& spec);
absl::StatusOr<TableConfig> TableConfigFromBlob(const std::string& blob);

// How a push's values are packed (PushRequest.encoding); INVALID_ARGUMENT naming
// "encoding" for a value this build does not know.
absl::StatusOr<ValueEncoding> ValueEncodingFromProto(GradientEncoding encoding);

}  // namespace ps

#endif  // PS_SERVER_CONVERT_H_
