// Autograd for gmm_prototype_samples, in C++ at the Autograd key (every backend shares it).
//
// Why not torch.library.register_autograd: see sliced_wasserstein_autograd.cpp (~45 us per
// forward + backward saved at TUSK's sizes). Gradients flow to the prototypes only: the
// features only choose the counts (piecewise constant), the noise is a constant drawn by the
// wrapper, the assignment is an integer output. The fake kernels stay in Python
// (tusk/ops/gmm_prototype_samples.py).
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

at::Tensor call_backward(const at::Tensor& grad, const at::Tensor& prototypes, const at::Tensor& noise,
                         const at::Tensor& assignment) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("tusk::gmm_prototype_samples_backward", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                         const at::Tensor&)>();
  return op.call(grad, prototypes, noise, assignment);
}

class GmmPrototypeSamples : public torch::autograd::Function<GmmPrototypeSamples> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& prototypes,
                               const at::Tensor& features, const at::Tensor& noise, double smoothing) {
    at::AutoDispatchBelowADInplaceOrView guard;
    auto [samples, assignment] = call_forward(prototypes, features, noise, smoothing);
    ctx->save_for_backward({prototypes, noise, assignment});
    ctx->mark_non_differentiable({assignment});
    // The integer/residual outputs never get a gradient: without this, autograd would fill a
    // zero tensor for each of them on every backward (~100 us per step at TUSK's sizes).
    ctx->set_materialize_grads(false);
    return {samples, assignment};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    if (!grads[0].defined() || !ctx->needs_input_grad(0)) {
      return {at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
    }
    const auto saved = ctx->get_saved_variables();
    return {call_backward(grads[0], saved[0], saved[1], saved[2]), at::Tensor(), at::Tensor(), at::Tensor()};
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
