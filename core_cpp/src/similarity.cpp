#include "flashfas/similarity.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "flashfas/errors.hpp"

namespace flashfas {

namespace {

// Spread below this fraction of the coordinates' magnitude is numerically a single point.
constexpr double kRelativeSpreadFloor = 1e-7;

struct Centred {
  double mean_x = 0, mean_y = 0, spread_sq = 0, extent = 1;
};

Centred centre(const double* pts, int k) {
  Centred c;
  for (int i = 0; i < k; ++i) {
    c.mean_x += pts[2 * i];
    c.mean_y += pts[2 * i + 1];
    c.extent = std::max({c.extent, std::abs(pts[2 * i]), std::abs(pts[2 * i + 1])});
  }
  c.mean_x /= k;
  c.mean_y /= k;
  for (int i = 0; i < k; ++i) {
    const double dx = pts[2 * i] - c.mean_x, dy = pts[2 * i + 1] - c.mean_y;
    c.spread_sq += dx * dx + dy * dy;
  }
  return c;
}

bool degenerate(const Centred& c, int k) {
  return !(std::sqrt(c.spread_sq / k) > kRelativeSpreadFloor * c.extent);
}

}  // namespace

void estimate_similarity(const double* src, const double* dst, int k, double m[6]) {
  if (k < 2) throw InvalidInput("a similarity transform needs at least 2 point pairs");
  const Centred s = centre(src, k), d = centre(dst, k);
  if (degenerate(s, k)) throw InvalidInput("source points coincide: no similarity transform");
  if (degenerate(d, k)) throw InvalidInput("target points coincide: no similarity transform");
  // Closed form of Umeyama's least squares in 2-D: with centred points p (src) and q (dst),
  // a = sum(p . q) / sum|p|^2 and b = sum(p x q) / sum|p|^2 give scale*cos and scale*sin.
  double dot = 0, cross = 0;
  for (int i = 0; i < k; ++i) {
    const double px = src[2 * i] - s.mean_x, py = src[2 * i + 1] - s.mean_y;
    const double qx = dst[2 * i] - d.mean_x, qy = dst[2 * i + 1] - d.mean_y;
    dot += px * qx + py * qy;
    cross += px * qy - py * qx;
  }
  const double a = dot / s.spread_sq, b = cross / s.spread_sq;
  // A least-squares scale of ~0 means the point sets are unrelated (e.g. orthogonal spreads).
  const double scale = std::hypot(a, b);
  if (!(scale > kRelativeSpreadFloor * d.extent / s.extent) || !std::isfinite(scale)) {
    throw InvalidInput("point sets give a zero-scale similarity transform");
  }
  m[0] = a;
  m[1] = -b;
  m[2] = d.mean_x - (a * s.mean_x - b * s.mean_y);
  m[3] = b;
  m[4] = a;
  m[5] = d.mean_y - (b * s.mean_x + a * s.mean_y);
}

void invert_affine(const double m[6], double inv[6]) {
  const double det = m[0] * m[4] - m[1] * m[3];
  if (!(std::abs(det) > 0.0) || !std::isfinite(det)) {
    throw InvalidInput("affine map is singular");
  }
  const double r = 1.0 / det;
  const double a11 = m[4] * r, a22 = m[0] * r, a12 = -m[1] * r, a21 = -m[3] * r;
  inv[0] = a11;
  inv[1] = a12;
  inv[2] = -a11 * m[2] - a12 * m[5];
  inv[3] = a21;
  inv[4] = a22;
  inv[5] = -a21 * m[2] - a22 * m[5];
}

}  // namespace flashfas
