// alpha_composite on CUDA: softmax of alpha logits over K keypoints and the blend of their
// renderings. Contract: tusk/ops/reference/alpha_composite.py; softmax rules: tusk/softmax.h.
//
// One thread per (b, pixel); consecutive threads take consecutive pixels, so every load and store
// of a [.., H, W] plane is coalesced. The op is memory-bound (a few flops per byte).
// Forward: one pass over the logits and renderings with an online softmax (running max and sum,
// accumulators rescaled when the max grows), channels held in registers kChannels at a time
// (later channel groups reuse the final max and sum); then one pass over the logits writes
// alpha. Traffic: rgb once, logits twice (once more per extra channel group), outputs once.
// Backward (softmax recomputed, nothing saved but the inputs):
//   t_k = grad_alpha_k + sum_c grad_image_c rgb_kc,  grad_rgb_kc = alpha_k grad_image_c,
//   grad_logit_k = alpha_k (t_k - sum_j alpha_j t_j).
// Pass 1: max and sum over the logits. Pass 2: rgb once, grad_rgb written, t_k stashed (in
// grad_logits itself for float32/float64, in a float32 scratch for half types, so it is never
// rounded to half), sum alpha t accumulated. Pass 3: grad_logits from the stash.
// Deterministic: each output has one writer and a fixed order.
#include "cuda_utils.cuh"
#include "tusk/cuda/alpha_composite.h"
#include "tusk/softmax.h"

namespace tusk {
namespace cuda {
namespace {

template <typename scalar_t, int kChannels>
__global__ void forward_kernel(const scalar_t* __restrict__ rgb, const scalar_t* __restrict__ logits,
                               int64_t batch, int64_t k, int64_t channels, int64_t pixels,
                               scalar_t* __restrict__ image, scalar_t* __restrict__ alpha) {
  using acc = acc_t<scalar_t>;
  for (int64_t t = global_thread(); t < batch * pixels; t += global_stride()) {
    const int64_t b = t / pixels, p = t % pixels;
    const scalar_t* l = logits + b * k * pixels + p;         // l[j * pixels]
    const scalar_t* r = rgb + b * k * channels * pixels + p;  // r[(j * channels + c) * pixels]
    OnlineSoftmax<acc> softmax;
    for (int64_t c0 = 0; c0 < channels; c0 += kChannels) {
      acc v[kChannels];
      if (c0 == 0) {  // online pass: max and sum found along the way
        softmax.start(load(l));
#pragma unroll
        for (int cc = 0; cc < kChannels; ++cc) v[cc] = cc < channels ? load(r + cc * pixels) : acc(0);
#pragma unroll 4
        for (int64_t j = 1; j < k; ++j) {
          acc w;
          const acc rescale = softmax.add(load(l + j * pixels), &w);
          const scalar_t* rj = r + j * channels * pixels;
#pragma unroll
          for (int cc = 0; cc < kChannels; ++cc) {
            if (cc < channels) v[cc] = v[cc] * rescale + w * load(rj + cc * pixels);
          }
        }
      } else {  // max and sum are final
#pragma unroll
        for (int cc = 0; cc < kChannels; ++cc) v[cc] = 0;
#pragma unroll 4
        for (int64_t j = 0; j < k; ++j) {
          const acc w = softmax.weight(load(l + j * pixels));
          const scalar_t* rj = r + (j * channels + c0) * pixels;
#pragma unroll
          for (int cc = 0; cc < kChannels; ++cc) {
            if (c0 + cc < channels) v[cc] += w * load(rj + cc * pixels);
          }
        }
      }
#pragma unroll
      for (int cc = 0; cc < kChannels; ++cc) {
        if (c0 + cc < channels) {
          image[(b * channels + c0 + cc) * pixels + p] = from_acc<scalar_t>(v[cc] / softmax.sum);
        }
      }
    }
    if (channels == 0) {  // no rendering to blend, alpha still wanted
      softmax.start(load(l));
      for (int64_t j = 1; j < k; ++j) {
        acc w;
        softmax.add(load(l + j * pixels), &w);
      }
    }
    for (int64_t j = 0; j < k; ++j) {
      alpha[(b * k + j) * pixels + p] = from_acc<scalar_t>(softmax.weight(load(l + j * pixels)) / softmax.sum);
    }
  }
}

template <typename scalar_t, int kChannels>
__global__ void backward_kernel(const scalar_t* __restrict__ grad_image,
                                const scalar_t* __restrict__ grad_alpha,
                                const scalar_t* __restrict__ rgb,
                                const scalar_t* __restrict__ logits, int64_t batch, int64_t k,
                                int64_t channels, int64_t pixels, scalar_t* __restrict__ grad_rgb,
                                scalar_t* grad_logits, acc_t<scalar_t>* stash) {
  // grad_logits and stash may alias (float32/float64): no __restrict__ on them.
  using acc = acc_t<scalar_t>;
  for (int64_t t = global_thread(); t < batch * pixels; t += global_stride()) {
    const int64_t b = t / pixels, p = t % pixels;
    const scalar_t* l = logits + b * k * pixels + p;
    const scalar_t* r = rgb + b * k * channels * pixels + p;
    acc* st = stash ? stash + b * k * pixels + p : nullptr;  // st[j * pixels]
    OnlineSoftmax<acc> softmax;
    softmax.start(load(l));
    for (int64_t j = 1; j < k; ++j) {
      acc w;
      softmax.add(load(l + j * pixels), &w);
    }
    const acc inv_sum = acc(1) / softmax.sum;
    acc dot = 0;  // sum_j alpha_j t_j
    const int64_t groups = channels > 0 ? ceil_div(channels, kChannels) : 1;
    for (int64_t group = 0; group < groups; ++group) {
      const int64_t c0 = group * kChannels;
      const bool last = group + 1 == groups;
      acc gi[kChannels];
#pragma unroll
      for (int cc = 0; cc < kChannels; ++cc) {
        gi[cc] = (grad_image && c0 + cc < channels)
                     ? load(grad_image + (b * channels + c0 + cc) * pixels + p)
                     : acc(0);
      }
#pragma unroll 4
      for (int64_t j = 0; j < k; ++j) {
        const acc a = softmax.weight(load(l + j * pixels)) * inv_sum;
        const scalar_t* rj = r + (j * channels + c0) * pixels;
        acc tj = 0;
#pragma unroll
        for (int cc = 0; cc < kChannels; ++cc) {
          if (c0 + cc < channels) {
            tj += gi[cc] * load(rj + cc * pixels);
            if (grad_rgb) {
              grad_rgb[((b * k + j) * channels + c0 + cc) * pixels + p] = from_acc<scalar_t>(a * gi[cc]);
            }
          }
        }
        if (st) {
          if (group == 0) {
            tj += grad_alpha ? load(grad_alpha + (b * k + j) * pixels + p) : acc(0);
          } else {
            tj += st[j * pixels];
          }
          st[j * pixels] = tj;
          if (last) dot += a * tj;
        }
      }
    }
    if (st) {
      for (int64_t j = 0; j < k; ++j) {
        const acc a = softmax.weight(load(l + j * pixels)) * inv_sum;
        grad_logits[(b * k + j) * pixels + p] = from_acc<scalar_t>(a * (st[j * pixels] - dot));
      }
    }
  }
}

bool sizes_ok(int64_t batch, int64_t k, int64_t channels, int64_t pixels) {
  return batch >= 0 && k >= 1 && channels >= 0 && pixels >= 0;
}

}  // namespace
}  // namespace cuda
}  // namespace tusk

