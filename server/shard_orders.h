// A shard's side of the coordinator's heartbeats: it carries out the orders (recovery
// rollbacks, drops of ended jobs) and says what it holds (checkpoints, refused orders).
//
// A restore order this shard cannot carry out because it lacks the checkpoint or
// cannot read it (NOT_FOUND, DATA_LOSS) is refused: listed in every heartbeat while
// the order comes, so that the coordinator rolls the job back further instead of
// waiting for a checkpoint that will never load. Other failures (I/O) are retried
// with the next heartbeat.
#ifndef PS_SERVER_SHARD_ORDERS_H_
#define PS_SERVER_SHARD_ORDERS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "common/sync.h"
#include "proto/coordinator.pb.h"
#include "server/shard_core.h"

namespace ps {

class ShardOrders {
 public:
  explicit ShardOrders(ShardCore* shard) : shard_(shard) {}

  // Carries out the response's orders; returns those applied (acknowledged in the
  // next heartbeats). An order repeated before the coordinator saw the
  // acknowledgement is not applied twice: a second rollback would undo work done
  // since the first.
  std::vector<ShardOrder> Apply(const HeartbeatResponse& resp);

  // Adds every job's checkpoint clocks (the coordinator's catalog, level-triggered: a
  // report lost while it was down comes again) and the refused orders.
  void Fill(HeartbeatRequest* req);

 private:
  ShardCore* const shard_;
  Mutex mu_;
  std::map<std::string, uint64_t> done_ ABSL_GUARDED_BY(mu_);  // Generation applied.
  std::map<std::string, ShardOrder> refused_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ps

#endif  // PS_SERVER_SHARD_ORDERS_H_
