// sliced_wasserstein on the CPU: x, y [G, N, C] are G independent problems of N points per
// side; projections [C, P] (any layout with a unit stride: the wrapper passes the transpose of
// a contiguous [P, C] draw).
//
//   distance[g] = 1/(N P) sum_p sum_i (sort(x_g theta_p)_i - sort(y_g theta_p)_i)^2
//
// Forward: the (projection, problem) pairs are split among threads by projection (or by problem
// when there are more problems than projections). Each thread projects its block of points with
// one GEMM (projection-major, so each pair's N values are contiguous), sorts every projection
// once per side (sort_order.h, both sides together), pairs the sorted values and writes the
// residuals r = d distance / d (projected point) at the points' original positions, r[g, n, p].
// Per-pair sums are reduced over projections in a fixed order (deterministic; bitwise equal on
// 1 and 2 threads in the tests we ran).
//
// Backward: the residuals turn the chain rule into GEMMs,
//   grad_x[g] = grad[g] r_x[g] theta^T   (likewise y)
//   grad_theta = sum_g grad[g] (x_g^T r_x[g] + y_g^T r_y[g]),
// split by rows of grad_x / columns of grad_theta so every output element has one writer.
//
// Every GEMM here is small (0.9 MFLOP at TUSK's MNIST size) and runs inside the parallel region
// through at::cpu:: (no dispatcher, no autograd), where the BLAS stays on the calling thread.
// Letting at::mm thread such a GEMM itself measured 24 us on a quiet machine and 30 ms (sic)
// while other processes held the cores.
#include <ATen/ops/addmm_cpu_dispatch.h>
#include <ATen/ops/from_blob.h>

#include <limits>
#include <memory>
#include <vector>

#include "common.h"
#include "sliced_wasserstein/sort_order.h"

