// sample_descriptors on the CPU: bilinear sampling of [B,C,H,W] features at [B,K,2] keypoints.
//
// Forward: one task per keypoint, four taps shared by all C channels.
// Backward: grad_xy per keypoint (reduction over channels); grad_features by (batch, channel)
// planes, each plane owned by one task that visits keypoints in order, so the result is
// deterministic and race-free without atomics. Planes are zeroed inside that task so the page
// faults of a fresh gradient are spread over the threads.
#include <cstring>
#include <vector>

#include "common.h"
#include "memory/cpu_buffer_pool.h"

namespace tusk {
namespace {

template <typename scalar_t>
void forward_kernel(const at::Tensor& features, const at::Tensor& xy, at::Tensor& out,
                    Padding padding) {
  using acc = acc_t<scalar_t>;
  const int64_t B = features.size(0), C = features.size(1), H = features.size(2),
                W = features.size(3), K = xy.size(1);
  const scalar_t* f = features.data_ptr<scalar_t>();
  const scalar_t* p = xy.data_ptr<scalar_t>();
  scalar_t* o = out.data_ptr<scalar_t>();
  at::parallel_for(0, B * K, grain_for(8 * C), [&](int64_t begin, int64_t end) {
    for (int64_t bk = begin; bk < end; ++bk) {
      const int64_t b = bk / K;
      const auto taps = bilinear_taps<acc>(p[2 * bk], p[2 * bk + 1], H, W, padding);
      const scalar_t* fb = f + b * C * H * W;
      scalar_t* ob = o + bk * C;
      for (int64_t c = 0; c < C; ++c) {
        const scalar_t* plane = fb + c * H * W;
        acc v = taps.weight[0] * plane[taps.index[0]] + taps.weight[1] * plane[taps.index[1]] +
                taps.weight[2] * plane[taps.index[2]] + taps.weight[3] * plane[taps.index[3]];
        ob[c] = static_cast<scalar_t>(v);
      }
    }
  });
}

template <typename scalar_t>
void grad_xy_kernel(const at::Tensor& grad, const at::Tensor& features, const at::Tensor& xy,
                    at::Tensor& grad_xy, Padding padding) {
  using acc = acc_t<scalar_t>;
  const int64_t C = features.size(1), H = features.size(2), W = features.size(3),
                K = xy.size(1), B = features.size(0);
  const scalar_t* f = features.data_ptr<scalar_t>();
  const scalar_t* p = xy.data_ptr<scalar_t>();
  const scalar_t* g = grad.data_ptr<scalar_t>();
  scalar_t* gp = grad_xy.data_ptr<scalar_t>();
  at::parallel_for(0, B * K, grain_for(8 * C), [&](int64_t begin, int64_t end) {
    for (int64_t bk = begin; bk < end; ++bk) {
      const int64_t b = bk / K;
      const auto taps = bilinear_taps<acc>(p[2 * bk], p[2 * bk + 1], H, W, padding);
      const scalar_t* fb = f + b * C * H * W;
      const scalar_t* gb = g + bk * C;
      acc gx = 0, gy = 0;
      for (int64_t c = 0; c < C; ++c) {
        const scalar_t* plane = fb + c * H * W;
        const acc gc = gb[c];
        for (int i = 0; i < 4; ++i) {
          const acc v = gc * plane[taps.index[i]];
          gx += taps.dweight_dx[i] * v;
          gy += taps.dweight_dy[i] * v;
        }
      }
      gp[2 * bk] = static_cast<scalar_t>(gx);
      gp[2 * bk + 1] = static_cast<scalar_t>(gy);
    }
  });
}

template <typename scalar_t>
void grad_features_kernel(const at::Tensor& grad, const at::Tensor& xy, at::Tensor& grad_features,
                          Padding padding) {
  using acc = acc_t<scalar_t>;
  const int64_t B = grad_features.size(0), C = grad_features.size(1), H = grad_features.size(2),
                W = grad_features.size(3), K = xy.size(1);
  const scalar_t* p = xy.data_ptr<scalar_t>();
  const scalar_t* g = grad.data_ptr<scalar_t>();
  scalar_t* gf = grad_features.data_ptr<scalar_t>();
  // Taps once per keypoint, not once per (keypoint, channel): at SuperPoint sizes (C=128) the
  // recomputation cost more than the scatter itself.
  std::vector<BilinearTaps<acc>> taps(B * K);
  at::parallel_for(0, B * K, grain_for(64), [&](int64_t begin, int64_t end) {
    for (int64_t bk = begin; bk < end; ++bk) {
      taps[bk] = bilinear_taps<acc>(p[2 * bk], p[2 * bk + 1], H, W, padding);
    }
  });
  at::parallel_for(0, B * C, grain_for(H * W + 8 * K), [&](int64_t begin, int64_t end) {
    for (int64_t bc = begin; bc < end; ++bc) {
      const int64_t b = bc / C, c = bc % C;
      scalar_t* plane = gf + bc * H * W;
      std::memset(plane, 0, sizeof(scalar_t) * H * W);
      const BilinearTaps<acc>* tb = taps.data() + b * K;
      const scalar_t* gb = g + b * K * C + c;
      for (int64_t k = 0; k < K; ++k) {
        const acc gc = gb[k * C];
        const BilinearTaps<acc>& t = tb[k];
        for (int i = 0; i < 4; ++i) {
          plane[t.index[i]] += static_cast<scalar_t>(t.weight[i] * gc);
        }
      }
    }
  });
}

void check_inputs(const at::Tensor& features, const at::Tensor& xy) {
  check_float_tensor(features, "features", 4);
  check_float_tensor(xy, "xy", 3);
  check_cpu(features, "features");
  check_cpu(xy, "xy");
  check_same_dtype(features, xy, "features", "xy");
  TORCH_CHECK(xy.size(0) == features.size(0) && xy.size(2) == 2, "xy must be [B,K,2] with B=",
              features.size(0), ", got ", xy.sizes());
  TORCH_CHECK(features.size(2) > 0 && features.size(3) > 0, "features must have H, W > 0, got ",
              features.sizes());
}

}  // namespace

at::Tensor sample_descriptors_cpu(const at::Tensor& features_in, const at::Tensor& xy_in,
                                  c10::string_view padding_name) {
  check_inputs(features_in, xy_in);
  const Padding padding = parse_padding(std::string(padding_name));
  const at::Tensor features = features_in.contiguous(), xy = xy_in.contiguous();
  at::Tensor out = at::empty({features.size(0), xy.size(1), features.size(1)}, features.options());
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(features.scalar_type(), "sample_descriptors_cpu", [&] {
    forward_kernel<scalar_t>(features, xy, out, padding);
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> sample_descriptors_backward_cpu(
    const at::Tensor& grad_in, const at::Tensor& features_in, const at::Tensor& xy_in,
    c10::string_view padding_name, std::array<bool, 2> output_mask) {
  check_inputs(features_in, xy_in);
  check_cpu(grad_in, "grad");
  const Padding padding = parse_padding(std::string(padding_name));
  const at::Tensor features = features_in.contiguous(), xy = xy_in.contiguous();
  const at::Tensor grad = grad_in.contiguous();
  TORCH_CHECK(grad.sizes() == at::IntArrayRef({features.size(0), xy.size(1), features.size(1)}),
              "grad must be [B,K,C], got ", grad.sizes());
  at::Tensor grad_features =
      output_mask[0] ? empty_pooled(features.sizes(), features.scalar_type()) : features.new_empty({0});
  at::Tensor grad_xy = output_mask[1] ? at::zeros_like(xy) : xy.new_empty({0});
  AT_DISPATCH_FLOATING_TYPES(features.scalar_type(), "sample_descriptors_backward_cpu", [&] {
    if (output_mask[0] && grad_features.numel() > 0) {
      grad_features_kernel<scalar_t>(grad, xy, grad_features, padding);
    }
    if (output_mask[1] && grad_xy.numel() > 0 && features.size(1) > 0) {
      grad_xy_kernel<scalar_t>(grad, features, xy, grad_xy, padding);
    }
  });
  return {grad_features, grad_xy};
}

}  // namespace tusk

TORCH_LIBRARY_IMPL(tusk, CPU, m) {
  m.impl("sample_descriptors", &tusk::sample_descriptors_cpu);
  m.impl("sample_descriptors_backward", &tusk::sample_descriptors_backward_cpu);
}
