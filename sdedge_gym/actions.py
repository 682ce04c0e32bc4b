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
"""

from __future__ import annotations

import numpy as np

ACTION_MODES = ("discrete", "hybrid", "dict")
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
    """The action of ``mode`` that commits (n, l) with the given shares (closed form when omitted).

    In ``hybrid`` and ``dict`` modes, omitted shares are encoded as equal logits / weights (uniform).
    """
    if mode == "discrete":
        return np.array([batch_size - 1, speculation_length], dtype=np.int64)
    if shares is None:
        shares = np.full(batch_size, 1.0 / batch_size)
    if mode == "hybrid":
        action = np.empty(max_batch + 2)
        action[2:] = logits_from_shares(shares, max_batch)
        action[0] = _bin_centre(batch_size - 1, max_batch)
        action[1] = _bin_centre(speculation_length, max_speculation + 1)
        return action.astype(np.float32)
    if mode == "dict":
        weights = np.zeros(max_batch, dtype=np.float32)
        weights[:batch_size] = np.asarray(shares) / np.max(shares)
        return {"batch_size_minus_one": int(batch_size) - 1, "speculation_length": int(speculation_length),
                "bandwidth": weights}
    raise ValueError(f"action_mode = {mode!r} is invalid; allowed: {' | '.join(ACTION_MODES)}")


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