namespace tusk {
namespace {

// A [rows, cols] view of raw memory with the given strides: no copy, no autograd.
template <typename scalar_t>
at::Tensor matrix(const scalar_t* data, int64_t rows, int64_t cols, int64_t row_stride, int64_t col_stride) {
  return at::from_blob(const_cast<scalar_t*>(data), {rows, cols}, {row_stride, col_stride},
                       at::TensorOptions().dtype(c10::CppTypeToScalarType<scalar_t>::value));
}

// out = alpha a b + beta out, on the calling thread's BLAS (beta = 0 ignores out's contents).
void gemm(at::Tensor out, const at::Tensor& a, const at::Tensor& b, double alpha = 1.0, double beta = 0.0) {
  at::cpu::addmm_out(out, out, a, b, beta, alpha);
}

// The projection matrix theta[c, p] = data[c * stride_c + p * stride_p].
template <typename scalar_t>
struct Directions {
  const scalar_t* data;
  int64_t stride_c, stride_p;
  // theta[:, p0:p0+count]^T as a [count, C] matrix view.
  at::Tensor transposed_block(int64_t p0, int64_t count, int64_t C) const {
    return matrix(data + p0 * stride_p, count, C, stride_p, stride_c);
  }
};

template <typename scalar_t>
Directions<scalar_t> directions(const at::Tensor& projections) {
  return {projections.data_ptr<scalar_t>(), projections.stride(0), projections.stride(1)};
}

// Values per side one thread projects at once (about 128 KiB of float32, cache resident).
constexpr int64_t kBlockValues = 32768;

template <typename scalar_t>
void forward_kernel(const at::Tensor& x, const at::Tensor& y, const at::Tensor& projections,
                    at::Tensor& x_residual, at::Tensor& y_residual, at::Tensor& partial) {
  using acc = acc_t<scalar_t>;
  const int64_t G = x.size(0), N = x.size(1), C = x.size(2), P = projections.size(1);
  const scalar_t* xs = x.data_ptr<scalar_t>();
  const scalar_t* ys = y.data_ptr<scalar_t>();
  const Directions<scalar_t> theta = directions<scalar_t>(projections);
  scalar_t* rx_all = x_residual.data_ptr<scalar_t>();
  scalar_t* ry_all = y_residual.data_ptr<scalar_t>();
  double* sums = partial.data_ptr<double>();
  const acc scale = acc(2) / (static_cast<acc>(N) * static_cast<acc>(P));

  const bool by_projection = P >= G;
  const int64_t units = by_projection ? P : G;   // split among threads
  const int64_t others = by_projection ? G : P;  // handled whole by each thread
  const int64_t block = std::max<int64_t>(1, kBlockValues / (others * N));
  // Per unit: the GEMM (2 C per value) and the sort and pairing (~60 operations per value).
  at::parallel_for(0, units, grain_for(others * N * (2 * C + 60)), [&](int64_t begin, int64_t end) {
    SortScratch scratch(N);
    const int64_t max_rows = (by_projection ? G : std::min(block, end - begin)) * N;
    const int64_t max_count = by_projection ? std::min(block, end - begin) : P;
    // Uninitialised (a std::vector would zero them: measured ~10 us of memset per MNIST step).
    std::unique_ptr<scalar_t[]> proj_x(new scalar_t[max_count * max_rows]);
    std::unique_ptr<scalar_t[]> proj_y(new scalar_t[max_count * max_rows]);
    for (int64_t u0 = begin; u0 < end; u0 += block) {
      const int64_t u1 = std::min(end, u0 + block);
      const int64_t p0 = by_projection ? u0 : 0, p1 = by_projection ? u1 : P;
      const int64_t g0 = by_projection ? 0 : u0, g1 = by_projection ? G : u1;
      const int64_t rows = (g1 - g0) * N, count = p1 - p0;
      // proj[p - p0][r] = theta[:, p] . points[g0 N + r]: [count, rows] = theta_block^T points^T.
      // (Transposing the points first, a contiguous right operand for MKL, sped these GEMMs up
      // by about what the transposes cost, so the points are used in place.)
      const at::Tensor theta_t = theta.transposed_block(p0, count, C);
      gemm(matrix(proj_x.get(), count, rows, rows, 1), theta_t, matrix(xs + g0 * N * C, C, rows, 1, C));
      gemm(matrix(proj_y.get(), count, rows, rows, 1), theta_t, matrix(ys + g0 * N * C, C, rows, 1, C));
      for (int64_t p = p0; p < p1; ++p) {
        for (int64_t g = g0; g < g1; ++g) {
          const int64_t local = (p - p0) * rows + (g - g0) * N, task = p * G + g;
          const scalar_t* vx = proj_x.get() + local;
          const scalar_t* vy = proj_y.get() + local;
          scalar_t* rx = rx_all + g * N * P + p;  // r[g, n, p] = rx[n * P]
          scalar_t* ry = ry_all + g * N * P + p;
          sort_pair(vx, vy, N, scratch);
          const uint64_t* sorted_x = scratch.items[0].data();
          const uint64_t* sorted_y = scratch.items[1].data();
          // Summed in float64 even for float32 (a float sum was 1e-5 off the reference at
          // N = 70000); the residuals need no sum.
          double sum = 0;
          for (int64_t i = 0; i < N; ++i) {
            const uint32_t ix = item_index(sorted_x[i]), iy = item_index(sorted_y[i]);
            const acc d = static_cast<acc>(vx[ix]) - static_cast<acc>(vy[iy]);
            sum += static_cast<double>(d) * static_cast<double>(d);
            rx[ix * P] = static_cast<scalar_t>(scale * d);
            ry[iy * P] = static_cast<scalar_t>(-scale * d);
          }
          sums[task] = sum;
        }
      }
    }
  });
}

template <typename scalar_t>
void reduce_projections(const at::Tensor& partial, at::Tensor& distance, int64_t N) {
  const int64_t P = partial.size(0), G = partial.size(1);
  const double* sums = partial.data_ptr<double>();
  scalar_t* out = distance.data_ptr<scalar_t>();
  const double inv = 1.0 / (static_cast<double>(N) * static_cast<double>(P));
  for (int64_t g = 0; g < G; ++g) {
    double total = 0;
    for (int64_t p = 0; p < P; ++p) total += sums[p * G + g];
    out[g] = static_cast<scalar_t>(total * inv);
  }
}

// grad_points[g] = grad[g] residual[g] theta^T, split by rows of the flattened [G N, C]:
// one GEMM per thread, then each row scaled by its problem's grad.
template <typename scalar_t>
void grad_points_kernel(const scalar_t* grad, const at::Tensor& residual, const at::Tensor& projections,
                        at::Tensor& grad_points) {
  const int64_t G = residual.size(0), N = residual.size(1), P = residual.size(2);
  const int64_t C = projections.size(0), rows = G * N;
  const scalar_t* r = residual.data_ptr<scalar_t>();
  const at::Tensor theta_t = directions<scalar_t>(projections).transposed_block(0, P, C);
  scalar_t* out = grad_points.data_ptr<scalar_t>();
  at::parallel_for(0, rows, grain_for(2 * C * P), [&](int64_t begin, int64_t end) {
    const int64_t count = end - begin;
    const at::Tensor block = matrix(out + begin * C, count, C, C, 1);
    if (G == 1) {
      gemm(block, matrix(r + begin * P, count, P, P, 1), theta_t, static_cast<double>(grad[0]));
      return;
    }
    gemm(block, matrix(r + begin * P, count, P, P, 1), theta_t);
    for (int64_t row = begin; row < end; ++row) {
      const scalar_t g = grad[row / N];
      for (int64_t c = 0; c < C; ++c) out[row * C + c] *= g;
    }
  });
}

// grad_theta[:, p] = sum_g grad[g] (x_g^T r_x[g, :, p] + y_g^T r_y[g, :, p]), split by
// projections: (grad-scaled points)^T residual over all G N points at once.
template <typename scalar_t>
void grad_projections_kernel(const scalar_t* grad, const at::Tensor& x, const at::Tensor& y,
                             const at::Tensor& x_residual, const at::Tensor& y_residual,
                             at::Tensor& grad_projections) {
  const int64_t G = x.size(0), N = x.size(1), C = x.size(2), P = x_residual.size(2);
  const int64_t rows = G * N;
  // With one problem its grad is the GEMM's alpha; otherwise scale the points first.
  std::vector<scalar_t> scaled_x, scaled_y;
  const scalar_t* xs = x.data_ptr<scalar_t>();
  const scalar_t* ys = y.data_ptr<scalar_t>();
  double alpha = static_cast<double>(grad[0]);
  if (G > 1) {
    scaled_x.resize(rows * C);
    scaled_y.resize(rows * C);
    for (int64_t i = 0; i < rows * C; ++i) {
      const scalar_t g = grad[i / (N * C)];
      scaled_x[i] = xs[i] * g;
      scaled_y[i] = ys[i] * g;
    }
    xs = scaled_x.data();
    ys = scaled_y.data();
    alpha = 1.0;
  }
  const scalar_t* rx = x_residual.data_ptr<scalar_t>();
  const scalar_t* ry = y_residual.data_ptr<scalar_t>();
  scalar_t* out = grad_projections.data_ptr<scalar_t>();
  at::parallel_for(0, P, grain_for(4 * C * rows), [&](int64_t begin, int64_t end) {
    const int64_t count = end - begin;
    const at::Tensor block = matrix(out + begin, C, count, P, 1);
    gemm(block, matrix(xs, C, rows, 1, C), matrix(rx + begin, rows, count, P, 1), alpha);
    gemm(block, matrix(ys, C, rows, 1, C), matrix(ry + begin, rows, count, P, 1), alpha, 1.0);
  });
}

void check_inputs(const at::Tensor& x, const at::Tensor& y, const at::Tensor& projections) {
  check_float_tensor(x, "x", 3);
  check_float_tensor(y, "y", 3);
  check_float_tensor(projections, "projections", 2);
  check_cpu(x, "x");
  check_cpu(y, "y");
  check_cpu(projections, "projections");
  check_same_dtype(x, y, "x", "y");
  check_same_dtype(x, projections, "x", "projections");
  TORCH_CHECK(y.sizes() == x.sizes(), "y must have the shape of x ", x.sizes(), ", got ", y.sizes());
  TORCH_CHECK(x.size(1) > 0 && x.size(2) > 0, "x must be [G, N, C] with N, C >= 1, got ", x.sizes());
  TORCH_CHECK(projections.size(0) == x.size(2) && projections.size(1) > 0,
              "projections must be [C, P] with C=", x.size(2), " and P >= 1, got ", projections.sizes());
  TORCH_CHECK(x.size(1) <= std::numeric_limits<uint32_t>::max(), "N must fit in 32 bits, got ", x.size(1));
}

// projections with a unit stride (either layout), copied only when neither stride is 1.
at::Tensor unit_stride(const at::Tensor& projections) {
  if (projections.stride(0) == 1 || projections.stride(1) == 1) return projections;
  return projections.contiguous();
}

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor> sliced_wasserstein_cpu(const at::Tensor& x_in,
                                                                      const at::Tensor& y_in,
                                                                      const at::Tensor& projections_in) {
  check_inputs(x_in, y_in, projections_in);
  const at::Tensor x = x_in.contiguous(), y = y_in.contiguous();
  const at::Tensor projections = unit_stride(projections_in);
  const int64_t G = x.size(0), N = x.size(1), P = projections.size(1);
  at::Tensor distance = at::empty({G}, x.options());
  at::Tensor x_residual = at::empty({G, N, P}, x.options());
  at::Tensor y_residual = at::empty({G, N, P}, x.options());
  if (G == 0) return {distance, x_residual, y_residual};
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "sliced_wasserstein_cpu", [&] {
    at::Tensor partial = at::empty({P, G}, x.options().dtype(at::kDouble));
    forward_kernel<scalar_t>(x, y, projections, x_residual, y_residual, partial);
    reduce_projections<scalar_t>(partial, distance, N);
  });
  return {distance, x_residual, y_residual};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> sliced_wasserstein_backward_cpu(
    const at::Tensor& grad_in, const at::Tensor& x_in, const at::Tensor& y_in,
    const at::Tensor& projections_in, const at::Tensor& x_residual_in, const at::Tensor& y_residual_in,
    std::array<bool, 3> output_mask) {
  check_inputs(x_in, y_in, projections_in);
  check_cpu(grad_in, "grad");
  check_same_dtype(x_in, grad_in, "x", "grad");
  const int64_t G = x_in.size(0), N = x_in.size(1), C = x_in.size(2), P = projections_in.size(1);
  TORCH_CHECK(grad_in.dim() == 1 && grad_in.size(0) == G, "grad must be [G] with G=", G, ", got ",
              grad_in.sizes());
  const std::vector<int64_t> residual_shape{G, N, P};
  TORCH_CHECK(x_residual_in.sizes() == residual_shape && y_residual_in.sizes() == residual_shape,
              "residuals must be [G, N, P] = ", residual_shape, ", got ", x_residual_in.sizes(), " and ",
              y_residual_in.sizes());
  check_same_dtype(x_in, x_residual_in, "x", "x_residual");
  check_same_dtype(x_in, y_residual_in, "x", "y_residual");
  const at::Tensor projections = unit_stride(projections_in), grad = grad_in.contiguous();
  const at::Tensor x_residual = x_residual_in.contiguous(), y_residual = y_residual_in.contiguous();
  at::Tensor grad_x = output_mask[0] ? at::empty({G, N, C}, x_in.options()) : x_in.new_empty({0});
  at::Tensor grad_y = output_mask[1] ? at::empty({G, N, C}, y_in.options()) : y_in.new_empty({0});
  at::Tensor grad_projections = output_mask[2] ? at::empty({C, P}, projections_in.options())
                                               : projections_in.new_empty({0});
  if (G == 0) {
    if (output_mask[2]) grad_projections.zero_();
    return {grad_x, grad_y, grad_projections};
  }
  AT_DISPATCH_FLOATING_TYPES(x_in.scalar_type(), "sliced_wasserstein_backward_cpu", [&] {
    const scalar_t* g = grad.data_ptr<scalar_t>();
    if (output_mask[0]) grad_points_kernel<scalar_t>(g, x_residual, projections, grad_x);
    if (output_mask[1]) grad_points_kernel<scalar_t>(g, y_residual, projections, grad_y);
    if (output_mask[2]) {
      grad_projections_kernel<scalar_t>(g, x_in.contiguous(), y_in.contiguous(), x_residual, y_residual,
                                        grad_projections);
    }
  });
  return {grad_x, grad_y, grad_projections};
}

}  // namespace tusk

TORCH_LIBRARY_IMPL(tusk, CPU, m) {
  m.impl("sliced_wasserstein", &tusk::sliced_wasserstein_cpu);
  m.impl("sliced_wasserstein_backward", &tusk::sliced_wasserstein_backward_cpu);
}
