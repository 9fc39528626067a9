"""The workspace: a folder that every pipeline stage reads and writes, and the explore answer."""
from __future__ import annotations

import ctypes
import json
import os
import threading
import time
from ctypes import POINTER, byref, c_char_p, c_int, c_int32, c_int64, c_size_t, c_void_p
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from . import _lib
from .errors import UsageError, check
from .progress import Progress, make_callback

STAGES = ("world", "ingest", "split", "cluster", "journeys", "train", "plan", "eval", "report")


class _Handle:
    """An owned C handle freed exactly once (close(), the context manager, or garbage collection)."""

    def __init__(self, ptr: int, free_name: str):
        self._ptr: Optional[int] = ptr
        self._free = getattr(_lib.lib(), free_name)

    @property
    def ptr(self) -> int:
        if not self._ptr:
            raise UsageError("the handle is closed", 4)
        return self._ptr

    def close(self) -> None:
        p, self._ptr = self._ptr, None
        if p:
            self._free(p)

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


# ---------------------------------------------------------------------------- result objects

@dataclass(frozen=True)
class StageResult:
    """What a stage returns: its name, the workspace, the report (the command's ``--json`` summary)
    and the wall time. ``result["key"]`` reads the report."""
    stage: str
    workspace: str
    report: Dict[str, Any]
    seconds: float

    def __getitem__(self, key: str) -> Any:
        return self.report[key]

    def __repr__(self) -> str:
        keys = ", ".join("%s=%r" % (k, v) for k, v in list(self.report.items())[:6] if not isinstance(v, (dict, list)))
        return "StageResult(stage=%r, %s, seconds=%.2f)" % (self.stage, keys, self.seconds)


@dataclass(frozen=True)
class ClusterRef:
    """A context cluster: level-2 id and its keyword description."""
    id: int
    description: str


@dataclass(frozen=True)
class Item:
    """An unseen item of a served cluster: id, title, score (retrieval score or event count).

    id: the raw item id on a dataset with integer ids; on one with string ids, the internal number
    (accepted back by ``explore(history=...)`` like the string). raw_id: the string raw id as
    ingested on a string-id dataset, else None."""
    id: int
    title: str
    score: float
    raw_id: Optional[str] = None


@dataclass(frozen=True)
class NovelCluster:
    """A cluster served by the explore answer, best first.

    score: the alignment score (0..9) the table holds, None for a popularity fallback.
    logprob: the novelty model's log-probability of the description (nats), None for a fallback.
    fallback: True when the cluster is not a plan of the models for this context.
    """
    id: int
    description: str
    score: Optional[float]
    logprob: Optional[float]
    fallback: bool
    items: List[Item] = field(default_factory=list)


@dataclass(frozen=True)
class ExploreAnswer:
    """The explore answer (docs/serving.md, "The explore answer"): the same fields and values as
    ``serendip explore --json`` and ``GET /v1/explore``; ``json`` is the C library's text."""
    user: Optional[int]
    unknown_items: int
    table_version: int
    k: int
    context: List[ClusterRef]
    context_complete: bool
    ranker: str
    novel: List[NovelCluster]
    json: str = field(repr=False)
    user_raw_id: Optional[str] = None  # the user's string raw id (string-id datasets), else None

    @classmethod
    def from_json(cls, text: str) -> "ExploreAnswer":
        d = json.loads(text)
        return cls(user=d["user"], unknown_items=d["unknown_items"], table_version=d["table_version"], k=d["k"],
                   context=[ClusterRef(c["id"], c["description"]) for c in d["context"]],
                   context_complete=d["context_complete"], ranker=d["ranker"],
                   novel=[NovelCluster(c["id"], c["description"], c["score"], c["logprob"], c["fallback"],
                                       [Item(i["id"], i["title"], i["score"], i.get("raw_id")) for i in c["items"]])
                          for c in d["novel"]],
                   json=text, user_raw_id=d.get("user_raw_id"))


def _frame(rows: List[Dict[str, Any]], as_frame: Optional[bool]):
    """rows as a pandas DataFrame when asked (as_frame True) or when pandas is installed (None)."""
    if as_frame is False:
        return rows
    try:
        import pandas  # optional
    except ImportError:
        if as_frame:
            raise
        return rows
    return pandas.DataFrame(rows)


def _option_strings(options: Mapping[str, Any]) -> List[bytes]:
    out = []
    for k, v in options.items():
        if v is None:
            continue
        if isinstance(v, bool):
            v = "1" if v else "0"
        elif isinstance(v, (list, tuple)):
            v = ",".join(str(x) for x in v)
        out.append(("%s=%s" % (k, v)).encode())
    return out


