// Autograd for sliced_wasserstein, in C++ at the Autograd key (every backend shares it).
//
// Why not torch.library.register_autograd: at TUSK's sizes the op is sub-millisecond, and the
// Python autograd.Function that register_autograd generates costs ~45 us more per forward +
// backward than this (measured on one thread of this team's machine: 119 us against ~75 us
// for the gmm op's forward + backward). Both formulas are the same; the fake kernels stay in
// Python (tusk/ops/sliced_wasserstein.py).
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/csrc/autograd/custom_function.h>

#include "common.h"

namespace tusk {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

std::tuple<at::Tensor, at::Tensor, at::Tensor> call_forward(const at::Tensor& x, const at::Tensor& y,
                                                          const at::Tensor& projections) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("tusk::sliced_wasserstein", "")
                       .typed<std::tuple<at::Tensor, at::Tensor, at::Tensor>(
                           const at::Tensor&, const at::Tensor&, const at::Tensor&)>();
  return op.call(x, y, projections);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> call_backward(const at::Tensor& grad, const at::Tensor& x,
                                                           const at::Tensor& y, const at::Tensor& projections,
                                                           const at::Tensor& x_residual,
                                                           const at::Tensor& y_residual,
                                                           std::array<bool, 3> mask) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("tusk::sliced_wasserstein_backward", "")
                       .typed<std::tuple<at::Tensor, at::Tensor, at::Tensor>(
                           const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                           const at::Tensor&, const at::Tensor&, std::array<bool, 3>)>();
  return op.call(grad, x, y, projections, x_residual, y_residual, mask);
}

class SlicedWasserstein : public torch::autograd::Function<SlicedWasserstein> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& y,
                               const at::Tensor& projections) {
    at::AutoDispatchBelowADInplaceOrView guard;
    auto [distance, x_residual, y_residual] = call_forward(x, y, projections);
    ctx->save_for_backward({x, y, projections, x_residual, y_residual});
    ctx->mark_non_differentiable({x_residual, y_residual});
    // The integer/residual outputs never get a gradient: without this, autograd would fill a
    // zero tensor for each of them on every backward (~100 us per step at TUSK's sizes).
    ctx->set_materialize_grads(false);
    return {distance, x_residual, y_residual};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const std::array<bool, 3> mask{ctx->needs_input_grad(0), ctx->needs_input_grad(1),
                                   ctx->needs_input_grad(2)};
    if (!grads[0].defined()) return {at::Tensor(), at::Tensor(), at::Tensor()};
    auto [grad_x, grad_y, grad_projections] =
        call_backward(grads[0], saved[0], saved[1], saved[2], saved[3], saved[4], mask);
    return {mask[0] ? grad_x : at::Tensor(), mask[1] ? grad_y : at::Tensor(),
            mask[2] ? grad_projections : at::Tensor()};
  }
};

std::tuple<at::Tensor, at::Tensor, at::Tensor> sliced_wasserstein_autograd(const at::Tensor& x,
                                                                           const at::Tensor& y,
                                                                           const at::Tensor& projections) {
  const auto out = SlicedWasserstein::apply(x, y, projections);
  return {out[0], out[1], out[2]};
}

}  // namespace
}  // namespace tusk

TORCH_LIBRARY_IMPL(tusk, Autograd, m) {
  m.impl("sliced_wasserstein", &tusk::sliced_wasserstein_autograd);
}
