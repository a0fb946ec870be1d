// Local soft-argmax of detect_keypoints (tusk/ops/reference/detect_keypoints.py::soft_argmax).
//
// Around the selected pixel p = (px, py), over the window x window neighbourhood inside the image:
//   a_j = exp((s_j - s_max) / T),  xy = p + sum_j a_j d_j / sum_j a_j     (d_j = offset of pixel j)
// and its gradient with respect to the scores, for an incoming gradient g on xy:
//   d xy / d s_j = w_j (d_j - off) / T,  w_j = a_j / sum a,  off = xy - p.
// Window cells are numbered j = (dy + r) * window + (dx + r), r = window / 2; the kernels spread
// cells over threads and reduce, the CPU walks them in order.
#pragma once

#include <cstdint>

#include "tusk/numeric.h"

namespace tusk {

struct WindowCell {
  int64_t dx, dy;
  int64_t flat;  // y * W + x of the cell; valid only when inside
  bool inside;
};

TUSK_HD WindowCell window_cell(int64_t centre, int64_t cell, int64_t window, int64_t height,
                               int64_t width) {
  const int64_t r = window / 2;
  WindowCell c;
  c.dx = cell % window - r;
  c.dy = cell / window - r;
  const int64_t px = centre % width + c.dx, py = centre / width + c.dy;
  c.inside = px >= 0 && px < width && py >= 0 && py < height;
  c.flat = py * width + px;
  return c;
}

// Gradient reaching score s_j through the soft-argmax, given w_j = a_j / sum a.
template <typename acc>
TUSK_HD acc softargmax_cell_grad(acc weight, const WindowCell& c, acc off_x, acc off_y, acc grad_x,
                                 acc grad_y, acc inv_temperature) {
  return weight * inv_temperature *
         (grad_x * (static_cast<acc>(c.dx) - off_x) + grad_y * (static_cast<acc>(c.dy) - off_y));
}

}  // namespace tusk
