"""The ``sdedge-gym`` command: one front door to the ids, the env card, evaluation, training and the scripts.

    sdedge-gym list                                   # every registered id, one line each
    sdedge-gym describe sdedge/EdgeSD-Small-v0        # its env card and the preset's parameters
    sdedge-gym evaluate --env sdedge/EdgeSD-v0 --episodes 10 --seed 0
    sdedge-gym train --env sdedge/EdgeSD-Small-v0 --algo maskable_ppo --timesteps 20000
    sdedge-gym benchmark --quick
    sdedge-gym reproduce --quick --out /tmp/figs

Each command is a thin front: ``evaluate`` is ``python -m sdedge_agents.evaluate``, ``train`` is
``python -m sdedge_agents.train``, ``benchmark`` and ``reproduce`` run ``scripts/benchmark.py`` and
``scripts/reproduce_paper.py`` of the source tree (they are not part of the installed package, so these
two need a source checkout, e.g. ``pip install -e .``). Everything after the command name goes to that
module unchanged: ``sdedge-gym evaluate --help`` prints its options.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

SCRIPTS_DIR = Path(__file__).resolve().parents[1] / "scripts"


def _evaluate(argv: Sequence[str]) -> int:
    from sdedge_agents.evaluate import main

    return main(list(argv), prog="sdedge-gym evaluate")


def _train(argv: Sequence[str]) -> int:
    from sdedge_agents.train import main  # needs the train extra (torch, Stable-Baselines3)

    return main(list(argv), prog="sdedge-gym train")


def _script(name: str, command: str) -> Callable[[Sequence[str]], int]:
    def run(argv: Sequence[str]) -> int:
        path = SCRIPTS_DIR / name
        if not path.is_file():
            print(f"sdedge-gym: {path} not found: this command runs a script of the source tree; use a source "
                  "checkout of sdedge-gym (pip install -e .)", file=sys.stderr)
            return 2
        # Imported as a module (not run as __main__) so that its main() gets the arguments and the usage name.
        spec = importlib.util.spec_from_file_location(f"sdedge_gym_scripts.{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # a module that ships itself to Ray workers looks itself up here
        spec.loader.exec_module(module)
        module.main(list(argv), prog=f"sdedge-gym {command}")
        return 0

    return run


# name -> (run(argv) -> exit code, one-line help)
FORWARDED: dict[str, tuple[Callable[[Sequence[str]], int], str]] = {
    "evaluate": (_evaluate,
                 "evaluate policies against the oracle on seeded episodes (python -m sdedge_agents.evaluate)"),
    "train": (_train, "train a Stable-Baselines3 agent (python -m sdedge_agents.train; the train extra)"),
    "benchmark": (_script("benchmark.py", "benchmark"),
                  "steps/s of the envs and the oracle's solve time (scripts/benchmark.py)"),
    "reproduce": (_script("reproduce_paper.py", "reproduce"),
                  "the seed paper's sweeps with the exact oracle (scripts/reproduce_paper.py)"),
}


def list_ids() -> list[str]:
    """One line per registered id: the id, then its preset, K (per cell), action mode and information model."""
    from sdedge_gym.multicell import make_multicell
    from sdedge_gym.registration import ENV_TABLE, MULTICELL_ENV_TABLE
    from sdedge_gym.scenarios import make_scenario

    width = max(len(env_id) for env_id in (*ENV_TABLE, *MULTICELL_ENV_TABLE))
    lines = []
    for env_id, kwargs in ENV_TABLE.items():
        overrides = {k: v for k, v in kwargs.items() if k not in ("scenario", "action_mode")}
        scenario = make_scenario(kwargs["scenario"], **overrides)
        lines.append(f"{env_id:<{width}}  {scenario.name:<6}  K={scenario.num_tasks:<4}  {kwargs['action_mode']:<8}  "
                     f"{scenario.acceptance} acceptance, {'clairvoyant' if scenario.clairvoyant else 'hints'}")
    for env_id, kwargs in MULTICELL_ENV_TABLE.items():
        config = make_multicell(kwargs["config"])
        cell = config.cells[0]
        lines.append(f"{env_id:<{width}}  {cell.name.split('-cell')[0]:<6}  K={cell.num_tasks:<4}  "
                     f"{kwargs['action_mode']:<8}  {config.num_cells} cells sharing one MBS ({config.name}), "
                     f"{cell.acceptance} acceptance, {'clairvoyant' if cell.clairvoyant else 'hints'}")
    return lines


def describe(env_id: str, parameters_only: bool = False) -> str:
    """The env card (the env class's docstring) and the id's complete scenario parameters as JSON (for a
    multi-cell id ``{"name": preset, "cells": [one scenario per cell]}``)."""
    import gymnasium as gym

    from sdedge_gym.env import EdgeSDEnv
    from sdedge_gym.multicell import MultiCellTwinEnv
    from sdedge_gym.online_env import EdgeSDOnlineEnv
    from sdedge_gym.registration import ENV_IDS, MULTICELL_ENV_IDS, ONLINE_ENV_IDS

    if env_id not in ENV_IDS:
        raise ValueError(f"{env_id!r} is not a registered id; allowed: {', '.join(ENV_IDS)} (sdedge-gym list)")
    env_class = (MultiCellTwinEnv if env_id in MULTICELL_ENV_IDS else
                 EdgeSDOnlineEnv if env_id in ONLINE_ENV_IDS else EdgeSDEnv)
    kwargs = dict(gym.spec(env_id).kwargs)
    env = env_class(**kwargs)
    arguments = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    header = [f"# {env_id}", "", f"gymnasium.make({env_id!r}) = {env_class.__name__}({arguments})",
              f"action space: {env.action_space}", f"observation space: {env.observation_space}", ""]
    card = inspect.cleandoc(env_class.__doc__ or "")
    if env_id in MULTICELL_ENV_IDS:  # one scenario per cell
        config = env.core.config
        parameters = json.dumps({"name": config.name, "cells": [cell.to_dict() for cell in config.cells]}, indent=2)
    else:
        parameters = json.dumps(env.scenario.to_dict(), indent=2)
    if parameters_only:
        return parameters
    return "\n".join([*header, card, "", "## Scenario parameters", "", parameters])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sdedge-gym", description="LLM serving at the network edge with speculative decoding: the Gymnasium "
        "benchmark's command line.", epilog="Run 'sdedge-gym COMMAND --help' for a command's options.",
        formatter_class=lambda prog: argparse.RawDescriptionHelpFormatter(prog, max_help_position=14, width=110))
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    commands.add_parser("list", help="every registered id, one line each (preset, K, action mode, information)")
    describe_parser = commands.add_parser("describe", help="an id's env card and its scenario's parameters")
    describe_parser.add_argument("env_id", metavar="ID", help="a registered id, e.g. sdedge/EdgeSD-Small-v0")
    describe_parser.add_argument("--parameters-only", action="store_true", help="print only the parameters (JSON)")
    for name, (_, help_text) in FORWARDED.items():
        commands.add_parser(name, help=help_text, add_help=False)  # its own --help comes from the module
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    import sdedge_gym  # noqa: F401 (registers the ids)

    if argv and argv[0] in FORWARDED:  # everything after the command goes to the module unchanged
        try:
            return FORWARDED[argv[0]][0](argv[1:])
        except SystemExit as stop:  # argparse's --help and usage errors, or a script's own exit code
            return stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "list":
        print("\n".join(list_ids()))
    elif args.command == "describe":
        try:
            print(describe(args.env_id, args.parameters_only))
        except ValueError as error:
            parser.error(str(error))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
