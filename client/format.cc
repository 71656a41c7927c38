#include "client/format.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace ps {
namespace {

std::string JsonString(absl::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          out += absl::StrFormat("\\u%04x", c);
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out += "\"";
  return out;
}

std::string JsonNumber(double v) {
  if (!std::isfinite(v)) return "null";
  return absl::StrFormat("%.9g", v);
}

// Floats (proto `float` fields) with the digits they hold: 0.8, not 0.800000012.
std::string JsonFloat(float v) {
  if (!std::isfinite(v)) return "null";
  return absl::StrFormat("%.7g", v);
}

bool IsFinal(JobState s) { return s == SUCCEEDED || s == FAILED || s == CANCELLED; }

std::string ClockText(const JobStatus& s) {
  return s.total_clocks() > 0 ? absl::StrCat(s.clock(), "/", s.total_clocks())
                              : absl::StrCat(s.clock());
}

std::string AccuracyText(const JobStatus& s) {
  return s.has_eval() ? absl::StrFormat("%.4f", s.eval().accuracy()) : std::string("-");
}

// Left-aligned columns, two spaces apart.
std::string Table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& row : rows) {
    width.resize(std::max(width.size(), row.size()), 0);
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line.append(width[i] - row[i].size() + 2, ' ');
    }
    out += line + "\n";
  }
  return out;
}

int64_t Duration(const JobStatus& s, int64_t now_ms) {
  if (s.start_time_ms() == 0) return -1;
  return (s.end_time_ms() != 0 ? s.end_time_ms() : now_ms) - s.start_time_ms();
}

}  // namespace

int ExitCodeForStatus(const absl::Status& status) {
  if (status.ok()) return kExitOk;
  if (absl::IsNotFound(status)) return kExitNotFound;
  return kExitRpc;
}

int ExitCodeForState(JobState state) {
  if (state == FAILED) return kExitFailed;
  if (state == CANCELLED) return kExitCancelled;
  return kExitOk;
}

std::string FormatDuration(int64_t ms) {
  if (ms < 0) return "-";
  const int64_t s = ms / 1000;
  if (s >= 3600) return absl::StrFormat("%dh%02dm%02ds", s / 3600, s / 60 % 60, s % 60);
  if (s >= 60) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  return absl::StrFormat("%ds", s);
}

std::string JobStatusJson(const JobStatus& s) {
  std::vector<std::string> f;
  f.push_back(absl::StrCat("\"job_id\":", JsonString(s.job_id())));
  f.push_back(absl::StrCat("\"name\":", JsonString(s.spec().name())));
  f.push_back(absl::StrCat("\"state\":", JsonString(JobState_Name(s.state()))));
  f.push_back(absl::StrCat("\"reason\":", JsonString(s.reason())));
  f.push_back(absl::StrCat("\"num_workers\":", s.spec().num_workers()));
  f.push_back(absl::StrCat("\"epochs\":", s.spec().epochs()));
  f.push_back(absl::StrCat("\"epoch\":", s.epoch()));
  f.push_back(absl::StrCat("\"clock\":", s.clock()));
  f.push_back(absl::StrCat("\"total_clocks\":", s.total_clocks()));
  f.push_back(absl::StrCat("\"loss\":", JsonNumber(s.loss())));
  f.push_back(absl::StrCat("\"samples_per_s\":", JsonNumber(s.samples_per_s())));
  if (s.has_eval()) {
    f.push_back(absl::StrCat("\"eval\":{\"examples\":", s.eval().examples(),
                             ",\"loss\":", JsonNumber(s.eval().loss()),
                             ",\"accuracy\":", JsonNumber(s.eval().accuracy()),
                             ",\"auc\":", JsonNumber(s.eval().auc()), "}"));
  } else {
    f.push_back("\"eval\":null");
  }
  f.push_back(absl::StrCat("\"target_accuracy\":", JsonFloat(s.spec().target_accuracy())));
  f.push_back(absl::StrCat("\"complete_checkpoint\":", s.complete_checkpoint()));
  f.push_back(absl::StrCat("\"recoveries\":", s.recoveries()));
  f.push_back(absl::StrCat("\"submit_time_ms\":", s.submit_time_ms()));
  f.push_back(absl::StrCat("\"start_time_ms\":", s.start_time_ms()));
  f.push_back(absl::StrCat("\"end_time_ms\":", s.end_time_ms()));
  f.push_back(absl::StrCat("\"clocks_redone\":", s.clocks_redone()));
  f.push_back(absl::StrCat("\"last_recovery_ms\":", s.last_recovery_ms()));
  return absl::StrCat("{", absl::StrJoin(f, ","), "}");
}

