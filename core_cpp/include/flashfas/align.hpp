#pragma once
#include <cstdint>

namespace flashfas {

// docs/ARCHITECTURE.md §1 step 7: warp each frame onto the canonical template.
// frames: [t_count, height, width, 3] uint8; landmarks: [t_count, k, 2]; face_template: [k, 2]
// (both as double, interleaved x, y). Writes aligned [t_count, size, size, 3] uint8 and, per frame,
// how many output pixels read outside the source (filled with 0).
void align_faces(const std::uint8_t* frames, int t_count, int height, int width,
                 const double* landmarks, const double* face_template, int k, int size,
                 std::uint8_t* aligned, std::int64_t* outside_counts);

}  // namespace flashfas
