// The host memory a run may plan for (host/core/host_memory.hpp): MemAvailable, the cgroup v2
// room, the ALMC_HOST_MEMORY_LIMIT_MB cap, and the ONNX executor's refusal of a plan beyond it.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "host/backend/backend.hpp"
#include "host/core/host_memory.hpp"
#include "host/onnx/executor.hpp"
#include "tests/cpu/test_onnx_util.hpp"

namespace hm = almc::host_memory_detail;
constexpr size_t kNone = std::numeric_limits<size_t>::max();

TEST(HostMemory, ParsesMemAvailableCgroupRoomAndTheCap) {
  const std::string meminfo =
      "MemTotal:       24576000 kB\nMemFree:          512000 kB\nMemAvailable:   20480000 kB\nBuffers: 1 kB\n";
  EXPECT_EQ(hm::meminfo_available(meminfo), size_t(20480000) * 1024);
  EXPECT_EQ(hm::meminfo_available("MemTotal: 5 kB\n"), 0u);
  EXPECT_EQ(hm::cgroup_room("max\n", "123\n"), kNone);
  EXPECT_EQ(hm::cgroup_room("4294967296\n", "1073741824\n"), size_t(3) << 30);
  EXPECT_EQ(hm::cgroup_room("1000\n", "2000\n"), 0u);  // over the limit already
  EXPECT_EQ(hm::cgroup_room("", ""), kNone);           // no cgroup v2 files
  EXPECT_EQ(hm::env_cap("512"), size_t(512) << 20);
  for (const char* bad : {"", "0", "-5", "12x", "lots"}) EXPECT_EQ(hm::env_cap(bad), kNone) << bad;
  EXPECT_EQ(hm::env_cap(nullptr), kNone);
}

TEST(HostMemory, TheCapBoundsWhatTheBackendReports) {
  const size_t before = almc::available_host_memory();
  EXPECT_GT(before, size_t(16) << 20);
  ::setenv("ALMC_HOST_MEMORY_LIMIT_MB", "3", 1);
  EXPECT_EQ(almc::available_host_memory(), size_t(3) << 20);
  const auto be = almc::make_cpu_backend(1);
  EXPECT_EQ(be->available_memory(), size_t(3) << 20);
  ::unsetenv("ALMC_HOST_MEMORY_LIMIT_MB");
}

namespace {
// x [N, 16] -> Tile to [N, 16 * reps] -> Slice back to [N, 16]: a plan whose activations are
// 64 * reps bytes per sample.
std::string tiling_model(int64_t reps) {
  ::onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(17);
  auto* g = m.mutable_graph();
  g->set_name("tile");
  auto value = [](::onnx::ValueInfoProto* v, const char* name, int64_t cols) {
    v->set_name(name);
    auto* t = v->mutable_type()->mutable_tensor_type();
    t->set_elem_type(::onnx::TensorProto::FLOAT);
    t->mutable_shape()->add_dim()->set_dim_param("n");
    t->mutable_shape()->add_dim()->set_dim_value(cols);
  };
  value(g->add_input(), "x", 16);
  value(g->add_output(), "y", 16);
  auto ints = [&](const char* name, std::vector<int64_t> v) {
    auto* t = g->add_initializer();
    t->set_name(name);
    t->set_data_type(::onnx::TensorProto::INT64);
    t->add_dims(int64_t(v.size()));
    for (auto x : v) t->add_int64_data(x);
  };
  ints("reps", {1, reps});
  ints("starts", {0});
  ints("ends", {16});
  ints("axes", {1});
  auto* tile = g->add_node();
  tile->set_op_type("Tile");
  tile->add_input("x");
  tile->add_input("reps");
  tile->add_output("big");
  auto* slice = g->add_node();
  slice->set_op_type("Slice");
  for (const char* in : {"big", "starts", "ends", "axes"}) slice->add_input(in);
  slice->add_output("y");
  return m.SerializeAsString();
}

// x [N, 16] -> MatMul by a [16, cols] weight -> Slice back to [N, 16]: 64 * cols bytes of weights.
std::string weights_model(int64_t cols) {
  ::onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(17);
  auto* g = m.mutable_graph();
  g->set_name("weights");
  auto value = [](::onnx::ValueInfoProto* v, const char* name) {
    v->set_name(name);
    auto* t = v->mutable_type()->mutable_tensor_type();
    t->set_elem_type(::onnx::TensorProto::FLOAT);
    t->mutable_shape()->add_dim()->set_dim_param("n");
    t->mutable_shape()->add_dim()->set_dim_value(16);
  };
  value(g->add_input(), "x");
  value(g->add_output(), "y");
  auto* w = g->add_initializer();
  w->set_name("w");
  w->set_data_type(::onnx::TensorProto::FLOAT);
  w->add_dims(16);
  w->add_dims(cols);
  w->set_raw_data(std::string(size_t(16 * cols) * 4, '\0'));
  for (auto [name, v] : {std::pair<const char*, int64_t>{"starts", 0}, {"ends", 16}, {"axes", 1}}) {
    auto* t = g->add_initializer();
    t->set_name(name);
    t->set_data_type(::onnx::TensorProto::INT64);
    t->add_dims(1);
    t->add_int64_data(v);
  }
  auto* mm = g->add_node();
  mm->set_op_type("MatMul");
  mm->add_input("x");
  mm->add_input("w");
  mm->add_output("wide");
  auto* slice = g->add_node();
  slice->set_op_type("Slice");
  for (const char* in : {"wide", "starts", "ends", "axes"}) slice->add_input(in);
  slice->add_output("y");
  return m.SerializeAsString();
}
}  // namespace

