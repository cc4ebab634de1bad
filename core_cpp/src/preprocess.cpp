#include "flashfas/preprocess.hpp"

#include <cstddef>
#include <vector>

#include "flashfas/bilinear_warp.hpp"
#include "flashfas/diffnorm.hpp"
#include "flashfas/similarity.hpp"

namespace flashfas {

void preprocess(const std::uint8_t* frames, int height, int width, const double* landmarks,
                const double* face_template, int k, const std::int64_t* order, int n0, int size,
                float* out, std::int64_t* outside_counts) {
  const std::size_t frame_bytes = static_cast<std::size_t>(height) * width * 3;
  const std::size_t row_px = static_cast<std::size_t>(size);
  // One sampler per brightness rank, each bound to its frame's own alignment.
  std::vector<BilinearRowSampler> samplers;
  samplers.reserve(static_cast<std::size_t>(n0));
  for (int j = 0; j < n0; ++j) {
    const std::int64_t t = order[j];
    double to_template[6], to_source[6];
    estimate_similarity(landmarks + static_cast<std::size_t>(t) * k * 2, face_template, k,
                        to_template);
    invert_affine(to_template, to_source);
    samplers.emplace_back(size);
    samplers.back().set_source(frames + static_cast<std::size_t>(t) * frame_bytes, height, width,
                               to_source);
  }
  std::vector<std::int16_t> rows(static_cast<std::size_t>(n0) * 3 * row_px);
  std::vector<const std::int16_t*> planes(static_cast<std::size_t>(n0) * 3);
  for (std::size_t i = 0; i < planes.size(); ++i) planes[i] = rows.data() + i * row_px;
  std::vector<std::int64_t> outside(static_cast<std::size_t>(n0), 0);  // per brightness rank
  std::int64_t sum_squares = 0;
  for (int y = 0; y < size; ++y) {
    for (int j = 0; j < n0; ++j) {
      std::int16_t* r = rows.data() + static_cast<std::size_t>(j) * 3 * row_px;
      outside[static_cast<std::size_t>(j)] +=
          samplers[static_cast<std::size_t>(j)].sample_row(y, r, r + row_px, r + 2 * row_px);
    }
    sum_squares += write_differential_row(planes.data(), n0, size, y, out);
  }
  const std::size_t count = static_cast<std::size_t>(2 * (n0 - 2)) * 3 * row_px * row_px;
  normalise_global_rms(out, count, sum_squares);
  for (int j = 0; j < n0; ++j) outside_counts[order[j]] = outside[static_cast<std::size_t>(j)];
}

}  // namespace flashfas
