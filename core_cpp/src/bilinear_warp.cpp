#include "flashfas/bilinear_warp.hpp"

#include <algorithm>

namespace flashfas {

namespace {

constexpr int kTapRows = 12;  // (p00, p01, p10, p11) x (r, g, b), planar
// Adding and subtracting 1.5 * 2^23 rounds a float in [0, 2^22) to the nearest integer, ties to
// even (cv::saturate_cast's rounding), without relying on SSE4.1 / a libm call: stays vectorisable.
constexpr float kRoundMagic = 12582912.0f;

}  // namespace

BilinearRowSampler::BilinearRowSampler(int out_width)
    : out_width_(out_width),
      column_(static_cast<std::size_t>(out_width)),
      ix_(static_cast<std::size_t>(out_width)),
      iy_(static_cast<std::size_t>(out_width)),
      fx_(static_cast<std::size_t>(out_width)),
      fy_(static_cast<std::size_t>(out_width)),
      taps_(static_cast<std::size_t>(out_width) * kTapRows) {
  for (int x = 0; x < out_width; ++x) column_[static_cast<std::size_t>(x)] = static_cast<float>(x);
}

void BilinearRowSampler::set_source(const std::uint8_t* src, int height, int width,
                                    const double inverse_map[6]) {
  src_ = src;
  height_ = height;
  width_ = width;
  std::copy(inverse_map, inverse_map + 6, inverse_map_);
}

int BilinearRowSampler::sample_row(int y, std::int16_t* red, std::int16_t* green,
                                   std::int16_t* blue) {
  const int n = out_width_;
  const double* m = inverse_map_;
  // Per-row offsets in double, per-pixel steps in float: OpenCV's warpAffine convention.
  const float step_x = static_cast<float>(m[0]), step_y = static_cast<float>(m[3]);
  const float base_x = static_cast<float>(y * m[1] + m[2]);
  const float base_y = static_cast<float>(y * m[4] + m[5]);
  // Coordinates clamped into [-2, size + 1]: any clamped pixel is fully outside either way, and the
  // truncation-based floor below stays exact and overflow-free.
  const float lo = -2.0f, hi_x = static_cast<float>(width_) + 1.0f,
              hi_y = static_cast<float>(height_) + 1.0f;
  const float* col = column_.data();
  int* ix = ix_.data();
  int* iy = iy_.data();
  float* fx = fx_.data();
  float* fy = fy_.data();
  for (int x = 0; x < n; ++x) {
    const float sx = std::min(std::max(step_x * col[x] + base_x, lo), hi_x);
    const float sy = std::min(std::max(step_y * col[x] + base_y, lo), hi_y);
    const int tx = static_cast<int>(sx), ty = static_cast<int>(sy);
    const int fl_x = tx - (sx < static_cast<float>(tx) ? 1 : 0);
    const int fl_y = ty - (sy < static_cast<float>(ty) ? 1 : 0);
    ix[x] = fl_x;
    iy[x] = fl_y;
    fx[x] = sx - static_cast<float>(fl_x);
    fy[x] = sy - static_cast<float>(fl_y);
  }

  // Gather the four taps per pixel into planar rows; out-of-image taps read 0 (BORDER_CONSTANT).
  // Locals, not members: the byte stores below may alias anything, so members would be reloaded.
  std::uint8_t* __restrict tp = taps_.data();
  const std::uint8_t* __restrict src = src_;
  const int width = width_, height = height_;
  const std::size_t stride = static_cast<std::size_t>(width) * 3;
  const unsigned last_x = static_cast<unsigned>(width - 1), last_y = static_cast<unsigned>(height - 1);
  int outside = 0;
  for (int x = 0; x < n; ++x) {
    const int cx = ix[x], cy = iy[x];
    if (static_cast<unsigned>(cx) < last_x && static_cast<unsigned>(cy) < last_y) {
      const std::uint8_t* p = src + static_cast<std::size_t>(cy) * stride +
                              static_cast<std::size_t>(cx) * 3;
      for (int c = 0; c < 3; ++c) {
        tp[(0 + 4 * c) * n + x] = p[c];
        tp[(1 + 4 * c) * n + x] = p[3 + c];
        tp[(2 + 4 * c) * n + x] = p[stride + c];
        tp[(3 + 4 * c) * n + x] = p[stride + 3 + c];
      }
      continue;
    }
    // Border pixel: a tap counts as "outside" only when its weight is non-zero, so an exact
    // identity warp of the whole image reports no outside pixels.
    bool touched_outside = false;
    for (int tap = 0; tap < 4; ++tap) {
      const int dx = tap & 1, dy = tap >> 1;
      const int sx = cx + dx, sy = cy + dy;
      const bool weighted = (dx == 0 || fx[x] != 0.0f) && (dy == 0 || fy[x] != 0.0f);
      const bool inside = sx >= 0 && sx < width && sy >= 0 && sy < height;
      if (weighted && !inside) touched_outside = true;
      for (int c = 0; c < 3; ++c) {
        tp[(tap + 4 * c) * n + x] =
            inside ? src[static_cast<std::size_t>(sy) * stride + static_cast<std::size_t>(sx) * 3 +
                          static_cast<std::size_t>(c)]
                   : 0;
      }
    }
    outside += touched_outside ? 1 : 0;
  }

  // Interpolate (same operation order as OpenCV: along x, then along y) and round.
  std::int16_t* out[3] = {red, green, blue};
  for (int c = 0; c < 3; ++c) {
    const std::uint8_t* p00 = tp + (0 + 4 * c) * n;
    const std::uint8_t* p01 = tp + (1 + 4 * c) * n;
    const std::uint8_t* p10 = tp + (2 + 4 * c) * n;
    const std::uint8_t* p11 = tp + (3 + 4 * c) * n;
    std::int16_t* o = out[c];
    for (int x = 0; x < n; ++x) {
      const float a = p00[x], b = p01[x], d = p10[x], e = p11[x];
      const float top = a + fx[x] * (b - a);
      const float bottom = d + fx[x] * (e - d);
      float v = top + fy[x] * (bottom - top);
      v = (v + kRoundMagic) - kRoundMagic;
      v = std::min(std::max(v, 0.0f), 255.0f);
      o[x] = static_cast<std::int16_t>(v);
    }
  }
  return outside;
}

}  // namespace flashfas
