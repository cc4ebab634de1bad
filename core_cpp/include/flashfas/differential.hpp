#pragma once
#include <cstddef>
#include <vector>

namespace flashfas {

// ATR-FAS §3.2: D = [[1, -I, 0], [0, I, -1]], N = 2(N0 - 2) rows over N0 intensity-sorted frames.
// Row-major N x N0; n0 must be in [3, 8] (checked by the binding layer).
std::vector<float> differential_matrix(int n0);

}  // namespace flashfas
