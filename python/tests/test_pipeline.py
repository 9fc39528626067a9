"""The pipeline from Python gives the command line's files, reports and explore answers."""
from __future__ import annotations

import json
import os
import threading

import pytest

import serendip
from conftest import BIN, cli

# Every file the stages write whose bytes depend only on the data and the options.
SAME_BYTES = ["dataset.bin", "world_truth.bin", "split.json", "taxonomy.bin", "clusters.tsv", "journeys.bin",
              "feedback.tsv", "corpus/novelty.jsonl", "corpus/align.jsonl", "corpus/pretrain.txt",
              "models/base.gguf", "models/novelty.gguf", "models/align.gguf", "retrieval.bin", "explore.tbl"]
# Keys of the JSON reports that are wall times or the workspace's own path.
VOLATILE = ("seconds", "per_s", "per_second", "gflops", "workspace", "path", "table", "split", "dataset", "_s")  # gflops: a rate


def strip(x):
    """x without volatile keys (recursively)."""
    if isinstance(x, dict):
        return {k: strip(v) for k, v in x.items() if not any(k.endswith(s) or k == s for s in VOLATILE)}
    if isinstance(x, list):
        return [strip(v) for v in x]
    return x


@pytest.mark.parametrize("rel", SAME_BYTES)
def test_files_byte_identical(runs, rel):
    c, p, _, _ = runs
    a, b = open(os.path.join(c, rel), "rb").read(), open(os.path.join(p, rel), "rb").read()
    assert len(a) > 0 and a == b, rel


def test_metrics_equal(runs):
    c, p, res, _ = runs
    mc = json.load(open(os.path.join(c, "metrics.json")))
    mp = json.load(open(os.path.join(p, "metrics.json")))
    assert strip(mc) == strip(mp)
    assert len(mc["arms"]) >= 8  # the baselines, the oracles and the planned table
    assert strip(res["eval"].report) == strip(mp)  # the stage's report is metrics.json
    ws = serendip.Workspace(p, create=False)
    assert strip(ws.metrics_json()) == strip(mc)
    rows = ws.metrics(as_frame=False)
    assert [r["arm"] for r in rows] == [a["name"] for a in mc["arms"]]
    assert rows[0]["novelty"] == mc["arms"][0]["metrics"]["novelty"]["value"]
    ws.close()


def test_reports_match_command_json(runs):
    c, p, res, _ = runs
    assert strip(res["train"].report) == strip(json.load(open(os.path.join(c, "models", "train.json"))))
    assert strip(res["plan"].report) == strip(json.load(open(os.path.join(c, "plans", "plan-explore.json"))))
    assert all(r["format_compliance"] == 1 for r in res["plan"].report["runs"])  # constrained decoding
    world = json.loads(cli("world", "--ws", c + "-w", "--json", "--users", "300", "--items", "200", "--topics", "4",
                           "--subtopics", "3", "--seed", "5").stdout)
    assert printed_equal(world, res["world"].report)
    cl = json.loads(cli("cluster", "--ws", c, "--json", "--top", "3", "--clusters", "12").stdout)
    assert printed_equal(cl, res["cluster"].report)
    assert res["cluster"]["clusters"] == 12 and res["journeys"]["k"] == 2


def printed_equal(printed: dict, exact: dict) -> bool:
    """The command's --json (numbers printed with %.4f or %.6g) equals the exact report."""
    a, b = strip(printed), strip(exact)
    if a.keys() != b.keys():
        return False
    for k in a:
        x, y = a[k], b[k]
        if isinstance(x, float) or isinstance(y, float):
            if abs(x - y) > 1e-4 * max(1.0, abs(y)):
                return False
        elif x != y:
            return False
    return True


def explore_cli(ws, *args):
    return cli("explore", "--ws", ws, "--json", *args).stdout


