// The op schemas in torch.ops.tusk_cuda_emulation, for the host emulation of the CUDA kernels
// (tests/cuda_emulation.py): the CUDA glue compiled with TUSK_CUDA_EMULATION registers its
// kernels there at the CPU key.
#include <torch/library.h>

#include "schemas.h"

TORCH_LIBRARY(tusk_cuda_emulation, m) { tusk::define_schemas(m); }
