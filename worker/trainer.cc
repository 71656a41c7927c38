#include "worker/trainer.h"

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/job_spec.h"
#include "common/logging.h"
#include "common/status.h"
#include "worker/compute/absl_status.h"
#include "worker/data/dataset.h"
#include "worker/data/readers.h"
#include "worker/data/shard.h"
#include "worker/model/job_model.h"

namespace ps {
namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// DenseRef/SparseRef views over a model's parameter (or gradient) buffers.
void MakeRefs(const std::vector<model::TableDecl>& tables, std::vector<model::TableValues>* values,
              std::vector<DenseRef>* dense, std::vector<SparseRef>* sparse) {
  dense->clear();
  sparse->clear();
  for (size_t t = 0; t < tables.size(); ++t) {
    model::TableValues& v = (*values)[t];
    if (tables[t].sparse) {
      if (v.keys.empty()) continue;
      sparse->push_back(SparseRef{tables[t].name, v.keys.data(), v.keys.size(), tables[t].dim,
                                  v.values.data()});
    } else {
      dense->push_back(DenseRef{tables[t].name, 0, tables[t].size, v.values.data()});
    }
  }
}

}  // namespace

bool IsTransientPsError(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kFailedPrecondition:
      return true;
    default:
      return false;
  }
}

ShardJobConfig ShardConfigForJob(const std::string& job_id, const JobSpec& spec,
                                 uint32_t num_shards, uint64_t total_clocks) {
  ShardJobConfig c;
  c.set_job_id(job_id);
  c.set_seed(spec.seed());
  *c.mutable_consistency() = spec.consistency();
  c.set_num_workers(spec.num_workers());
  *c.mutable_checkpoint() = spec.checkpoint();
  c.set_nonfinite(spec.nonfinite());
  c.set_num_shards(num_shards);
  c.set_bf16_gradients(spec.bf16_gradients());
  c.set_total_clocks(total_clocks);
  return c;
}