// Weights beyond the cap are refused too, before the plan's copy of them is allocated (the CPU
// builds it in the backend's memory, where it stays: the arena's check alone no longer saw it).
TEST(HostMemory, OnnxWeightsBeyondTheCapAreRefused) {
  const auto be = almc::make_cpu_backend(1);
  ::setenv("ALMC_HOST_MEMORY_LIMIT_MB", "3", 1);
  almc::onnx::ExecConfig cfg;
  cfg.level = ALMC_LEVEL_NONE;
  try {
    almc::onnx::Executor ex(almc::onnx::load_graph_from_bytes(weights_model(int64_t(1) << 16), "weights"), cfg, *be);
    ADD_FAILURE() << "4 MiB of weights fitted in 3 MiB";
  } catch (const almc::onnx::Error& e) {
    EXPECT_EQ(e.status(), ALMC_ERR_OUT_OF_MEMORY) << e.what();
    EXPECT_NE(std::string(e.what()).find("constants need 4 MiB of host memory but 3 MiB are available"), std::string::npos)
        << e.what();
  }
  EXPECT_NO_THROW(almc::onnx::Executor(almc::onnx::load_graph_from_bytes(weights_model(64), "weights"), cfg, *be));
  ::unsetenv("ALMC_HOST_MEMORY_LIMIT_MB");
}

// A network whose activations exceed the cap is refused before anything is allocated, with the
// sizes in the message; a smaller one still loads under the same cap.
TEST(HostMemory, OnnxPlanBeyondTheCapIsRefused) {
  const auto be = almc::make_cpu_backend(1);
  ::setenv("ALMC_HOST_MEMORY_LIMIT_MB", "64", 1);
  almc::onnx::ExecConfig cfg;
  cfg.level = ALMC_LEVEL_NONE;
  try {
    almc::onnx::Executor ex(almc::onnx::load_graph_from_bytes(tiling_model(int64_t(1) << 21), "tiling"), cfg, *be);
    ADD_FAILURE() << "a plan of 128 MiB per sample fitted in 64 MiB";
  } catch (const almc::onnx::Error& e) {
    EXPECT_EQ(e.status(), ALMC_ERR_OUT_OF_MEMORY) << e.what();
    EXPECT_NE(std::string(e.what()).find("MiB are available"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(almc::onnx::Executor(almc::onnx::load_graph_from_bytes(tiling_model(16), "tiling"), cfg, *be));
  ::unsetenv("ALMC_HOST_MEMORY_LIMIT_MB");
}
