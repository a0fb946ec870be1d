// Emulator stand-in for CUDA's <cuda_fp16.h>: see tusk_emulation/device.h.
#pragma once
#include "tusk_emulation/device.h"
