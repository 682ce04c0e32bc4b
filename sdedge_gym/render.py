"""Pictures of an episode: a text dashboard ("ansi") and a Gantt chart ("rgb_array").

Both read only what the env already holds (scenario, episode, clock, committed batches). matplotlib is
an optional dependency (the ``render`` extra): it is imported on the first Gantt chart, never at import.
"""

from __future__ import annotations

import numpy as np

from sdedge_gym.config import ScenarioConfig
from sdedge_gym.episode import BatchOutcome, Episode, EpisodeClock, ServingModel, batch_service

GANTT_SIZE_INCHES = (10.0, 3.6)
GANTT_DPI = 100
_BAR_WIDTH = 30


def dashboard(scenario: ScenarioConfig, action_mode: str, episode: Episode | None, clock: EpisodeClock,
              outcomes: list[BatchOutcome]) -> str:
    """A compact multi-line text summary of where the episode stands."""
    info = "clairvoyant" if scenario.clairvoyant else "hints only"
    lines = [f"EdgeSD {scenario.name} | {action_mode} | {scenario.objective} | {scenario.acceptance} "
             f"acceptance, {info}"]
    if episode is None:
        lines.append("no episode yet: call reset()")
        return "\n".join(lines) + "\n"
    k = episode.num_tasks
    filled = round(_BAR_WIDTH * clock.next_task / k)
    lines.append(f"served   {clock.next_task:>5}/{k:<5} [{'#' * filled}{'.' * (_BAR_WIDTH - filled)}] "
                 f"batches {clock.batches}")
    lines.append(f"clocks   uplink {clock.uplink_end:9.3f} s   inference {clock.inference_end:9.3f} s   "
                 f"backlog {max(clock.inference_end - clock.uplink_end, 0.0):8.3f} s")
    if outcomes:
        last = outcomes[-1]
        lines.append(f"batch {clock.batches:<3} n={last.batch_size:<3} l={last.speculation_length:<2} "
                     f"slot {last.uplink_slot:7.3f} s  wait {last.wait:7.3f} s  service {last.service_time:7.3f} s  "
                     f"tokens {last.tokens:6.0f}  accepted {last.accepted_drafts:6.0f}")
        completion = np.concatenate([o.completion_times for o in outcomes])
        cost = sum(o.cost for o in outcomes)
        lines.append(f"so far   mean latency {completion.mean():8.3f} s   makespan {completion.max():8.3f} s   "
                     f"return {-cost:9.4f}")
    return "\n".join(lines) + "\n"


def _require_matplotlib():
    try:
        from matplotlib import colormaps
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError("render_mode='rgb_array' needs matplotlib; install the render extra: "
                          "pip install 'sdedge-gym[render]'") from error
    return Figure, FigureCanvasAgg, colormaps


def _intervals(start: np.ndarray, end: np.ndarray, offset: float) -> list[tuple[float, float]]:
    """(start, width) pairs of the non-empty intervals (finished rounds repeat with zero width)."""
    keep = end > start
    return list(zip((start[keep] + offset).tolist(), (end[keep] - start[keep]).tolist(), strict=True))


def gantt_rgb(model: ServingModel, episode: Episode | None, clock: EpisodeClock,
              outcomes: list[BatchOutcome]) -> np.ndarray:
    """An (H, W, 3) uint8 Gantt chart: uplink slots, SBS draft and MBS verify busy intervals, completions.

    One colour per batch; within the SBS and MBS rows micro-batch A is the upper half-bar (solid) and B
    the lower one (lighter).
    """
    figure_cls, canvas_cls, colormaps = _require_matplotlib()
    figure = figure_cls(figsize=GANTT_SIZE_INCHES, dpi=GANTT_DPI)
    canvas = canvas_cls(figure)
    axes = figure.add_axes((0.11, 0.16, 0.87, 0.72))
    rows = {"completions": 0.0, "MBS verify": 1.0, "SBS draft": 2.0, "uplink": 3.0}
    palette = colormaps["tab10"]
    horizon = max(clock.inference_end, clock.uplink_end, 1e-9)
    for m, outcome in enumerate(outcomes):
        colour = palette(m % 10)
        axes.broken_barh([(outcome.uplink_start, outcome.uplink_slot)], (rows["uplink"] - 0.4, 0.8),
                         facecolors=colour, edgecolors="black", linewidth=0.5)
        if outcome.uplink_slot > 0.06 * horizon:  # label only slots wide enough to hold the text
            axes.text(outcome.uplink_start + 0.5 * outcome.uplink_slot, rows["uplink"],
                      f"n={outcome.batch_size} l={outcome.speculation_length}", ha="center", va="center",
                      fontsize=8, color="white")
        for x, schedule in enumerate(batch_service(model, episode, outcome).schedules):
            y_low = 0.0 if x == 0 else -0.4  # A on the upper half of the row, B on the lower half
            alpha = 1.0 if x == 0 else 0.5
            axes.broken_barh(_intervals(schedule.draft_start, schedule.draft_end, outcome.start),
                             (rows["SBS draft"] + y_low, 0.4), facecolors=colour, alpha=alpha)
            axes.broken_barh(_intervals(schedule.verify_start, schedule.verify_end, outcome.start),
                             (rows["MBS verify"] + y_low, 0.4), facecolors=colour, alpha=alpha)
        axes.vlines(outcome.completion_times, rows["completions"] - 0.35, rows["completions"] + 0.35,
                    colors=[colour], linewidth=1.0)
    axes.set_xlim(0.0, 1.02 * horizon)
    axes.set_ylim(-0.6, 3.6)
    axes.set_yticks(list(rows.values()), list(rows))
    axes.set_xlabel("time since the episode start (s)")
    axes.grid(axis="x", linewidth=0.3)
    k = 0 if episode is None else episode.num_tasks
    title = f"{model.config.name}: {clock.next_task}/{k} tasks in {clock.batches} batches"
    if outcomes:
        completion = np.concatenate([o.completion_times for o in outcomes])
        title += f" | mean latency {completion.mean():.2f} s | makespan {completion.max():.2f} s"
        title += " | SBS/MBS rows: micro-batch A upper, B lower"
    axes.set_title(title, fontsize=9)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
