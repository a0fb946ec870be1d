// Emulator stand-in for CUDA's <cuda_runtime_api.h>: see tusk_emulation/runtime_api.h.
#pragma once
#include "tusk_emulation/runtime_api.h"
