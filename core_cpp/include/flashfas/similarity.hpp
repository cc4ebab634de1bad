#pragma once

namespace flashfas {

// Least-squares similarity transform (rotation, uniform scale, translation; Umeyama 1991, without
// reflection) mapping src[i] onto dst[i]. Points are interleaved x, y (k pairs, k >= 2).
// Writes the row-major 2x3 matrix [[a, -b, tx], [b, a, ty]] to m.
// Throws InvalidInput when either point set has (numerically) no spread: the fit would be NaN or
// collapse the face onto a point (docs/ARCHITECTURE.md §1 step 7: fail closed rather than warp garbage).
void estimate_similarity(const double* src, const double* dst, int k, double m[6]);

// Inverse of a 2x3 affine map, same arithmetic as cv::invertAffineTransform. Throws InvalidInput
// when the map is singular.
void invert_affine(const double m[6], double inv[6]);

}  // namespace flashfas
