#include "flashfas/differential.hpp"

namespace flashfas {

std::vector<float> differential_matrix(int n0) {
  const int middle = n0 - 2;
  const int rows = 2 * middle;
  std::vector<float> d(static_cast<std::size_t>(rows) * n0, 0.0f);
  for (int k = 0; k < middle; ++k) {
    // brightest frame minus each middle frame
    d[static_cast<std::size_t>(k) * n0 + 0] = 1.0f;
    d[static_cast<std::size_t>(k) * n0 + 1 + k] = -1.0f;
    // each middle frame minus the darkest frame
    d[static_cast<std::size_t>(middle + k) * n0 + 1 + k] = 1.0f;
    d[static_cast<std::size_t>(middle + k) * n0 + n0 - 1] = -1.0f;
  }
  return d;
}

}  // namespace flashfas
