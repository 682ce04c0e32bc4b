"""The ``sdedge-gym`` console script (sdedge_gym/cli.py): each command and its help."""

from __future__ import annotations

import json
import sys

import gymnasium as gym
import pytest

import sdedge_gym
from sdedge_gym import cli
from sdedge_gym.scenarios import make_scenario

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = None


def test_pyproject_declares_the_console_script() -> None:
    if tomllib is None:
        pytest.skip("tomllib needs Python 3.11")
    project = tomllib.loads((cli.SCRIPTS_DIR.parent / "pyproject.toml").read_text())["project"]
    assert project["scripts"] == {"sdedge-gym": "sdedge_gym.cli:main"}


def test_help_lists_every_command(capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        cli.main(["--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    for command in ("list", "describe", "evaluate", "train", "benchmark", "reproduce"):
        assert f"    {command}" in out


def test_list_prints_every_id_once_with_its_preset(capsys) -> None:
    assert cli.main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(sdedge_gym.ENV_IDS)
    assert lines[1].split()[:4] == ["sdedge/EdgeSD-Small-v0", "small", "K=8", "discrete"]
    assert "sampled acceptance, hints" in next(line for line in lines if "Small-Dict-Stochastic" in line)
    assert lines[-1].split()[:5] == ["sdedge/EdgeSD-MultiCell-FourHeterogeneous-Dict-v0", "small", "K=8", "dict", "4"]


def test_describe_prints_the_card_and_the_parameters(capsys) -> None:
    assert cli.main(["describe", "sdedge/EdgeSD-Small-Dict-v0"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# sdedge/EdgeSD-Small-Dict-v0\n")
    assert "## Action Space" in out and "## Observation Space" in out and "batch_size_minus_one" in out
    parameters = json.loads(out.split("## Scenario parameters\n", 1)[1])
    assert parameters == make_scenario("small").to_dict()
    assert cli.main(["describe", "sdedge/EdgeSD-Small-Stochastic-v0", "--parameters-only"]) == 0
    parameters = json.loads(capsys.readouterr().out)
    assert parameters["acceptance"] == "sampled" and parameters["clairvoyant"] is False


def test_describe_rejects_an_unknown_id(capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        cli.main(["describe", "sdedge/EdgeSD-Tiny-v0"])
    assert stop.value.code == 2
    assert "'sdedge/EdgeSD-Tiny-v0' is not a registered id; allowed: sdedge/EdgeSD-v0" in capsys.readouterr().err


def test_evaluate_forwards_to_agents_evaluate(capsys) -> None:
    assert cli.main(["evaluate", "--env", "sdedge/EdgeSD-Small-v0", "--episodes", "2", "--policies", "best-constant",
                     "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("sdedge/EdgeSD-Small-v0: 2 episodes, seeds 0..1")
    assert "| oracle | " in out and "| best-constant | " in out


@pytest.mark.parametrize(("command", "usage"), [("evaluate", "--policies"), ("train", "--algo"),
                                                ("benchmark", "--quick"), ("reproduce", "--ray")])
def test_forwarded_help_is_the_module_s_own(command: str, usage: str, capsys) -> None:
    if command == "train":
        pytest.importorskip("stable_baselines3", reason="sdedge_agents.train needs the train extra")
    assert cli.main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert usage in out
    assert out.startswith(f"usage: sdedge-gym {command} ")  # named as the user typed it, not python -m ...


@pytest.mark.parametrize("env_id", sdedge_gym.ENV_IDS)
def test_describe_works_on_every_listed_id(env_id: str, capsys) -> None:
    from sdedge_gym.registration import MULTICELL_ENV_IDS, ONLINE_ENV_IDS

    assert cli.main(["describe", env_id]) == 0
    out = capsys.readouterr().out
    if env_id in MULTICELL_ENV_IDS:
        assert f"gymnasium.make({env_id!r}) = MultiCellTwinEnv(" in out and "## Action Space" in out
        parameters = json.loads(out.split("## Scenario parameters\n", 1)[1])
        preset = gym.spec(env_id).kwargs["config"]
        assert parameters["name"] == preset and len(parameters["cells"]) == (4 if preset.startswith("four") else 2)
        assert len({json.dumps(cell["target"], sort_keys=True) for cell in parameters["cells"]}) == 1  # one MBS
        return
    env_class = "EdgeSDOnlineEnv" if env_id in ONLINE_ENV_IDS else "EdgeSDEnv"
    assert f"gymnasium.make({env_id!r}) = {env_class}(" in out
    parameters = json.loads(out.split("## Scenario parameters\n", 1)[1])
    assert parameters["name"] == gym.spec(env_id).kwargs["scenario"]
    if env_id in ONLINE_ENV_IDS:
        assert "## Observation Space" in out
        assert parameters["arrivals"]["process"] == gym.spec(env_id).kwargs["arrivals"]["process"]


def test_the_families_are_attributes_of_the_package() -> None:
    families = sdedge_gym.OFFLINE_ENV_IDS, sdedge_gym.ONLINE_ENV_IDS, sdedge_gym.MULTICELL_ENV_IDS
    assert sum(families, ()) == sdedge_gym.ENV_IDS and [len(f) for f in families] == [19, 12, 9]
    assert sdedge_gym.SINGLE_CELL_ENV_IDS == sdedge_gym.OFFLINE_ENV_IDS + sdedge_gym.ONLINE_ENV_IDS
    assert len(sdedge_gym.ENV_IDS) == 40


def test_forwarded_usage_errors_exit_with_argparse_s_code(capsys) -> None:
    assert cli.main(["evaluate", "--env", "sdedge/EdgeSD-Nope-v0"]) == 2
    assert "is not a registered single-cell id" in capsys.readouterr().err
    assert cli.main(["evaluate", "--env", "sdedge/EdgeSD-MultiCell-TwoIdentical-v0"]) == 2
    assert "scripts/multicell_bounds.py" in capsys.readouterr().err


def test_benchmark_measures_only_the_sections_asked_for(capsys) -> None:
    assert cli.main(["benchmark", "--quick", "--repeats", "1", "--sections", "single"]) == 0
    out = capsys.readouterr().out
    assert "| single env, paper preset, gym.make | 1 |" in out
    assert "CartPoleVectorEnv" not in out and "window planner" not in out and "oracle" not in out
    assert cli.main(["benchmark", "--sections", "single,kernels"]) == 2
    assert ("--sections: 'kernels' unknown; allowed: single, vector, planner, ppo, oracle, startup"
            in capsys.readouterr().err)
