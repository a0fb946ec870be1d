// Autograd for gmm_prototype_samples, in C++ at the Autograd key (every backend shares it).
//
// Why not torch.library.register_autograd: see sliced_wasserstein_autograd.cpp (~45 us per
// forward + backward saved at TUSK's sizes). Gradients flow to the prototypes and the noise;
// the features only choose the counts (piecewise constant: no gradient), the assignment is an
// integer output. The fake kernels stay in Python (tusk/ops/gmm_prototype_samples.py).
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/csrc/autograd/custom_function.h>

#include "common.h"

namespace tusk {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

std::tuple<at::Tensor, at::Tensor> call_forward(const at::Tensor& prototypes, const at::Tensor& features,
                                              const at::Tensor& noise, double smoothing) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("tusk::gmm_prototype_samples", "")
                       .typed<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&,
                                                                 const at::Tensor&, double)>();
  return op.call(prototypes, features, noise, smoothing);
}

std::tuple<at::Tensor, at::Tensor> call_backward(const at::Tensor& grad, const at::Tensor& prototypes,
                                               const at::Tensor& noise, const at::Tensor& assignment,
                                               std::array<bool, 2> mask) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("tusk::gmm_prototype_samples_backward", "")
                       .typed<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&,
                                                                 const at::Tensor&, const at::Tensor&,
                                                                 std::array<bool, 2>)>();
  return op.call(grad, prototypes, noise, assignment, mask);
}

class GmmPrototypeSamples : public torch::autograd::Function<GmmPrototypeSamples> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& prototypes,
                               const at::Tensor& features, const at::Tensor& noise, double smoothing) {
    at::AutoDispatchBelowADInplaceOrView guard;
    auto [samples, assignment] = call_forward(prototypes, features, noise, smoothing);
    ctx->save_for_backward({prototypes, noise, assignment});
    ctx->mark_non_differentiable({assignment});
    return {samples, assignment};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const std::array<bool, 2> mask{ctx->needs_input_grad(0), ctx->needs_input_grad(2)};
    if (!grads[0].defined() || !(mask[0] || mask[1])) {
      return {at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
    }
    auto [grad_prototypes, grad_noise] = call_backward(grads[0], saved[0], saved[1], saved[2], mask);
    return {mask[0] ? grad_prototypes : at::Tensor(), at::Tensor(), mask[1] ? grad_noise : at::Tensor(),
            at::Tensor()};
  }
};

std::tuple<at::Tensor, at::Tensor> gmm_prototype_samples_autograd(const at::Tensor& prototypes,
                                                                  const at::Tensor& features,
                                                                  const at::Tensor& noise, double smoothing) {
  const auto out = GmmPrototypeSamples::apply(prototypes, features, noise, smoothing);
  return {out[0], out[1]};
}

}  // namespace
}  // namespace tusk

TORCH_LIBRARY_IMPL(tusk, Autograd, m) {
  m.impl("gmm_prototype_samples", &tusk::gmm_prototype_samples_autograd);
}
