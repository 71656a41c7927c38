#include "worker/model/job_model.h"

#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "worker/compute/openblas_gemm.h"

namespace ps::model {
namespace {

JobSpec Mlp() {
  JobSpec spec;
  spec.mutable_data()->set_format(IDX);
  spec.mutable_data()->set_num_features(784);
  spec.mutable_data()->set_num_classes(10);
  spec.mutable_model()->mutable_mlp()->add_hidden(100);
  spec.mutable_model()->mutable_init()->set_kind(Initializer::NORMAL);
  spec.mutable_model()->mutable_init()->set_scale(0.05f);
  spec.mutable_optimizer()->set_learning_rate(0.1f);
  spec.mutable_optimizer()->mutable_momentum()->set_momentum(0.9f);
  return spec;
}

TEST(JobModelTest, MlpTablesCarryInitAndOptimizer) {
  auto tables = TablesForJob(Mlp());
  ASSERT_TRUE(tables.ok()) << tables.status();
  ASSERT_EQ(tables->size(), 4u);
  const TableSpec& w0 = (*tables)[0];
  EXPECT_EQ(w0.name(), "mlp.w0");
  EXPECT_EQ(w0.kind(), TableSpec::DENSE);
  EXPECT_EQ(w0.size(), 78400u);
  EXPECT_EQ(w0.init().kind(), Initializer::NORMAL);
  EXPECT_FLOAT_EQ(w0.init().scale(), 0.05f);
  EXPECT_FLOAT_EQ(w0.optimizer().momentum().momentum(), 0.9f);
  const TableSpec& b1 = (*tables)[3];
  EXPECT_EQ(b1.name(), "mlp.b1");
  EXPECT_EQ(b1.size(), 10u);
  EXPECT_EQ(b1.init().kind(), Initializer::ZEROS);
  EXPECT_FLOAT_EQ(b1.optimizer().learning_rate(), 0.1f);
}

TEST(JobModelTest, SparseLogisticTables) {
  JobSpec spec;
  spec.mutable_data()->set_format(LIBSVM);
  spec.mutable_data()->set_num_features(1000);
  spec.mutable_data()->set_num_classes(2);
  spec.mutable_model()->mutable_logistic_sparse();
  auto tables = TablesForJob(spec);
  ASSERT_TRUE(tables.ok()) << tables.status();
  ASSERT_EQ(tables->size(), 2u);
  EXPECT_EQ((*tables)[0].kind(), TableSpec::SPARSE);
  EXPECT_EQ((*tables)[0].dim(), 1u);
  EXPECT_EQ((*tables)[1].kind(), TableSpec::DENSE);
  EXPECT_EQ((*tables)[1].size(), 1u);
  auto config = ModelConfigFromSpec(spec);
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->kind, ModelKind::kLogisticSparse);
}

TEST(JobModelTest, RejectsSpecsNoModelCanServe) {
  JobSpec spec = Mlp();
  spec.mutable_model()->mutable_mlp()->set_head(ModelSpec::Mlp::SIGMOID);
  auto c = ModelConfigFromSpec(spec);
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find("spec.model"), absl::string_view::npos);

  spec = Mlp();
  spec.mutable_data()->set_format(LIBSVM);
  EXPECT_EQ(ModelConfigFromSpec(spec).status().code(), absl::StatusCode::kInvalidArgument);

  spec = Mlp();
  spec.mutable_model()->mutable_logistic_sparse();  // Dense IDX data.
  EXPECT_EQ(ModelConfigFromSpec(spec).status().code(), absl::StatusCode::kInvalidArgument);

  spec = Mlp();
  spec.mutable_model()->clear_kind();
  EXPECT_EQ(TablesForJob(spec).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(JobModelTest, CreatesAWorkingModelAndMapsTheDevice) {
  std::unique_ptr<compute::Backend> be = compute::CreateOpenBlasBackend();
  JobSpec spec = Mlp();
  auto model = CreateModelForJob(spec, be.get());
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->tables().size(), 4u);
  EXPECT_EQ((*model)->config().hidden, std::vector<uint32_t>{100});
  EXPECT_EQ(CreateModelForJob(spec, nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DeviceChoiceForJob(spec), compute::DeviceChoice::kAuto);
  spec.set_device(DEVICE_CPU);
  EXPECT_EQ(DeviceChoiceForJob(spec), compute::DeviceChoice::kCpu);
  spec.set_device(DEVICE_GPU);
  EXPECT_EQ(DeviceChoiceForJob(spec), compute::DeviceChoice::kGpu);
}

}  // namespace
}  // namespace ps::model
