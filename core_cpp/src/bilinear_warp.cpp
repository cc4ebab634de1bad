#include "flashfas/bilinear_warp.hpp"

#include <algorithm>
#include <cstring>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "bilinear_warp.cpp unpacks byte pairs assuming a little-endian CPU"
#endif

namespace flashfas {

namespace {

// Adding and subtracting 1.5 * 2^23 rounds a float with |x| < 2^22 to the nearest integer, ties
// to even, without SSE4.1 or a libm call, so the coordinate loop stays vectorisable.
constexpr float kRoundMagic = 12582912.0f;
// Bilinear weights in 1/256 of a pixel: the horizontal pass stays exact in 16 bits.
constexpr float kWeightOne = 256.0f;
constexpr std::uint32_t kWeightOneInt = 256;

// High half of a 16 x 16-bit product (one pmulhuw / umull2 when vectorised).
inline std::uint16_t mul_high(std::uint16_t a, std::uint16_t b) {
  return static_cast<std::uint16_t>((static_cast<std::uint32_t>(a) * b) >> 16);
}

// Vertical pass in 16 bits: u, l are the horizontal results in 1/256 grey level (<= 255 * 256),
// a16 = 256 * (vertical weight in 1/256 pixel, 0..255). Returns round(u + (l - u) * a / 256)
// / 256 with the product truncated toward u (error < 1/256 grey level before the final
// rounding, so every value stays within 1 grey level of OpenCV). The two saturating differences
// keep everything unsigned, and u + ... + 128 <= 65408 cannot overflow.
inline std::int16_t vertical_lerp(std::uint16_t u, std::uint16_t l, std::uint16_t a16) {
  const std::uint16_t up = static_cast<std::uint16_t>(l > u ? l - u : 0);
  const std::uint16_t down = static_cast<std::uint16_t>(u > l ? u - l : 0);
  const std::uint16_t v =
      static_cast<std::uint16_t>(u + mul_high(up, a16) - mul_high(down, a16) + 128);
  return static_cast<std::int16_t>(v >> 8);
}

}  // namespace

BilinearRowSampler::BilinearRowSampler(int out_width) : out_width_(out_width) {}

void BilinearRowSampler::set_source(const std::uint8_t* src, int height, int width,
                                    const double inverse_map[6]) {
  src_ = src;
  height_ = height;
  width_ = width;
  std::copy(inverse_map, inverse_map + 6, inverse_map_);
}

int BilinearRowSampler::sample_row(int y, std::int16_t* red, std::int16_t* green,
                                   std::int16_t* blue) {
  const double* m = inverse_map_;
  // Per-row offsets in double, per-pixel steps in float: OpenCV's warpAffine convention.
  const float step_x = static_cast<float>(m[0]), step_y = static_cast<float>(m[3]);
  const float base_x = static_cast<float>(y * m[1] + m[2]);
  const float base_y = static_cast<float>(y * m[4] + m[5]);
  int outside = 0;
  for (int x0 = 0; x0 < out_width_; x0 += kChunk) {
    const int count = std::min(kChunk, out_width_ - x0);
    outside += sample_chunk(x0, count, step_x, step_y, base_x, base_y);
    std::int16_t* __restrict out_r = red + x0;
    std::int16_t* __restrict out_g = green + x0;
    std::int16_t* __restrict out_b = blue + x0;
    interpolate_chunk(count, out_r, out_g, out_b);
  }
  return outside;
}

int BilinearRowSampler::sample_chunk(int x0, int count, float step_x, float step_y, float base_x,
                                     float base_y) {
  // Coordinates clamped into [-2, width + 1] x [-2, height + 1]: a clamped pixel is fully outside
  // either way, and the fixed-point conversion below stays exact and overflow-free.
  const float lo = -2.0f, hi_x = static_cast<float>(width_) + 1.0f,
              hi_y = static_cast<float>(height_) + 1.0f;
  int* __restrict ix = ix_;
  int* __restrict iy = iy_;
  std::uint16_t* __restrict wx = wx_;
  std::uint16_t* __restrict wy = wy_;
  for (int i = 0; i < count; ++i) {
    const float col = static_cast<float>(x0 + i);
    const float sx = std::min(std::max(step_x * col + base_x, lo), hi_x);
    const float sy = std::min(std::max(step_y * col + base_y, lo), hi_y);
    // Coordinate in 1/256 pixel, rounded half-to-even (exact: |sx| * 256 < 2^22, frames are at
    // most kMaxFrameSide wide); its high bits are the tap, its low 8 bits the bilinear weight.
    const int qx = static_cast<int>((sx * kWeightOne + kRoundMagic) - kRoundMagic);
    const int qy = static_cast<int>((sy * kWeightOne + kRoundMagic) - kRoundMagic);
    ix[i] = qx >> 8;  // arithmetic shift: floor for the negative coordinates of the border
    iy[i] = qy >> 8;
    wx[i] = static_cast<std::uint16_t>(qx & 0xFF);
    wy[i] = static_cast<std::uint16_t>(qy & 0xFF);
  }

  // Gather the 2x2 neighbourhood of each pixel as 16-bit byte pairs (top row: r0g0, b0r1, g1b1;
  // bottom row likewise) into planes of a fixed stride: six 2-byte stores per pixel instead of
  // twelve 1-byte ones (the gather is store-bound). Out-of-image taps read 0 (BORDER_CONSTANT).
  // Locals, not members: the stores may alias anything, so members would be reloaded.
  std::uint16_t* __restrict pairs = pairs_;
  const std::uint8_t* __restrict src = src_;
  const int width = width_, height = height_;
  const std::size_t stride = static_cast<std::size_t>(width) * 3;
  const unsigned last_x = static_cast<unsigned>(width - 1);
  const unsigned last_y = static_cast<unsigned>(height - 1);
  int outside = 0;
  for (int i = 0; i < count; ++i) {
    const int cx = ix[i], cy = iy[i];
    if (static_cast<unsigned>(cx) < last_x && static_cast<unsigned>(cy) < last_y) {
      const std::uint8_t* p =
          src + static_cast<std::size_t>(cy) * stride + static_cast<std::size_t>(cx) * 3;
      for (int k = 0; k < 3; ++k) {
        std::uint16_t top, bottom;
        std::memcpy(&top, p + 2 * k, 2);
        std::memcpy(&bottom, p + stride + 2 * k, 2);
        pairs[k * kChunk + i] = top;
        pairs[(3 + k) * kChunk + i] = bottom;
      }
      continue;
    }
    // Border pixel: a tap counts as "outside" only when its weight is non-zero, so an exact
    // identity warp of the whole image reports no outside pixels.
    bool touched_outside = false;
    std::uint8_t taps[12] = {0};  // top r0 g0 b0 r1 g1 b1, then bottom
    for (int tap = 0; tap < 4; ++tap) {
      const int dx = tap & 1, dy = tap >> 1;
      const int sx = cx + dx, sy = cy + dy;
      const bool weighted = (dx == 0 || wx[i] != 0) && (dy == 0 || wy[i] != 0);
      const bool inside = sx >= 0 && sx < width && sy >= 0 && sy < height;
      if (weighted && !inside) touched_outside = true;
      for (int c = 0; c < 3; ++c) {
        taps[6 * dy + 3 * dx + c] =
            inside ? src[static_cast<std::size_t>(sy) * stride + static_cast<std::size_t>(sx) * 3 +
                         static_cast<std::size_t>(c)]
                   : 0;
      }
    }
    for (int k = 0; k < 6; ++k) std::memcpy(&pairs[k * kChunk + i], taps + 2 * k, 2);
    outside += touched_outside ? 1 : 0;
  }
  return outside;
}

void BilinearRowSampler::interpolate_chunk(int count, std::int16_t* __restrict red,
                                           std::int16_t* __restrict green,
                                           std::int16_t* __restrict blue) const {
  // Integer arithmetic only, all in 16-bit lanes: along x exactly (<= 255 * 256), then along y
  // (vertical_lerp). No floating point here, so every platform gives the same bytes. The byte
  // pairs are in memory order, so unpacking them with shifts assumes a little-endian CPU.
  const std::uint16_t* __restrict wx = wx_;
  const std::uint16_t* __restrict wy = wy_;
  const std::uint16_t* __restrict t0 = pairs_;
  const std::uint16_t* __restrict t1 = pairs_ + kChunk;
  const std::uint16_t* __restrict t2 = pairs_ + 2 * kChunk;
  const std::uint16_t* __restrict b0 = pairs_ + 3 * kChunk;
  const std::uint16_t* __restrict b1 = pairs_ + 4 * kChunk;
  const std::uint16_t* __restrict b2 = pairs_ + 5 * kChunk;
  for (int i = 0; i < count; ++i) {
    const std::uint16_t ax = wx[i], bx = static_cast<std::uint16_t>(kWeightOneInt - wx[i]);
    // t0 = r0 | g0 << 8, t1 = b0 | r1 << 8, t2 = g1 | b1 << 8 (p00 = r0 g0 b0, p01 = r1 g1 b1)
    const std::uint16_t ur = static_cast<std::uint16_t>((t0[i] & 0xFF) * bx + (t1[i] >> 8) * ax);
    const std::uint16_t ug = static_cast<std::uint16_t>((t0[i] >> 8) * bx + (t2[i] & 0xFF) * ax);
    const std::uint16_t ub = static_cast<std::uint16_t>((t1[i] & 0xFF) * bx + (t2[i] >> 8) * ax);
    const std::uint16_t lr = static_cast<std::uint16_t>((b0[i] & 0xFF) * bx + (b1[i] >> 8) * ax);
    const std::uint16_t lg = static_cast<std::uint16_t>((b0[i] >> 8) * bx + (b2[i] & 0xFF) * ax);
    const std::uint16_t lb = static_cast<std::uint16_t>((b1[i] & 0xFF) * bx + (b2[i] >> 8) * ax);
    const std::uint16_t a16 = static_cast<std::uint16_t>(wy[i] << 8);
    red[i] = vertical_lerp(ur, lr, a16);
    green[i] = vertical_lerp(ug, lg, a16);
    blue[i] = vertical_lerp(ub, lb, a16);
  }
}

}  // namespace flashfas
