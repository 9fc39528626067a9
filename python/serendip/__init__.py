"""serendip: LLM-powered interest exploration for recommender systems, from Python.

A typed binding (ctypes) over libserendip's public C API (include/serendip/serendip.h):

    import serendip
    ws = serendip.Workspace("ws-demo")
    ws.world(seed=1); ws.split(); ws.cluster(); ws.journeys(); ws.train(); ws.plan(n=16); ws.eval()
    answer = ws.explore(user=1, n=5)      # ExploreAnswer (dataclasses)
    # a string-id log (ws.ingest(ratings="log.csv", user_col=..., ...)): raw ids as ingested
    #   ws.explore(user="u_17", k=5).user_raw_id; ws.explore(items=["i1", "i2"]).novel[0].items[0].raw_id
    ws.metrics()                          # DataFrame with pandas, else a list of dicts

Every stage is the command line's (same library calls, same files for the same options). Errors
raise serendip.Error subclasses carrying the C message. The shared library is found through
$SERENDIP_LIB, inside the package, or the system loader (see serendip._lib and docs/api.md).
"""
from __future__ import annotations

import inspect
from typing import Optional

from . import _lib
from ._lib import LibraryNotFound
from .errors import DataError, Error, FormatError, IoError, StateError, UsageError
from .model import Model, Sample
from .progress import TextBar
from .workspace import (STAGES, ClusterRef, ExploreAnswer, Item, NovelCluster, StageResult, Workspace)

__version__ = "1.1.0"

__all__ = ["Workspace", "Model", "StageResult", "ExploreAnswer", "NovelCluster", "ClusterRef", "Item", "Sample",
           "Error", "IoError", "DataError", "FormatError", "UsageError", "StateError", "LibraryNotFound", "TextBar",
           "STAGES", "stage_help", "live_handles", "library_version"]


def stage_help(stage: str) -> str:
    """The options of a stage, one per line with its type, meaning and default (the command's --help)."""
    s = _lib.lib().serendip_stage_help(stage.encode())
    if s is None:
        raise UsageError("unknown stage %r (%s)" % (stage, ", ".join(STAGES)), 4)
    return s.decode()


def live_handles() -> int:
    """C handles (workspaces, explorers, answers, models, embeddings) open in this process."""
    return int(_lib.lib().serendip_live_handles())


def library_version() -> str:
    """The loaded libserendip's version, "MAJOR.MINOR.PATCH"."""
    return _lib.lib().serendip_version(None, None).decode()


def _attach_stage_help() -> None:
    """Appends each stage's option list (from the library, when it loads) to the stage method's
    docstring, so that help(serendip.Workspace) reads like `serendip <stage> --help`."""
    try:
        for st in STAGES:
            fn = getattr(Workspace, st)
            lines = []
            for line in stage_help(st).splitlines():  # Python spells the options with "_"
                if line.startswith("  "):
                    name, rest = line[2:].split(" ", 1)
                    line = "  " + name.replace("-", "_") + " " + rest
                lines.append(line)
            fn.__doc__ = inspect.cleandoc(fn.__doc__ or "") + "\n\n" + "\n".join(lines)
    except (LibraryNotFound, Error, OSError):
        pass


_attach_stage_help()
