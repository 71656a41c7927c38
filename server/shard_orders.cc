#include "server/shard_orders.h"

#include <memory>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/logging.h"

namespace ps {

std::vector<ShardOrder> ShardOrders::Apply(const HeartbeatResponse& resp) {
  for (const JobCheckpoints& complete : resp.complete_checkpoints()) {
    if (complete.clocks_size() > 0) shard_->ProtectCheckpoint(complete.job_id(), complete.clocks(0));
  }
  MutexLock lock(&mu_);
  // A refusal stands while its order comes (logged once).
  std::map<std::string, ShardOrder> refused;
  std::vector<ShardOrder> applied;
  for (const ShardOrder& order : resp.orders()) {
    absl::Status s;
    auto seen = done_.find(order.job_id());
    if (!order.drop() && seen != done_.end() && seen->second == order.generation()) {
      // Already applied: acknowledge again.
    } else if (order.drop()) {
      s = shard_->DropJob(order.job_id(), /*delete_checkpoints=*/false);
      if (absl::IsNotFound(s)) s = absl::OkStatus();
    } else if (!shard_->FindJob(order.job_id()).ok()) {
      // Not here (never created, or lost with no checkpoint): the workers create it
      // again when they resume.
      s = absl::OkStatus();
    } else {
      s = shard_->Restore(order.job_id(), order.restore_clock());
      if (s.ok()) {
        PS_LOG(INFO) << "shard " << shard_->shard_id() << " job " << order.job_id()
                     << ": restored clock " << order.restore_clock() << " (generation "
                     << order.generation() << ")";
      }
    }
    if (!s.ok()) {
      const bool refuse = !order.drop() && (absl::IsNotFound(s) || absl::IsDataLoss(s));
      auto before = refused_.find(order.job_id());
      const bool again = before != refused_.end() &&
                         before->second.generation() == order.generation();
      if (refuse && !again) {
        PS_LOG(ERROR) << "shard " << shard_->shard_id() << ": refusing the restore of job "
                      << order.job_id() << " to clock " << order.restore_clock()
                      << " (generation " << order.generation() << "): " << s;
      } else if (!refuse) {
        PS_LOG(ERROR) << "shard " << shard_->shard_id() << ": order for job "
                      << order.job_id() << " failed: " << s;
      }
      if (refuse) refused[order.job_id()] = order;
      continue;
    }
    done_[order.job_id()] = order.generation();
    ShardOrder ack;
    ack.set_job_id(order.job_id());
    ack.set_generation(order.generation());
    ack.set_drop(order.drop());
    applied.push_back(std::move(ack));
  }
  refused_.swap(refused);
  return applied;
}

void ShardOrders::Fill(HeartbeatRequest* req) {
  constexpr size_t kMaxClocks = 1000;  // JobCheckpoints.clocks' documented bound.
  for (const std::shared_ptr<ShardJob>& job : shard_->Jobs()) {
    absl::StatusOr<std::vector<uint64_t>> clocks = shard_->ListCheckpoints(job->config().job_id);
    if (!clocks.ok() || clocks->empty()) continue;
    JobCheckpoints* held = req->add_checkpoints();
    held->set_job_id(job->config().job_id);
    const size_t from = clocks->size() > kMaxClocks ? clocks->size() - kMaxClocks : 0;
    for (size_t i = from; i < clocks->size(); ++i) held->add_clocks((*clocks)[i]);
  }
  MutexLock lock(&mu_);
  for (const auto& [job_id, order] : refused_) *req->add_refused_orders() = order;
}

}  // namespace ps