def test_explore_equals_command(runs):
    c, p, _, _ = runs
    ws = serendip.Workspace(p, create=False)
    planned = 0
    for user in range(1, 13):
        text = explore_cli(c, "--user", str(user), "--n", "4", "--items", "3")
        a = ws.explore(user=user, n=4, k=3)
        assert a.json == text  # the same bytes
        assert a.user == user and len(a.novel) <= 4 and all(len(x.items) <= 3 for x in a.novel)
        planned += sum(not x.fallback for x in a.novel)
    assert planned > 0  # the constrained plan served planned clusters, not only fallbacks
    hist = [3, 17, 42, 99999]
    a = ws.explore(history=hist, n=3, k=2)
    assert a.json == explore_cli(c, "--history", ",".join(map(str, hist)), "--n", "3", "--items", "2")
    assert a.user is None and a.unknown_items == 1
    a = ws.explore(context=[0, 5], n=2, k=0)
    assert a.json == explore_cli(c, "--clusters", "0,5", "--n", "2", "--items", "0")
    assert [x.id for x in a.context] == [0, 5] and all(x.items == [] for x in a.novel)
    ws.close()


def test_explore_threads(runs):
    """Many threads on one explorer give the sequential answers."""
    _, p, _, _ = runs
    ws = serendip.Workspace(p, create=False)
    want = {u: ws.explore(user=u).json for u in range(1, 41)}
    got, errors = {}, []

    def work(us):
        try:
            for _ in range(5):
                for u in us:
                    got[u] = ws.explore(user=u).json
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    ts = [threading.Thread(target=work, args=(list(range(1 + i, 41, 4)),)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors and got == want
    ws.close()


def test_progress_callback(runs):
    _, _, _, events = runs
    labels = {e[0] for e in events}
    assert len(labels) >= 2, labels  # the world's bar and the training bars
    for label in labels:
        mine = [e for e in events if e[0] == label]
        assert mine[-1][1] == mine[-1][2], mine[-1]  # every bar ends at its total
        assert all(0 <= d <= t or t == 0 for _, d, t in mine)


def test_text_bar(capsys):
    bar = serendip.TextBar()
    bar("train", 5, 10)
    bar("train", 10, 10)
    err = capsys.readouterr().err
    assert "train" in err and "50.0%" in err and "100.0%" in err and err.endswith("\n")


def test_clusters(runs):
    _, p, _, _ = runs
    ws = serendip.Workspace(p, create=False)
    rows = ws.clusters(as_frame=False)
    tsv = open(os.path.join(p, "clusters.tsv")).read().splitlines()[1:]
    assert len(rows) == 12 == len(tsv)
    for r, line in zip(rows, tsv):
        f = line.split("\t")
        assert (str(r["id"]), str(r["parent"]), str(r["size"]), r["description"]) == tuple(f[:4])
    ws.close()


def test_embeddings_zero_copy(runs):
    np = pytest.importorskip("numpy")
    _, p, _, _ = runs
    ws = serendip.Workspace(p, create=False)
    e, ids = ws.embeddings(), ws.item_ids()
    n, dim = e.shape
    assert (n, dim) == (200, 48) and e.dtype == np.float32 and not e.flags.writeable and len(ids) == n
    # the values are the U block of retrieval.bin (docs/serving.md: i64 pop[n] at 128, then U)
    path = os.path.join(p, "retrieval.bin")
    u = np.fromfile(path, dtype="<f4", count=n * dim, offset=128 + 8 * n).reshape(n, dim)
    assert np.array_equal(e, u)
    # no copy: the array's memory lies in a mapping of retrieval.bin
    addr = e.__array_interface__["data"][0]
    maps = [l.split() for l in open("/proc/self/maps") if l.rstrip().endswith("retrieval.bin")]
    assert any(int(m[0].split("-")[0], 16) <= addr < int(m[0].split("-")[1], 16) for m in maps), maps
    ds = open(os.path.join(p, "dataset.bin"), "rb").read()
    assert sorted(ids.tolist()) == sorted(set(ids.tolist()))
    del e, ids
    ws.close()


def test_model_matches_command(runs):
    _, p, _, _ = runs
    path = os.path.join(p, "models", "novelty.gguf")
    out = json.loads(cli("lm", "generate", "--model", path, "--prompt", "<|ctx|>", "--n", "3", "--seed", "7",
                         "--max-new", "6", "--json").stdout)
    with serendip.Model(path) as m:
        got = m.generate("<|ctx|>", n=3, seed=7, max_new=6)
        assert [s.ids for s in got] == [s["ids"] for s in out[0]["samples"]]
        assert [round(s.logprob, 4) for s in got] == [round(s["logprob"], 4) for s in out[0]["samples"]]
        data = os.path.join(p, "score.jsonl")
        with open(data, "w") as f:
            for cont in ("peahu", "zz top"):
                f.write(json.dumps({"prompt": "<|ctx|>", "continuation": cont}) + "\n")
        ref = json.loads(cli("lm", "score", "--model", path, "--data", data, "--json").stdout)
        sc = m.score("<|ctx|>", ["peahu", "zz top"])
        assert [round(x, 4) for x in sc] == [round(r["logprob"], 4) for r in ref]
        assert all(x < 0 for x in sc)


def test_help_reads_like_the_command():
    h = serendip.stage_help("cluster")
    for opt in ("clusters=INT", "top=INT", "dim=INT", "seed=INT"):
        assert opt in h
    assert "clusters=INT" in serendip.Workspace.cluster.__doc__
    assert "pretrain_steps=INT" in serendip.Workspace.train.__doc__
    # every option the command's --help lists is an option of the stage (and the reverse)
    # (one table per stage in the library, stage.h, makes them equal; this guards the process flags)
    for stage in ("world", "ingest", "split", "cluster", "journeys", "train", "plan", "eval", "report"):
        text = cli(stage, "--help").stdout
        flag_lines = text.split("\nflags:\n", 1)[1].splitlines()
        # show: printing only; mpi: a choice of the process (mpirun -n R serendip ... --mpi), not of a library call
        cmd = {l.split()[0][2:] for l in flag_lines if l.startswith("  --")} - {"ws", "json", "help", "show", "mpi"}
        api = {l.split()[0].split("=")[0] for l in serendip.stage_help(stage).splitlines() if l.startswith("  ")}
        assert cmd == api, (stage, cmd ^ api)


def test_frames_when_pandas_is_there(runs, monkeypatch):
    """clusters() and metrics() hand their rows to pandas.DataFrame when pandas imports (a stand-in
    module here: Debian's pandas is not a test dependency), and return the rows otherwise."""
    import sys
    import types
    _, p, _, _ = runs
    fake = types.ModuleType("pandas")
    fake.DataFrame = lambda rows: ("frame", rows)
    monkeypatch.setitem(sys.modules, "pandas", fake)
    ws = serendip.Workspace(p, create=False)
    kind, rows = ws.clusters()
    assert kind == "frame" and rows == ws.clusters(as_frame=False)
    kind, rows = ws.metrics()
    assert kind == "frame" and [r["arm"] for r in rows] == [r["arm"] for r in ws.metrics(as_frame=False)]
    monkeypatch.setitem(sys.modules, "pandas", None)  # import fails
    assert isinstance(ws.clusters(), list)
    with pytest.raises(ImportError):
        ws.clusters(as_frame=True)
    ws.close()


def test_progress_exception_is_raised_after_the_stage(tmp_path):
    ws = serendip.Workspace(tmp_path / "w")

    def boom(label, done, total):
        raise KeyboardInterrupt("stop")

    with pytest.raises(KeyboardInterrupt):
        ws.world(users=100, items=60, topics=2, subtopics=2, progress=boom)
    assert (tmp_path / "w" / "dataset.bin").exists()  # the stage itself ran to the end
    with pytest.raises(TypeError):
        ws.world(users=100, items=60, topics=2, subtopics=2, progress=42)
    ws.close()
