// Runs the core kernels on fixed pseudo-random inputs (own LCG: no library randomness) and writes
// every output byte to a file, so builds for different CPUs can be compared bit for bit
// (tests/test_core_cross_platform.py: x86-64 vs aarch64 under qemu). Faces near and past the frame
// edges, n0 = 3..8, several sizes.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "flashfas/align.hpp"
#include "flashfas/preprocess.hpp"

namespace {

std::uint32_t lcg_state = 12345;

std::uint32_t next_u32() {
  lcg_state = lcg_state * 1664525u + 1013904223u;
  return lcg_state;
}

double uniform(double lo, double hi) { return lo + (hi - lo) * (next_u32() / 4294967296.0); }

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUTPUT_FILE\n", argv[0]);
    return 2;
  }
  FILE* f = std::fopen(argv[1], "wb");
  if (f == nullptr) return 1;
  const double tmpl[10] = {88.3, 105, 167.7, 105, 128, 144.6, 94.7, 179.2, 161.3, 179.2};
  for (int trial = 0; trial < 12; ++trial) {
    const int n0 = 3 + trial % 6, H = 200 + 37 * trial, W = 300 + 53 * trial;
    const int S = 64 + 16 * (trial % 4);
    std::vector<std::uint8_t> frames(static_cast<std::size_t>(n0) * H * W * 3);
    for (auto& v : frames) v = static_cast<std::uint8_t>(next_u32() >> 24);
    std::vector<double> lm(static_cast<std::size_t>(n0) * 10);
    const double scale = uniform(0.3, 2.5) * S / 256.0, angle = uniform(-0.6, 0.6);
    const double cx = uniform(-0.2, 1.2) * W, cy = uniform(-0.2, 1.2) * H;
    for (int t = 0; t < n0; ++t) {
      for (int k = 0; k < 5; ++k) {
        const double x = (tmpl[2 * k] - 128) / scale, y = (tmpl[2 * k + 1] - 128) / scale;
        lm[t * 10 + 2 * k] = cx + std::cos(angle) * x - std::sin(angle) * y + uniform(-2, 2);
        lm[t * 10 + 2 * k + 1] = cy + std::sin(angle) * x + std::cos(angle) * y + uniform(-2, 2);
      }
    }
    std::vector<double> tp(10);
    for (int k = 0; k < 10; ++k) tp[k] = tmpl[k] * S / 256.0;
    std::vector<std::int64_t> order(n0);
    for (int j = 0; j < n0; ++j) order[j] = (j * 3 + trial) % n0;
    bool perm = true;  // make sure it is a permutation (n0 = 3, 6 with step 3 is not)
    std::vector<int> seen(n0, 0);
    for (auto o : order) {
      if (seen[o]++) perm = false;
    }
    if (!perm) {
      for (int j = 0; j < n0; ++j) order[j] = (n0 - 1 - j);
    }
    std::vector<float> out(static_cast<std::size_t>(2 * (n0 - 2)) * 3 * S * S);
    std::vector<std::int64_t> outside(n0);
    flashfas::preprocess(frames.data(), H, W, lm.data(), tp.data(), 5, order.data(), n0, S,
                         out.data(), outside.data());
    std::vector<std::uint8_t> aligned(static_cast<std::size_t>(n0) * S * S * 3);
    std::vector<std::int64_t> counts(n0);
    flashfas::align_faces(frames.data(), n0, H, W, lm.data(), tp.data(), 5, S, aligned.data(),
                          counts.data());
    std::fwrite(out.data(), sizeof(float), out.size(), f);
    std::fwrite(outside.data(), 8, outside.size(), f);
    std::fwrite(aligned.data(), 1, aligned.size(), f);
    std::fwrite(counts.data(), 8, counts.size(), f);
    std::printf("trial %d n0 %d %dx%d S %d outside[0] %lld\n", trial, n0, W, H, S,
                static_cast<long long>(counts[0]));
  }
  std::fclose(f);
}
