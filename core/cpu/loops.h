// The one strided loop every CPU kernel that is not a plain flat loop goes through.
//
// strided_loop(shape, {strides of operand 0, operand 1, ...}, {base offsets}, f) calls f(offsets)
// once per index of `shape`, where offsets[k] is the element offset of operand k. Axes of size 1
// are dropped and axes that are contiguous for every operand are merged first, so a dense or
// broadcast-row operand costs one inner loop, not one index computation per element.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/cpu/parallel.h"

namespace monet::cpu {

template <std::size_t K>
void coalesce(std::vector<int64_t>& shape, std::array<std::vector<int64_t>, K>& st) {
  std::vector<int64_t> s2;
  std::array<std::vector<int64_t>, K> st2;
  for (std::size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    bool merge = !s2.empty();
    for (std::size_t k = 0; k < K && merge; ++k) merge = st2[k].back() == st[k][d] * shape[d];
    if (merge) {
      s2.back() *= shape[d];
      for (std::size_t k = 0; k < K; ++k) st2[k].back() = st[k][d];
    } else {
      s2.push_back(shape[d]);
      for (std::size_t k = 0; k < K; ++k) st2[k].push_back(st[k][d]);
    }
  }
  shape = std::move(s2);
  st = std::move(st2);
}

template <std::size_t K, class F>
void strided_loop(std::vector<int64_t> shape, std::array<std::vector<int64_t>, K> st,
                  std::array<int64_t, K> off, F&& f) {
  for (int64_t n : shape)
    if (n == 0) return;
  coalesce(shape, st);
  const int nd = static_cast<int>(shape.size());
  if (nd == 0) {
    f(off);
    return;
  }
  const int64_t n = shape[nd - 1];
  std::array<int64_t, K> inner;
  for (std::size_t k = 0; k < K; ++k) inner[k] = st[k][nd - 1];
  int64_t outer = 1;
  for (int d = 0; d < nd - 1; ++d) outer *= shape[d];
  std::vector<int64_t> idx(nd > 1 ? nd - 1 : 0, 0);
  for (int64_t o = 0; o < outer; ++o) {
    std::array<int64_t, K> p = off;
    for (int64_t j = 0; j < n; ++j) {
      f(p);
      for (std::size_t k = 0; k < K; ++k) p[k] += inner[k];
    }
    for (int d = nd - 2; d >= 0; --d) {  // odometer increment of the outer index
      for (std::size_t k = 0; k < K; ++k) off[k] += st[k][d];
      if (++idx[d] < shape[d]) break;
      for (std::size_t k = 0; k < K; ++k) off[k] -= st[k][d] * shape[d];
      idx[d] = 0;
    }
  }
}

// strided_loop for loops whose every index writes its own output element (maps, copies): the
// outermost axis is split across threads (core/cpu/parallel.h). `grain`: elements per thread.
template <std::size_t K, class F>
void parallel_strided_loop(const std::vector<int64_t>& shape,
                           const std::array<std::vector<int64_t>, K>& st,
                           const std::array<int64_t, K>& off, int64_t grain, F&& f) {
  int64_t total = 1;
  for (int64_t n : shape) total *= n;
  if (shape.empty() || shape[0] < 2 || chunk_count(total, grain) <= 1) {
    strided_loop(shape, st, off, f);
    return;
  }
  const int64_t inner = total / shape[0];  // elements per index of the outer axis
  parallel_for(shape[0], std::max<int64_t>(1, grain / std::max<int64_t>(inner, 1)),
               [&](int64_t begin, int64_t end) {
                 std::vector<int64_t> sub = shape;
                 sub[0] = end - begin;
                 std::array<int64_t, K> o = off;
                 for (std::size_t k = 0; k < K; ++k) o[k] += begin * st[k][0];
                 strided_loop(sub, st, o, f);
               });
}

}  // namespace monet::cpu