using namespace tusk;
using namespace tusk::cuda;

// RGB-like renderings (C <= 4) keep all channels in one register group; wider ones go 16 at a time.
#define TUSK_ALPHA_CHANNEL_GROUPS(CHANNELS, KERNEL, ...) \
  if ((CHANNELS) <= 4) {                                 \
    KERNEL<scalar_t, 4> __VA_ARGS__;                     \
  } else {                                               \
    KERNEL<scalar_t, 16> __VA_ARGS__;                    \
  }

extern "C" cudaError_t tusk_alpha_composite_forward(tusk_dtype dtype, const void* rgb,
                                                    const void* logits, int64_t batch, int64_t k,
                                                    int64_t channels, int64_t pixels, void* image,
                                                    void* alpha, cudaStream_t stream) {
  if (!sizes_ok(batch, k, channels, pixels)) return cudaErrorInvalidValue;
  if (batch * pixels == 0) return cudaSuccess;
  TUSK_DISPATCH_FLOATING(dtype, [&] {
    TUSK_ALPHA_CHANNEL_GROUPS(channels, forward_kernel,
                              <<<blocks_for(batch * pixels), kThreads, 0, stream>>>(
                                  static_cast<const scalar_t*>(rgb),
                                  static_cast<const scalar_t*>(logits), batch, k, channels, pixels,
                                  static_cast<scalar_t*>(image), static_cast<scalar_t*>(alpha)));
  });
  return launch_status();
}

extern "C" size_t tusk_alpha_composite_backward_workspace_bytes(tusk_dtype dtype, int64_t batch,
                                                                int64_t k, int64_t pixels,
                                                                int want_grad_logits) {
  if (!tusk_is_half(dtype) || !want_grad_logits || batch < 0 || k < 0 || pixels < 0) return 0;
  return static_cast<size_t>(batch * k * pixels) * sizeof(float);
}

extern "C" cudaError_t tusk_alpha_composite_backward(tusk_dtype dtype, const void* grad_image,
                                                     const void* grad_alpha, const void* rgb,
                                                     const void* logits, int64_t batch, int64_t k,
                                                     int64_t channels, int64_t pixels,
                                                     void* grad_rgb, void* grad_logits,
                                                     void* workspace, cudaStream_t stream) {
  if (!sizes_ok(batch, k, channels, pixels)) return cudaErrorInvalidValue;
  if (batch * pixels == 0 || (grad_rgb == nullptr && grad_logits == nullptr)) return cudaSuccess;
  TUSK_DISPATCH_FLOATING(dtype, [&] {
    using acc = acc_t<scalar_t>;
    acc* stash = nullptr;
    if (grad_logits != nullptr) stash = static_cast<acc*>(tusk_is_half(dtype) ? workspace : grad_logits);
    TUSK_ALPHA_CHANNEL_GROUPS(channels, backward_kernel,
                              <<<blocks_for(batch * pixels), kThreads, 0, stream>>>(
                                  static_cast<const scalar_t*>(grad_image),
                                  static_cast<const scalar_t*>(grad_alpha),
                                  static_cast<const scalar_t*>(rgb),
                                  static_cast<const scalar_t*>(logits), batch, k, channels, pixels,
                                  static_cast<scalar_t*>(grad_rgb),
                                  static_cast<scalar_t*>(grad_logits), stash));
  });
  return launch_status();
}
