// pybind11 binding layer: shapes, dtypes, contiguity and finiteness are checked here, once, with a
// clear Python exception (TypeError for a wrong type or dtype, ValueError for a wrong shape, layout
// or value); the kernels then see plain buffers and run with the GIL released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "flashfas/align.hpp"
#include "flashfas/bilinear_warp.hpp"
#include "flashfas/differential.hpp"
#include "flashfas/diffnorm.hpp"
#include "flashfas/frame_sync.hpp"
#include "flashfas/preprocess.hpp"
#include "flashfas/register.hpp"
#include "flashfas/similarity.hpp"

namespace py = pybind11;

namespace {

constexpr int kMinN0 = 3;
constexpr int kMaxN0 = 8;
constexpr int kMinSize = 2;
constexpr int kMaxSize = 4096;
// Timestamps beyond ~146 000 years of µs would overflow the window arithmetic.
constexpr std::int64_t kMaxTimeMagnitudeUs = std::int64_t{1} << 62;

std::string shape_of(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) {
    s += std::to_string(a.shape(i));
    if (i + 1 < a.ndim() || a.ndim() == 1) s += ",";
    if (i + 1 < a.ndim()) s += " ";
  }
  return s + ")";
}

std::string dtype_name(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

py::array as_array(const py::handle& obj, const char* name) {
  if (!py::isinstance<py::array>(obj)) {
    throw py::type_error(std::string(name) + " must be a numpy.ndarray, got " +
                         py::str(py::type::handle_of(obj).attr("__name__")).cast<std::string>());
  }
  return py::reinterpret_borrow<py::array>(obj);
}

void check_n0(int n0) {
  if (n0 < kMinN0 || n0 > kMaxN0) {
    throw py::value_error("n0 must be in [3, 8], got " + std::to_string(n0));
  }
}

void check_size(int size) {
  if (size < kMinSize || size > kMaxSize) {
    throw py::value_error("size must be in [" + std::to_string(kMinSize) + ", " +
                          std::to_string(kMaxSize) + "], got " + std::to_string(size));
  }
}

void check_ndim(const py::array& a, const char* name, py::ssize_t ndim, const char* expected) {
  if (a.ndim() != ndim) {
    throw py::value_error(std::string(name) + " must have shape " + expected + ", got " +
                          shape_of(a));
  }
}

// Big image buffers are read in place, so they must already be C-contiguous uint8 (no hidden copy).
py::array require_image_stack(const py::handle& obj, const char* name) {
  py::array a = as_array(obj, name);
  // Equality, not identity: an unpickled array carries an equal but distinct dtype object.
  if (!a.dtype().equal(py::dtype::of<std::uint8_t>())) {
    throw py::type_error(std::string(name) + " must have dtype uint8, got " + dtype_name(a));
  }
  check_ndim(a, name, 4, "[T, H, W, 3]");
  if (a.shape(3) != 3) {
    throw py::value_error(std::string(name) + " must have 3 colour channels (last axis), got " +
                          shape_of(a));
  }
  if (a.shape(0) < 1 || a.shape(1) < 1 || a.shape(2) < 1) {
    throw py::value_error(std::string(name) + " must not be empty, got " + shape_of(a));
  }
  if (a.shape(1) > flashfas::kMaxFrameSide || a.shape(2) > flashfas::kMaxFrameSide) {
    throw py::value_error(std::string(name) + ": frames larger than " +
                          std::to_string(flashfas::kMaxFrameSide) +
                          " pixels a side are not supported, got " + shape_of(a));
  }
  if (!(a.flags() & py::array::c_style)) {
    throw py::value_error(std::string(name) +
                          " must be C-contiguous (use numpy.ascontiguousarray); strided views are "
                          "not copied implicitly");
  }
  return a;
}

// Small point arrays (landmarks, template) are copied into doubles; float32 or float64 accepted,
// any strides; every value must be finite (a NaN landmark means the detector failed).
std::vector<double> read_points(const py::handle& obj, const char* name, py::ssize_t ndim,
                                const char* expected) {
  py::array a = as_array(obj, name);
  // By kind and size, not identity: an unpickled array carries an equal but distinct dtype object.
  const bool is_float = a.dtype().kind() == 'f' && (a.itemsize() == 4 || a.itemsize() == 8);
  if (!is_float) {
    throw py::type_error(std::string(name) + " must have dtype float32 or float64, got " +
                         dtype_name(a));
  }
  check_ndim(a, name, ndim, expected);
  if (a.shape(ndim - 1) != 2) {
    throw py::value_error(std::string(name) + " must have shape " + expected + ", got " +
                          shape_of(a));
  }
  // Cast to a C-contiguous float64 copy (tiny: K points per frame).
  py::array_t<double, py::array::c_style | py::array::forcecast> c(a);
  std::vector<double> v(c.data(), c.data() + c.size());
  for (double x : v) {
    if (!std::isfinite(x)) {
      throw py::value_error(std::string(name) + " contains NaN or infinite values");
    }
  }
  return v;
}

// Integer vectors (order, timestamps): any integer dtype, any strides, copied to int64.
std::vector<std::int64_t> read_int_vector(const py::handle& obj, const char* name) {
  py::array a = as_array(obj, name);
  const char kind = a.dtype().kind();
  if (kind != 'i' && kind != 'u') {
    throw py::type_error(std::string(name) + " must have an integer dtype, got " + dtype_name(a));
  }
  check_ndim(a, name, 1, "[n]");
  py::array_t<std::int64_t, py::array::c_style | py::array::forcecast> c(a);
  return std::vector<std::int64_t>(c.data(), c.data() + c.size());
}

std::vector<std::int64_t> read_order(const py::handle& obj, int n0) {
  auto order = read_int_vector(obj, "order");
  if (static_cast<int>(order.size()) != n0) {
    throw py::value_error("order must have n0 = " + std::to_string(n0) + " entries, got " +
                          std::to_string(order.size()));
  }
  std::vector<bool> seen(static_cast<std::size_t>(n0), false);
  for (std::int64_t i : order) {
    if (i < 0 || i >= n0 || seen[static_cast<std::size_t>(i)]) {
      throw py::value_error("order must be a permutation of 0.." + std::to_string(n0 - 1) +
                            " (frame indices, brightest first)");
    }
    seen[static_cast<std::size_t>(i)] = true;
  }
  return order;
}

// Landmarks [T, K, 2] and template [K, 2] (shapes already checked by read_points) must agree:
// one landmark set per frame and K >= 2 points in both; returns K.
int check_landmarks(const py::array& landmarks, py::ssize_t t, const py::array& tmpl) {
  if (landmarks.shape(0) != t) {
    throw py::value_error("landmarks must have one row per frame: expected " + std::to_string(t) +
                          ", got " + shape_of(landmarks));
  }
  const py::ssize_t k = tmpl.shape(0);
  if (k < 2) {
    throw py::value_error("template must have at least 2 points, got " + shape_of(tmpl));
  }
  if (landmarks.shape(1) != k) {
    throw py::value_error("landmarks " + shape_of(landmarks) + " and template " + shape_of(tmpl) +
                          " must have the same number of points");
  }
  return static_cast<int>(k);
}

int checked_int(py::ssize_t v, const char* what) {
  if (v > std::numeric_limits<int>::max() / 4) {
    throw py::value_error(std::string(what) + " is too large");
  }
  return static_cast<int>(v);
}

// ----------------------------------------------------------------------------------------------

py::array_t<float> py_differential_matrix(int n0) {
  check_n0(n0);
  const auto d = flashfas::differential_matrix(n0);
  const py::ssize_t rows = 2 * (n0 - 2);
  py::array_t<float> out({rows, static_cast<py::ssize_t>(n0)});
  std::memcpy(out.mutable_data(), d.data(), d.size() * sizeof(float));
  return out;
}

py::array_t<double> py_estimate_similarity(const py::object& src, const py::object& dst) {
  const auto s = read_points(src, "src", 2, "[K, 2]");
  const auto d = read_points(dst, "dst", 2, "[K, 2]");
  const py::ssize_t ks = as_array(src, "src").shape(0), kd = as_array(dst, "dst").shape(0);
  if (ks != kd) {
    throw py::value_error("src and dst must have the same number of points, got " +
                          std::to_string(ks) + " and " + std::to_string(kd));
  }
  if (ks < 2) throw py::value_error("need at least 2 point pairs, got " + std::to_string(ks));
  py::array_t<double> out({py::ssize_t{2}, py::ssize_t{3}});
  double* m = out.mutable_data();
  {
    py::gil_scoped_release release;
    flashfas::estimate_similarity(s.data(), d.data(), static_cast<int>(ks), m);
  }
  return out;
}

py::tuple py_register_translation(const py::object& crops_obj, int levels, int max_iterations) {
  py::array crops = as_array(crops_obj, "crops");
  if (!crops.dtype().equal(py::dtype::of<float>())) {
    throw py::type_error("crops must have dtype float32, got " + dtype_name(crops));
  }
  check_ndim(crops, "crops", 3, "[N, H, W]");
  if (!(crops.flags() & py::array::c_style)) {
    throw py::value_error("crops must be C-contiguous (numpy.ascontiguousarray)");
  }
  const int n = checked_int(crops.shape(0), "crop count");
  const int h = checked_int(crops.shape(1), "crop height");
  const int w = checked_int(crops.shape(2), "crop width");
  if (n < 1) throw py::value_error("crops must hold at least one crop, got 0");
  if (h < 8 || w < 8 || h > kMaxSize || w > kMaxSize) {
    throw py::value_error("crops must be 8 to 4096 pixels on a side, got " + shape_of(crops));
  }
  if (levels < 1 || levels > 6) {
    throw py::value_error("levels must be in [1, 6], got " + std::to_string(levels));
  }
  if (max_iterations < 1 || max_iterations > 1000) {
    throw py::value_error("max_iterations must be in [1, 1000], got " +
                          std::to_string(max_iterations));
  }
  const auto* src = static_cast<const float*>(crops.data());
  const size_t count = static_cast<size_t>(n) * h * w;
  for (size_t i = 0; i < count; ++i) {
    if (!std::isfinite(src[i])) throw py::value_error("crops must be finite");
  }
  py::array_t<float> shifts({py::ssize_t{n}, py::ssize_t{2}});
  py::array_t<float> correlations({py::ssize_t{n}});
  float* out = shifts.mutable_data();
  float* corr = correlations.mutable_data();
  {
    py::gil_scoped_release release;
    flashfas::register_translation(src, n, h, w, levels, max_iterations, out, corr);
  }
  return py::make_tuple(shifts, correlations);
}

py::tuple py_align_faces(const py::object& frames_obj, const py::object& landmarks_obj,
                         const py::object& template_obj, int size) {
  check_size(size);
  py::array frames = require_image_stack(frames_obj, "frames");
  const auto landmarks = read_points(landmarks_obj, "landmarks", 3, "[T, K, 2]");
  const auto tmpl = read_points(template_obj, "template", 2, "[K, 2]");
  const py::ssize_t t = frames.shape(0);
  const int k =
      check_landmarks(as_array(landmarks_obj, "landmarks"), t, as_array(template_obj, "template"));
  const int height = checked_int(frames.shape(1), "frame height");
  const int width = checked_int(frames.shape(2), "frame width");
  py::array_t<std::uint8_t> aligned({t, py::ssize_t{size}, py::ssize_t{size}, py::ssize_t{3}});
  py::array_t<std::int64_t> outside({t});
  const auto* src = static_cast<const std::uint8_t*>(frames.data());
  std::uint8_t* dst = aligned.mutable_data();
  std::int64_t* counts = outside.mutable_data();
  {
    py::gil_scoped_release release;
    flashfas::align_faces(src, static_cast<int>(t), height, width, landmarks.data(), tmpl.data(), k,
                          size, dst, counts);
  }
  return py::make_tuple(aligned, outside);
}

py::array_t<float> py_diffnorm(const py::object& aligned_obj, const py::object& order_obj, int n0) {
  check_n0(n0);
  py::array aligned = require_image_stack(aligned_obj, "aligned");
  if (aligned.shape(0) != n0) {
    throw py::value_error("aligned must hold n0 = " + std::to_string(n0) + " frames, got " +
                          shape_of(aligned));
  }
  if (aligned.shape(1) != aligned.shape(2)) {
    throw py::value_error("aligned frames must be square [n0, S, S, 3], got " + shape_of(aligned));
  }
  const int size = checked_int(aligned.shape(1), "aligned size");
  check_size(size);
  const auto order = read_order(order_obj, n0);
  const py::ssize_t n = 2 * (n0 - 2);
  py::array_t<float> out({n, py::ssize_t{3}, py::ssize_t{size}, py::ssize_t{size}});
  const auto* src = static_cast<const std::uint8_t*>(aligned.data());
  float* dst = out.mutable_data();
  {
    py::gil_scoped_release release;
    flashfas::diffnorm(src, order.data(), n0, size, dst);
  }
  return out;
}

py::object py_preprocess(const py::object& frames_obj, const py::object& landmarks_obj,
                         const py::object& template_obj, const py::object& order_obj, int n0,
                         int size, bool with_outside_counts) {
  check_n0(n0);
  check_size(size);
  py::array frames = require_image_stack(frames_obj, "frames");
  if (frames.shape(0) != n0) {
    throw py::value_error("frames must hold n0 = " + std::to_string(n0) +
                          " frames (one per flash state), got " + shape_of(frames));
  }
  const auto landmarks = read_points(landmarks_obj, "landmarks", 3, "[T, K, 2]");
  const auto tmpl = read_points(template_obj, "template", 2, "[K, 2]");
  const int k = check_landmarks(as_array(landmarks_obj, "landmarks"), frames.shape(0),
                                as_array(template_obj, "template"));
  const auto order = read_order(order_obj, n0);
  const int height = checked_int(frames.shape(1), "frame height");
  const int width = checked_int(frames.shape(2), "frame width");
  const py::ssize_t n = 2 * (n0 - 2);
  py::array_t<float> out({n, py::ssize_t{3}, py::ssize_t{size}, py::ssize_t{size}});
  py::array_t<std::int64_t> outside({static_cast<py::ssize_t>(n0)});
  const auto* src = static_cast<const std::uint8_t*>(frames.data());
  float* dst = out.mutable_data();
  std::int64_t* counts = outside.mutable_data();
  {
    py::gil_scoped_release release;
    flashfas::preprocess(src, height, width, landmarks.data(), tmpl.data(), k, order.data(), n0,
                         size, dst, counts);
  }
  if (with_outside_counts) return py::make_tuple(out, outside);
  return std::move(out);
}

void check_sorted(const std::vector<std::int64_t>& v, const char* name, bool strict) {
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (v[i] > kMaxTimeMagnitudeUs || v[i] < -kMaxTimeMagnitudeUs) {
      throw py::value_error(std::string(name) + " has an out-of-range timestamp");
    }
    if (i > 0 && (strict ? v[i] <= v[i - 1] : v[i] < v[i - 1])) {
      throw py::value_error(
          std::string(name) +
          (strict ? " must be strictly increasing" : " must be sorted (non-decreasing)") +
          " (index " + std::to_string(i) + ")");
    }
  }
}

