"""Run configs: the packaged YAML files and validation."""
import pytest

from tusk.config import ConfigError, config_from_dict, load_config, packaged_configs, save_config

PAPER = {  # dataset: (K, M, window, alpha blending, reconstruction, sw steps, image size)
    "mnist_hard": (9, 10, 13, False, "mse", 5, 80),
    "tetrominoes": (3, 114, 27, True, "mse", 8, 112),
    "clevr6": (6, 48, 21, True, "mse", 8, 112),
    "celeba": (4, 32, 21, False, "perceptual", 8, 80),
    "h36m": (16, 32, 11, False, "mse", 8, 112),
}


@pytest.mark.parametrize("name", sorted(PAPER))
def test_paper_configs(name):
    config = load_config(name)
    k, m, window, alpha, recon, sw_steps, size = PAPER[name]
    assert (config.model.keypoints, config.model.prototypes, config.model.window) == (k, m, window)
    assert config.model.alpha_blending is alpha and config.loss.reconstruction == recon
    assert config.train.sw_steps == sw_steps and config.data.image_size == size
    assert config.data.dataset == name and config.model.channels == 32
    # Official loss weights and optimiser settings.
    assert (config.loss.recon_weight, config.loss.kmeans_weight) == (1.0, 0.01)
    assert (config.loss.eqv_heatmap_weight, config.loss.eqv_feature_weight) == (0.01, 100.0)
    assert (config.train.lr, config.train.prototype_lr, config.train.prototype_betas) == (1e-3, 0.1, (0.5, 0.999))
    assert (config.loss.kmeans_temperature, config.loss.sw_projections) == (20.0, 100)
    assert config.train.device == "auto"  # the GPU when there is one
    if name in ("tetrominoes", "clevr6"):  # the official code's split and resizing
        assert (config.data.protocol, config.data.resize) == ("official", "nearest")


def test_data_protocol_settings():
    config = config_from_dict({"data": {"dataset": "clevr6", "protocol": "paper", "split_train": 25000,
                                        "split_test": 5000, "resize": "nearest"}})
    assert (config.data.split_train, config.data.split_test, config.data.split_records) == (25000, 5000, None)
    with pytest.raises(ConfigError, match="data.protocol must be one of official, paper"):
        config_from_dict({"data": {"protocol": "text"}})
    with pytest.raises(ConfigError, match="data.resize must be one of smooth, nearest or null"):
        config_from_dict({"data": {"resize": "bilinear"}})
    with pytest.raises(ConfigError, match="data.split_test must be >= 1"):
        config_from_dict({"data": {"split_test": 0}})


def test_every_packaged_config_loads_and_round_trips(tmp_path):
    assert {"quickstart", "squares", *PAPER} <= set(packaged_configs())
    for name in packaged_configs():
        config = load_config(name)
        save_config(config, tmp_path / f"{name}.yaml")
        assert load_config(tmp_path / f"{name}.yaml") == config


def test_defaults_and_errors():
    assert config_from_dict({}).model.keypoints == 9
    with pytest.raises(ConfigError, match="unknown config key"):
        config_from_dict({"trian": {}})
    with pytest.raises(ConfigError, match="train.batch_size must be int"):
        config_from_dict({"train": {"batch_size": "8"}})
    with pytest.raises(ConfigError, match="train.prototype_betas must be a pair"):
        config_from_dict({"train": {"prototype_betas": [0.5]}})
    with pytest.raises(ConfigError, match="loss.vgg_weights"):
        config_from_dict({"loss": {"reconstruction": "perceptual"}})
    with pytest.raises(ConfigError, match="loss.reconstruction"):
        config_from_dict({"loss": {"reconstruction": "l1"}})
    with pytest.raises(ConfigError, match="model must be a mapping"):
        config_from_dict({"model": 3})
    with pytest.raises(ConfigError, match="train.steps must be >= 1"):
        config_from_dict({"train": {"steps": 0}})
