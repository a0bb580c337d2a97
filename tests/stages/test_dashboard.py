"""`ray.dashboard: true`: a local Ray instance keeps its dashboard on and says where it is."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import ray

SCRIPT = textwrap.dedent("""
    from pathlib import Path

    import requests

    from mellm_core.config import load_recipe
    from mellm_core.stages.cluster import init_ray

    recipe = load_recipe("quickstart", ["ray.dashboard=true"])
    init_ray(recipe.ray.address, num_cpus=1, dashboard=recipe.ray.dashboard)
    token = Path.home() / ".ray" / "auth_token"  # Ray's own token, when its token authentication is on
    headers = {"Authorization": f"Bearer {token.read_text().strip()}"} if token.is_file() else {}
    print(requests.get("http://127.0.0.1:8265/", timeout=30).status_code)
    print(requests.get("http://127.0.0.1:8265/api/version", headers=headers, timeout=30).json()["ray_version"])
""")


def test_a_local_instance_keeps_its_dashboard_when_the_recipe_asks(tmp_path):
    env = {**os.environ, "HOME": str(tmp_path)}  # a fresh home: Ray writes the dashboard's token there
    env.pop("RAY_ADDRESS", None)
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=180,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["200", ray.__version__]
    assert "Ray dashboard: http://127.0.0.1:8265" in done.stderr