class _Embeddings:
    """Owns a serendip_embeddings handle and exposes its memory through the array interface, so that
    numpy.asarray() makes a read-only view of the mapped file that keeps this object alive."""

    def __init__(self, handle: _Handle):
        self._h = handle
        n, d = c_int64(), c_int()
        ptr = _lib.lib().serendip_embeddings_data(handle.ptr, byref(n), byref(d))
        self.shape = (n.value, d.value)
        self.__array_interface__ = {"shape": self.shape, "typestr": "<f4", "data": (ptr, True), "version": 3}


class _ItemIds:
    def __init__(self, handle: _Handle, n: int):
        self._h = handle
        ptr = _lib.lib().serendip_embeddings_item_ids(handle.ptr)
        self.__array_interface__ = {"shape": (n,), "typestr": "<i8", "data": (ptr, True), "version": 3}


# ---------------------------------------------------------------------------- the workspace

class Workspace:
    """A serendip workspace: one folder that every stage of the pipeline reads and writes.

    ``Workspace(path, create=True)`` opens (and creates) the folder. Each stage method runs the
    stage exactly as ``serendip <stage> --ws PATH --<option> VALUE ...`` does (same library calls,
    same defaults, same files for the same options) and returns a :class:`StageResult`. Options
    are the command's flags with ``_`` for ``-`` (``word_sharing=0.5`` is ``--word-sharing 0.5``);
    ``True``/``False`` for flags without a value; a list for a comma-separated value
    (``n_sweep=[1, 2, 4]``). ``progress=True`` shows a bar; a callable receives
    ``(label, done, total)``. ``serendip.stage_help(stage)`` lists a stage's options.

    Pipeline:  world | ingest -> split -> cluster -> journeys -> train -> plan -> eval [-> report]

    Reading: explore(user=...) -> ExploreAnswer; clusters(); metrics(); embeddings();
    model("novelty" | "align" | "base") -> Model.

    Errors raise serendip.Error subclasses with the C message: UsageError (bad option),
    StateError (an earlier stage missing: the message names it), DataError, FormatError, IoError.
    The workspace holds C handles: close() it (or use ``with``) to release them at once.
    """

    def __init__(self, path: Union[str, os.PathLike], create: bool = True):
        self._path = os.fspath(path)
        out, err = c_void_p(), _lib.ErrorStruct()
        check(_lib.lib().serendip_workspace_open(byref(out), self._path.encode(), int(create), byref(err)), err)
        self._h = _Handle(out.value, "serendip_workspace_free")
        self._explorers: Dict[Tuple[Optional[str], Optional[str]], _Handle] = {}
        self._lock = threading.Lock()

    # -- lifetime
    @property
    def path(self) -> str:
        """The workspace folder."""
        return self._path

    def close(self) -> None:
        """Releases the C handles (the workspace, its open explorers). Idempotent."""
        self._drop_explorers()
        self._h.close()

    def __enter__(self) -> "Workspace":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return "Workspace(%r)" % self._path

    def _drop_explorers(self) -> None:
        with self._lock:
            for h in self._explorers.values():
                h.close()
            self._explorers.clear()

    # -- stages
    def run(self, stage: str, progress: Progress = None, **options: Any) -> StageResult:
        """Runs pipeline stage ``stage`` (one of STAGES) with the command's options; see the
        stage methods. Raises UsageError for an unknown stage or option."""
        L = _lib.lib()
        self._drop_explorers()  # the stage may rewrite what they mapped
        opts = _option_strings(options)
        arr = (c_char_p * (len(opts) + 1))(*opts, None)
        cb = make_callback(progress)
        raised: List[BaseException] = []

        def relay(_user, label, done, total):
            try:
                cb(label.decode(), done, total)
            except BaseException as e:  # cannot cross the C frames: re-raised after the stage
                if not raised:
                    raised.append(e)

        c_cb = _lib.PROGRESS_FN(relay) if cb else _lib.PROGRESS_FN()
        report, err = c_void_p(), _lib.ErrorStruct()
        t0 = time.monotonic()
        rc = L.serendip_run(self._h.ptr, stage.encode(), arr, c_cb, None, byref(report), byref(err))
        secs = time.monotonic() - t0
        text = _lib.take_string(report.value)
        check(rc, err)
        if raised:
            raise raised[0]
        return StageResult(stage, self._path, json.loads(text) if text else {}, secs)

    def world(self, *, progress: Progress = None, **options: Any) -> StageResult:
        """Generates the embedded synthetic world (dataset.bin, world_truth.bin): ``serendip world``.
        Options: preset, seed, users, items, topics, subtopics, days, explore, sessions, word_sharing."""
        return self.run("world", progress, **options)

    def ingest(self, *, progress: Progress = None, **options: Any) -> StageResult:
        """Reads MovieLens (``movielens=DIR``) or a CSV log (``ratings=FILE``, ``items=FILE``, column
        options) into dataset.bin: ``serendip ingest``."""
        return self.run("ingest", progress, **options)

    def split(self, *, progress: Progress = None, **options: Any) -> StageResult:
        """Temporal split into train / valid / test (split.json): ``serendip split``. Options:
        train_end, valid_end, train_frac, valid_frac, per_user ("last:N"), per_user_valid."""
        return self.run("split", progress, **options)

    def cluster(self, *, progress: Progress = None, **options: Any) -> StageResult:
        """Item embeddings, two-level k-means, descriptions (taxonomy.bin, clusters.tsv):
        ``serendip cluster``. Options: top, clusters, dim, window, iters, seed."""
        return self.run("cluster", progress, **options)

    def journeys(self, *, progress: Progress = None, **options: Any) -> StageResult:
        """Journeys, transitions and collective feedback (journeys.bin, feedback.tsv):
        ``serendip journeys``. Options: k, positive ("rating:4,watch:0.7")."""
        return self.run("journeys", progress, **options)

    def train(self, *, progress: Progress = None, **options: Any) -> StageResult:
        """Corpora, base model, novelty and alignment fine-tunes, retrieval model (models/*.gguf,
        retrieval.bin): ``serendip train``. Options: vocab, dim, layers, heads, kv_heads, hidden,
        seq_len, pretrain_steps, novelty_steps, align_steps, batch, lr, sft_lr, lora, base,
        no_retrieval, baseline, seed, ... (serendip.stage_help("train"))."""
        return self.run("train", progress, **options)

    def plan(self, n: Optional[int] = None, *, progress: Progress = None, **options: Any) -> StageResult:
        """Best-of-n over every context into the explore table (explore.tbl): ``serendip plan``.
        Options: n (default 16), n_sweep, temperature, top_k, top_p, top, constrained, no_align,
        feedback_shrink, generator, out, shard, seed."""
        return self.run("plan", progress, n=n, **options)

    def eval(self, *, progress: Progress = None, **options: Any) -> StageResult:
        """Every arm on the test window, metrics with 95% bootstrap intervals (metrics.json):
        ``serendip eval``. Options: serve, bootstrap, seed, k, depth, min_users, shrink, positive.
        The report is metrics.json; metrics() reads it as a table."""
        return self.run("eval", progress, **options)

    def report(self, *, progress: Progress = None, **options: Any) -> StageResult:
        """report.html from metrics.json (evaluating first when absent): ``serendip report``."""
        return self.run("report", progress, **options)

    # -- reading
    def _explorer(self, table: Optional[str], positive: Optional[str]) -> _Handle:
        key = (table, positive)
        with self._lock:
            h = self._explorers.get(key)
            if h is None:
                out, err = c_void_p(), _lib.ErrorStruct()
                check(_lib.lib().serendip_explorer_open(byref(out), self._path.encode(),
                                                        table.encode() if table else None,
                                                        positive.encode() if positive else None, byref(err)), err)
                h = self._explorers[key] = _Handle(out.value, "serendip_explorer_free")
            return h

    def explore(self, user: Union[int, str, None] = None, *, history: Optional[Sequence[Union[int, str]]] = None,
                items: Optional[Sequence[Union[int, str]]] = None, context: Optional[Sequence[int]] = None,
                n: int = 5, k: int = 5, table: Optional[str] = None, positive: Optional[str] = None) -> ExploreAnswer:
        """The explore answer, as ``serendip explore --json`` and ``GET /v1/explore`` give it.

        Give exactly one of: ``user`` (a raw user id: its context is its last K distinct positive
        clusters), ``history`` or its alias ``items`` (raw item ids, oldest first, each taken as a
        positive) or ``context`` (K cluster ids, most recent last). ``n``: novel clusters to answer
        (1..64); ``k``: unseen items per cluster (0..200); ``table``: another explore table file;
        ``positive``: another positive rule ("rating:X,watch:Y").

        Raw ids may be given as ``str``, as typed or as ingested: on a dataset with string ids
        ("u_17", "B000FA64PK") the string (or the internal number the answer shows in ``user`` /
        ``Item.id``), on one with integer ids the decimal text. ``int`` ids are passed as they are.
        The library resolves the text (serendip_explorer_user / _items, the rule the command and the
        server use); the answer then carries ``user_raw_id`` and ``Item.raw_id`` on string-id datasets.

        Raises DataError for an unknown user, UsageError for a bad query (also a text id that is not
        an integer on an integer-id dataset), StateError when the workspace has no plan yet. An
        unknown item is not an error: it is counted in ``unknown_items``. Thread-safe once the
        workspace's explorer is open.
        """
        if history is not None and items is not None:
            raise UsageError("explore: give history or items, not both", 4)
        if items is not None:
            history = items
        if (user is not None) + (history is not None) + (context is not None) != 1:
            raise UsageError("explore: give exactly one of user, history (items) and context", 4)
        if isinstance(history, (str, bytes)):
            raise UsageError("explore: history must be a sequence of ids, not one string", 4)
        h = self._explorer(table, positive)
        L = _lib.lib()
        q = _lib.QueryStruct(clusters=n, items_per_cluster=k)
        keep = None
        if user is not None:
            q.kind = 0
            if isinstance(user, str):
                uid, err = c_int64(), _lib.ErrorStruct()
                check(L.serendip_explorer_user(h.ptr, user.encode(), byref(uid), byref(err)), err)
                q.user = uid.value
            else:
                q.user = int(user)
        elif history is not None:
            ids = [x if isinstance(x, str) else int(x) for x in history]
            keep = (c_int64 * max(1, len(ids)))(*[0 if isinstance(x, str) else x for x in ids])
            texts = [(i, x.encode()) for i, x in enumerate(ids) if isinstance(x, str)]
            if texts:
                raw = (c_char_p * len(texts))(*[t for _, t in texts])
                out, err = (c_int64 * len(texts))(), _lib.ErrorStruct()
                check(L.serendip_explorer_items(h.ptr, raw, len(texts), out, byref(err)), err)
                for j, (i, _) in enumerate(texts):
                    keep[i] = out[j]
            q.kind, q.items, q.n = 1, ctypes.cast(keep, POINTER(c_int64)), len(ids)
        else:
            keep = (c_int32 * max(1, len(context)))(*context)
            q.kind, q.context, q.n = 2, ctypes.cast(keep, POINTER(c_int32)), len(context)
        out, err = c_void_p(), _lib.ErrorStruct()
        check(L.serendip_explore(h.ptr, None, 1, byref(q), byref(out), byref(err)), err)
        try:
            ln = c_size_t()
            ptr = L.serendip_answer_json(out.value, byref(ln))
            text = ctypes.string_at(ptr, ln.value).decode("utf-8", errors="replace")
        finally:
            L.serendip_answer_free(out.value)
        return ExploreAnswer.from_json(text)

    def _json_call(self, fname: str) -> Any:
        out, err = c_void_p(), _lib.ErrorStruct()
        rc = getattr(_lib.lib(), fname)(self._h.ptr, byref(out), byref(err))
        text = _lib.take_string(out.value)
        check(rc, err)
        return json.loads(text)

    def clusters(self, as_frame: Optional[bool] = None):
        """The level-2 clusters (taxonomy.bin): id, parent, size, description, parent_description;
        a pandas DataFrame when pandas is installed (as_frame=None) or asked (True), else a list of
        dicts. StateError before the cluster stage."""
        return _frame(self._json_call("serendip_clusters_json"), as_frame)

    def metrics_json(self) -> Dict[str, Any]:
        """metrics.json as written by the eval stage (every arm, metric, interval, by support)."""
        return self._json_call("serendip_metrics_json")

    def metrics(self, as_frame: Optional[bool] = None):
        """The table of arms x metrics of the last eval: one row per arm with "arm", "kind",
        "fallback_share" and each metric's value (plus "<metric>_lo" / "<metric>_hi", the 95%
        bootstrap interval); a DataFrame when pandas is there (as_frame=None) or asked."""
        m = self.metrics_json()
        rows = []
        for a in m["arms"]:
            row: Dict[str, Any] = {"arm": a["name"], "kind": a["kind"], "fallback_share": a.get("fallback_share")}
            for key, v in a["metrics"].items():
                row[key] = v["value"]
                row[key + "_lo"], row[key + "_hi"] = v.get("lo"), v.get("hi")
            rows.append(row)
        return _frame(rows, as_frame)

    def embeddings(self):
        """The items' embeddings of the retrieval model (retrieval.bin) as a read-only
        numpy.ndarray of shape (n_items, dim), float32, row i = the i-th item of the dataset
        (item_ids()[i]). No copy: the array is a view of the memory-mapped file and keeps it
        mapped while it lives. StateError before the train stage."""
        import numpy
        return numpy.asarray(_Embeddings(self._embeddings_handle()))

    def item_ids(self):
        """The raw item id of each row of embeddings() (numpy int64, read-only, no copy)."""
        import numpy
        h = self._embeddings_handle()
        n = c_int64()
        _lib.lib().serendip_embeddings_data(h.ptr, byref(n), None)
        return numpy.asarray(_ItemIds(h, n.value))

    def _embeddings_handle(self) -> _Handle:
        out, err = c_void_p(), _lib.ErrorStruct()
        check(_lib.lib().serendip_embeddings_open(byref(out), self._h.ptr, byref(err)), err)
        return _Handle(out.value, "serendip_embeddings_free")

    def model(self, name: str = "novelty"):
        """The workspace's model models/<name>.gguf ("base", "novelty", "align", "single") as a Model."""
        from .model import Model
        return Model(os.path.join(self._path, "models", name + ".gguf"))
