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


#: (YAML text, the key and the complaint the error must name). Each was accepted before and
#: failed later with a traceback (or trained on nonsense).
BAD_VALUES = [
    ("data: {image_size: 0}", "data.image_size must be an integer >= 1, got 0"),
    ("data: {image_size: -8}", "data.image_size must be an integer >= 1, got -8"),
    ("data: {train_length: 0}", "data.train_length must be an integer >= 1, got 0"),
    ("data: {test_length: 0}", "data.test_length must be an integer >= 1, got 0"),
    ("data: {num_workers: -1}", "data.num_workers must be an integer >= 0, got -1"),
    ("data: {seed: -1}", "data.seed must be an integer in [0, 2**63), got -1"),
    ("data: {dataset: mnist}", "data.dataset must be one of mnist_hard, tetrominoes, clevr6, celeba, h36m, squares; "
                               "got 'mnist'"),
    ("train: {backend: gpu}", "train.backend must be one of auto, reference, cpp, cuda, triton (or null); got 'gpu'"),
    ("loss: {sw_projections: 0}", "loss.sw_projections must be an integer >= 1, got 0"),
    ("loss: {gmm_noise_std: -0.1}", "loss.gmm_noise_std must be a finite number >= 0, got -0.1"),
    ("loss: {gmm_smoothing: .nan}", "loss.gmm_smoothing must be a finite number >= 0, got nan"),
    ("loss: {kmeans_temperature: 0}", "loss.kmeans_temperature must be a finite number > 0, got 0.0"),
    ("loss: {eqv_feature_weight: .inf}", "loss.eqv_feature_weight must be a finite number >= 0, got inf"),
    ("loss: {tps: {scale: .inf}}", "loss.tps.scale must be a finite number > 0, got inf"),
    ("loss: {augment: {rot_scale: -1}}", "loss.augment.rot_scale must be a finite number >= 0, got -1.0"),
    ("loss: {augment: {pad_value: .nan}}", "loss.augment.pad_value must be a finite number, got nan"),
    ("model: {temperature: .inf}", "model.temperature must be a finite number > 0, got inf"),
    ("model: {threshold: .nan}", "model.threshold must be a finite number (or null), got nan"),
    ("train: {lr: 0}", "train.lr must be a finite number > 0, got 0.0"),
    ("train: {lr: -0.001}", "train.lr must be a finite number > 0, got -0.001"),
    ("train: {lr: .nan}", "train.lr must be a finite number > 0, got nan"),
    ("train: {lr: .inf}", "train.lr must be a finite number > 0, got inf"),
    ("train: {prototype_lr: .nan}", "train.prototype_lr must be a finite number > 0, got nan"),
    ("train: {prototype_betas: [1.0, 0.999]}", "train.prototype_betas[0] must be a number in [0, 1), got 1.0"),
    ("train: {prototype_betas: [0.5, -0.1]}", "train.prototype_betas[1] must be a number in [0, 1), got -0.1"),
    ("train: {prototype_betas: [.nan, 0.9]}", "train.prototype_betas[0] must be a number in [0, 1), got nan"),
    ("train: {check_ops_tolerance: 0}", "train.check_ops_tolerance must be a finite number > 0, got 0.0"),
    ("train: {eval_images: 0}", "train.eval_images must be an integer >= 1, got 0"),
    ("train: {seed: -3}", "train.seed must be an integer in [0, 2**63), got -3"),
]


@pytest.mark.parametrize("text, message", BAD_VALUES, ids=[m.split(" ")[0] for _, m in BAD_VALUES])
def test_bad_values_name_the_file_and_the_key(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}: {message}"


def test_a_float_in_exponent_notation_is_a_float(tmp_path):
    """YAML 1.1 (PyYAML) reads ``1e-3`` and ``nan`` as strings; they mean numbers."""
    path = tmp_path / "lr.yaml"
    path.write_text("train: {lr: 1e-3, prototype_lr: 5E+0}\nmodel: {temperature: 2e-1}\n")
    config = load_config(path)
    assert (config.train.lr, config.train.prototype_lr, config.model.temperature) == (1e-3, 5.0, 0.2)
    path.write_text("train: {lr: nan}\n")
    with pytest.raises(ConfigError, match="train.lr must be a finite number > 0, got nan"):
        load_config(path)
    path.write_text("train: {batch_size: 1e2}\n")
    with pytest.raises(ConfigError, match="train.batch_size must be int"):
        load_config(path)
