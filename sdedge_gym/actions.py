"""The three action encodings and the action mask — one contract for env, vector env and policies.

* ``discrete`` — ``MultiDiscrete([n_max, l_max + 1])``: ``[n - 1, l]``; the band is split by the closed
  form (the paper's decomposition).
* ``hybrid``  — ``Box(-1, 1, (2 + n_max,))``: entry 0 picks n and entry 1 picks l by equal bins over
  [-1, 1]; entries 2.. are bandwidth logits x, and the batch's n users get shares
  BAND_FLOOR / n + (1 - BAND_FLOOR) softmax(LOGIT_SCALE * x[:n]). The floor means that every point of the
  Box is a sane split: no user gets less than a twentieth of an equal share, so no upload takes more than
  twenty times its equal-share time (the Shannon rate is concave with r(0) = 0). Random actions (an
  off-policy warm-up, an initial Gaussian policy) then cost 2-16 times the oracle in the median, not
  550-500000 times as with the earlier plain softmax(8 x) (scripts/random_returns.py, docs/MODEL.md).
  The gentler LOGIT_SCALE = 4 still lets the shares above the floor differ by e^8 ~ 3000: the closed-form
  split of more than 99 % of every preset's batches is expressed exactly (all its shares are above the
  floor), and the rest within a 2 % longer uplink slot (tests/test_actions.py). Equal logits give uniform
  shares.
* ``dict``    — ``Dict(batch_size_minus_one=Discrete(n_max), speculation_length=Discrete(l_max + 1),
  bandwidth=Box(0, 1, (n_max,)))``: the native form; ``batch_size_minus_one`` is n - 1, 0-based like
  the discrete mode (TorchRL and RLlib ignore ``Discrete(start=1)`` and would send 0), and named for
  what it holds so that nobody reads it as n. The batch's n users get shares proportional to
  ``bandwidth[:n]``, each weight floored at MIN_WEIGHT so that no user is left without band.

The mask is one bool vector in MaskablePPO's MultiDiscrete layout: n_max batch-size entries (n = 1..n_max,
i.e. ``batch_size_minus_one`` = 0..n_max - 1), then l_max + 1 speculation entries; the same vector serves
every mode. Every mask has at least one valid batch size: at the terminal state (no task left) n = 1 is
marked valid, because samplers (MaskablePPO, TorchRL's ``ActionMask``) fail on a mask with no valid entry
and the terminal mask is never acted on. All functions broadcast over leading axes (the vector env's env
axis).

Each mode is one :class:`ActionMode` object (``action_mode(name, n_max, l_max)``): its Gymnasium space
(with or without the online env's wait), the validation and decoding of an action (one env's, or a batch
of them for the vector env), the band shares it asks for, and the encoding of (n, l, shares, wait). Every
env, the vector env, the policies and the registration ask it; a new mode is one subclass and one entry
in ``ACTION_MODE_CLASSES``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces

DICT_ACTION_KEYS = ("batch_size_minus_one", "speculation_length", "bandwidth")
# Hybrid band split: every user gets BAND_FLOOR / n, the rest is split by softmax(LOGIT_SCALE * x). Chosen
# on a grid with scripts/random_returns.py: once there is a floor, random returns barely depend on the scale
# (3, 4 or 8), and 4 keeps excess ratios up to e^8 expressible (3 would stop at e^6 ~ 400, below the large
# preset's ~10^4); the floor 0.05 is the largest tried (0.03, 0.05, 0.1, 0.2, 0.3) that left the oracle's
# mean returns on the Small/Paper/Uplink hybrid ids (seeds 0..19) unchanged to 1e-7 relative (0.1 moved
# the Uplink one by 0.04 %).
LOGIT_SCALE = 4.0
BAND_FLOOR = 0.05
MIN_WEIGHT = 1e-6


def _bin(x, bins: int):
    """Equal bins of [-1, 1]: -1 -> 0, 1 -> bins - 1."""
    index = np.floor((np.asarray(x, dtype=float) + 1.0) * 0.5 * bins)
    return np.clip(index, 0, bins - 1).astype(np.int64)


def _bin_centre(index, bins: int):
    return -1.0 + (2.0 * np.asarray(index, dtype=float) + 1.0) / bins


def hybrid_batch_and_speculation(action, max_batch: int, max_speculation: int):
    """(n, l) from the first two entries of a hybrid action."""
    action = np.asarray(action, dtype=float)
    return _bin(action[..., 0], max_batch) + 1, _bin(action[..., 1], max_speculation + 1)


def shares_from_logits(logits, batch_size):
    """BAND_FLOOR / n + (1 - BAND_FLOOR) softmax(LOGIT_SCALE * x) over the first n entries; zero beyond.

    Broadcasts over rows. Every user of the batch gets at least BAND_FLOOR / n of the band, whatever x.
    """
    logits = np.asarray(logits, dtype=float)
    batch_size = np.asarray(batch_size)
    present = np.arange(logits.shape[-1]) < batch_size[..., None]
    scaled = np.where(present, LOGIT_SCALE * logits, -np.inf)
    weights = np.exp(scaled - scaled.max(axis=-1, keepdims=True))
    softmax = weights / weights.sum(axis=-1, keepdims=True)
    floor = np.where(present, BAND_FLOOR / np.maximum(batch_size, 1)[..., None], 0.0)
    return floor + (1.0 - BAND_FLOOR) * softmax


def logits_from_shares(shares, width: int):
    """Hybrid logits in [-1, 1] whose shares (:func:`shares_from_logits`) reproduce ``shares``.

    Exact (to rounding) when every share is at least BAND_FLOOR / n and the shares above the floor differ
    by at most a factor e^(2 LOGIT_SCALE); otherwise the nearest expressible split: a share below the floor
    gets the floor, and the largest excess above it maps to 1, the others clipped at -1.
    """
    shares = np.asarray(shares, dtype=float)
    n = shares.shape[-1]
    excess = (shares / shares.sum(axis=-1, keepdims=True) - BAND_FLOOR / n) / (1.0 - BAND_FLOOR)
    out = np.full((*shares.shape[:-1], width), -1.0)
    log = np.log(np.maximum(excess, 1e-300))
    logits = 1.0 + (log - log.max(axis=-1, keepdims=True)) / LOGIT_SCALE
    out[..., :n] = np.clip(logits, -1.0, 1.0)
    return out


def shares_from_weights(weights, batch_size):
    """Dict mode: shares proportional to max(w, MIN_WEIGHT) over the first n users."""
    weights = np.asarray(weights, dtype=float)
    present = np.arange(weights.shape[-1]) < np.asarray(batch_size)[..., None]
    floored = np.where(present, np.maximum(weights, MIN_WEIGHT), 0.0)
    return floored / floored.sum(axis=-1, keepdims=True)


def encode_action(mode: str, batch_size: int, speculation_length: int, max_batch: int,
                  max_speculation: int, shares=None):
    """The action of ``mode`` that commits (n, l) with the given shares: ``action_mode(mode, ...).encode``.

    In ``hybrid`` and ``dict`` modes, omitted shares are encoded as equal logits / weights (uniform).
    """
    return action_mode(mode, max_batch, max_speculation).encode(batch_size, speculation_length, shares)


def action_mask(batch_limit, max_batch: int, max_speculation: int):
    """MaskablePPO layout: [n = 1..n_max valid?] + [l = 0..l_max valid?] (every l is always valid).

    A limit of 0 (the terminal state) marks n = 1 valid: every mask keeps a valid entry (module docstring).
    """
    limit = np.maximum(np.asarray(batch_limit), 1)
    batch_ok = np.arange(1, max_batch + 1) <= limit[..., None]
    spec_ok = np.ones((*limit.shape, max_speculation + 1), dtype=bool)
    return np.concatenate([batch_ok, spec_ok], axis=-1)


def action_mask_table(max_batch: int, max_speculation: int) -> np.ndarray:
    """(max_batch + 1, n_max + l_max + 1) read-only: row b is ``action_mask(b, ...)`` (rows 0 and 1 agree).

    Indexing it (``table[limit]``, a copy for an array of limits) replaces building each mask anew; limits
    above max_batch must be clipped to it first (their masks equal that row's).
    """
    table = action_mask(np.arange(max_batch + 1), max_batch, max_speculation)
    table.setflags(write=False)
    return table


def finite_array(value, name: str, shape: tuple[int, ...], allowed: str) -> np.ndarray:
    """``value`` as a finite float array of ``shape``, or a ValueError naming ``name``.

    Only integers and floats count as numbers: booleans (``[True, False]`` is not n = 2, l = 0), strings
    and objects are rejected rather than converted.
    """
    try:
        raw = np.asarray(value)
        numeric = raw.dtype.kind in "iuf" and not (
            isinstance(value, list | tuple) and any(isinstance(x, bool | np.bool_) for x in _flatten(value)))
        array = np.asarray(raw, dtype=float) if numeric else None
    except (TypeError, ValueError):
        array = None
    if array is None or array.shape != shape or not np.all(np.isfinite(array)):
        got = "not numeric" if array is None else f"shape {array.shape}" + (
            "" if array.shape != shape or np.all(np.isfinite(array)) else " with NaN or inf")
        raise ValueError(f"{name} ({got}) is invalid; allowed: shape {shape}, {allowed}")
    return array


def _flatten(value):
    """The scalars of a nested list or tuple."""
    for x in value:
        if isinstance(x, list | tuple):
            yield from _flatten(x)
        else:
            yield x


def _integer_in(value: np.ndarray, name: str, low: int, high: int) -> None:
    if value != np.rint(value) or not low <= value <= high:
        raise ValueError(f"{name} = {value.item()!r} is invalid; allowed: an integer in [{low}, {high}]")


def _integers_in(values: np.ndarray, name: str, low: int, high: int) -> None:
    bad = np.flatnonzero((values != np.rint(values)) | (values < low) | (values > high))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"{name}[{i}] = {values[i].item()!r} is invalid; allowed: an integer in [{low}, {high}]")


# ---------------------------------------------------------------------- the modes as objects


class ActionMode:
    """One action encoding for a scenario's limits (n_max, l_max). Subclasses define every method.

    ``decode`` returns (wait, requested n, l, band logits or weights or None) of one action and
    ``decode_many`` the same as arrays over a batch of ``num_envs`` actions (the vector envs'); both
    raise ValueError, naming the entry, for an action outside the space. ``wait=True`` is the online env's
    space: one more batch-size value (discrete), one more entry (hybrid, > 0 waits) or a ``wait`` key (dict).
    A refused wait still carries (n, l) and the shares, which the env then uses.
    """

    name: ClassVar[str]
    id_suffix: ClassVar[str]  # what the registered ids append for this mode ("-Hybrid")
    explicit_band: ClassVar[bool]  # False: the closed-form split; True: the action carries the shares

    def __init__(self, max_batch: int, max_speculation: int) -> None:
        self.max_batch, self.max_speculation = int(max_batch), int(max_speculation)

    def space(self, wait: bool = False) -> spaces.Space:
        raise NotImplementedError

    def decode(self, action: Any, wait: bool = False) -> tuple[bool, int, int, np.ndarray | None]:
        raise NotImplementedError

    def decode_many(self, actions: Any, num_envs: int, wait: bool = False,
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        raise NotImplementedError

    def shares(self, weights: np.ndarray | None, batch_size) -> np.ndarray | None:
        """The batch's band shares (n_max wide, zero beyond n; broadcasts over envs), None for the closed form."""
        raise NotImplementedError

    def encode(self, batch_size: int, speculation_length: int, shares=None, wait: bool | None = None) -> Any:
        """The action committing (n, l) with ``shares`` (uniform when omitted in hybrid/dict; the discrete
        mode always uses the closed form). ``wait`` None: the offline space; False/True: the online space,
        dispatching or waiting (a wait still carries n, l and the shares)."""
        raise NotImplementedError


class DiscreteActions(ActionMode):
    """``MultiDiscrete([n_max, l_max + 1])``: ``[n - 1, l]``, the closed-form band split. Online:
    ``MultiDiscrete([n_max + 1, l_max + 1])``, ``[n_max, l]`` waits."""

    name, id_suffix, explicit_band = "discrete", "", False

    def space(self, wait: bool = False) -> spaces.Space:
        return spaces.MultiDiscrete([self.max_batch + int(wait), self.max_speculation + 1])

    def decode(self, action: Any, wait: bool = False) -> tuple[bool, int, int, np.ndarray | None]:
        n_max, l_max = self.max_batch, self.max_speculation
        high = n_max if wait else n_max - 1
        # Fast path: an integer array (what samplers and policies give) is finite and integral already;
        # anything else, or out of range, takes the full validation below (and its error messages).
        if type(action) is np.ndarray and action.shape == (2,) and action.dtype.kind in "iu":
            n, l = action.tolist()
            if 0 <= n <= high and 0 <= l <= l_max:
                return (wait and n == n_max), (1 if wait and n == n_max else n + 1), l, None
        if wait:
            values = finite_array(action, "action", (2,), f"[n - 1, l] or [{n_max} (wait), l], integers with "
                                                          f"0 <= action[0] <= {n_max} and 0 <= l <= {l_max}")
            _integer_in(values[0], f"action[0] (batch_size - 1, or {n_max} to wait)", 0, n_max)
        else:
            values = finite_array(action, "action", (2,), f"[n - 1, l], integers with 0 <= n - 1 < {n_max} and "
                                                          f"0 <= l <= {l_max}")
            _integer_in(values[0], "action[0] (batch_size - 1)", 0, n_max - 1)
        _integer_in(values[1], "action[1] (speculation_length)", 0, l_max)
        waits = wait and int(values[0]) == n_max
        return waits, (1 if waits else int(values[0]) + 1), int(values[1]), None

    def decode_many(self, actions: Any, num_envs: int, wait: bool = False,
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        n_max, l_max = self.max_batch, self.max_speculation
        high = n_max if wait else n_max - 1
        values = finite_array(actions, "actions", (num_envs, 2), f"integers [n - 1, l] per env with "
                                                                 f"0 <= n - 1 < {n_max}"
                                                                 f"{f' (or {n_max} to wait)' if wait else ''} "
                                                                 f"and 0 <= l <= {l_max}")
        _integers_in(values[:, 0], "actions[:, 0] (batch_size - 1" + (f", or {n_max} to wait)" if wait else ")"),
                     0, high)
        _integers_in(values[:, 1], "actions[:, 1] (speculation_length)", 0, l_max)
        first = values[:, 0].astype(np.int64)
        waits = first == n_max  # never true offline (high = n_max - 1)
        return waits, np.where(waits, 1, first + 1), values[:, 1].astype(np.int64), None

    def shares(self, weights: np.ndarray | None, batch_size) -> np.ndarray | None:
        return None

    def encode(self, batch_size: int, speculation_length: int, shares=None, wait: bool | None = None) -> Any:
        return np.array([self.max_batch if wait else batch_size - 1, speculation_length], dtype=np.int64)


class HybridActions(ActionMode):
    """``Box(-1, 1, (2 + n_max,))``: n and l by equal bins, then band logits (module docstring). Online: one
    more entry at the end, > 0 waits."""

    name, id_suffix, explicit_band = "hybrid", "-Hybrid", True

    def space(self, wait: bool = False) -> spaces.Space:
        return spaces.Box(-1.0, 1.0, (2 + self.max_batch + int(wait),), dtype=np.float32)

    def decode(self, action: Any, wait: bool = False) -> tuple[bool, int, int, np.ndarray | None]:
        n_max, l_max = self.max_batch, self.max_speculation
        width = 2 + n_max + int(wait)
        values = finite_array(action, "action", (width,), f"{width} finite numbers in [-1, 1]")
        outside = np.flatnonzero((values < -1.0) | (values > 1.0))
        if outside.size:
            i = int(outside[0])
            role = " (wait)" if wait and i == width - 1 else ""
            raise ValueError(f"action[{i}]{role} = {float(values[i])!r} is invalid for action_mode 'hybrid'; "
                             f"allowed: a number in [-1, 1]{' (> 0 waits)' if role else ''}")
        n, l = hybrid_batch_and_speculation(values, n_max, l_max)
        return bool(wait and values[-1] > 0.0), int(n), int(l), values[2:2 + n_max]

    def decode_many(self, actions: Any, num_envs: int, wait: bool = False,
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        n_max, l_max = self.max_batch, self.max_speculation
        width = 2 + n_max + int(wait)
        values = finite_array(actions, "actions", (num_envs, width), f"{width} numbers in [-1, 1] per env")
        outside = np.argwhere((values < -1.0) | (values > 1.0))
        if outside.size:
            i, j = outside[0]
            role = " (wait)" if wait and j == width - 1 else ""
            raise ValueError(f"actions[{i}, {j}]{role} = {values[i, j].item()!r} is invalid for action_mode "
                             f"'hybrid'; allowed: a number in [-1, 1]{' (> 0 waits)' if role else ''}")
        n, l = hybrid_batch_and_speculation(values, n_max, l_max)
        waits = values[:, -1] > 0.0 if wait else np.zeros(num_envs, dtype=bool)
        return waits, n, l, values[:, 2:2 + n_max]

    def shares(self, weights: np.ndarray | None, batch_size) -> np.ndarray | None:
        return shares_from_logits(weights, batch_size)

    def encode(self, batch_size: int, speculation_length: int, shares=None, wait: bool | None = None) -> Any:
        if shares is None:
            shares = np.full(batch_size, 1.0 / batch_size)
        action = np.empty(self.max_batch + 2 + (wait is not None))
        action[2:2 + self.max_batch] = logits_from_shares(shares, self.max_batch)
        action[0] = _bin_centre(batch_size - 1, self.max_batch)
        action[1] = _bin_centre(speculation_length, self.max_speculation + 1)
        if wait is not None:
            action[-1] = 1.0 if wait else -1.0
        return action.astype(np.float32)


class DictActions(ActionMode):
    """``Dict(batch_size_minus_one, speculation_length, bandwidth)``, all 0-based. Online: a ``wait`` key (0/1)."""

    name, id_suffix, explicit_band = "dict", "-Dict", True

    def space(self, wait: bool = False) -> spaces.Space:
        keys = {"batch_size_minus_one": spaces.Discrete(self.max_batch),
                "speculation_length": spaces.Discrete(self.max_speculation + 1),
                "bandwidth": spaces.Box(0.0, 1.0, (self.max_batch,), dtype=np.float32)}
        return spaces.Dict({**keys, "wait": spaces.Discrete(2)} if wait else keys)

    def decode(self, action: Any, wait: bool = False) -> tuple[bool, int, int, np.ndarray | None]:
        n_max, l_max = self.max_batch, self.max_speculation
        expected = {*DICT_ACTION_KEYS, "wait"} if wait else set(DICT_ACTION_KEYS)
        if not isinstance(action, Mapping) or set(action) != expected:
            got = sorted(action, key=repr) if isinstance(action, Mapping) else type(action).__name__
            raise ValueError(f"action = {got!r} is invalid for action_mode 'dict'; allowed: a mapping with "
                             f"exactly the keys {sorted(expected)}")
        waits = False
        if wait:
            flag = finite_array(action["wait"], "action['wait']", (), "0 or 1")
            _integer_in(flag, "action['wait']", 0, 1)
            waits = bool(flag)
        n = finite_array(action["batch_size_minus_one"], "action['batch_size_minus_one']", (),
                         f"an integer in [0, {n_max - 1}]")
        l = finite_array(action["speculation_length"], "action['speculation_length']", (),
                         f"an integer in [0, {l_max}]")
        _integer_in(n, "action['batch_size_minus_one']", 0, n_max - 1)
        _integer_in(l, "action['speculation_length']", 0, l_max)
        weights = finite_array(action["bandwidth"], "action['bandwidth']", (n_max,), f"{n_max} numbers in [0, 1]")
        if np.any((weights < 0.0) | (weights > 1.0)):
            raise ValueError(f"action['bandwidth'] = {weights!r} is invalid; allowed: {n_max} numbers in [0, 1]")
        return waits, int(n) + 1, int(l), weights

    def decode_many(self, actions: Any, num_envs: int, wait: bool = False,
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        n_max, l_max, e = self.max_batch, self.max_speculation, num_envs
        expected = {*DICT_ACTION_KEYS, "wait"} if wait else set(DICT_ACTION_KEYS)
        if not isinstance(actions, Mapping) or set(actions) != expected:
            got = sorted(actions, key=repr) if isinstance(actions, Mapping) else type(actions).__name__
            raise ValueError(f"actions = {got!r} is invalid for action_mode 'dict'; allowed: a mapping with "
                             f"exactly the keys {sorted(expected)} of arrays over envs")
        waits = np.zeros(e, dtype=bool)
        if wait:
            flags = finite_array(actions["wait"], "actions['wait']", (e,), "0 or 1 per env")
            _integers_in(flags, "actions['wait']", 0, 1)
            waits = flags == 1
        n = finite_array(actions["batch_size_minus_one"], "actions['batch_size_minus_one']", (e,),
                         f"integers in [0, {n_max - 1}]")
        l = finite_array(actions["speculation_length"], "actions['speculation_length']", (e,),
                         f"integers in [0, {l_max}]")
        _integers_in(n, "actions['batch_size_minus_one']", 0, n_max - 1)
        _integers_in(l, "actions['speculation_length']", 0, l_max)
        weights = finite_array(actions["bandwidth"], "actions['bandwidth']", (e, n_max), f"{n_max} numbers in [0, 1]")
        if np.any((weights < 0.0) | (weights > 1.0)):
            raise ValueError(f"actions['bandwidth'] has entries outside [0, 1]; allowed: {n_max} numbers in "
                             "[0, 1] per env")
        return waits, n.astype(np.int64) + 1, l.astype(np.int64), weights

    def shares(self, weights: np.ndarray | None, batch_size) -> np.ndarray | None:
        return shares_from_weights(weights, batch_size)

    def encode(self, batch_size: int, speculation_length: int, shares=None, wait: bool | None = None) -> Any:
        if shares is None:
            shares = np.full(batch_size, 1.0 / batch_size)
        weights = np.zeros(self.max_batch, dtype=np.float32)
        weights[:batch_size] = np.asarray(shares) / np.max(shares)
        action = {"batch_size_minus_one": int(batch_size) - 1, "speculation_length": int(speculation_length),
                  "bandwidth": weights}
        return action if wait is None else {**action, "wait": int(wait)}


# One entry per mode: a new mode is a subclass and a line here.
ACTION_MODE_CLASSES: dict[str, type[ActionMode]] = {cls.name: cls for cls in (DiscreteActions, HybridActions,
                                                                                 DictActions)}
ACTION_MODES: tuple[str, ...] = tuple(ACTION_MODE_CLASSES)


def action_mode_class(name: str) -> type[ActionMode]:
    """The :class:`ActionMode` subclass named ``name``; ValueError naming the allowed modes otherwise."""
    if not isinstance(name, str) or name not in ACTION_MODE_CLASSES:
        raise ValueError(f"action_mode = {name!r} is invalid; allowed: {' | '.join(map(repr, ACTION_MODES))}")
    return ACTION_MODE_CLASSES[name]


def action_mode(name: str, max_batch: int, max_speculation: int) -> ActionMode:
    """The :class:`ActionMode` object ``name`` for the limits; ValueError naming the allowed modes otherwise."""
    return action_mode_class(name)(max_batch, max_speculation)