std::string MemberJson(const Member& m) {
  return absl::StrCat("{\"role\":", JsonString(m.role() == SHARD ? "shard" : "worker"),
                      ",\"member_id\":", JsonString(m.member_id()),
                      ",\"shard_id\":", m.shard_id(), ",\"address\":", JsonString(m.address()),
                      ",\"healthy\":", m.healthy() ? "true" : "false",
                      ",\"job_id\":", JsonString(m.job_id()), ",\"rank\":", m.rank(),
                      ",\"device\":", JsonString(m.device()), ",\"load\":", JsonNumber(m.load()),
                      ",\"last_heartbeat_ms\":", m.last_heartbeat_ms(), "}");
}

std::string JobStatusText(const JobStatus& s, int64_t now_ms) {
  std::string out;
  absl::StrAppend(&out, "job          ", s.job_id(),
                  s.spec().name().empty() ? "" : absl::StrCat(" (", s.spec().name(), ")"), "\n");
  absl::StrAppend(&out, "state        ", JobState_Name(s.state()), "\n");
  if (!s.reason().empty()) absl::StrAppend(&out, "reason       ", s.reason(), "\n");
  absl::StrAppend(&out, "workers      ", s.spec().num_workers(), "\n");
  absl::StrAppend(&out, "progress     epoch ", s.epoch() + 1, "/", s.spec().epochs(), ", clock ",
                  ClockText(s), "\n");
  absl::StrAppend(&out, absl::StrFormat("loss         %.4f\n", s.loss()));
  absl::StrAppend(&out, absl::StrFormat("samples/s    %.0f\n", s.samples_per_s()));
  if (s.has_eval()) {
    absl::StrAppend(&out, absl::StrFormat("eval         accuracy %.4f, loss %.4f on %d examples",
                                          s.eval().accuracy(), s.eval().loss(),
                                          s.eval().examples()));
    if (s.eval().auc() > 0) absl::StrAppend(&out, absl::StrFormat(", auc %.4f", s.eval().auc()));
    absl::StrAppend(&out, "\n");
  }
  if (s.spec().target_accuracy() > 0) {
    absl::StrAppend(&out, absl::StrFormat("target       accuracy %.4f\n",
                                          s.spec().target_accuracy()));
  }
  absl::StrAppend(&out, "checkpoint   ",
                  s.complete_checkpoint() == 0 ? std::string("none")
                                               : absl::StrCat("clock ", s.complete_checkpoint()),
                  "\n");
  absl::StrAppend(&out, "recoveries   ", s.recoveries());
  if (s.recoveries() > 0) {
    absl::StrAppend(&out, " (", s.clocks_redone(), " clocks redone; the last took ",
                    FormatDuration(s.last_recovery_ms()), ")");
  }
  absl::StrAppend(&out, "\n");
  absl::StrAppend(&out, "age          ",
                  FormatDuration(s.submit_time_ms() > 0 ? now_ms - s.submit_time_ms() : -1),
                  "\n");
  absl::StrAppend(&out, "duration     ", FormatDuration(Duration(s, now_ms)), "\n");
  return out;
}

std::string JobsTable(const std::vector<JobStatus>& jobs, int64_t now_ms) {
  std::vector<std::vector<std::string>> rows = {
      {"ID", "STATE", "NAME", "CLOCK", "LOSS", "ACCURACY", "WORKERS", "AGE"}};
  for (const JobStatus& s : jobs) {
    std::string name = s.spec().name();
    if (name.size() > 32) name = name.substr(0, 29) + "...";
    rows.push_back({s.job_id(), JobState_Name(s.state()), name.empty() ? "-" : name,
                    ClockText(s), absl::StrFormat("%.4f", s.loss()), AccuracyText(s),
                    absl::StrCat(s.spec().num_workers()),
                    FormatDuration(s.submit_time_ms() > 0 ? now_ms - s.submit_time_ms() : -1)});
  }
  return Table(rows);
}

