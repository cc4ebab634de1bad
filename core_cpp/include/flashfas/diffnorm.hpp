#pragma once
#include <cstddef>
#include <cstdint>

namespace flashfas {

// Global-RMS normalisation of the differential frames (the model contract, docs/MODEL_BUNDLE.md
// `normalisation` = {"method": "global_rms", "eps": kGlobalRmsEps}):
//   X = D · F / 255,   X <- X / max(sqrt(mean(X^2)), kGlobalRmsEps)
// One scale for the whole sample removes camera gain / exposure and the global albedo scale while
// keeping the spatial shading pattern; per-pixel ratios would cancel the shape when the flashes
// all come from one direction (docs/ARCHITECTURE.md §2). eps is in units of full scale (1e-3 ~ 0.26 levels):
// below it there is no flash signal to amplify, only noise.
constexpr double kGlobalRmsEps = 1e-3;

// Two passes over the output, one float write: the output buffer doubles as the staging area.
// Pass 1 (write_differential_row, per output row) stores the integer differences as int16 in the
// first half of the output's bytes, element order [n][c][y][x] (staging_of(out)); pass 2
// (normalise_global_rms) widens them in place to scaled float32. No other full-size buffer.
std::int16_t* staging_of(float* out);

// Differential rows of one output row y (ATR-FAS §3.2, D from differential_matrix):
// planes[j * 3 + c] is row y of channel c of the j-th brightest frame (j = 0 brightest), values
// 0..255. Stages [n][c][y][0..size) for the N = 2(n0 - 2) differential frames in grey levels and
// returns their exact sum of squares.
std::int64_t write_differential_row(const std::int16_t* const* planes, int n0, int size, int y,
                                    float* out);

// Turns the `count` staged values into float32 scaled by the global-RMS rule above, in place.
void normalise_global_rms(float* out, std::size_t count, std::int64_t sum_squares);

// diffnorm on already aligned frames: aligned [n0, size, size, 3] uint8, order[j] = index of the
// j-th brightest frame. Writes out [N, 3, size, size] float32.
void diffnorm(const std::uint8_t* aligned, const std::int64_t* order, int n0, int size, float* out);

}  // namespace flashfas
