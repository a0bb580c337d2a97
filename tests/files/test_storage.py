"""Files under a local folder or an S3 bucket (a local S3 server) through ``Location``, ``Journal`` and
``local_folder``, and the readers that take either."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import dataset_plugin

from mellm_core.errors import InputError
from mellm_core.files.frames import read_gray, read_rgb
from mellm_core.files.storage import Journal, Location, is_uri, local_folder
from mellm_core.records import Sample


@pytest.fixture(params=["local", "s3"])
def root(request, tmp_path) -> Location:
    """An empty folder: on the local disk, or a new bucket."""
    if request.param == "local":
        return Location(tmp_path / "root")
    return Location(request.getfixturevalue("s3")) / "root"


def test_is_uri():
    assert is_uri("s3://bucket/x") and is_uri("gs://b") and is_uri("file:///tmp/x")
    assert not is_uri("/tmp/x") and not is_uri("runs/demo") and not is_uri("C:\\data")


def test_location_joins_like_a_path():
    uri = Location("s3://bucket/run/") / "maps" / "a.png"
    assert str(uri) == "s3://bucket/run/maps/a.png" and uri.remote
    assert uri.name == "a.png" and str(uri.parent) == "s3://bucket/run/maps"
    assert str(Location("s3://bucket").parent) == "s3://bucket"
    local = Location("runs/demo") / "maps"
    assert str(local) == "runs/demo/maps" and not local.remote and local.parent == Location("runs/demo")
    with pytest.raises(InputError, match="s3://bucket/run/maps/a.png is a URI"):
        _ = uri.path


def test_files_round_trip(root):
    f = root / "sub" / "a.json"
    assert not f.exists() and f.stat() is None and root.files() == {}
    f.write_text('{"x": 1}')
    (root / "b.bin").write_bytes(b"\x00\x01")
    assert f.is_file() and not f.is_dir() and (root / "sub").is_dir()
    assert json.loads(f.read_text()) == {"x": 1}
    assert f.stat()[0] == 8
    assert sorted(root.files()) == ["b.bin", "sub/a.json"]
    assert root.files()["b.bin"][0] == 2
    f.write_text("replaced")
    assert f.read_text() == "replaced"
    with pytest.raises(FileNotFoundError):
        (root / "missing").read_bytes()
    f.unlink()
    f.unlink()  # absent: nothing to do
    assert not f.exists() and sorted(root.files()) == ["b.bin"]
    root.rmtree()
    assert not root.exists() and root.files() == {}


def test_copy_between_local_and_bucket(tmp_path, s3):
    src = tmp_path / "adapter"
    (src / "base").mkdir(parents=True)
    (src / "adapter_config.json").write_text("{}")
    (src / "base" / "w.bin").write_bytes(b"12345")
    remote = Location(s3) / "adapter"
    (remote / "stale.txt").write_text("left from an earlier copy")
    remote.copy_from(Location(src))
    assert {k: v[0] for k, v in remote.files().items()} == {"adapter_config.json": 2, "base/w.bin": 5}
    back = Location(tmp_path / "back")
    back.copy_from(remote)
    assert (back.path / "base" / "w.bin").read_bytes() == b"12345"


def test_local_folder_fetches_once_per_version(s3, tmp_path, monkeypatch):
    monkeypatch.setenv("MELLM_CACHE", str(tmp_path / "cache"))
    remote = Location(s3) / "train" / "adapter"
    (remote / "adapter_config.json").write_text('{"r": 1}')
    first = local_folder(remote)
    assert first.is_relative_to(tmp_path / "cache") and (first / "adapter_config.json").read_text() == '{"r": 1}'
    (first / "marker").write_text("kept while the remote is unchanged")
    assert local_folder(remote) == first and (first / "marker").is_file()
    (remote / "adapter_config.json").write_text('{"r": 22}')  # retrained: another size
    again = local_folder(remote)
    assert (again / "adapter_config.json").read_text() == '{"r": 22}' and not (again / "marker").exists()
    assert local_folder(tmp_path) == tmp_path  # a local folder is used where it is
    with pytest.raises(InputError, match="holds no files"):
        local_folder(Location(s3) / "nothing")


def test_journal_keeps_lines_across_runs(root):
    journal = Journal(root / "log.jsonl", every=3600)
    assert journal.lines() == []
    journal.append(["a", "b"])
    journal.append(["c"])
    assert journal.lines() == ["a", "b", "c"]  # pending lines count too
    journal.flush()
    later = Journal(root / "log.jsonl", every=0)  # a resumed run sees what the first one wrote
    assert later.lines() == ["a", "b", "c"]
    later.append(["d"])  # every=0: written at once
    assert Journal(root / "log.jsonl").lines() == ["a", "b", "c", "d"]
    later.remove()
    assert Journal(root / "log.jsonl").lines() == [] and root.files() == {}


def test_a_journal_cut_at_any_byte_resumes_with_its_whole_lines(tmp_path):
    """A killed run can leave its journal cut anywhere: in the header, mid-line, inside a multi-byte character.
    Reading keeps the whole lines only, the eval stage's reader never fails on what is left, and the next run's
    lines start on a line of their own."""
    from mellm_core.stages.eval import _read_partial

    header = json.dumps({"settings_hash": "h1"})
    records = [json.dumps({"sample_id": f"s{i}", "task": "mer", "text": "情绪 surprise"}, ensure_ascii=False)
               for i in range(3)]
    full = "".join(line + "\n" for line in [header, *records]).encode("utf-8")
    path = tmp_path / "predictions.partial.jsonl"
    for cut in range(len(full) + 1):
        path.write_bytes(full[:cut])
        journal = Journal(Location(path))
        whole = [header, *records][:full[:cut].count(b"\n")]
        assert journal.lines() == whole, cut
        done = _read_partial(journal, "h1")
        assert sorted(done) == [(f"s{i}", "mer") for i in range(max(0, len(whole) - 1))], cut
        journal.append([records[0]])
        assert Journal(Location(path)).lines() == [*whole, records[0]], cut


def test_journal_in_a_bucket_writes_parts_not_objects_per_line(s3):
    journal = Journal(Location(s3) / "log.jsonl", every=3600)
    journal.append([str(i) for i in range(100)])
    assert Location(s3).files() == {}  # held until the interval passes or the run flushes
    journal.flush()
    journal.append(["100"])
    journal.flush()
    assert sorted(Location(s3).files()) == ["log.jsonl.parts/00001", "log.jsonl.parts/00002"]
    assert Journal(Location(s3) / "log.jsonl").lines() == [str(i) for i in range(101)]


def test_images_read_from_a_bucket_equal_local(s3, tmp_path, face_photos):
    bgr = face_photos["astronaut"][:64, :80]
    ok, png = cv2.imencode(".png", bgr)
    (tmp_path / "a.png").write_bytes(png.tobytes())
    (Location(s3) / "a.png").write_bytes(png.tobytes())
    np.testing.assert_array_equal(read_gray(f"{s3}/a.png"), read_gray(tmp_path / "a.png"))
    np.testing.assert_array_equal(read_rgb(f"{s3}/a.png"), cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    with pytest.raises(InputError, match=f"image {s3}/b.png does not exist"):
        read_gray(f"{s3}/b.png")
    (Location(s3) / "bad.png").write_bytes(b"not an image")
    with pytest.raises(InputError, match="bad.png is not a readable image"):
        read_rgb(f"{s3}/bad.png")


def test_manifest_dataset_keeps_uri_frames(tmp_path, s3):
    from mellm_core.data.datasets import load_samples

    (tmp_path / "manifest.csv").write_text(
        f"sample_id,onset_path,apex_path\nc1,{s3}/c1/0.jpg,{s3}/c1/5.jpg\nc2,c2/0.jpg,c2/5.jpg\n")
    samples = {s.sample_id: s for s in load_samples("manifest", tmp_path).samples}
    assert (samples["c1"].onset_path, samples["c1"].apex_path) == (f"{s3}/c1/0.jpg", f"{s3}/c1/5.jpg")
    assert samples["c2"].onset_path == str(tmp_path.resolve() / "c2" / "0.jpg")


class Frames:
    """A generative dataset writing two small real PNG frames per clip (``generate``) and listing them."""

    def __init__(self, params):
        self.params = params

    def generate(self, out_dir, seed: int = 0, overwrite: bool = False):
        out_dir.mkdir(parents=True, exist_ok=True)
        for i in range(3):
            for role in ("onset", "apex"):
                frame = np.full((32, 32, 3), 40 * i + (role == "apex"), np.uint8)
                cv2.imwrite(str(out_dir / f"c{i}_{role}.png"), frame)

    def samples(self, root):
        return [Sample(sample_id=f"c{i}", onset_path=str(root / f"c{i}_onset.png"),
                       apex_path=str(root / f"c{i}_apex.png"), dataset="frames") for i in range(3)]


@dataclass
class FramesParams:
    pass


@pytest.fixture()
def frames_plugin():
    with dataset_plugin("frames", Frames, FramesParams, "generated frames"):
        yield


def test_generated_data_under_a_bucket_is_uploaded_once(frames_plugin, s3, tmp_path, monkeypatch, capsys):
    from mellm_core.config import load_recipe
    from mellm_core.stages.data import UPLOADED, recipe_samples

    monkeypatch.setenv("MELLM_CACHE", str(tmp_path / "cache"))
    recipe = load_recipe("quickstart", [f"output_dir={s3}/run", "data.dataset=frames"])
    loaded = recipe_samples(recipe)
    assert "uploading" in capsys.readouterr().err
    assert [s.onset_path for s in loaded.samples] == [f"{s3}/run/data/c{i}_onset.png" for i in range(3)]
    assert read_gray(loaded.samples[2].apex_path)[0, 0] == 81  # the bytes arrived
    assert (Location(s3) / "run" / "data" / UPLOADED).is_file()
    again = recipe_samples(recipe)
    assert "uploading" not in capsys.readouterr().err
    assert [s.to_json() for s in again.samples] == [s.to_json() for s in loaded.samples]
    with pytest.raises(InputError, match=f"data.root {s3}/casme2 is a URI"):
        recipe_samples(load_recipe("quickstart", [f"output_dir={s3}/run", "data.dataset=casme2",
                                                  f"data.root={s3}/casme2"]))


def test_adapters_and_models_under_a_uri_load_from_local_copies(s3, tmp_path, monkeypatch):
    from mellm_core.files.storage import model_folder
    from mellm_core.model.adapters import local_adapter

    monkeypatch.setenv("MELLM_CACHE", str(tmp_path / "cache"))
    trained = Location(s3) / "train" / "adapter"
    (trained / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "/where/it/was/trained"}))
    (trained / "base" / "config.json").write_text("{}")
    local = local_adapter(trained)
    config = json.loads((local / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str((local / "base").resolve())  # loads without the bucket
    remote_config = json.loads((trained / "adapter_config.json").read_text())
    assert remote_config["base_model_name_or_path"] == "/where/it/was/trained"  # the bucket is left as it was
    with pytest.raises(InputError, match=r"adapter .*/train is not a trained adapter folder"):
        local_adapter(Location(s3) / "train")
    assert model_folder("Qwen/Qwen2.5-VL-7B-Instruct") == "Qwen/Qwen2.5-VL-7B-Instruct"
    assert model_folder("tiny-random") == "tiny-random"
    assert (Path(model_folder(f"{trained}/base")) / "config.json").read_text() == "{}"


def test_malformed_locations_are_named(tmp_path):
    for text, message in [("s3:/bucket/run", "slash missing"), ("s3://", "names no bucket"),
                          ("s3://b/run?endpoint_override=h:9000", "query parameters"), ("", "empty path")]:
        with pytest.raises(InputError, match=message):
            Location(text)
    assert Location(f"file://{tmp_path}/x") == Location(tmp_path / "x") and not Location(f"file://{tmp_path}").remote
    assert not Location("C:/data").remote  # a drive letter is not a scheme


def test_a_missing_bucket_is_named_once(s3_server):
    with pytest.raises(InputError, match="s3://no-such-bucket does not exist"):
        (Location("s3://no-such-bucket") / "run" / "maps").is_file()


def test_journal_numbers_after_the_last_part(s3):
    parts = Location(s3) / "log.jsonl.parts"
    (parts / "00002").write_text("b\n")
    (parts / "00010").write_text("c\n")  # parts 1 and 3-9 gone, as after an interrupted removal
    (parts / "notes.txt").write_text("not a part\n")
    journal = Journal(Location(s3) / "log.jsonl", every=0)
    journal.append(["d"])
    assert sorted(parts.files()) == ["00002", "00010", "00011", "notes.txt"]
    assert Journal(Location(s3) / "log.jsonl").lines() == ["b", "c", "d"]


def test_maps_resume_from_journal_parts_in_a_bucket(s3, tmp_path, motion_pair):
    """A run stopped after two maps left them and their journal parts in the bucket: the next run reuses both
    (without starting Ray), writes the manifest and removes the journal."""
    from helpers import write_pairs

    from mellm_core.config import MapsConfig
    from mellm_core.data.datasets import load_samples
    from mellm_core.files.layout import MANIFEST
    from mellm_core.motion.mapper import Mapper, maps_settings_hash
    from mellm_core.stages.maps import PARTIAL, map_one, run_maps

    samples = load_samples("manifest", write_pairs(tmp_path, motion_pair, n=2)).samples
    cfg = MapsConfig(landmarker="none", flow="dis")
    out = Location(s3) / "run" / "maps"
    stopped = Journal(out / PARTIAL, every=0)
    for sample in samples:
        stopped.append([map_one(Mapper(cfg), sample, out, maps_settings_hash(cfg)).to_json()])
    summary = run_maps(samples, cfg, out, progress=False, address="ray://nowhere:1")  # Ray would fail here
    assert (summary.skipped, summary.ok) == (2, 2)
    manifest = [json.loads(line) for line in (out / MANIFEST).read_text().splitlines()]
    assert [r["map_path"] for r in manifest] == [f"{out}/c0.png", f"{out}/c1.png"]
    assert sorted(out.files()) == ["c0.png", "c1.png", MANIFEST]


@pytest.mark.parametrize("where", ["local", "bucket"])
def test_one_writer_per_stage_folder_and_a_dead_holders_lock_is_taken_over(where, tmp_path, request):
    import socket
    import subprocess
    import sys
    import time

    from mellm_core.files.stagelock import STALE_S, StageLock

    root = Location(str(tmp_path) if where == "local" else request.getfixturevalue("s3") + "/locks")
    folder = root / "eval"
    with StageLock(folder, "eval"):
        with pytest.raises(InputError, match=rf"another `mellm eval` is writing to {folder}: host "
                                             rf"{socket.gethostname()}, pid \d+, started \d{{4}}-"):
            StageLock(folder, "eval").__enter__()
        with StageLock(root / "maps", "maps"):  # other stages of the same output_dir go on
            pass
    assert not (root / ".eval.lock").exists()  # released

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    here = {"token": "t", "host": socket.gethostname(), "pid": int(dead.stdout), "started": "then",
            "beat": time.time()}
    for left, taken in ((here, True), ({**here, "host": "node-7", "pid": 1}, False),
                        ({**here, "host": "node-7", "pid": 1, "beat": time.time() - STALE_S - 1}, True)):
        (root / ".eval.lock").write_text(json.dumps(left))
        if taken:  # a killed run's lock: its process is gone, or its heartbeat stopped long ago
            with StageLock(folder, "eval"):
                assert json.loads((root / ".eval.lock").read_text())["token"] != "t"
        else:  # another node's run, beating: refused, its lock left alone
            with pytest.raises(InputError, match="host node-7, pid 1, started then"):
                StageLock(folder, "eval").__enter__()
            assert json.loads((root / ".eval.lock").read_text())["token"] == "t"


def test_a_bucket_never_shows_a_half_published_adapter(s3, tmp_path):
    """Versions are written whole beside each other and one pointer object switches between them; readers
    (trained_adapter: eval, serve, export) only ever see a complete version; two versions are kept."""
    from mellm_core.model.adapters import publish_remote_adapter, trained_adapter

    train = Location(s3) / "pub" / "train"
    assert trained_adapter(str(train.parent)) is None
    published = []
    for n in range(3):
        source = tmp_path / f"v{n}"
        source.mkdir()
        (source / "adapter_config.json").write_text(json.dumps({"r": n}))
        (source / "adapter_model.safetensors").write_bytes(b"w" * (n + 1))
        published.append(publish_remote_adapter(train, Location(source), f"v{n}"))
        current = Location(trained_adapter(str(train.parent)))
        assert current == published[-1] and json.loads((current / "adapter_config.json").read_text()) == {"r": n}
    kept = {name.split("/", 1)[0] for name in (train / "adapters").files()}
    assert kept == {"v1", "v2"}  # the one in use and the one before it


def test_a_folder_built_then_swapped_replaces_the_old_one_whole_or_not_at_all(tmp_path):
    from mellm_core.files.atomic import built_then_swapped

    target = tmp_path / "adapter"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError, match="half-way"), built_then_swapped(target) as staging:
        (staging / "new.txt").write_text("new")
        raise RuntimeError("stopped half-way")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter"] and (target / "old.txt").is_file()
    with built_then_swapped(target) as staging:
        (staging / "new.txt").write_text("new")
        assert not (target / "new.txt").exists()  # nothing shows until the block ends
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter"]
    assert [p.name for p in target.iterdir()] == ["new.txt"]
