// Emulator stand-in for CUDA's <cuda_runtime.h>: see tusk_emulation/device.h.
#pragma once
#include "tusk_emulation/device.h"
