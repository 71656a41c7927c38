#include "server/coordinator/coordinator_metrics.h"

#include <utility>
#include <vector>

#include "common/status.h"

namespace ps {

absl::StatusOr<std::unique_ptr<CoordinatorMetrics>> CoordinatorMetrics::Create(
    MetricsServer* server) {
  std::unique_ptr<CoordinatorMetrics> m(new CoordinatorMetrics());
  PS_ASSIGN_OR_RETURN(m->jobs_, server->AddGaugeFamily("ps_coordinator_jobs", "Jobs by state."));
  PS_ASSIGN_OR_RETURN(m->members_,
                      server->AddGaugeFamily("ps_coordinator_members",
                                             "Registered members by role and health."));
  PS_ASSIGN_OR_RETURN(m->job_clock_, server->AddGaugeFamily(
                                         "ps_coordinator_job_clock",
                                         "Slowest worker's clock of each active job."));
  PS_ASSIGN_OR_RETURN(m->recoveries_,
                      server->AddCounterFamily("ps_coordinator_job_recoveries_total",
                                               "Recoveries completed, by job."));
  PS_ASSIGN_OR_RETURN(m->clocks_redone_,
                      server->AddCounterFamily("ps_coordinator_clocks_redone_total",
                                               "Clocks computed again after rollbacks, by job."));
  PS_ASSIGN_OR_RETURN(m->checkpoint_clock_,
                      server->AddGaugeFamily("ps_coordinator_job_checkpoint_clock",
                                             "Latest complete checkpoint of each active job."));
  PS_ASSIGN_OR_RETURN(m->checkpoint_age_,
                      server->AddGaugeFamily(
                          "ps_coordinator_job_checkpoint_age_seconds",
                          "Time since the job's complete checkpoint last advanced."));
  PS_ASSIGN_OR_RETURN(auto* recovery, server->AddHistogramFamily(
                                          "ps_coordinator_recovery_seconds",
                                          "From a fault detected to the job RUNNING again."));
  PS_ASSIGN_OR_RETURN(m->recovery_seconds_, MetricsServer::AddHistogram(recovery));
  return m;
}

void CoordinatorMetrics::Refresh(const Coordinator& c, int64_t now_ms) {
  std::map<std::string, int> by_state;
  for (int s = PENDING; s <= CANCELLED; ++s) by_state[JobState_Name(static_cast<JobState>(s))] = 0;
  for (const JobStatus& st : c.ListJobs()) {
    ++by_state[JobState_Name(st.state())];
    const prometheus::Labels job = {{"job", st.job_id()}};
    JobSeen& seen = seen_[st.job_id()];
    if (st.recoveries() > seen.recoveries) {
      recoveries_->Add(job).Increment(st.recoveries() - seen.recoveries);
      recovery_seconds_->Observe(static_cast<double>(st.last_recovery_ms()) * 1e-3);
      seen.recoveries = st.recoveries();
    }
    if (st.clocks_redone() > seen.clocks_redone) {
      clocks_redone_->Add(job).Increment(static_cast<double>(st.clocks_redone() - seen.clocks_redone));
      seen.clocks_redone = st.clocks_redone();
    }
    if (IsFinalState(st.state())) continue;
    job_clock_->Add(job).Set(static_cast<double>(st.clock()));
    checkpoint_clock_->Add(job).Set(static_cast<double>(st.complete_checkpoint()));
    if (st.complete_checkpoint_time_ms() > 0) {
      checkpoint_age_->Add(job).Set(static_cast<double>(now_ms - st.complete_checkpoint_time_ms()) *
                                    1e-3);
    }
  }
  for (const auto& [state, n] : by_state) jobs_->Add({{"state", state}}).Set(n);
  std::map<std::pair<std::string, std::string>, int> members;
  for (const char* role : {"shard", "worker"}) {
    members[{role, "true"}] = 0;
    members[{role, "false"}] = 0;
  }
  const GetClusterResponse cluster = c.GetCluster();
  for (const Member& m : cluster.members()) {
    ++members[{m.role() == SHARD ? "shard" : "worker", m.healthy() ? "true" : "false"}];
  }
  for (const auto& [key, n] : members) {
    members_->Add({{"role", key.first}, {"healthy", key.second}}).Set(n);
  }
}

}  // namespace ps
