"""Fixtures: the same small pipeline run twice on one seed, once by the command line and once from
Python, in a temporary folder. Sizes are tiny (a 300-user world, a one-layer model with a few
steps) so that the whole suite runs in seconds; the tests compare the two runs, they do not judge
the models. SERENDIP_BIN names the command (default: build/serendip of this repository), and
SERENDIP_LIB the library as the package documents it."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

import serendip

REPO = Path(__file__).resolve().parents[2]
BIN = os.environ.get("SERENDIP_BIN", str(REPO / "build" / "serendip"))

# One configuration, as command-line flags and as Python options (the same values).
WORLD = {"users": 300, "items": 200, "topics": 4, "subtopics": 3, "seed": 5}
CLUSTER = {"top": 3, "clusters": 12}
TRAIN = {"dim": 16, "layers": 1, "heads": 2, "kv_heads": 1, "hidden": 32, "vocab": 300, "pretrain_steps": 5,
         "novelty_steps": 5, "align_steps": 5, "batch": 4, "seq_len": 64}
PLAN = {"n": 4, "constrained": True, "seed": 3}
EVAL = {"bootstrap": 20}


def flags(options: dict) -> list:
    out = []
    for k, v in options.items():
        name = "--" + k.replace("_", "-")
        if v is True:
            out.append(name)
        else:
            out += [name, str(v)]
    return out


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Runs the command; returns the completed process (stdout as text)."""
    r = subprocess.run([BIN, *args], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError("%s failed (%d): %s" % (" ".join(args), r.returncode, r.stderr))
    return r


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    """(cli_ws, py_ws, results, progress_events): both pipelines, done once per session."""
    assert os.access(BIN, os.X_OK), "no command at %s (make, or set SERENDIP_BIN)" % BIN
    root = tmp_path_factory.mktemp("pipelines")
    c, p = str(root / "cli"), str(root / "py")
    cli("world", "--ws", c, *flags(WORLD))
    cli("split", "--ws", c)
    cli("cluster", "--ws", c, *flags(CLUSTER))
    cli("journeys", "--ws", c)
    cli("train", "--ws", c, *flags(TRAIN))
    cli("plan", "--ws", c, *flags(PLAN))
    cli("eval", "--ws", c, *flags(EVAL))

    events = []
    ws = serendip.Workspace(p)
    res = {}
    rec = lambda label, done, total: events.append((label, done, total))
    res["world"] = ws.world(progress=rec, **WORLD)
    res["split"] = ws.split()
    res["cluster"] = ws.cluster(**CLUSTER)
    res["journeys"] = ws.journeys()
    res["train"] = ws.train(progress=rec, **TRAIN)
    res["plan"] = ws.plan(**PLAN)
    res["eval"] = ws.eval(**EVAL)
    ws.close()
    return c, p, res, events
