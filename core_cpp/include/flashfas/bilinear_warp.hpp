#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace flashfas {

// Row-by-row bilinear sampler of an interleaved uint8 RGB image under an affine map, with the
// same conventions as cv2.warpAffine(INTER_LINEAR, BORDER_CONSTANT, 0): pixel centres at integer
// coordinates, source taps outside the image read as 0, results rounded half-to-even.
// Arithmetic is float32 without FMA contraction (the build sets -ffp-contract=off), so x86-64 and
// aarch64 give bit-identical results; against OpenCV the difference is at most 1 level on a tiny
// fraction of pixels (OpenCV fuses multiply-adds where the CPU has FMA).
//
// The sampler owns its scratch rows (allocated once, not per row) and is reused across frames.
class BilinearRowSampler {
 public:
  explicit BilinearRowSampler(int out_width);

  // Source image [height, width, 3] (C-contiguous) and the inverse map (output -> source pixel).
  void set_source(const std::uint8_t* src, int height, int width, const double inverse_map[6]);

  // Samples output row y into three planar int16 rows (values 0..255). Returns how many pixels of
  // the row read at least one source tap (with non-zero weight) outside the image.
  int sample_row(int y, std::int16_t* red, std::int16_t* green, std::int16_t* blue);

 private:
  int out_width_;
  const std::uint8_t* src_ = nullptr;
  int height_ = 0;
  int width_ = 0;
  double inverse_map_[6] = {0, 0, 0, 0, 0, 0};
  std::vector<float> column_;                 // float(x) for x in [0, out_width)
  std::vector<int> ix_, iy_;                  // integer part of the source coordinate
  std::vector<float> fx_, fy_;                // fractional part
  std::vector<std::uint8_t> taps_;            // 12 planar rows: (p00, p01, p10, p11) x (r, g, b)
};

}  // namespace flashfas
