// Fuzzes JobSpec validation (common/job_spec.h), the check every submitted job passes
// on the coordinator. The input is a text-format JobSpec (what psctl submits) or, when
// it does not parse as one, the binary encoding. Checks: the result is OK or
// INVALID_ARGUMENT whose message starts with the field's path ("spec."), and a spec
// that round-trips through its binary encoding validates the same.
#include <cstdint>
#include <string>

#include "common/job_spec.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/stubs/logging.h"
#include "google/protobuf/text_format.h"
#include "proto/job.pb.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

// Drops the parser's complaints: malformed text is the normal case here.
class Silent final : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int, google::protobuf::io::ColumnNumber, const std::string&) override {}
  void AddWarning(int, google::protobuf::io::ColumnNumber, const std::string&) override {}
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Protobuf logs every string that is not UTF-8; that is expected here, and slow.
  static const bool quiet = (google::protobuf::SetLogHandler(nullptr), true);
  (void)quiet;
  if (size > (1 << 16)) return 0;  // Specs are small; long inputs only slow the search.
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  ps::JobSpec spec;
  Silent silent;
  google::protobuf::TextFormat::Parser parser;
  parser.RecordErrorsTo(&silent);
  if (!parser.ParseFromString(bytes, &spec)) {
    spec.Clear();
    if (!spec.ParseFromString(bytes)) return 0;
  }
  const absl::Status s = ps::ValidateJobSpec(spec);
  if (!s.ok()) {
    PS_FUZZ_CHECK(s.code() == absl::StatusCode::kInvalidArgument, s.ToString());
    PS_FUZZ_CHECK(ps::fuzz::NamesField(s, {"spec."}), s.ToString());
  }
  // The text parser takes strings that are not UTF-8 ("\377"), which the binary parser
  // (gRPC's, on the coordinator) refuses; such a spec never reaches ValidateJobSpec there.
  ps::JobSpec again;
  if (again.ParseFromString(spec.SerializeAsString())) {
    const absl::Status s2 = ps::ValidateJobSpec(again);
    PS_FUZZ_CHECK(s2 == s, s.ToString() + " vs " + s2.ToString());
  }

  // The parts a shard validates on its own (CreateTable, the job's optimizer).
  const absl::Status o = ps::ValidateOptimizer(spec.optimizer(), "optimizer");
  if (!o.ok()) PS_FUZZ_CHECK(ps::fuzz::NamesField(o, {"optimizer"}), o.ToString());
  const absl::Status n = ps::ValidateName(spec.name(), "name");
  if (!n.ok()) PS_FUZZ_CHECK(ps::fuzz::NamesField(n, {"name"}), n.ToString());
  return 0;
}
