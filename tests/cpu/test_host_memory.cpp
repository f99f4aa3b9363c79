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
#include "tests/common/onnx_graph.hpp"
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
  onnx_graph::float_value(g->add_input(), "x", {16});
  onnx_graph::float_value(g->add_output(), "y", {16});
  onnx_graph::ints(g, "reps", {1, reps});
  onnx_graph::ints(g, "starts", {0});
  onnx_graph::ints(g, "ends", {16});
  onnx_graph::ints(g, "axes", {1});
  onnx_graph::node(g, "Tile", {"x", "reps"}, "big");
  onnx_graph::node(g, "Slice", {"big", "starts", "ends", "axes"}, "y");
  return m.SerializeAsString();
}

// x [N, 16] -> MatMul by a [16, cols] weight -> Slice back to [N, 16]: 64 * cols bytes of weights.
std::string weights_model(int64_t cols) {
  ::onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(17);
  auto* g = m.mutable_graph();
  g->set_name("weights");
  onnx_graph::float_value(g->add_input(), "x", {16});
  onnx_graph::float_value(g->add_output(), "y", {16});
  auto* w = g->add_initializer();
  w->set_name("w");
  w->set_data_type(::onnx::TensorProto::FLOAT);
  w->add_dims(16);
  w->add_dims(cols);
  w->set_raw_data(std::string(size_t(16 * cols) * 4, '\0'));
  onnx_graph::ints(g, "starts", {0});
  onnx_graph::ints(g, "ends", {16});
  onnx_graph::ints(g, "axes", {1});
  onnx_graph::node(g, "MatMul", {"x", "w"}, "wide");
  onnx_graph::node(g, "Slice", {"wide", "starts", "ends", "axes"}, "y");
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
