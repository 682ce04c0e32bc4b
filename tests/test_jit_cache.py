"""The compiled kernels work where numba cannot write its cache next to the package (a read-only install).

The package is copied to a temporary directory and bind-mounted read-only (so that even root cannot
write there); a fresh process imports it from that mount and steps an env, once with numba's default
cache locations (it falls back to the user cache directory) and once with NUMBA_CACHE_DIR on the
read-only mount too (no cache at all: it compiles in memory). Both must give the same reward as this
process. Needs the privilege to mount (CI runs as root); skipped otherwise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import sdedge_gym

CHILD = """
import gymnasium as gym, numpy as np, sdedge_gym
assert sdedge_gym.__file__.startswith(%r), sdedge_gym.__file__
env = gym.make("sdedge/EdgeSD-Small-v0")
env.reset(seed=0)
print(repr(env.step(np.array([1, 1]))[1]))
"""


def test_kernels_run_from_a_read_only_install(tmp_path: Path) -> None:
    source, mount = tmp_path / "source", tmp_path / "readonly"
    source.mkdir()
    mount.mkdir()
    shutil.copytree(Path(sdedge_gym.__file__).parent, source / "sdedge_gym",
                    ignore=shutil.ignore_patterns("__pycache__"))
    bind = subprocess.run(["mount", "--bind", str(source), str(mount)], capture_output=True)
    if bind.returncode != 0:
        pytest.skip(f"cannot bind-mount here (needs root): {bind.stderr.decode().strip()}")
    try:
        if subprocess.run(["mount", "-o", "remount,ro,bind", str(mount)], capture_output=True).returncode != 0:
            pytest.skip("cannot remount read-only here")
        with pytest.raises(OSError):
            (mount / "probe").write_text("x")
        env = gym.make("sdedge/EdgeSD-Small-v0")
        env.reset(seed=0)
        want = env.step(np.array([1, 1]))[1]
        for cache in (None, str(mount / "no-cache")):
            child_env = {**os.environ, "PYTHONPATH": str(mount)}
            child_env.pop("NUMBA_CACHE_DIR", None)
            if cache is not None:
                child_env["NUMBA_CACHE_DIR"] = cache
            out = subprocess.run([sys.executable, "-c", CHILD % str(mount)], capture_output=True, text=True,
                                 env=child_env, cwd=tmp_path, timeout=600)
            assert out.returncode == 0, out.stderr
            assert float(out.stdout.strip().splitlines()[-1]) == want  # the same kernel: the same floats
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)
