#pragma once
#include <cstdint>

namespace flashfas {

// Fused align + float conversion + diffnorm (docs/ARCHITECTURE.md §1 steps 7-8) in one pass over the output:
// per output row, each frame is sampled straight from the camera image into a small row buffer and
// the differential rows are written at once; a second, in-place pass applies the global-RMS scale.
// No full-size intermediate. Bit-identical to diffnorm(align_faces(...)) because both round the
// warped samples to grey levels the same way and sum squares exactly in integers.
// frames [n0, height, width, 3] uint8, landmarks [n0, k, 2], face_template [k, 2],
// order[j] = frame index of the j-th brightest; out [2(n0-2), 3, size, size] float32;
// outside_counts[t] (frame order, n0 entries): as align_faces reports them.
void preprocess(const std::uint8_t* frames, int height, int width, const double* landmarks,
                const double* face_template, int k, const std::int64_t* order, int n0, int size,
                float* out, std::int64_t* outside_counts);

}  // namespace flashfas
