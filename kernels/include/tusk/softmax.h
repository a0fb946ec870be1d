// Streaming (online) softmax over a sequence of logits: one pass keeps the running maximum m and
// the running sum s = sum exp(l - m), rescaling when the maximum grows. Used by alpha_composite
// (softmax over keypoints at each pixel) so the blend needs one pass over the renderings.
//
// Conventions match torch.softmax for finite logits and -inf entries: exp(l - m) is taken as 1
// when l == m, so leading -inf logits do not poison the sum (softmax([-inf, -inf, 1]) = [0, 0, 1]);
// any NaN logit makes the result NaN. (torch gives NaN when all logits are -inf or one is +inf;
// this helper gives a uniform distribution over the maximal entries there.)
#pragma once

#include "tusk/numeric.h"

namespace tusk {

template <typename acc>
struct OnlineSoftmax {
  acc max = acc(0);  // running maximum (set by start())
  acc sum = acc(0);  // sum of exp(l - max) so far

  // Start with the first logit: returns its (unnormalised) weight, 1.
  TUSK_HD acc start(acc logit) {
    max = logit;
    sum = acc(1);
    return acc(1);
  }

  // Add one logit. Returns `rescale`, the factor by which everything accumulated so far with the
  // old maximum must be multiplied, and sets *weight = exp(logit - new max).
  TUSK_HD acc add(acc logit, acc* weight) {
    if (logit > max) {
      const acc rescale = exp_value(max - logit);
      sum = sum * rescale + acc(1);
      max = logit;
      *weight = acc(1);
      return rescale;
    }
    const acc w = (logit == max) ? acc(1) : exp_value(logit - max);  // NaN logit -> NaN
    sum += w;
    *weight = w;
    return acc(1);
  }

  // exp(logit - max) for the final maximum, with the same l == m rule.
  TUSK_HD acc weight(acc logit) const { return (logit == max) ? acc(1) : exp_value(logit - max); }
};

}  // namespace tusk