void check_duration(std::int64_t v, const char* name, bool allow_zero) {
  if (v < 0 || (!allow_zero && v == 0) || v > kMaxTimeMagnitudeUs / 4) {
    throw py::value_error(std::string(name) + (allow_zero ? " must be >= 0" : " must be > 0") +
                          " and plausible, got " + std::to_string(v));
  }
}

py::array_t<std::int64_t> py_assign_frames(const py::object& frame_times_obj,
                                           std::int64_t exposure_us, std::int64_t readout_us,
                                           const py::object& onsets_obj, std::int64_t latency_us,
                                           std::int64_t state_duration_us) {
  const auto times = read_int_vector(frame_times_obj, "frame_times_us");
  const auto onsets = read_int_vector(onsets_obj, "flash_onsets_us");
  check_sorted(times, "frame_times_us", false);
  check_sorted(onsets, "flash_onsets_us", true);
  if (onsets.empty()) throw py::value_error("flash_onsets_us must not be empty");
  check_duration(exposure_us, "exposure_us", false);
  check_duration(readout_us, "readout_us", true);
  check_duration(state_duration_us, "state_duration_us", false);
  if (latency_us > kMaxTimeMagnitudeUs / 4 || latency_us < -kMaxTimeMagnitudeUs / 4) {
    throw py::value_error("latency_us is out of range, got " + std::to_string(latency_us));
  }
  if (times.size() > static_cast<std::size_t>(std::numeric_limits<int>::max()) ||
      onsets.size() > static_cast<std::size_t>(std::numeric_limits<int>::max())) {
    throw py::value_error("too many frames or flash states");
  }
  py::array_t<std::int64_t> chosen({static_cast<py::ssize_t>(onsets.size())});
  std::int64_t* out = chosen.mutable_data();
  {
    py::gil_scoped_release release;
    flashfas::assign_frames(times.data(), static_cast<int>(times.size()), exposure_us, readout_us,
                            onsets.data(), static_cast<int>(onsets.size()), latency_us,
                            state_duration_us, out);
  }
  return chosen;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "FlashFAS Edge C++ core: frame sync, face alignment, differential normalisation.";
  m.attr("GLOBAL_RMS_EPS") = flashfas::kGlobalRmsEps;
  m.attr("NORMALISATION") = "global_rms";

  m.def("differential_matrix", &py_differential_matrix, py::arg("n0"),
        "ATR-FAS differential matrix D (N x N0, N = 2(N0-2)) over intensity-sorted frames.\n\n"
        "Rows 0..N0-3: brightest minus each middle frame; rows N0-2..N-1: each middle frame minus\n"
        "the darkest (ATR-FAS §3.2). n0 in [3, 8]; float32 [N, N0].");

  m.def("estimate_similarity", &py_estimate_similarity, py::arg("src"), py::arg("dst"),
        "Least-squares similarity (rotation, uniform scale, translation; Umeyama, no reflection)\n"
        "mapping src[K, 2] onto dst[K, 2], K >= 2 -> float64 [2, 3]. Coinciding points or a\n"
        "zero-scale fit raise ValueError (never NaN).");

  m.def("register_translation", &py_register_translation, py::arg("crops"), py::arg("levels") = 3,
        py::arg("max_iterations") = 30,
        "Sub-pixel translation of each crop float32 [N, H, W] (C-contiguous) against crops[0]:\n"
        "(shifts float32 [N, 2] (x, y) with crops[k](p + s_k) ~ crops[0](p), s_0 = (0, 0);\n"
        "correlations float32 [N], the normalised cross-correlation once registered). Each crop is\n"
        "normalised to zero mean and unit RMS first (a gain/offset change, e.g. another flash\n"
        "level, does not move it); inverse-compositional Lucas-Kanade, coarse to fine over a 2x\n"
        "pyramid of `levels` levels. NaN (both) for a crop that does not converge inside a quarter of\n"
        "the crop; a flat crops[0] raises ValueError.");

  m.def("align_faces", &py_align_faces, py::arg("frames"), py::arg("landmarks"),
        py::arg("template"), py::arg("size"),
        "Warp frames uint8 [T, H, W, 3] (C-contiguous) onto the template with the similarity\n"
        "estimate_similarity(landmarks[t], template) -> (aligned uint8 [T, size, size, 3],\n"
        "outside_counts int64 [T]). Bilinear like cv2.warpAffine(INTER_LINEAR,\n"
        "BORDER_CONSTANT, 0) to within 1 grey level (weights in 1/256 pixel, integer\n"
        "interpolation, identical on x86-64 and aarch64); source taps outside the frame read 0\n"
        "and every output pixel that used one with non-zero weight is counted in outside_counts.");

  m.def("diffnorm", &py_diffnorm, py::arg("aligned"), py::arg("order"), py::arg("n0"),
        "Differential normalisation of aligned uint8 [n0, S, S, 3] frames -> float32 [N, 3, S, S]\n"
        "(N = 2(n0-2), NCHW, channel order kept). order[j] = index of the j-th brightest frame.\n"
        "F = aligned[order] / 255, X = D . F, then X / max(sqrt(mean(X^2)), GLOBAL_RMS_EPS) over\n"
        "the whole sample (eps = 1e-3): one scale removes exposure / gain and the global albedo\n"
        "while the spatial shading pattern survives (per-pixel ratios would cancel the shape when\n"
        "all flashes come from one direction, docs/ARCHITECTURE.md §2).");

  m.def("preprocess", &py_preprocess, py::arg("frames"), py::arg("landmarks"), py::arg("template"),
        py::arg("order"), py::arg("n0"), py::arg("size"), py::kw_only(),
        py::arg("with_outside_counts") = false,
        "Fused align_faces + diffnorm: frames uint8 [n0, H, W, 3] -> float32 [N, 3, size, size],\n"
        "bit-identical to diffnorm(align_faces(frames, landmarks, template, size)[0], order, n0)\n"
        "but in one pass with no full-size intermediate. Single-threaded; releases the GIL.\n"
        "with_outside_counts=True returns (x, outside_counts int64 [n0]) with the counts of\n"
        "align_faces (frame order): pixels filled because the face left the frame.");

  m.def("assign_frames", &py_assign_frames, py::arg("frame_times_us"), py::arg("exposure_us"),
        py::arg("readout_us"), py::arg("flash_onsets_us"), py::arg("latency_us"),
        py::arg("state_duration_us"),
        "Per flash state, the index of the frame whose whole exposure (all rows: [t, t +\n"
        "readout_us + exposure_us], t = first-row exposure start) lies inside the state's window\n"
        "[onset_s + latency_us, end_s + latency_us), end_s = next onset (last: onset +\n"
        "state_duration_us); the clean frame with the largest margin to both edges wins, -1 when\n"
        "none is clean. frame_times_us sorted, flash_onsets_us strictly increasing; int64 [N0].");
}
