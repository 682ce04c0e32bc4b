"""Installs in throw-away venvs: the compiled cache stays out of the package, and the import names clash with
nothing.

The venvs see this Python's packages (``--system-site-packages``: numpy, numba, gymnasium, torch) and get
the package from a copy of the tracked files with ``pip install --no-deps --no-build-isolation``, so no
package index is needed. A regular install that has run leaves no compiled-cache files in its folders, so
that uninstalling it (as ``pip install -e .`` does) leaves no ``sdedge_gym`` folder behind; such a folder
without ``__init__.py`` would be imported as an empty namespace package and register nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sdedge_gym.registration import ENV_IDS

REPO = Path(__file__).resolve().parents[1]
MAKE_AND_RESET = ("import gymnasium as g, sdedge_gym; g.make('sdedge/EdgeSD-Small-v0').reset(seed=0); "
                  "print(sdedge_gym.__file__)")


def _copy_tracked_files(destination: Path) -> None:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs a git checkout (the tracked files are what gets installed)")
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for name in filter(None, files.decode().split("\0")):
        source = REPO / name
        if source.is_file():  # a tracked file deleted in the work tree is not copied
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)


def _venv(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A venv on this Python's packages, and an environment whose caches live under tmp_path."""
    venv = tmp_path / "venv"
    try:
        # Without its own pip (and the old setuptools that would come with it): this Python's pip and
        # setuptools serve the venv through the system site-packages.
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(venv)],
                       check=True, capture_output=True)
    except (subprocess.CalledProcessError, OSError) as error:
        pytest.skip(f"cannot build a throw-away venv here ({error})")
    environment = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "PYTHONPATH", "VIRTUAL_ENV")}
    environment["XDG_CACHE_HOME"] = str(tmp_path / "user-cache")
    environment["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return venv, environment


def _run(venv: Path, arguments: list[str], cwd: Path, environment: dict[str, str]) -> str:
    done = subprocess.run([str(venv / "bin" / "python"), *arguments], cwd=cwd, env=environment,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{arguments}: {done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done.stdout


def _pip_install(venv: Path, target: list[str], environment: dict[str, str], cwd: Path) -> None:
    _run(venv, ["-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", *target], cwd, environment)


def _site_packages(venv: Path) -> Path:
    return next((venv / "lib").glob("python3*/site-packages"))


def test_an_install_that_ran_then_an_editable_install_still_registers(tmp_path: Path) -> None:
    source = tmp_path / "source"
    _copy_tracked_files(source)
    venv, environment = _venv(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    _pip_install(venv, [str(source)], environment, elsewhere)
    installed = _site_packages(venv) / "sdedge_gym"
    printed = _run(venv, ["-c", MAKE_AND_RESET + "; import sdedge_agents; sdedge_agents.DPOracle"], elsewhere,
                   environment)
    assert printed.strip() == str(installed / "__init__.py")  # the installed copy, not the checkout
    compiled = [p for folder in (installed, _site_packages(venv) / "sdedge_agents")
                for p in folder.rglob("*") if p.suffix in (".nbi", ".nbc")]
    assert compiled == [], "numba's cache was written into the installed package"
    assert list((tmp_path / "user-cache" / "sdedge-gym" / "numba").rglob("*.nbi")), "no per-user cache"

    _pip_install(venv, ["-e", str(source)], environment, elsewhere)
    assert not installed.exists(), "the regular install left its folder behind"
    printed = _run(venv, ["-c", MAKE_AND_RESET], elsewhere, environment)
    assert printed.strip() == str(source / "sdedge_gym" / "__init__.py")


def test_numba_cache_dir_is_honoured(tmp_path: Path) -> None:
    venv, environment = _venv(tmp_path)
    environment["NUMBA_CACHE_DIR"] = str(tmp_path / "numba-cache")
    environment["PYTHONPATH"] = str(REPO)  # this checkout's code, from another folder
    _run(venv, ["-c", MAKE_AND_RESET], tmp_path, environment)
    assert list((tmp_path / "numba-cache").rglob("*.nbi"))
    assert not (tmp_path / "user-cache").exists()


def test_another_distribution_s_agents_package_does_not_clash(tmp_path: Path) -> None:
    """openai-agents installs a top-level ``agents``: a stand-in distribution that does the same."""
    source = tmp_path / "source"
    _copy_tracked_files(source)
    other = tmp_path / "other-agents"
    (other / "agents").mkdir(parents=True)
    (other / "agents" / "__init__.py").write_text("WHO = 'another distribution'\n")
    (other / "pyproject.toml").write_text(textwrap.dedent("""\
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "other-agents"
        version = "1.0"

        [tool.setuptools]
        packages = ["agents"]
        """))
    venv, environment = _venv(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    _pip_install(venv, [str(other)], environment, elsewhere)
    _pip_install(venv, [str(source)], environment, elsewhere)
    check = ("import agents, sdedge_agents; assert agents.WHO == 'another distribution', agents.__file__; "
             "from sdedge_agents import DPOracle; print(sdedge_agents.__file__)")
    assert "site-packages/sdedge_agents/__init__.py" in _run(venv, ["-c", check], elsewhere, environment)
    table = _run(venv, ["-m", "sdedge_agents.evaluate", "--env", "sdedge/EdgeSD-Small-v0", "--episodes", "2",
                        "--policies", "best-constant", "--no-progress"], elsewhere, environment)
    assert "| oracle | " in table and "| best-constant | " in table
    ids = subprocess.run([str(venv / "bin" / "sdedge-gym"), "list"], cwd=elsewhere, env=environment,
                         capture_output=True, text=True, check=True).stdout
    assert len(ids.splitlines()) == len(ENV_IDS)
    try:
        import stable_baselines3  # noqa: F401
    except ImportError:
        return  # the shipped agents need the train extra
    # The shipped sequence-policy agents unpickle their policy class from the installed name.
    loaded = ("import gymnasium as g, sdedge_gym; from sdedge_agents.pretrained import load_pretrained; "
              "p = load_pretrained('dagger-paper', g.make('sdedge/EdgeSD-v0')); "
              "print(type(p.model.policy).__module__)")
    assert _run(venv, ["-c", loaded], elsewhere, environment).strip() == "sdedge_agents.slot_policy"


def test_a_leftover_folder_shadowing_the_package_is_a_loud_error(tmp_path: Path) -> None:
    """An empty ``sdedge_gym`` folder earlier on the path. Beside a regular install, the real package wins (a
    regular package anywhere on the path beats namespace portions); beside an editable install, whose finder
    Python asks only after the path, the folder is imported as an empty namespace package that runs none of
    this package's code, and the first import of ours that can see it says what happened and what to do.
    Either way nothing is silently left unregistered."""
    leftover = tmp_path / "sdedge_gym" / "__pycache__"
    leftover.mkdir(parents=True)
    (leftover / "kernels.commit-78.py311.nbi").write_bytes(b"stale")
    environment = {**os.environ, "PYTHONPATH": str(tmp_path)}
    code = "import sdedge_agents, sdedge_gym; print(sdedge_gym.__file__, len(sdedge_gym.ENV_IDS))"
    done = subprocess.run([sys.executable, "-c", code], cwd=leftover, env=environment,
                          capture_output=True, text=True, timeout=120)
    if "No module named 'sdedge_agents'" in done.stderr:
        pytest.skip("sdedge_agents is importable only from an install (pip install .)")
    if done.returncode == 0:  # the real package won: it registered every id
        file, count = done.stdout.split()
        assert file.endswith("__init__.py") and str(tmp_path) not in file and int(count) == len(ENV_IDS)
        return
    assert f"sdedge_gym resolves to ['{tmp_path / 'sdedge_gym'}'], a folder without __init__.py" in done.stderr
    assert "delete that folder, then reinstall sdedge-gym" in done.stderr
