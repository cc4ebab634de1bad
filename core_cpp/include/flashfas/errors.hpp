#pragma once
#include <stdexcept>
#include <string>

namespace flashfas {

// Bad input that the binding layer could not rule out up front (degenerate geometry, unsortable
// timings). Derives from std::invalid_argument, which pybind11 maps to Python's ValueError.
class InvalidInput : public std::invalid_argument {
 public:
  explicit InvalidInput(const std::string& what) : std::invalid_argument(what) {}
};

}  // namespace flashfas
