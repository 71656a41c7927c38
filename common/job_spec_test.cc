#include "common/job_spec.h"

#include <functional>
#include <string>

#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"

namespace ps {
namespace {

JobSpec ValidSpec() {
  JobSpec spec;
  const bool parsed = google::protobuf::TextFormat::ParseFromString(R"pb(
    name: "digits softmax"
    model { softmax {} }
    data {
      format: CSV
      train_path: "digits.csv.gz"
      test_every: 5
      num_features: 64
      num_classes: 10
      label_column: -1
    }
    optimizer { sgd {} learning_rate: 0.1 }
    consistency { mode: SYNC }
    num_workers: 2
    batch_size: 32
    epochs: 5
    checkpoint { interval_clocks: 50 }
    seed: 7
  )pb", &spec);
  EXPECT_TRUE(parsed);
  return spec;
}

TEST(JobSpecTest, ValidSpecPasses) { EXPECT_TRUE(ValidateJobSpec(ValidSpec()).ok()); }

struct Case {
  const char* field;
  std::function<void(JobSpec*)> mutate;
};

// Each invalid spec gets INVALID_ARGUMENT whose message starts with the field's path.
TEST(JobSpecTest, EachErrorNamesItsField) {
  const Case cases[] = {
      {"spec.model", [](JobSpec* s) { s->mutable_model()->clear_kind(); }},
      {"spec.model.mlp.hidden[1]",
       [](JobSpec* s) {
         s->mutable_model()->mutable_mlp()->add_hidden(10);
         s->mutable_model()->mutable_mlp()->add_hidden(0);
       }},
      {"spec.model.mlp.head",
       [](JobSpec* s) {
         s->mutable_model()->mutable_mlp()->set_head(ModelSpec::Mlp::SIGMOID);
       }},
      {"spec.data.format", [](JobSpec* s) { s->mutable_data()->set_format(FORMAT_UNSPECIFIED); }},
      {"spec.data.train_path", [](JobSpec* s) { s->mutable_data()->clear_train_path(); }},
      {"spec.data.train_labels_path", [](JobSpec* s) { s->mutable_data()->set_format(IDX); }},
      {"spec.data.num_features", [](JobSpec* s) { s->mutable_data()->set_num_features(0); }},
      {"spec.data.num_classes", [](JobSpec* s) { s->mutable_data()->set_num_classes(1); }},
      {"spec.data.test_every", [](JobSpec* s) { s->mutable_data()->set_test_every(1); }},
      {"spec.data.sharding",
       [](JobSpec* s) { s->mutable_data()->set_sharding(static_cast<DataSpec::Sharding>(7)); }},
      {"spec.optimizer", [](JobSpec* s) { s->mutable_optimizer()->clear_kind(); }},
      {"spec.optimizer.learning_rate",
       [](JobSpec* s) { s->mutable_optimizer()->set_learning_rate(-0.1f); }},
      {"spec.optimizer.weight_decay",
       [](JobSpec* s) { s->mutable_optimizer()->set_weight_decay(-1); }},
      {"spec.optimizer.adam.beta1",
       [](JobSpec* s) { s->mutable_optimizer()->mutable_adam()->set_beta1(1.0f); }},
      {"spec.optimizer.momentum.momentum",
       [](JobSpec* s) { s->mutable_optimizer()->mutable_momentum()->set_momentum(-0.5f); }},
      {"spec.consistency.mode",
       [](JobSpec* s) { s->mutable_consistency()->set_mode(CONSISTENCY_UNSPECIFIED); }},
      {"spec.consistency.staleness",
       [](JobSpec* s) { s->mutable_consistency()->set_staleness(2); }},
      {"spec.num_workers", [](JobSpec* s) { s->set_num_workers(0); }},
      {"spec.batch_size", [](JobSpec* s) { s->set_batch_size(0); }},
      {"spec.epochs", [](JobSpec* s) { s->set_epochs(0); }},
      {"spec.checkpoint.keep", [](JobSpec* s) { s->mutable_checkpoint()->set_keep(5000); }},
      {"spec.target_accuracy", [](JobSpec* s) { s->set_target_accuracy(1.5f); }},
  };
  for (const Case& c : cases) {
    JobSpec spec = ValidSpec();
    c.mutate(&spec);
    const absl::Status s = ValidateJobSpec(spec);
    ASSERT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.field;
    EXPECT_EQ(s.message().substr(0, std::string(c.field).size() + 1),
              std::string(c.field) + ":")
        << s.message();
  }
}

TEST(JobSpecTest, GlobalBatchShardingIsValid) {
  JobSpec spec = ValidSpec();
  spec.mutable_data()->set_sharding(DataSpec::GLOBAL_BATCH);
  EXPECT_TRUE(ValidateJobSpec(spec).ok());
}

TEST(JobSpecTest, BoundedTakesAStaleness) {
  JobSpec spec = ValidSpec();
  spec.mutable_consistency()->set_mode(BOUNDED);
  spec.mutable_consistency()->set_staleness(3);
  EXPECT_TRUE(ValidateJobSpec(spec).ok());
}

TEST(JobSpecTest, NamesAndTables) {
  EXPECT_TRUE(ValidateName("job-1.a_b", "job_id").ok());
  EXPECT_FALSE(ValidateName("", "job_id").ok());
  EXPECT_FALSE(ValidateName("a/b", "job_id").ok());
  EXPECT_FALSE(ValidateName(std::string(65, 'a'), "job_id").ok());

  TableSpec t;
  t.set_name("w");
  t.set_kind(TableSpec::SPARSE);
  t.set_dim(0);
  t.mutable_optimizer()->mutable_sgd();
  t.mutable_optimizer()->set_learning_rate(0.1f);
  absl::Status s = ValidateTableSpec(t, "table");
  EXPECT_EQ(s.message().substr(0, 10), "table.dim:");
  t.set_dim(8);
  EXPECT_TRUE(ValidateTableSpec(t, "table").ok());
}

}  // namespace
}  // namespace ps
