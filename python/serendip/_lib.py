"""Loading libserendip.so and declaring the public C API (include/serendip/serendip.h) to ctypes.

The library is looked for, in this order:

1. ``$SERENDIP_LIB``: the path of ``libserendip.so`` (or ``libserendip.so.1``), or a folder
   holding it (e.g. the build folder of the repository, ``build/``);
2. beside this file, inside the installed package (a copy placed there before ``pip install``);
3. the system's loader: ``libserendip.so.1`` in ``LD_LIBRARY_PATH`` or a folder known to
   ``ldconfig`` (``make install PREFIX=/usr/local`` then ``ldconfig``).

The library is loaded on first use, so ``import serendip`` and ``help(serendip)`` work without it.
"""
from __future__ import annotations

import ctypes
import os
import threading
from ctypes import (CFUNCTYPE, POINTER, Structure, c_char, c_char_p, c_double, c_float, c_int, c_int32, c_int64,
                    c_size_t, c_uint64, c_void_p)
from typing import Optional

SONAME = "libserendip.so.1"  # SERENDIP_API_VERSION_MAJOR = 1


class ErrorStruct(Structure):
    """serendip_error: a status code and a message naming the file, line and field at fault."""
    _fields_ = [("code", c_int), ("message", c_char * 1024)]


class QueryStruct(Structure):
    """serendip_query (serendip.h)."""
    _fields_ = [("kind", c_int), ("user", c_int64), ("items", POINTER(c_int64)), ("context", POINTER(c_int32)),
                ("n", c_int), ("clusters", c_int), ("items_per_cluster", c_int)]


PROGRESS_FN = CFUNCTYPE(None, c_void_p, c_char_p, c_int64, c_int64)

_lock = threading.Lock()
_lib: Optional[ctypes.CDLL] = None


class LibraryNotFound(ImportError):
    """libserendip.so could not be found or loaded (see the module docstring for where it is looked for)."""


def _candidates() -> list:
    out = []
    env = os.environ.get("SERENDIP_LIB")
    if env:
        if os.path.isdir(env):
            out += [os.path.join(env, SONAME), os.path.join(env, "libserendip.so")]
        else:
            out.append(env)
    here = os.path.dirname(os.path.abspath(__file__))
    out += [os.path.join(here, SONAME), os.path.join(here, "libserendip.so")]
    out.append(SONAME)  # the system loader
    return out


def _declare(lib: ctypes.CDLL) -> None:
    E = POINTER(ErrorStruct)
    sigs = {
        "serendip_status_name": (c_char_p, [c_int]),
        "serendip_version": (c_char_p, [POINTER(c_int), POINTER(c_int)]),
        "serendip_free": (None, [c_void_p]),
        "serendip_live_handles": (c_int64, []),
        "serendip_workspace_open": (c_int, [POINTER(c_void_p), c_char_p, c_int, E]),
        "serendip_workspace_free": (None, [c_void_p]),
        "serendip_workspace_path": (c_char_p, [c_void_p]),
        "serendip_run": (c_int, [c_void_p, c_char_p, POINTER(c_char_p), PROGRESS_FN, c_void_p, POINTER(c_void_p), E]),
        "serendip_stage_help": (c_char_p, [c_char_p]),
        "serendip_clusters_json": (c_int, [c_void_p, POINTER(c_void_p), E]),
        "serendip_metrics_json": (c_int, [c_void_p, POINTER(c_void_p), E]),
        "serendip_embeddings_open": (c_int, [POINTER(c_void_p), c_void_p, E]),
        "serendip_embeddings_free": (None, [c_void_p]),
        "serendip_embeddings_data": (c_void_p, [c_void_p, POINTER(c_int64), POINTER(c_int)]),
        "serendip_embeddings_item_ids": (c_void_p, [c_void_p]),
        "serendip_explorer_open": (c_int, [POINTER(c_void_p), c_char_p, c_char_p, c_char_p, E]),
        "serendip_explorer_free": (None, [c_void_p]),
        "serendip_explorer_k": (c_int, [c_void_p]),
        "serendip_explorer_user": (c_int, [c_void_p, c_char_p, POINTER(c_int64), E]),  # API 1.1
        "serendip_explorer_items": (c_int, [c_void_p, POINTER(c_char_p), c_int, POINTER(c_int64), E]),  # API 1.1
        "serendip_explore": (c_int, [c_void_p, c_void_p, c_int64, POINTER(QueryStruct), POINTER(c_void_p), E]),
        "serendip_answer_json": (c_void_p, [c_void_p, POINTER(c_size_t)]),
        "serendip_answer_counts": (None, [c_void_p, POINTER(c_int), POINTER(c_int)]),
        "serendip_answer_free": (None, [c_void_p]),
        "serendip_model_open": (c_int, [POINTER(c_void_p), c_char_p, E]),
        "serendip_model_free": (None, [c_void_p]),
        "serendip_model_generate": (c_int, [c_void_p, c_char_p, c_int, c_float, c_int, c_float, c_uint64, c_int,
                                            POINTER(c_void_p), E]),
        "serendip_model_score": (c_int, [c_void_p, c_char_p, POINTER(c_char_p), c_int, POINTER(c_double), E]),
    }
    for name, (res, args) in sigs.items():
        f = getattr(lib, name)
        f.restype = res
        f.argtypes = args


def lib() -> ctypes.CDLL:
    """The loaded library (loaded and declared on the first call; thread-safe)."""
    global _lib
    with _lock:
        if _lib is not None:
            return _lib
        # OpenMP threads spin while waiting unless told otherwise, which starves the other threads
        # of a shared machine; libgomp reads this once, when it is loaded (the command re-executes
        # itself for the same reason, cmd/serendip.c).
        os.environ.setdefault("OMP_WAIT_POLICY", "passive")
        tried = []
        for path in _candidates():
            if os.path.sep in path and not os.path.exists(path):
                tried.append(path + " (absent)")
                continue
            try:
                cand = ctypes.CDLL(path)
            except OSError as e:
                tried.append("%s (%s)" % (path, e))
                continue
            _declare(cand)
            _lib = cand
            return cand
        raise LibraryNotFound("libserendip.so not found; build it with `make` in the serendip repository and set "
                              "SERENDIP_LIB=/path/to/build (or install it: `make install PREFIX=...` and ldconfig). "
                              "Tried: " + "; ".join(tried))


def take_string(ptr: Optional[int]) -> str:
    """The UTF-8 text of a heap string returned by the API, freed afterwards ('' for NULL)."""
    if not ptr:
        return ""
    try:
        return ctypes.string_at(ptr).decode("utf-8", errors="replace")
    finally:
        lib().serendip_free(ptr)
