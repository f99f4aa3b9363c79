// The built-in ONNX executor on the CUDA backend: the fixtures against torch and the CPU backend.
// Skips (visibly) without a CUDA build or device.
#include <gtest/gtest.h>

#include "tests/cpu/test_onnx_util.hpp"

TEST(OnnxGpu, Placeholder) { GTEST_SKIP() << "written below"; }
