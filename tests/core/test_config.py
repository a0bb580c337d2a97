"""Recipes: every shipped recipe validates; unknown keys, wrong types and unknown plugins are all reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from mellm_core.cli import main
from mellm_core.config import Recipe, load_recipe, recipe_path, settings_hash
from mellm_core.errors import ConfigError

RECIPES = sorted(Path(__file__).resolve().parents[2].joinpath("recipes").glob("*.yaml"))
REQUIRED_KEYS = [
    "output_dir", "maps.flow", "maps.colorizer", "maps.landmarker", "maps.head_motion", "backbone.name",
    "backbone.model", "train.lr", "train.max_steps", "train.num_workers",
    "train.use_gpu", "train.resume", "eval.protocol", "serve.host", "serve.port", "serve.adapter",
]


def test_there_are_shipped_recipes():
    assert {p.name for p in RECIPES} >= {"quickstart.yaml", "mellm_qwen2_5_vl_7b.yaml"}


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_every_shipped_recipe_validates_and_shows_its_command(path):
    import yaml

    recipe = load_recipe(path)
    assert isinstance(recipe, Recipe)
    text = path.read_text()
    assert text.startswith("#") and "mellm " in text.split("\n\n")[0], "header comment must show a command"
    raw = yaml.safe_load(text)
    for key in REQUIRED_KEYS:
        node = raw
        for part in key.split("."):
            assert part in node, f"{path.name} lacks {key}"
            node = node[part]


def test_paper_recipe_has_the_papers_settings():
    recipe = load_recipe("mellm_qwen2_5_vl_7b")
    assert (recipe.train.lora_rank, recipe.train.lora_alpha, recipe.train.lr) == (64, 64, 1e-4)
    assert (recipe.train.max_steps, recipe.train.num_workers, recipe.train.use_gpu) == (1200, 2, True)
    assert recipe.backbone.name == "qwen2_5_vl" and "Qwen2.5-VL-7B" in recipe.backbone.model


def test_paper_recipe_fits_its_gpus_and_says_gpus_wherever_the_model_runs(capsys):
    """Micro-batch 1 with accumulation, gradient checkpointing and an image cap that matches the maps' size; GPUs
    for evaluation and serving too. A GPU-trained recipe that evaluates or serves on CPU gets a loud warning."""
    from mellm_core.cli import main
    from mellm_core.config import device_warnings

    recipe = load_recipe("mellm_qwen2_5_vl_7b")
    train, params = recipe.train, recipe.backbone.params
    assert train.batch_size // train.num_workers // train.grad_accum == 1 and train.gradient_checkpointing
    assert params["max_pixels"] == recipe.maps.max_side ** 2
    assert recipe.eval.gpus_per_actor >= 1 and recipe.serve.model_gpus >= 1 and device_warnings(recipe) == {}
    cpu = load_recipe("mellm_qwen2_5_vl_7b", ["eval.gpus_per_actor=0", "serve.model_gpus=0"])
    assert set(device_warnings(cpu)) == {"eval", "serve"}
    assert device_warnings(load_recipe("quickstart")) == {}  # CPU training: CPU inference is expected
    assert main(["config", "show", "mellm_qwen2_5_vl_7b", "serve.model_gpus=0"]) == 0
    assert "warning: train.use_gpu is true but serve.model_gpus is 0" in capsys.readouterr().err


def test_overrides_are_applied_and_typed():
    recipe = load_recipe("quickstart", ["train.lr=5e-5", "maps.flow=dis", "maps.flow_params={preset: fast}",
                                        "serve.port=9000"])
    assert recipe.train.lr == 5e-5 and recipe.serve.port == 9000
    assert recipe.maps.flow == "dis" and recipe.maps.flow_params == {"preset": "fast"}


def test_all_problems_are_reported_together():
    with pytest.raises(ConfigError) as err:
        load_recipe("quickstart", ["train.lora_rnk=3", "train.lr=fast", "maps.flow=tvl2", "maps.head_motion=nos",
                                   "maps.colorizer_params={stp: 45}", "nonsense"])
    problems = err.value.problems
    text = "\n".join(problems)
    assert "unknown key 'train.lora_rnk'; did you mean 'train.lora_rank'?" in text
    assert "key 'train.lr' expects float, got 'fast'" in text
    assert "maps.flow: unknown flow plugin 'tvl2'; did you mean 'tvl1'? (choose one of: dis, farneback, tvl1)" in text
    assert "maps.head_motion: unknown mode 'nos'" in text
    assert "unknown parameter 'stp' for colorizer plugin 'mmc'; did you mean 'step'?" in text
    assert "override 'nonsense' is not of the form key=value" in text
    assert len(problems) == 6


def test_unknown_section_and_bad_yaml(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("mapz:\n  flow: tvl1\n")
    with pytest.raises(ConfigError, match="unknown key 'mapz'; did you mean 'maps'"):
        load_recipe(bad)
    broken = tmp_path / "broken.yaml"
    broken.write_text("maps: [unclosed\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_recipe(broken)
    with pytest.raises(ConfigError, match="shipped: .*quickstart"):
        recipe_path("no-such-recipe")


def test_settings_hash_is_stable_and_sensitive():
    a = load_recipe("quickstart").maps
    b = load_recipe("quickstart", ["maps.colorizer_params={step: 45}"]).maps
    assert settings_hash(a) == settings_hash(load_recipe("quickstart").maps)
    assert settings_hash(a) != settings_hash(b)


def test_config_show_cli(capsys):
    assert main(["config", "show", "recipes/quickstart.yaml", "train.lr=5e-5"]) == 0
    assert "lr: 5.0e-05" in capsys.readouterr().out
    assert main(["config", "show", "recipes/quickstart.yaml", "train.lora_rnk=3"]) != 0
    assert "lora_rnk" in capsys.readouterr().err
    assert main(["config", "show", "recipes/quickstart.yaml", "maps.flow=tvl2"]) != 0
    err = capsys.readouterr().err
    assert "dis, farneback, tvl1" in err and "Traceback" not in err


def test_every_shipped_recipe_caps_what_one_request_costs():
    """Pixels per chat image (the vision backbone's max_pixels), answer length and queue are bounded everywhere."""
    for path in RECIPES:
        recipe = load_recipe(path)
        if recipe.backbone.name == "qwen2_5_vl":
            assert recipe.backbone.params.get("max_pixels"), path.name
        assert recipe.serve.max_new_tokens >= 1 and recipe.serve.max_queued_requests >= 1, path.name
        assert recipe.serve.flow_region == "face", path.name  # the flow's cost follows the face, not the upload
    with pytest.raises(ConfigError, match="serve.max_new_tokens, max_body_bytes"):
        load_recipe("quickstart", ["serve.max_queued_requests=0"])


def test_flow_regions_are_checked():
    with pytest.raises(ConfigError) as err:
        load_recipe("quickstart", ["maps.flow_region=head", "serve.flow_region=body"])
    assert "maps.flow_region: unknown region 'head' (choose one of: frame, face)" in err.value.problems
    assert "serve.flow_region: unknown region 'body' (choose one of: frame, face)" in err.value.problems


def test_serve_and_ray_check_their_own_fields():
    """serve.max_batch_size=0 would reach Ray Serve; every section refuses such values before anything starts."""
    with pytest.raises(ConfigError) as err:
        load_recipe("quickstart", ["serve.max_batch_size=0", "serve.port=70000", "serve.map_cpus=0",
                                   "ray.address=''", "eval.cpus_per_actor=0"])
    text = "\n".join(err.value.problems)
    assert "serve.max_batch_size, model_replicas and map_replicas must be at least 1" in text
    assert "serve.port must be 0-65535" in text and "map_cpus must be positive" in text
    assert "ray.address must be a cluster address" in text and "eval.cpus_per_actor must be positive" in text
