// Emulator stand-in for CUDA's <cuda_bf16.h>: see tusk_emulation/device.h.
#pragma once
#include "tusk_emulation/device.h"
