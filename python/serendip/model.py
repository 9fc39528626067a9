"""Language models (GGUF, llama architecture): sampling and scoring through libserendip's batched
inference engine, as ``serendip lm generate`` and ``serendip lm score``."""
from __future__ import annotations

import json
import os
from ctypes import byref, c_char_p, c_double, c_void_p
from dataclasses import dataclass
from typing import List, Sequence, Union

from . import _lib
from .errors import check
from .workspace import _Handle


@dataclass(frozen=True)
class Sample:
    """One sampled continuation: its text, token ids, whether the end token stopped it, and its
    log-probability (natural log, temperature 1, end token included)."""
    text: str
    ids: List[int]
    stopped: bool
    logprob: float


class Model:
    """A GGUF model: serendip's own (Workspace.model("novelty")) or a published Llama-family file.

    ``generate(prompt, n=...)`` samples continuations; ``score(prompt, continuations)`` gives their
    log-probabilities. Prompts parse special tokens such as ``<|ctx|>``. Thread-safe: any number of
    threads may call one model at once. close() (or ``with``) releases it at once.
    """

    def __init__(self, path: Union[str, os.PathLike]):
        self.path = os.fspath(path)
        out, err = c_void_p(), _lib.ErrorStruct()
        check(_lib.lib().serendip_model_open(byref(out), self.path.encode(), byref(err)), err)
        self._h = _Handle(out.value, "serendip_model_free")

    def close(self) -> None:
        """Frees the model. Idempotent."""
        self._h.close()

    def __enter__(self) -> "Model":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return "Model(%r)" % self.path

    def generate(self, prompt: str, n: int = 1, *, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                 seed: int = 1, max_new: int = 16) -> List[Sample]:
        """n samples of up to max_new tokens after prompt (temperature 0: greedy; top_k 0 and
        top_p 1: off). The same seed gives the same samples as ``serendip lm generate --seed``."""
        out, err = c_void_p(), _lib.ErrorStruct()
        rc = _lib.lib().serendip_model_generate(self._h.ptr, prompt.encode(), n, temperature, top_k, top_p, seed,
                                                max_new, byref(out), byref(err))
        text = _lib.take_string(out.value)
        check(rc, err)
        return [Sample(s["text"], s["ids"], s["stopped"], s["logprob"]) for s in json.loads(text)]

    def score(self, prompt: str, continuations: Sequence[str]) -> List[float]:
        """Log-probability (natural log) of each continuation (plain text) after prompt."""
        conts = [c.encode() for c in continuations]
        arr = (c_char_p * max(1, len(conts)))(*conts)
        out = (c_double * max(1, len(conts)))()
        err = _lib.ErrorStruct()
        check(_lib.lib().serendip_model_score(self._h.ptr, prompt.encode(), arr, len(conts), out, byref(err)), err)
        return list(out[:len(conts)])
