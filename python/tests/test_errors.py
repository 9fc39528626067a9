"""Every error class is raised on the matching bad input, with the C message (file, line, field),
and no error path leaks a C handle."""
from __future__ import annotations

import ctypes.util
import gc
import os
import subprocess
import sys

import pytest

import serendip
from conftest import REPO


def test_usage_error_unknown_option(tmp_path):
    ws = serendip.Workspace(tmp_path / "w")
    with pytest.raises(serendip.UsageError) as e:
        ws.cluster(no_such_option=1)
    assert "unknown option 'no-such-option'" in e.value.message and "clusters" in e.value.message
    assert e.value.code == 4 and isinstance(e.value, ValueError)
    with pytest.raises(serendip.UsageError, match="clusters must be at least 1"):
        ws.cluster(clusters=0)
    with pytest.raises(serendip.UsageError, match="not an integer"):
        ws.world(users="many")
    with pytest.raises(serendip.UsageError, match="unknown stage"):
        ws.run("nonsense")
    ws.close()


def test_state_error_names_the_stage(tmp_path):
    ws = serendip.Workspace(tmp_path / "w")
    with pytest.raises(serendip.StateError) as e:
        ws.split()  # no dataset yet
    assert e.value.code == 5
    with pytest.raises(serendip.StateError, match="cluster"):
        ws.clusters()
    with pytest.raises(serendip.StateError, match="eval"):
        ws.metrics()
    with pytest.raises(serendip.StateError):
        ws.explore(user=1)
    with pytest.raises(serendip.StateError, match="train"):
        ws.embeddings()
    with pytest.raises(serendip.StateError):
        serendip.Workspace(tmp_path / "absent", create=False)
    ws.close()


def test_data_error_names_file_and_line(tmp_path):
    csv = tmp_path / "log.csv"
    csv.write_text("userId,movieId,rating,timestamp\n1,10,4.0,1000\n2,11,\"4,5\",1001\n")
    ws = serendip.Workspace(tmp_path / "w")
    with pytest.raises(serendip.DataError) as e:
        ws.ingest(ratings=str(csv))
    assert e.value.code == 2 and str(csv) in e.value.message and ":3:" in e.value.message
    assert e.value.file == str(csv) and e.value.line == 3
    ws.close()


def test_data_error_unknown_user(runs):
    _, p, _, _ = runs
    ws = serendip.Workspace(p, create=False)
    with pytest.raises(serendip.DataError, match="unknown user 987654"):
        ws.explore(user=987654)
    with pytest.raises(serendip.UsageError):
        ws.explore(user=1, n=0)
    with pytest.raises(serendip.UsageError):
        ws.explore(context=[0])  # K = 2
    with pytest.raises(serendip.UsageError):
        ws.explore(user=1, history=[1])
    ws.close()


def test_format_error(tmp_path):
    bad = tmp_path / "m.gguf"
    bad.write_bytes(b"not a gguf file at all" * 10)
    with pytest.raises(serendip.FormatError) as e:
        serendip.Model(bad)
    assert e.value.code == 3 and str(bad) in e.value.message
    ws = serendip.Workspace(tmp_path / "w")
    (tmp_path / "w" / "dataset.bin").write_bytes(b"\0" * 256)
    with pytest.raises(serendip.FormatError):
        ws.split()
    ws.close()


def test_io_error(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(serendip.IoError) as e:
        serendip.Workspace(f)
    assert e.value.code == 1 and "not a folder" in e.value.message
    with pytest.raises(serendip.IoError):
        serendip.Model(tmp_path / "no-such.gguf")


def test_errors_share_the_base_class():
    for cls in (serendip.IoError, serendip.DataError, serendip.FormatError, serendip.UsageError, serendip.StateError):
        assert issubclass(cls, serendip.Error)


def test_library_not_found(tmp_path):
    """Without the library, import works and the first use says where it looked."""
    pkg = os.path.dirname(os.path.dirname(serendip.__file__))  # the package as imported here
    env = dict(os.environ, SERENDIP_LIB=str(tmp_path / "nowhere.so"), LD_LIBRARY_PATH="", PYTHONPATH=pkg)
    code = ("import serendip\n"
            "try:\n    serendip.Workspace('x')\nexcept serendip.LibraryNotFound as e:\n"
            "    print('NOTFOUND', 'nowhere.so' in str(e))\n")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=str(tmp_path))
    if ctypes.util.find_library("serendip"):  # installed system-wide: the loader's copy is found instead
        assert r.returncode == 0 and r.stdout == "", (r.stdout, r.stderr)
    else:
        assert r.stdout.strip() == "NOTFOUND True", r.stderr


def test_no_leaked_handles(runs, tmp_path):
    """Every C handle made by a workspace, explorer, answer, model or embeddings view is freed:
    explicitly (close), by garbage collection, and on every error path."""
    _, p, _, _ = runs
    gc.collect()
    base = serendip.live_handles()
    ws = serendip.Workspace(p, create=False)
    assert serendip.live_handles() == base + 1
    ws.explore(user=1)
    assert serendip.live_handles() == base + 2  # the explorer stays open for the next query; answers are freed
    e = ws.embeddings()
    assert serendip.live_handles() == base + 3
    del e
    gc.collect()
    assert serendip.live_handles() == base + 2
    m = ws.model("align")
    m.score("<|ctx|>", ["a"])
    m.close()
    m.close()  # idempotent
    for _ in range(50):  # error paths
        with pytest.raises(serendip.DataError):
            ws.explore(user=987654)
        with pytest.raises(serendip.FormatError):
            serendip.Model(os.path.join(p, "clusters.tsv"))
        with pytest.raises(serendip.UsageError):
            ws.cluster(bogus=1)
    assert serendip.live_handles() == base + 1  # running a stage closed the explorer (its files may change)
    ws.close()
    assert serendip.live_handles() == base
    with serendip.Workspace(p, create=False) as w2:  # the context manager
        w2.explore(history=[1, 2, 3])
        w2.model("base")  # dropped without close: garbage collection frees it
    gc.collect()
    assert serendip.live_handles() == base