absl::Status Train(const TrainerOptions& options, PsClient* ps, const ProgressCallback& progress) {
  const JobSpec& spec = options.spec;
  const std::string& job = options.job_id;
  PS_ASSIGN_OR_RETURN(data::TrainTest data, data::LoadData(spec.data(), options.data_root));
  PS_ASSIGN_OR_RETURN(std::unique_ptr<compute::Backend> backend,
                      compute::CreateBackend(options.device));
  PS_ASSIGN_OR_RETURN(std::unique_ptr<model::Model> model,
                      model::CreateModelForJob(spec, backend.get()));
  PS_ASSIGN_OR_RETURN(std::vector<TableSpec> tables, model::TablesForJob(spec));
  // Repeats `call` while it fails with a transient error, for options.transient_retry_s
  // after the first failure, unless the run is stopped meanwhile.
  auto persist = [&](const std::string& what,
                     const std::function<absl::Status()>& call) -> absl::Status {
    Clock::time_point first_failure;
    for (int attempt = 0;; ++attempt) {
      absl::Status s = call();
      if (s.ok() || !IsTransientPsError(s)) return Annotate(s, what);
      if (attempt == 0) first_failure = Clock::now();
      if (Since(first_failure) >= options.transient_retry_s) return Annotate(s, what);
      if (options.stop != nullptr && options.stop->load()) {
        return absl::CancelledError(absl::StrCat("job ", job, " stopped during the ", what));
      }
      if (attempt == 0) PS_LOG(WARNING) << "job " << job << ": " << what << ": " << s << "; retrying";
      std::this_thread::sleep_for(std::chrono::milliseconds(std::min(50 << std::min(attempt, 4), 500)));
    }
  };
  PS_ASSIGN_OR_RETURN(data::DataShard shard,
                      data::DataShard::Create(data.train.num_examples, options.rank,
                                              spec.num_workers(), spec.batch_size(), spec.seed(),
                                              spec.data().sharding() == DataSpec::GLOBAL_BATCH
                                                  ? data::Sharding::kGlobalBatch
                                                  : data::Sharding::kStrided));
  const uint64_t steps = static_cast<uint64_t>(shard.steps_per_epoch());
  const uint64_t total = steps * spec.epochs();
  uint64_t shard_clock = 0;
  PS_RETURN_IF_ERROR(persist("job set-up", [&]() -> absl::Status {
    PS_ASSIGN_OR_RETURN(shard_clock, ps->SetupJob(ShardConfigForJob(job, spec, ps->num_shards(),
                                                                    total),
                                                  tables));
    return absl::OkStatus();
  }));
  // The shards checkpoint the last clock (ShardJobConfig.total_clocks) when checkpoints
  // are on, and the job is reported finished only once every shard holds that
  // checkpoint: a shard that dies before is recovered from like any other (the
  // coordinator rolls the job back); one restarted after the end loads the finished
  // model. Only a rank that sees some shard's checkpoint clock at the last clock waits
  // (it pushed the last of it); one that finished while others still push does not
  // (ASYNC and BOUNDED ranks end on their own): each rank looks after its own pushes
  // were acknowledged, so the last to push a shard's last clock sees it, and the job
  // ends only once every rank has reported.
  const bool checkpoints = TakesCheckpoints(spec.consistency(), spec.checkpoint());
  auto await_final_checkpoint = [&]() -> absl::Status {
    if (!checkpoints) return absl::OkStatus();
    PS_ASSIGN_OR_RETURN(std::vector<ShardJobStats> stats, ps->GetStats(job, false));
    if (std::none_of(stats.begin(), stats.end(),
                     [&](const ShardJobStats& st) { return st.clock >= total; })) {
      return absl::OkStatus();
    }
    // Polls every 20 ms for final_checkpoint_wait_s; then, should a shard's own write
    // have failed, asks every shard for a checkpoint now and waits for it.
    const Clock::time_point begin = Clock::now();
    while (Since(begin) < options.final_checkpoint_wait_s) {
      PS_ASSIGN_OR_RETURN(std::vector<std::vector<uint64_t>> held, ps->ListCheckpoints(job));
      if (std::all_of(held.begin(), held.end(), [&](const std::vector<uint64_t>& clocks) {
            return !clocks.empty() && clocks.back() >= total;
          })) {
        return absl::OkStatus();
      }
      if (options.stop != nullptr && options.stop->load()) {
        return absl::CancelledError(
            absl::StrCat("job ", job, " stopped waiting for the checkpoint of clock ", total));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    PS_ASSIGN_OR_RETURN(std::vector<ShardCheckpoint> written, ps->Checkpoint(job));
    for (const ShardCheckpoint& w : written) {
      if (w.clock < total) {
        return absl::DeadlineExceededError(absl::StrCat("shard ", w.shard, " checkpointed job ",
                                                        job, " at clock ", w.clock,
                                                        ", not its last clock ", total));
      }
    }
    return absl::OkStatus();
  };
  const uint64_t start = options.resume_clock;
  PS_LOG(INFO) << "job " << job << " rank " << options.rank << ": " << data.train.num_examples
               << " train / " << data.test.num_examples << " test examples, " << steps
               << " clocks per epoch, " << total << " clocks, starting at " << start
               << " (shards at " << shard_clock << "), compute on " << backend->name();

  const std::vector<model::TableDecl>& decls = model->tables();
  std::vector<model::TableValues> params, grads;
  std::vector<DenseRef> dense;
  std::vector<SparseRef> sparse;

  // Evaluates the model after `clock` clocks on the test set (rank 0).
  auto evaluate = [&](uint64_t clock, TrainerProgress* p) -> absl::Status {
    if (options.rank != 0 || data.test.num_examples == 0) return absl::OkStatus();
    data::Dataset eval_set = data.test;
    const uint32_t cap = spec.eval().max_examples();
    if (cap > 0 && !p->finished && eval_set.num_examples > cap) {
      std::vector<int64_t> rows(cap);
      for (uint32_t i = 0; i < cap; ++i) rows[i] = i;
      eval_set = data::GatherRows(data.test, rows.data(), cap);
    }
    std::vector<model::TableValues> eval_params;
    PS_RETURN_IF_ERROR(compute::ToAbslStatus(model->PrepareParams(eval_set, &eval_params)));
    std::vector<DenseRef> d;
    std::vector<SparseRef> s;
    MakeRefs(decls, &eval_params, &d, &s);
    // In SYNC this waits for every rank's pushes of clock - 1, so the final
    // evaluation sees the finished model.
    PS_RETURN_IF_ERROR(persist(absl::StrCat("evaluation pull of clock ", clock),
                               [&] { return ps->Pull(job, options.rank, clock, d, s); }));
    model::EvalResult r;
    PS_RETURN_IF_ERROR(compute::ToAbslStatus(model->Evaluate(eval_set, eval_params, &r)));
    p->has_eval = true;
    p->eval_examples = r.examples;
    p->eval_loss = r.loss;
    p->eval_accuracy = r.accuracy;
    p->eval_auc = r.has_auc ? r.auc : 0;
    return absl::OkStatus();
  };

  std::vector<DenseRef> grad_dense;
  std::vector<SparseRef> grad_sparse;
  double period_loss = 0, compute_s = 0, pull_s = 0, push_s = 0;
  uint64_t period_clocks = 0;
  Clock::time_point period_start = Clock::now();
  const uint32_t eval_every = spec.eval().every_clocks();
  std::vector<int64_t> order;
  uint64_t order_epoch = ~uint64_t{0};
  data::Dataset batch;
  // Gathers the rows of clock `c` of this rank's data shard into `batch`, and prepares
  // `params` (and their refs) for them.
  auto prepare = [&](uint64_t c) -> absl::Status {
    const uint64_t epoch = c / steps;
    if (epoch != order_epoch) {
      order = shard.EpochOrder(epoch);
      order_epoch = epoch;
    }
    batch = data::GatherRows(data.train, order.data() + (c % steps) * spec.batch_size(),
                             spec.batch_size());
    PS_RETURN_IF_ERROR(compute::ToAbslStatus(model->PrepareParams(batch, &params)));
    MakeRefs(decls, &params, &dense, &sparse);
    return absl::OkStatus();
  };
  // Whether `batch` and `params` already hold the current clock's rows and values:
  // the previous clock's push brought them (PsClient::PushPull).
  bool pulled = false;
  for (uint64_t clock = start; clock < total; ++clock) {
    if (options.stop != nullptr && options.stop->load()) {
      return absl::CancelledError(absl::StrCat("job ", job, " stopped at clock ", clock));
    }
    const uint64_t epoch = clock / steps;
    auto t0 = Clock::now();
    if (!pulled) {
      PS_RETURN_IF_ERROR(prepare(clock));
      t0 = Clock::now();
      PS_RETURN_IF_ERROR(persist(absl::StrCat("pull of clock ", clock), [&] {
        return ps->Pull(job, options.rank, clock, dense, sparse);
      }));
    }
    auto t1 = Clock::now();
    double loss = 0;
    PS_RETURN_IF_ERROR(compute::ToAbslStatus(model->ComputeGradients(batch, params, &grads, &loss)));
    MakeRefs(decls, &grads, &grad_dense, &grad_sparse);
    // The next clock's values come back with this clock's push: its rows are gathered
    // and its parameters prepared first (the current ones are no longer needed).
    pulled = clock + 1 < total;
    if (pulled) PS_RETURN_IF_ERROR(prepare(clock + 1));
    const auto t2 = Clock::now();
    PS_RETURN_IF_ERROR(persist(absl::StrCat("push of clock ", clock), [&] {
      return pulled ? ps->PushPull(job, options.rank, clock, grad_dense, grad_sparse, dense, sparse)
                    : ps->Push(job, options.rank, clock, grad_dense, grad_sparse);
    }));
    auto t3 = Clock::now();
    pull_s += std::chrono::duration<double>(t1 - t0).count();
    compute_s += std::chrono::duration<double>(t2 - t1).count();
    push_s += std::chrono::duration<double>(t3 - t2).count();
    period_loss += loss;
    ++period_clocks;

    const bool last = clock + 1 == total;
    const bool eval_now = eval_every > 0 && (clock + 1) % eval_every == 0 && !last;
    if (last || eval_now || Since(period_start) >= options.report_every_s) {
      TrainerProgress p;
      p.clock = clock + 1;
      p.total_clocks = total;
      p.epoch = static_cast<uint32_t>(epoch);
      p.loss = period_loss / static_cast<double>(period_clocks);
      const double elapsed = Since(period_start);
      p.samples_per_s = elapsed > 0 ? period_clocks * spec.batch_size() / elapsed : 0;
      p.compute_s = compute_s / period_clocks;
      p.pull_s = pull_s / period_clocks;
      p.push_s = push_s / period_clocks;
      p.finished = last;
      if (eval_now) PS_RETURN_IF_ERROR(evaluate(clock + 1, &p));
      if (last) PS_RETURN_IF_ERROR(evaluate(total, &p));
      if (last) {
        PS_RETURN_IF_ERROR(persist("wait for the checkpoint of the last clock",
                                   await_final_checkpoint));
      }
      if (!progress(p)) return absl::CancelledError(absl::StrCat("job ", job, " stopped at clock ", clock + 1));
      period_loss = compute_s = pull_s = push_s = 0;
      period_clocks = 0;
      period_start = Clock::now();
    }
  }
  if (start >= total) {
    // Nothing left to run (resumed at the end): report the result once more.
    TrainerProgress p;
    p.clock = total;
    p.total_clocks = total;
    p.epoch = spec.epochs() == 0 ? 0 : spec.epochs() - 1;
    p.finished = true;
    PS_RETURN_IF_ERROR(evaluate(total, &p));
    PS_RETURN_IF_ERROR(
        persist("wait for the checkpoint of the last clock", await_final_checkpoint));
    progress(p);
  }
  return absl::OkStatus();
}

}  // namespace ps
