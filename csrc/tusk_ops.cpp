// The tusk operator library: the op schemas (schemas.h), plus the Python module stub.
//
// Kernels register per dispatch key next to their sources:
//   csrc/<op>/<op>_cpu.cpp   TORCH_LIBRARY_IMPL(tusk, CPU, m)
//   csrc/<op>/<op>_cuda.cpp  TORCH_LIBRARY_IMPL(tusk, CUDA, m)  (built when CUDA is available)
// Fake kernels and autograd formulas are registered from Python next to each public op
// (tusk/ops/<op>.py), when tusk.ops imports this extension. The maths contract of each op is its
// reference in tusk/ops/reference/.
#include <Python.h>
#include <torch/library.h>

#include "schemas.h"

extern "C" {
// Importing tusk._C loads this shared object, which runs the static registrations below.
// No Python functions are bound: everything is reached through torch.ops.tusk.
PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module_def);
}
}

TORCH_LIBRARY(tusk, m) { tusk::define_schemas(m); }
