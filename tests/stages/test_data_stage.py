"""The data stage: generative datasets are made when absent and made again when their settings change."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from helpers import dataset_plugin

from mellm_core.config import load_recipe
from mellm_core.errors import InputError
from mellm_core.records import Sample
from mellm_core.stages.data import recipe_samples

CALLS: list[dict] = []


@dataclass
class ToyParams:
    clips: int = 2


class Toy:
    """A generative dataset: ``generate`` writes one line per clip; ``samples`` reads them back."""

    def __init__(self, params: ToyParams):
        self.params = params

    def generate(self, out_dir, seed: int = 0, overwrite: bool = False):
        CALLS.append({"seed": seed, "overwrite": overwrite})
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "clips.txt").write_text("\n".join(f"{seed}-{i}" for i in range(self.params.clips)))

    def samples(self, root):
        names = (root / "clips.txt").read_text().split()
        return [Sample(sample_id=n, onset_path="a.png", apex_path="b.png", dataset="toy") for n in names]


@pytest.fixture()
def toy_plugin():
    CALLS.clear()
    with dataset_plugin("toy", Toy, ToyParams, "a generated test dataset"):
        yield


def test_generated_data_follows_its_settings(toy_plugin, tmp_path):
    base = [f"output_dir={tmp_path}", "data.dataset=toy"]
    assert [s.sample_id for s in recipe_samples(load_recipe("quickstart", base), progress=False).samples] == [
        "0-0", "0-1"]
    recipe_samples(load_recipe("quickstart", base), progress=False)
    assert CALLS == [{"seed": 0, "overwrite": False}]  # unchanged: not generated again
    again = recipe_samples(load_recipe("quickstart", [*base, "seed=7", "data.params={clips: 3}"]), progress=False)
    assert [s.sample_id for s in again.samples] == ["7-0", "7-1", "7-2"]
    assert CALLS[-1] == {"seed": 7, "overwrite": True}


def test_user_data_is_never_regenerated(toy_plugin, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "clips.txt").write_text("x y")
    recipe = load_recipe("quickstart", [f"output_dir={tmp_path}", "data.dataset=toy", f"data.root={tmp_path}/mine",
                                        "seed=3"])
    assert [s.sample_id for s in recipe_samples(recipe, progress=False).samples] == ["x", "y"] and CALLS == []


def test_missing_root_of_a_real_dataset_is_named(tmp_path):
    recipe = load_recipe("quickstart", [f"output_dir={tmp_path}", "data.dataset=casme2"])
    with pytest.raises(InputError, match=f"dataset root {tmp_path}/data does not exist"):
        recipe_samples(recipe, progress=False)