std::string ClusterTable(const GetClusterResponse& cluster, int64_t now_ms) {
  std::vector<std::vector<std::string>> rows = {
      {"ROLE", "ID", "ADDRESS", "HEALTH", "JOB/RANK", "DEVICE", "LOAD", "LAST BEAT"}};
  std::vector<bool> have(cluster.num_shards(), false);
  for (const Member& m : cluster.members()) {
    const bool shard = m.role() == SHARD;
    if (shard && m.shard_id() < have.size()) have[m.shard_id()] = true;
    rows.push_back({shard ? "shard" : "worker",
                    shard ? absl::StrCat(m.shard_id(), " (", m.member_id(), ")") : m.member_id(),
                    m.address().empty() ? "-" : m.address(),
                    m.healthy() ? "healthy" : "DEAD",
                    m.job_id().empty() ? "-" : absl::StrCat(m.job_id(), "/", m.rank()),
                    m.device().empty() ? "-" : m.device(),
                    shard ? absl::StrFormat("%.0f%% mem", 100 * m.load())
                          : absl::StrFormat("%.0f samples/s", m.load()),
                    absl::StrCat(FormatDuration(now_ms - m.last_heartbeat_ms()), " ago")});
  }
  std::string out = Table(rows);
  std::vector<uint32_t> missing;
  for (uint32_t i = 0; i < have.size(); ++i) {
    if (!have[i]) missing.push_back(i);
  }
  if (!missing.empty()) {
    absl::StrAppend(&out, "missing shards: ", absl::StrJoin(missing, ", "), " (of ",
                    cluster.num_shards(), ")\n");
  }
  return out;
}

void ProgressMeter::Update(const JobStatus& status, int64_t now_ms) {
  if (first_ms_ < 0 || status.clock() < last_clock_) {
    first_ms_ = now_ms;  // Start, or a rollback: measure afresh.
    first_clock_ = status.clock();
  }
  last_ms_ = now_ms;
  last_clock_ = status.clock();
}

std::string ProgressMeter::Line(const JobStatus& s) const {
  constexpr int kBar = 24;
  const double frac = s.total_clocks() > 0
                          ? std::min(1.0, static_cast<double>(s.clock()) / s.total_clocks())
                          : 0.0;
  const int filled = static_cast<int>(frac * kBar);
  std::string bar = absl::StrCat("[", std::string(filled, '#'), std::string(kBar - filled, '.'),
                                 "]");
  std::string eta = "?";
  if (s.state() == SUCCEEDED) {
    eta = "0s";
  } else if (s.total_clocks() > 0 && last_ms_ > first_ms_ && last_clock_ > first_clock_) {
    const double per_ms = static_cast<double>(last_clock_ - first_clock_) / (last_ms_ - first_ms_);
    const double left = s.total_clocks() > s.clock() ? s.total_clocks() - s.clock() : 0;
    eta = FormatDuration(static_cast<int64_t>(left / per_ms));
  }
  return absl::StrFormat("%s %3.0f%% %-10s epoch %d/%d  clock %s  loss %.4f  acc %s  %.0f samples/s  ETA %s",
                         bar, 100 * frac, JobState_Name(s.state()), s.epoch() + 1, s.spec().epochs(),
                         ClockText(s), s.loss(), AccuracyText(s), s.samples_per_s(), eta);
}

std::string JobSummary(const JobStatus& s) {
  std::string out = absl::StrCat("job ", s.job_id(), " ", JobState_Name(s.state()));
  if (!s.reason().empty()) absl::StrAppend(&out, ": ", s.reason());
  absl::StrAppend(&out, "\n");
  if (s.has_eval()) {
    absl::StrAppend(&out, absl::StrFormat("final accuracy %.4f", s.eval().accuracy()));
    if (s.spec().target_accuracy() > 0) {
      absl::StrAppend(&out, absl::StrFormat(" (target %.4f %s)", s.spec().target_accuracy(),
                                            s.eval().accuracy() >= s.spec().target_accuracy()
                                                ? "reached"
                                                : "not reached"));
    }
    absl::StrAppend(&out, "\n");
  } else if (IsFinal(s.state())) {
    absl::StrAppend(&out, "no evaluation reported\n");
  }
  absl::StrAppend(&out, "duration ",
                  FormatDuration(s.start_time_ms() == 0 || s.end_time_ms() == 0
                                     ? -1
                                     : s.end_time_ms() - s.start_time_ms()),
                  ", clock ", ClockText(s), ", recoveries ", s.recoveries(), "\n");
  return out;
}

}  // namespace ps
