#include "flashfas/register.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "flashfas/errors.hpp"

namespace flashfas {
namespace {

struct Image {
  int h = 0, w = 0;
  std::vector<float> px;
  float at(int y, int x) const { return px[static_cast<size_t>(y) * w + x]; }
};

// Zero mean, unit RMS: gain and offset (the flash level) leave the result unchanged.
void normalise(Image& im) {
  double sum = 0.0;
  for (float v : im.px) sum += v;
  const double mean = sum / static_cast<double>(im.px.size());
  double sq = 0.0;
  for (float v : im.px) sq += (v - mean) * (v - mean);
  const double rms = std::sqrt(sq / static_cast<double>(im.px.size()));
  const double scale = rms > 1e-6 ? 1.0 / rms : 0.0;
  for (float& v : im.px) v = static_cast<float>((v - mean) * scale);
}

Image half(const Image& im) {  // 2x2 box average
  Image out;
  out.h = im.h / 2;
  out.w = im.w / 2;
  out.px.resize(static_cast<size_t>(out.h) * out.w);
  for (int y = 0; y < out.h; ++y) {
    for (int x = 0; x < out.w; ++x) {
      out.px[static_cast<size_t>(y) * out.w + x] =
          0.25f * (im.at(2 * y, 2 * x) + im.at(2 * y, 2 * x + 1) + im.at(2 * y + 1, 2 * x) +
                   im.at(2 * y + 1, 2 * x + 1));
    }
  }
  return out;
}

// Bilinear sample; false when (x, y) is outside the image's interior.
bool sample(const Image& im, double x, double y, double& value) {
  if (x < 0.0 || y < 0.0 || x > im.w - 1.0 || y > im.h - 1.0) return false;
  const int x0 = std::min(static_cast<int>(x), im.w - 2);
  const int y0 = std::min(static_cast<int>(y), im.h - 2);
  const double fx = x - x0, fy = y - y0;
  value = (1 - fy) * ((1 - fx) * im.at(y0, x0) + fx * im.at(y0, x0 + 1)) +
          fy * ((1 - fx) * im.at(y0 + 1, x0) + fx * im.at(y0 + 1, x0 + 1));
  return true;
}

// Inverse-compositional Lucas–Kanade for a translation at one pyramid level: the reference's
// gradients are computed once, each step only warps the moving image. The Hessian is summed over
// the pixels where the warped image is defined, so a shift near the border stays unbiased.
void refine_level(const Image& ref, const Image& mov, int max_iterations, double& sx, double& sy) {
  const int h = ref.h, w = ref.w;
  std::vector<float> gx(ref.px.size(), 0.0f), gy(ref.px.size(), 0.0f);
  for (int y = 1; y < h - 1; ++y) {
    for (int x = 1; x < w - 1; ++x) {
      const size_t i = static_cast<size_t>(y) * w + x;
      gx[i] = 0.5f * (ref.at(y, x + 1) - ref.at(y, x - 1));
      gy[i] = 0.5f * (ref.at(y + 1, x) - ref.at(y - 1, x));
    }
  }
  for (int it = 0; it < max_iterations; ++it) {
    double bx = 0.0, by = 0.0, axx = 0.0, axy = 0.0, ayy = 0.0;
    for (int y = 1; y < h - 1; ++y) {
      for (int x = 1; x < w - 1; ++x) {
        double v;
        if (!sample(mov, x + sx, y + sy, v)) continue;
        const size_t i = static_cast<size_t>(y) * w + x;
        const double e = v - ref.px[i];
        bx += gx[i] * e;
        by += gy[i] * e;
        axx += gx[i] * gx[i];
        axy += gx[i] * gy[i];
        ayy += gy[i] * gy[i];
      }
    }
    const double det = axx * ayy - axy * axy;
    if (!(det > 1e-12)) return;
    const double dx = (ayy * bx - axy * by) / det;
    const double dy = (axx * by - axy * bx) / det;
    sx -= dx;
    sy -= dy;
    if (dx * dx + dy * dy < 1e-6) return;  // below a thousandth of a pixel
  }
}

// Normalised cross-correlation of the reference with the moving image at shift (sx, sy), over the
// pixels where both are defined: how well the registered crops match (1: identical up to gain).
double correlation(const Image& ref, const Image& mov, double sx, double sy) {
  double sr = 0.0, sm = 0.0, srr = 0.0, smm = 0.0, srm = 0.0;
  long count = 0;
  for (int y = 0; y < ref.h; ++y) {
    for (int x = 0; x < ref.w; ++x) {
      double v;
      if (!sample(mov, x + sx, y + sy, v)) continue;
      const double r = ref.at(y, x);
      sr += r;
      sm += v;
      srr += r * r;
      smm += v * v;
      srm += r * v;
      ++count;
    }
  }
  if (count < 16) return 0.0;
  const double cov = srm - sr * sm / count;
  const double var = (srr - sr * sr / count) * (smm - sm * sm / count);
  return var > 0.0 ? cov / std::sqrt(var) : 0.0;
}

}  // namespace

void register_translation(const float* crops, int n, int h, int w, int levels, int max_iterations,
                          float* shifts, float* correlations) {
  const size_t plane = static_cast<size_t>(h) * w;
  std::vector<std::vector<Image>> pyramids(static_cast<size_t>(n));
  for (int k = 0; k < n; ++k) {
    Image base;
    base.h = h;
    base.w = w;
    base.px.assign(crops + k * plane, crops + (k + 1) * plane);
    auto& pyr = pyramids[static_cast<size_t>(k)];
    pyr.push_back(std::move(base));
    for (int l = 1; l < levels && pyr.back().h >= 16 && pyr.back().w >= 16; ++l) {
      pyr.push_back(half(pyr.back()));
    }
    for (Image& im : pyr) normalise(im);
  }
  {
    double sq = 0.0;
    for (float v : pyramids[0][0].px) sq += static_cast<double>(v) * v;
    if (!(sq > 0.5 * static_cast<double>(plane))) {
      throw InvalidInput("the first crop is flat: a translation cannot be registered");
    }
  }
  const double limit = std::min(h, w) / 4.0;
  shifts[0] = 0.0f;
  shifts[1] = 0.0f;
  correlations[0] = 1.0f;
  for (int k = 1; k < n; ++k) {
    const auto& ref = pyramids[0];
    const auto& mov = pyramids[static_cast<size_t>(k)];
    const int top = static_cast<int>(std::min(ref.size(), mov.size())) - 1;
    double sx = 0.0, sy = 0.0;
    for (int l = top; l >= 0; --l) {
      refine_level(ref[static_cast<size_t>(l)], mov[static_cast<size_t>(l)], max_iterations, sx,
                   sy);
      if (l > 0) {
        sx *= 2.0;
        sy *= 2.0;
      }
    }
    const bool ok = std::isfinite(sx) && std::isfinite(sy) && std::hypot(sx, sy) <= limit;
    const float nan = std::numeric_limits<float>::quiet_NaN();
    shifts[2 * k] = ok ? static_cast<float>(sx) : nan;
    shifts[2 * k + 1] = ok ? static_cast<float>(sy) : nan;
    correlations[k] = ok ? static_cast<float>(correlation(ref[0], mov[0], sx, sy)) : nan;
  }
}

}  // namespace flashfas
