"""The cluster definitions under clusters/ are well formed: KubeRay manifests, `ray up` configs, the Slurm script.

Structural checks only (no cluster is started): every file parses, names the groups, resources and shared volume the
stages rely on, and names only `mellm` subcommands that exist. In prose, write the program name in backticks
(`mellm` commands) so that the word after it is not read as a subcommand.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CLUSTERS = ROOT / "clusters"
KUBERAY = CLUSTERS / "kuberay"
SLURM = CLUSTERS / "slurm" / "mellm-ray.sbatch"
COMMANDS = {"train", "serve", "maps", "instructions", "eval", "demo"}
SHARED_CLAIM, SHARED_PATH = "mellm-shared", "/shared"
SERVE_IMPORT = "mellm_core.stages.serve:app_from_env"

# kind and the key under spec that holds the Ray cluster's spec
KUBERAY_FILES = {
    "raycluster.yaml": ("RayCluster", None),
    "rayjob.yaml": ("RayJob", "rayClusterSpec"),
    "rayservice.yaml": ("RayService", "rayClusterConfig"),
}
RAY_UP_FILES = {"aws.yaml": "aws", "gcp.yaml": "gcp"}
# `mellm` followed by a word: a subcommand (`mellm "$X"`, `mellm @ git+...`, `mellm_core`, `mellm-shared` are not)
SUBCOMMAND = re.compile(r"\bmellm[ \t]+([a-z][a-z0-9_-]*)")
COMMAND_VAR = re.compile(r"MELLM_COMMAND(?:=|:-)([a-z][a-z0-9_-]*)")


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def ray_cluster_spec(name: str) -> dict:
    kind, key = KUBERAY_FILES[name]
    spec = load(KUBERAY / name)["spec"]
    return spec if key is None else spec[key]


def pod_templates(cluster: dict) -> dict[str, dict]:
    """Pod spec by group name ("head" for the head group)."""
    pods = {"head": cluster["headGroupSpec"]["template"]["spec"]}
    for group in cluster["workerGroupSpecs"]:
        pods[group["groupName"]] = group["template"]["spec"]
    return pods


def cluster_texts() -> dict[Path, str]:
    return {p: p.read_text() for p in sorted(CLUSTERS.rglob("*")) if p.is_file()}


def test_every_yaml_under_clusters_parses_to_a_mapping():
    files = sorted(CLUSTERS.rglob("*.yaml"))
    names = {p.relative_to(CLUSTERS).as_posix() for p in files}
    assert {*(f"kuberay/{n}" for n in KUBERAY_FILES), *RAY_UP_FILES} <= names
    for path in files:
        doc = load(path)
        assert isinstance(doc, dict) and doc, f"{path} is empty or not a mapping"


@pytest.mark.parametrize("name", sorted(KUBERAY_FILES))
def test_kuberay_manifest_kind_and_groups(name):
    doc = load(KUBERAY / name)
    assert doc["apiVersion"] == "ray.io/v1"
    assert doc["kind"] == KUBERAY_FILES[name][0]
    assert doc["metadata"]["name"]
    cluster = ray_cluster_spec(name)
    assert isinstance(cluster["headGroupSpec"]["rayStartParams"], dict)
    groups = {g["groupName"]: g for g in cluster["workerGroupSpecs"]}
    assert set(groups) == {"cpu", "gpu"}
    for group in groups.values():
        assert isinstance(group["rayStartParams"], dict), f"{name}: {group['groupName']} lacks rayStartParams"
        assert 0 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]


@pytest.mark.parametrize("name", sorted(KUBERAY_FILES))
def test_kuberay_pods_request_and_limit_cpu_memory_and_gpu_only_on_gpu(name):
    pods = pod_templates(ray_cluster_spec(name))
    for group, pod in pods.items():
        ray_container = pod["containers"][0]
        resources = ray_container["resources"]
        for part in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(resources[part]), f"{name}: {group} {part} lack cpu or memory"
        assert resources["requests"] == resources["limits"], f"{name}: {group} requests differ from limits"
        gpus = int(resources["limits"].get("nvidia.com/gpu", 0))
        assert (gpus >= 1) == (group == "gpu"), f"{name}: {group} has {gpus} GPUs"
    tolerated = {t["key"] for t in pods["gpu"].get("tolerations", [])}
    assert "nvidia.com/gpu" in tolerated


@pytest.mark.parametrize("name", sorted(KUBERAY_FILES))
def test_kuberay_every_pod_mounts_the_shared_volume(name):
    for group, pod in pod_templates(ray_cluster_spec(name)).items():
        claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"]
                  if "persistentVolumeClaim" in v}
        volume = next((v for v, claim in claims.items() if claim == SHARED_CLAIM), None)
        assert volume, f"{name}: {group} pod lacks the {SHARED_CLAIM} volume"
        mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
        assert mounts.get(SHARED_PATH) == volume, f"{name}: {group} pod does not mount it at {SHARED_PATH}"


@pytest.mark.parametrize("name", sorted(KUBERAY_FILES))
def test_kuberay_one_image_matching_ray_version(name):
    cluster = ray_cluster_spec(name)
    images = {c["image"] for pod in pod_templates(cluster).values() for c in pod["containers"]}
    assert len(images) == 1, f"{name}: pods use different images {images}"
    image = images.pop()
    if image.startswith("rayproject/"):
        assert image.split(":")[1].startswith(cluster["rayVersion"] + "-")


@pytest.fixture(scope="module")
def rayjob() -> dict:
    return load(KUBERAY / "rayjob.yaml")


def test_rayjob_trains_on_shared_paths_and_cleans_up(rayjob):
    spec = rayjob["spec"]
    assert spec["shutdownAfterJobFinishes"] is True
    words = spec["entrypoint"].split()
    assert words[:2] == ["mellm", "train"]
    assert (ROOT / words[2]).is_file(), f"the entrypoint's recipe {words[2]} is not in the repository"
    overrides = dict(w.split("=", 1) for w in words[3:])
    assert overrides["output_dir"].startswith(SHARED_PATH + "/")
    assert all(v.startswith(SHARED_PATH + "/") for k, v in overrides.items() if v.startswith("/"))


def test_rayjob_entrypoint_overrides_are_valid_recipe_keys(rayjob):
    from mellm_core.config import load_recipe

    words = rayjob["spec"]["entrypoint"].split()
    recipe = load_recipe(words[2], words[3:])
    assert recipe.output_dir == "/shared/runs/mellm7b"
    assert recipe.backbone.model == "/shared/models/Qwen2.5-VL-7B-Instruct"
    assert set(recipe.instructions.split.lists) == {"train", "test"}
    assert all(p.startswith("/shared/DFME/") for p in recipe.instructions.split.lists.values())


def test_rayservice_serve_config_names_the_application():
    config = yaml.safe_load(load(KUBERAY / "rayservice.yaml")["spec"]["serveConfigV2"])
    (app,) = config["applications"]
    assert app["import_path"] == SERVE_IMPORT
    assert app["route_prefix"] == "/"
    assert app["runtime_env"]["env_vars"]["MELLM_RECIPE"].startswith(SHARED_PATH + "/")


def test_rayservice_takes_the_api_key_from_a_secret_in_every_pod():
    for group, pod in pod_templates(ray_cluster_spec("rayservice.yaml")).items():
        (container,) = pod["containers"]
        env = {e["name"]: e for e in container.get("env", [])}
        assert env["MELLM_API_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "mellm-api-key", "key": "key"}, group


@pytest.mark.parametrize("name", sorted(KUBERAY_FILES))
def test_kuberay_never_exposes_the_dashboard_beyond_the_cluster(name):
    """The dashboard runs submitted jobs: no head service of an outward type, no Service object for it."""
    cluster = ray_cluster_spec(name)
    assert cluster["headGroupSpec"].get("serviceType", "ClusterIP") == "ClusterIP"
    text = (KUBERAY / name).read_text()
    assert "LoadBalancer" not in text and "NodePort" not in text and "kind: Service\n" not in text


def ray_schema() -> dict | None:
    spec = importlib.util.find_spec("ray")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / "autoscaler" / "ray-schema.json"
    return json.loads(path.read_text()) if path.is_file() else None


@pytest.mark.parametrize("name", sorted(RAY_UP_FILES))
def test_ray_up_config_node_types(name):
    config = load(CLUSTERS / name)
    assert config["cluster_name"]
    assert config["provider"]["type"] == RAY_UP_FILES[name]
    types = config["available_node_types"]
    assert config["head_node_type"] in types
    assert types[config["head_node_type"]]["resources"].get("CPU") == 0, "work should go to the workers"
    workers = {n: t for n, t in types.items() if n != config["head_node_type"]}
    gpu = [n for n, t in workers.items() if t["resources"].get("GPU", 0) > 0]
    cpu = [n for n, t in workers.items() if t["resources"].get("CPU", 0) > 0 and not t["resources"].get("GPU")]
    assert gpu and cpu, f"{name}: needs a CPU worker type and a GPU worker type"
    for node_type in workers.values():
        assert node_type["node_config"] and 0 <= node_type["min_workers"] <= node_type["max_workers"]
    assert sum(t.get("max_workers", 0) for t in types.values()) <= config["max_workers"]


@pytest.mark.parametrize("name", sorted(RAY_UP_FILES))
def test_ray_up_config_installs_mellm_with_the_tested_torch(name):
    config = load(CLUSTERS / name)
    torch = re.search(r"^(torch==\S+)$", (ROOT / ".ci" / "constraints.txt").read_text(), re.M).group(1)
    setup = " ".join(config["setup_commands"])
    assert '"mellm @ git+https://github.com/' in setup
    assert f'"{torch}"' in setup, f"{name}: setup_commands should pin {torch}, the torch CI tests"


@pytest.mark.parametrize("name", sorted(RAY_UP_FILES))
def test_ray_up_config_matches_rays_schema(name):
    jsonschema = pytest.importorskip("jsonschema")
    schema = ray_schema()
    if schema is None:
        pytest.skip("ray's autoscaler schema is not installed")
    jsonschema.validate(load(CLUSTERS / name), schema)


def test_slurm_script_is_valid_bash():
    result = subprocess.run(["bash", "-n", str(SLURM)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_slurm_script_passes_shellcheck():
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is not installed (.ci/run installs Debian's shellcheck)"
    result = subprocess.run([shellcheck, str(SLURM)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_slurm_script_starts_ray_attaches_and_stops_it_on_exit():
    text = SLURM.read_text()
    lines = text.splitlines()
    assert lines[0] == "#!/bin/bash"
    first_command = next(i for i, line in enumerate(lines) if line.strip() and not line.startswith("#"))
    sbatch = [line for line in lines[:first_command] if line.startswith("#SBATCH")]
    assert any("--nodes=" in line for line in sbatch) and any("--gpus-per-node=" in line for line in sbatch)
    assert not any(line.startswith("#SBATCH") for line in lines[first_command:]), "#SBATCH after a command"
    assert "ray start --head" in text and "ray start --address=" in text
    assert re.search(r'^mellm "\$MELLM_COMMAND" .*--address "\$address"', text, re.M)
    trap = re.search(r"^trap (\w+) EXIT$", text, re.M)
    assert trap, "no EXIT trap"
    body = re.search(rf"^{trap.group(1)}\(\) \{{\n(.*?)\n\}}", text, re.M | re.S)
    assert body and "ray stop" in body.group(1)


def test_named_mellm_subcommands_exist():
    found = {(path.relative_to(ROOT).as_posix(), m) for path, text in cluster_texts().items()
             for m in [*SUBCOMMAND.findall(text), *COMMAND_VAR.findall(text)]}
    assert {sub for _, sub in found} >= {"train", "maps", "serve"}
    unknown = sorted((path, sub) for path, sub in found if sub not in COMMANDS)
    assert not unknown, f"unknown mellm subcommands (choose from {sorted(COMMANDS)}): {unknown}"


def test_readme_describes_every_file_and_attachment():
    readme = (CLUSTERS / "README.md").read_text()
    for path in cluster_texts():
        if path.name != "README.md":
            assert path.relative_to(CLUSTERS).as_posix() in readme, f"README.md does not mention {path.name}"
    for needle in ("--address", "RAY_ADDRESS", "ray.address", "output_dir", "kubectl apply", "ray up", "ray down",
                   "sbatch"):
        assert needle in readme
