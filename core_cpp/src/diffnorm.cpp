#include "flashfas/diffnorm.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

namespace flashfas {

namespace {

// One differential row: out = a - b (grey levels), returns sum of squares. Integer arithmetic so
// the sum is exact; the difference stays in 16 bits so the square-accumulate maps onto a 16-bit
// multiply-add (pmaddwd / smlal) when vectorised.
std::int64_t difference_row(const std::int16_t* __restrict a, const std::int16_t* __restrict b,
                            int size, std::int16_t* __restrict out) {
  std::int32_t sum_squares = 0;  // <= 4096 * 255^2 < 2^31 (size is capped at 4096 by the binding)
  for (int x = 0; x < size; ++x) {
    const std::int16_t d = static_cast<std::int16_t>(a[x] - b[x]);
    out[x] = d;
    sum_squares += static_cast<std::int32_t>(d) * static_cast<std::int32_t>(d);
  }
  return sum_squares;
}

}  // namespace

std::int16_t* staging_of(float* out) { return reinterpret_cast<std::int16_t*>(out); }

std::int64_t write_differential_row(const std::int16_t* const* planes, int n0, int size, int y,
                                    float* out) {
  std::int16_t* staging = staging_of(out);
  // ATR-FAS §3.2, D = [[1, -I, 0], [0, I, -1]]: rows 0..m-1 are brightest minus each middle frame,
  // rows m..2m-1 each middle frame minus the darkest (m = n0 - 2); the same layout as
  // differential_matrix(n0).
  const int middle = n0 - 2;
  const std::size_t plane = static_cast<std::size_t>(size) * size;
  const std::size_t row_offset = static_cast<std::size_t>(y) * size;
  std::int64_t total = 0;
  for (int j = 0; j < middle; ++j) {
    for (int c = 0; c < 3; ++c) {
      std::int16_t* upper = staging + (static_cast<std::size_t>(j) * 3 + c) * plane + row_offset;
      std::int16_t* lower =
          staging + (static_cast<std::size_t>(middle + j) * 3 + c) * plane + row_offset;
      total += difference_row(planes[0 * 3 + c], planes[(1 + j) * 3 + c], size, upper);
      total += difference_row(planes[(1 + j) * 3 + c], planes[(n0 - 1) * 3 + c], size, lower);
    }
  }
  return total;
}

void normalise_global_rms(float* out, std::size_t count, std::int64_t sum_squares) {
  // Values are grey levels; X = value / 255, rms(X) = sqrt(sum_squares / count) / 255.
  const double mean_square = static_cast<double>(sum_squares) / static_cast<double>(count);
  const double rms = std::sqrt(mean_square) / 255.0;
  const float scale = static_cast<float>(1.0 / (255.0 * std::max(rms, kGlobalRmsEps)));
  // Widen the staged int16 values to scaled floats in place, from the end backwards: float i
  // covers int16 slots 2i and 2i + 1, which are >= i and so already consumed (slot i itself is read
  // into the block before the block is written). memcpy keeps the int16 / float views of the same
  // bytes free of aliasing assumptions.
  auto* bytes = reinterpret_cast<unsigned char*>(out);
  constexpr std::size_t kBlock = 16;
  std::size_t i = count;
  while (i % kBlock != 0) {
    --i;
    std::int16_t v;
    std::memcpy(&v, bytes + 2 * i, sizeof v);
    const float f = static_cast<float>(v) * scale;
    std::memcpy(bytes + 4 * i, &f, sizeof f);
  }
  while (i > 0) {
    i -= kBlock;
    std::int16_t v[kBlock];
    float f[kBlock];
    std::memcpy(v, bytes + 2 * i, sizeof v);
    for (std::size_t k = 0; k < kBlock; ++k) f[k] = static_cast<float>(v[k]) * scale;
    std::memcpy(bytes + 4 * i, f, sizeof f);
  }
}

void diffnorm(const std::uint8_t* aligned, const std::int64_t* order, int n0, int size,
              float* out) {
  const std::size_t row_px = static_cast<std::size_t>(size);
  const std::size_t frame_bytes = row_px * row_px * 3;
  std::vector<std::int16_t> rows(static_cast<std::size_t>(n0) * 3 * row_px);
  std::vector<const std::int16_t*> planes(static_cast<std::size_t>(n0) * 3);
  for (std::size_t i = 0; i < planes.size(); ++i) planes[i] = rows.data() + i * row_px;
  std::int64_t sum_squares = 0;
  for (int y = 0; y < size; ++y) {
    for (int j = 0; j < n0; ++j) {
      const std::uint8_t* src = aligned + static_cast<std::size_t>(order[j]) * frame_bytes +
                                static_cast<std::size_t>(y) * row_px * 3;
      std::int16_t* r = rows.data() + (static_cast<std::size_t>(j) * 3) * row_px;
      for (std::size_t x = 0; x < row_px; ++x) {
        r[x] = src[3 * x];
        r[row_px + x] = src[3 * x + 1];
        r[2 * row_px + x] = src[3 * x + 2];
      }
    }
    sum_squares += write_differential_row(planes.data(), n0, size, y, out);
  }
  const std::size_t count = static_cast<std::size_t>(2 * (n0 - 2)) * 3 * row_px * row_px;
  normalise_global_rms(out, count, sum_squares);
}

}  // namespace flashfas
