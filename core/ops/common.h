// Helpers shared by the op files: axis normalisation, broadcasting, views, device checks.
#pragma once
#include <vector>

#include "core/autograd.h"
#include "core/ops.h"

namespace monet::detail {

// Negative axes count from the end; out of range is an error naming the op and the shape.
int64_t norm_axis(int64_t axis, int64_t ndim, const char* op);

// numpy broadcasting of two shapes; throws naming `op` and both shapes when they do not broadcast.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

// Strides of `a` viewed as `shape` (a's shape right-aligned against it, broadcast axes stride 0).
Shape broadcast_strides(const Tensor& a, const Shape& shape);

// A new tensor sharing a's storage.
Tensor make_view(const Tensor& a, Shape shape, Shape strides, int64_t offset);

// Kernels in this build run on the CPU; a tensor elsewhere is refused with the op's name.
// (The CUDA backend adds its branch in front of this check.)
void check_cpu(const char* op, const Tensor& t);
// The check of an op that has a CUDA branch: on a CUDA tensor, that the backend has a kernel for
// its dtype (F32, and I32 when `allow_int`); anywhere else, check_cpu.
void check_backend(const char* op, const Tensor& t, bool allow_int = false);
void check_same_device(const char* op, const Tensor& a, const Tensor& b);
void check_dtype(const char* op, const Tensor& t, DType want);

// Softmax's backward over the last axis of a contiguous y = softmax(scale·x), whose rows may hold
// zeros (causal or masked entries): dx = scale · y ⊙ (g − Σ_j g_j y_j), one pass per row, on the
// CPU or CUDA (ops/softmax.cpp). Shared by softmax, masked_softmax and causal_softmax.
Tensor softmax_rows_backward(const Tensor& y, const Tensor& g, double scale = 1.0);

}  // namespace monet::detail
