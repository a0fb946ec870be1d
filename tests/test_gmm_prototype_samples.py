"""gmm_prototype_samples: every backend against the reference, counts, gradients, edge cases."""
import torch

from tusk.ops import reference


class TestGmmPrototypeSamples:
    def test_reference_non_finite_inputs_give_nan_not_an_index_error(self):
        # NaN shares used to become arbitrary integer counts and an out-of-range gather.
        prototypes = torch.randn(4, 3)
        features = torch.randn(10, 3)
        features[0, 0] = float("nan")
        samples = reference.gmm_prototype_samples(prototypes, features, torch.zeros(10, 3))
        assert samples.shape == (10, 3) and samples.isnan().all()
