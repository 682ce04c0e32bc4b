"""The CSV trace reader: both column layouts, the shipped trace, the env on a trace, and the error contract
(every malformed file names the file, the row and the column)."""

from __future__ import annotations

import pickle
import re

import numpy as np
import pytest

from sdedge_gym.arrivals import SAMPLE_TRACE, read_trace, trace_window
from sdedge_gym.online_env import EdgeSDOnlineEnv

PROJECT_HEADER = "arrival_time,prompt_tokens,output_tokens"


def _write(tmp_path, text: str, name: str = "trace.csv") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_project_columns_in_any_order_with_extra_columns(tmp_path):
    path = _write(tmp_path, "user,output_tokens,arrival_time,prompt_tokens\nu1,40,3.0,100\nu2,12.0,3.0,7\n"
                            "u3,9,10.5,300\n\n")
    trace = read_trace(path)
    assert trace.arrival_time.tolist() == [0.0, 0.0, 7.5]  # shifted so that the first row arrives at 0
    assert trace.prompt_tokens.tolist() == [100, 7, 300] and trace.output_tokens.tolist() == [40, 12, 9]


def test_azure_columns_with_date_times(tmp_path):
    path = _write(tmp_path, "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,374,44\n"
                            "2023-11-16 18:15:50.9951690,396,109\n2023-11-17 00:00:00,10,1\n")
    trace = read_trace(path)
    assert trace.arrival_time[1] == pytest.approx(4.314579, abs=1e-6)
    assert trace.arrival_time[2] == pytest.approx(5 * 3600 + 44 * 60 + 13.31941, abs=1e-6)  # to midnight
    assert trace.prompt_tokens.tolist() == [374, 396, 10]


def test_the_shipped_trace_drives_the_env():
    trace = read_trace(SAMPLE_TRACE)
    assert trace.num_requests == 300 and np.all(np.diff(trace.arrival_time) >= 0)
    env = EdgeSDOnlineEnv("paper", config={"arrivals": {"process": "trace", "trace": SAMPLE_TRACE}})
    env.reset(seed=0)
    k = env.episode.num_tasks
    assert np.array_equal(env.arrival, trace.arrival_time[:k])
    w, cfg = env.episode.workload, env.scenario.workload
    assert np.array_equal(w.prompt_len, np.clip(trace.prompt_tokens[:k], 1, cfg.prompt_max))
    assert np.array_equal(w.output_len, np.clip(trace.output_tokens[:k], 1, cfg.max_new_tokens))
    assert np.all(w.payload_bits > env.scenario.uplink.bits_per_token * w.prompt_len)  # plus the attachments
    # The seed still draws the rest of the workload (channels, attachments, acceptance rates).
    other = EdgeSDOnlineEnv("paper", config={"arrivals": {"process": "trace", "trace": SAMPLE_TRACE}})
    other.reset(seed=1)
    assert np.array_equal(other.arrival, env.arrival) and not np.array_equal(other.episode.channel, env.episode.channel)
    clone = pickle.loads(pickle.dumps(env))
    assert np.array_equal(clone.arrival, env.arrival) and clone.trace.path == SAMPLE_TRACE


def test_a_trace_shorter_than_the_episode_is_refused(tmp_path):
    path = _write(tmp_path, f"{PROJECT_HEADER}\n0,10,10\n1,10,10\n")
    with pytest.raises(ValueError, match=r"has 2 requests; the trace cannot hold a window of WorkloadConfig\.num_tasks "
                                         r"= 3; allowed: num_tasks <= 2"):
        trace_window(read_trace(path), 3)
    with pytest.raises(ValueError, match=re.escape(path)):
        EdgeSDOnlineEnv("small", config={"arrivals": {"process": "trace", "trace": path}})


@pytest.mark.parametrize("text, row, column", [
    ("arrival_time,prompt_tokens\n0,10\n", 1, "output_tokens"),
    ("TIMESTAMP,ContextTokens\n0,10\n", 1, "output_tokens"),
    (f"{PROJECT_HEADER}\n0,10,10\n-1,10,10\n", 3, "arrival_time"),
    (f"{PROJECT_HEADER}\n0,10,10\nnan,10,10\n", 3, "arrival_time"),
    (f"{PROJECT_HEADER}\n0,10,10\nsoon,10,10\n", 3, "arrival_time"),
    (f"{PROJECT_HEADER}\n5,10,10\n4.5,10,10\n", 3, "arrival_time"),  # unsorted
    (f"{PROJECT_HEADER}\n0,10.5,10\n", 2, "prompt_tokens"),
    (f"{PROJECT_HEADER}\n0,10,-3\n", 2, "output_tokens"),
    (f"{PROJECT_HEADER}\n0,10,1e3\n", 2, "output_tokens"),
    (f"{PROJECT_HEADER}\n0,10\n", 2, "output_tokens"),  # a short row
    ("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46,1,1\n2023-11-16 18:15:45,1,1\n", 3,
     "TIMESTAMP"),
])
def test_malformed_traces_name_the_file_the_row_and_the_column(tmp_path, text, row, column):
    path = _write(tmp_path, text)
    with pytest.raises(ValueError, match=rf"trace '{re.escape(path)}', row {row}(, column '{column}'|: column "
                                         rf"'{column}' is missing)"):
        read_trace(path)


@pytest.mark.parametrize("text, match", [("", r"row 1: the file is empty"),
                                         (f"{PROJECT_HEADER}\n", r"row 2: the file has no request rows")])
def test_empty_traces_are_refused(tmp_path, text, match):
    with pytest.raises(ValueError, match=match):
        read_trace(_write(tmp_path, text))


def test_a_missing_file_is_named(tmp_path):
    path = str(tmp_path / "absent.csv")
    with pytest.raises(ValueError, match=rf"trace '{re.escape(path)}': cannot be read"):
        read_trace(path)


def test_a_rewritten_file_is_read_again(tmp_path):
    path = _write(tmp_path, f"{PROJECT_HEADER}\n0,10,10\n")
    assert read_trace(path).num_requests == 1
    _write(tmp_path, f"{PROJECT_HEADER}\n0,10,10\n1,20,20\n2,30,30\n")
    assert read_trace(path).num_requests == 3
