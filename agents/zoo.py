"""rl-zoo3 with MaskablePPO: ``python -m sdedge_agents.zoo train|enjoy ARGS`` is ``rl_zoo3.train|enjoy`` plus
``ppo_mask``.

    python -m sdedge_agents.zoo train --algo ppo_mask --env sdedge/EdgeSD-Small-v0 --gym-packages sdedge_gym \\
        --conf-file agents/hyperparams.yml
    python -m sdedge_agents.zoo enjoy --algo ppo_mask --env sdedge/EdgeSD-Small-v0 --gym-packages sdedge_gym \\
        -f logs/ --no-render -n 400

rl-zoo3 2.9 has no MaskablePPO in its ``ALGOS``. This adds it as ``ppo_mask`` and makes it use the env's
action masks where rl-zoo3 would not pass them: the evaluation callback during training becomes
sb3-contrib's ``MaskableEvalCallback``, and in ``enjoy`` the model's ``predict`` reads the masks of the
env enjoy created. Every other algorithm and argument is rl-zoo3's own (``--algo ppo`` works with
``python -m rl_zoo3.train`` directly). Needs the ``zoo`` extra: ``pip install 'sdedge-gym[zoo]'``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

try:
    import rl_zoo3
    import rl_zoo3.enjoy
    import rl_zoo3.exp_manager
    import rl_zoo3.train
    from sb3_contrib import MaskablePPO
    from sb3_contrib.common.maskable.callbacks import MaskableEvalCallback
    from sb3_contrib.common.maskable.utils import get_action_masks
except ImportError as error:  # the optional extra is missing: say which one
    raise ImportError(f"sdedge_agents.zoo needs rl_zoo3 and sb3-contrib: pip install 'sdedge-gym[zoo]' "
                      f"({error})") from error

ALGO_NAME = "ppo_mask"
COMMANDS = ("train", "enjoy")


class ZooMaskablePPO(MaskablePPO):
    """MaskablePPO whose ``predict`` falls back on the masks of :attr:`mask_source` (rl-zoo3's enjoy env).

    rl-zoo3's enjoy loop calls ``model.predict(obs, state=..., episode_start=..., deterministic=...)``
    without masks; an unmasked MaskablePPO may then pick a batch larger than the tasks left (the env clips
    it, but that is not the policy that was trained).
    """

    mask_source: Any = None  # a VecEnv with action_masks(), set by enjoy's env factory below

    def predict(self, observation, state=None, episode_start=None, deterministic=False, action_masks=None):
        if action_masks is None and ZooMaskablePPO.mask_source is not None:
            action_masks = get_action_masks(ZooMaskablePPO.mask_source)
        return super().predict(observation, state=state, episode_start=episode_start, deterministic=deterministic,
                               action_masks=action_masks)


class MaskAwareEvalCallback(MaskableEvalCallback):
    """rl-zoo3's evaluation callback: masked for a MaskablePPO model, SB3's plain evaluation for the others."""

    def _init_callback(self) -> None:
        super()._init_callback()
        self.use_masking = isinstance(self.model, MaskablePPO)


def register() -> None:
    """Add ``ppo_mask`` to rl-zoo3 and route its evaluation and enjoy through the env's masks (idempotent)."""
    rl_zoo3.ALGOS[ALGO_NAME] = ZooMaskablePPO  # rl_zoo3.ALGOS is the dict train and enjoy import
    # MaskableEvalCallback takes EvalCallback's arguments and evaluates with the eval env's masks; the other
    # algorithms' predict takes no masks, so they are evaluated without.
    rl_zoo3.exp_manager.EvalCallback = MaskAwareEvalCallback
    original = getattr(rl_zoo3.enjoy.create_test_env, "__wrapped__", rl_zoo3.enjoy.create_test_env)

    def create_test_env(*args: Any, **kwargs: Any):
        env = original(*args, **kwargs)
        ZooMaskablePPO.mask_source = env
        return env

    create_test_env.__wrapped__ = original
    rl_zoo3.enjoy.create_test_env = create_test_env


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in COMMANDS:
        print(__doc__, file=sys.stderr)
        print(f"error: the first argument must be one of {' | '.join(COMMANDS)} (rl-zoo3's arguments follow)",
              file=sys.stderr)
        return 2
    register()
    command, rest = args[0], args[1:]
    sys.argv = [f"rl_zoo3.{command}", *rest]
    (rl_zoo3.train.train if command == "train" else rl_zoo3.enjoy.enjoy)()
    return 0


if __name__ == "__main__":
    sys.exit(main())
