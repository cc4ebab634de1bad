#pragma once
#include <cstddef>
#include <cstdint>

namespace flashfas {

// Row-by-row bilinear sampler of an interleaved uint8 RGB image under an affine map, with the
// same conventions as cv2.warpAffine(INTER_LINEAR, BORDER_CONSTANT, 0): pixel centres at integer
// coordinates, source taps outside the image read as 0. Source coordinates are computed in float32
// like OpenCV (without FMA contraction: the build sets -ffp-contract=off), the bilinear weights are
// quantised to 1/256 pixel and the interpolation is 16-bit integer arithmetic, so x86-64 and
// aarch64 give bit-identical results. Against OpenCV 5 (float interpolation) every
// value is within 1 grey level.
//
// The sampler owns its small scratch rows (no allocation per row) and is reused across frames.
// Largest frame side the sampler accepts (coordinates in 1/256 pixel must stay below 2^22).
constexpr int kMaxFrameSide = 16000;

class BilinearRowSampler {
 public:
  explicit BilinearRowSampler(int out_width);

  // Source image [height, width, 3] (C-contiguous) and the inverse map (output -> source pixel).
  void set_source(const std::uint8_t* src, int height, int width, const double inverse_map[6]);

  // Samples output row y into three planar int16 rows (values 0..255). Returns how many pixels of
  // the row read at least one source tap (with non-zero weight) outside the image.
  int sample_row(int y, std::int16_t* red, std::int16_t* green, std::int16_t* blue);

 private:
  // The row is processed in chunks of a fixed width so the scratch rows have compile-time strides
  // (constant address offsets in the gather loop) and live in L1.
  static constexpr int kChunk = 64;
  int sample_chunk(int x0, int count, float step_x, float step_y, float base_x, float base_y);
  void interpolate_chunk(int count, std::int16_t* red, std::int16_t* green,
                         std::int16_t* blue) const;

  int out_width_;
  const std::uint8_t* src_ = nullptr;
  int height_ = 0;
  int width_ = 0;
  double inverse_map_[6] = {0, 0, 0, 0, 0, 0};
  int ix_[kChunk];  // integer part of the source coordinate
  int iy_[kChunk];
  std::uint16_t wx_[kChunk];  // fractional part as a weight in [0, 256)
  std::uint16_t wy_[kChunk];
  std::uint16_t pairs_[6 * kChunk];  // byte pairs of the top then bottom taps, planar
};

}  // namespace flashfas
