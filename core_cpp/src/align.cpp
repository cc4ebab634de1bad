#include "flashfas/align.hpp"

#include <cstddef>
#include <vector>

#include "flashfas/bilinear_warp.hpp"
#include "flashfas/similarity.hpp"

namespace flashfas {

void align_faces(const std::uint8_t* frames, int t_count, int height, int width,
                 const double* landmarks, const double* face_template, int k, int size,
                 std::uint8_t* aligned, std::int64_t* outside_counts) {
  const std::size_t frame_bytes = static_cast<std::size_t>(height) * width * 3;
  const std::size_t out_bytes = static_cast<std::size_t>(size) * size * 3;
  const std::size_t row_px = static_cast<std::size_t>(size);
  BilinearRowSampler sampler(size);
  std::vector<std::int16_t> rows(row_px * 3);
  for (int t = 0; t < t_count; ++t) {
    double to_template[6], to_source[6];
    // Landmarks -> template is the forward map; sampling needs aligned pixel -> source pixel.
    estimate_similarity(landmarks + static_cast<std::size_t>(t) * k * 2, face_template, k,
                        to_template);
    invert_affine(to_template, to_source);
    sampler.set_source(frames + t * frame_bytes, height, width, to_source);
    std::uint8_t* dst = aligned + t * out_bytes;
    std::int64_t outside = 0;
    for (int y = 0; y < size; ++y) {
      outside += sampler.sample_row(y, rows.data(), rows.data() + row_px, rows.data() + 2 * row_px);
      std::uint8_t* d = dst + static_cast<std::size_t>(y) * row_px * 3;
      for (std::size_t x = 0; x < row_px; ++x) {
        d[3 * x + 0] = static_cast<std::uint8_t>(rows[x]);
        d[3 * x + 1] = static_cast<std::uint8_t>(rows[row_px + x]);
        d[3 * x + 2] = static_cast<std::uint8_t>(rows[2 * row_px + x]);
      }
    }
    outside_counts[t] = outside;
  }
}

}  // namespace flashfas
