"""Stable-Baselines3 ``VecEnv`` over the native numpy vector env.

SB3 has its own vector API: ``reset()`` returns only observations, ``step`` returns ``dones`` and a list of
per-env info dicts, and an env that finishes is reset in the same step, its last observation kept in
``info["terminal_observation"]`` and ``info["TimeLimit.truncated"]`` telling a time-out from a true end.
:class:`SB3VecEnv` speaks that API over :class:`~sdedge_gym.vector_env.EdgeSDVectorEnv` run in Gymnasium's
``SAME_STEP`` autoreset mode, which has exactly these semantics; so the numbers are the vector env's, and
with it the single env's, step for step (``DummyVecEnv`` over ``gymnasium.make`` gives the same: exactly
for dones and masks, to rtol 1e-6 for the float32 observations and rewards).

MaskablePPO asks a ``VecEnv`` for masks with ``env_method("action_masks")``: here that returns the mask
of every env from one vectorised call.

    venv = make_sb3_vec_env("sdedge/EdgeSD-Small-v0", num_envs=64, seed=0)
    model = MaskablePPO("MlpPolicy", VecMonitor(venv))
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvObs, VecEnvStepReturn

import sdedge_gym  # noqa: F401 (registers the ids)
from sdedge_gym.vector_env import EdgeSDVectorEnv


def make_sb3_vec_env(env_id: str, num_envs: int = 1, seed: int | None = None, **kwargs: Any) -> SB3VecEnv:
    """An :class:`SB3VecEnv` of ``num_envs`` copies of a registered id; env i's first episode uses ``seed + i``.

    ``kwargs`` are the id's overrides, as for ``gymnasium.make`` (``num_tasks=``, ``config=``, ...).
    """
    venv = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point",
                        autoreset_mode=AutoresetMode.SAME_STEP, **kwargs)
    env = SB3VecEnv(venv.unwrapped)
    if seed is not None:
        env.seed(seed)
    return env


class SB3VecEnv(VecEnv):
    """SB3's ``VecEnv`` API over an :class:`EdgeSDVectorEnv` in ``SAME_STEP`` autoreset mode."""

    def __init__(self, venv: EdgeSDVectorEnv) -> None:
        if not isinstance(venv, EdgeSDVectorEnv):
            raise ValueError(f"venv = {type(venv).__name__} is invalid; allowed: an EdgeSDVectorEnv")
        if venv.metadata["autoreset_mode"] != AutoresetMode.SAME_STEP:
            raise ValueError(f"venv autoreset_mode = {venv.metadata['autoreset_mode'].value!r} is invalid; allowed: "
                             "'SameStep' (SB3 resets a finished env within the step)")
        self.venv = venv  # before VecEnv.__init__, which reads render_mode through get_attr
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)
        self._actions: Any = None

    # ------------------------------------------------------------------ SB3 VecEnv API

    def reset(self) -> VecEnvObs:
        seeds = list(self._seeds)
        obs, infos = self.venv.reset(seed=seeds if any(s is not None for s in seeds) else None)
        self.reset_infos = _split_infos(infos, self.num_envs)
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, terminated, truncated, infos = self.venv.step(self._actions)
        dones = terminated | truncated
        final = infos.get("final_info", {})
        step_infos = _split_infos(infos, self.num_envs)
        done_infos = _split_infos(final, self.num_envs)
        for i in np.flatnonzero(dones):
            # the top-level info of a finished env is its new episode's reset info; SB3 keeps that apart
            self.reset_infos[i] = step_infos[i]
            step_infos[i] = {**done_infos[i], "terminal_observation": infos["final_obs"][i]}
        for i, info in enumerate(step_infos):
            info["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
        return obs, rewards.astype(np.float32), dones, step_infos

    def close(self) -> None:
        self.venv.close()

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """The vector env's attribute, once per env (per-env arrays are split along their first axis)."""
        value = getattr(self.venv, attr_name)
        return [_row(value, i, self.num_envs) for i in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Set an attribute of the vector env (shared by every env; ``indices`` must cover them all)."""
        if len(list(self._get_indices(indices))) != self.num_envs:
            raise ValueError("set_attr indices are invalid; allowed: None (the sub-envs share one vector env)")
        setattr(self.venv, attr_name, value)

    def env_method(self, method_name: str, *method_args: Any, indices: VecEnvIndices = None,
                   **method_kwargs: Any) -> list[Any]:
        """Call a vector env method once and split its per-env result (``action_masks`` -> one mask per env)."""
        result = getattr(self.venv, method_name)(*method_args, **method_kwargs)
        return [_row(result, i, self.num_envs) for i in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]

    def action_masks(self) -> np.ndarray:
        """(num_envs, n_max + l_max + 1) masks of every env."""
        return self.venv.action_masks()

    def _get_indices(self, indices: VecEnvIndices) -> Iterable[int]:
        if indices is None:
            return range(self.num_envs)
        if isinstance(indices, int | np.integer):
            return [int(indices)]
        return list(indices)


def _row(value: Any, i: int, num_envs: int) -> Any:
    if isinstance(value, np.ndarray) and value.ndim >= 1 and value.shape[0] == num_envs:
        return value[i]
    return value


def _split_infos(infos: dict[str, Any], num_envs: int) -> list[dict[str, Any]]:
    """Gymnasium's vector infos (arrays + ``_key`` masks) as SB3's list of per-env dicts."""
    out: list[dict[str, Any]] = [{} for _ in range(num_envs)]
    for key, values in infos.items():
        if key.startswith("_") or key in ("final_obs", "final_info"):
            continue
        for i in np.flatnonzero(infos["_" + key]):
            value = values[i]
            out[i][key] = value.item() if isinstance(value, np.generic) else value
    return out

