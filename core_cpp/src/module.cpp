// pybind11 binding layer: shapes and dtypes are checked here, once; kernels see plain buffers.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstring>

#include "flashfas/differential.hpp"

namespace py = pybind11;

namespace {

constexpr int kMinN0 = 3;
constexpr int kMaxN0 = 8;

void check_n0(int n0) {
  if (n0 < kMinN0 || n0 > kMaxN0) {
    throw py::value_error("n0 must be in [3, 8], got " + std::to_string(n0));
  }
}

py::array_t<float> py_differential_matrix(int n0) {
  check_n0(n0);
  const auto d = flashfas::differential_matrix(n0);
  const py::ssize_t rows = 2 * (n0 - 2);
  py::array_t<float> out({rows, static_cast<py::ssize_t>(n0)});
  std::memcpy(out.mutable_data(), d.data(), d.size() * sizeof(float));
  return out;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "FlashFAS Edge C++ core: frame sync, face alignment, differential normalisation.";
  m.def("differential_matrix", &py_differential_matrix, py::arg("n0"),
        "ATR-FAS differential matrix D (N x N0, N = 2(N0-2)) over intensity-sorted frames.");
}
