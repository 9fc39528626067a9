"""String raw ids through the public API (1.1): a CSV log with string user and item ids, written
here from a tiny synthetic world (its dataset.bin read as docs/formats-dataset.md specifies) and
ingested with ``ws.ingest(...)`` as tests/test_ingest_strings.sh does, then a tiny pipeline; the
answers for ``ws.explore(user="u_...")`` and ``ws.explore(items=[...])`` equal the command's
``serendip explore --json`` bytes and expose the raw ids."""
from __future__ import annotations

import json
import struct

import pytest

import serendip
from conftest import CLUSTER, PLAN, TRAIN, WORLD, cli


def uname(raw: int) -> str:
    return "u_%d" % raw


def iname(raw: int) -> str:
    return "i_%04d" % (raw * 7)


def write_string_log(world_ws: str, out_dir) -> tuple:
    """ratings.csv / items.csv with string ids from world_ws/dataset.bin (format version 1);
    returns (paths, user raw ids, item raw ids) in dense order."""
    b = open(world_ws + "/dataset.bin", "rb").read()
    assert b[:6] == b"SDDATA" and struct.unpack_from("<I", b, 8)[0] == 1
    n_users, n_items, n_events = struct.unpack_from("<qqq", b, 24)
    sec = [struct.unpack_from("<QQ", b, 80 + 16 * s) for s in range(10)]
    uids = struct.unpack_from("<%dq" % n_users, b, sec[2][0])
    iids = struct.unpack_from("<%dq" % n_items, b, sec[3][0])
    meta = b[sec[4][0]:sec[4][0] + n_items]
    toff = struct.unpack_from("<%dQ" % n_items, b, sec[5][0])
    goff = struct.unpack_from("<%dQ" % n_items, b, sec[6][0])
    pool = b[sec[7][0]:sec[7][0] + sec[7][1]]
    text = lambda o: pool[o:pool.index(b"\0", o)].decode()
    ratings, items = out_dir / "log.csv", out_dir / "items.csv"
    with open(ratings, "w") as g:
        g.write("user,item,rating,when\n")
        for k in range(n_events):
            u, i, ts, r, _ = struct.unpack_from("<iiqff", b, sec[0][0] + 24 * k)
            g.write('"%s",%s,%g,%d\n' % (uname(uids[u]), iname(iids[i]), r, ts))
    with open(items, "w") as g:
        g.write("item,title,tags\n")
        for i in range(n_items):
            if meta[i]:
                g.write('%s,"%s",%s\n' % (iname(iids[i]), text(toff[i]), text(goff[i])))
    return str(ratings), str(items), [uname(x) for x in uids], [iname(x) for x in iids]


@pytest.fixture(scope="module")
def string_ws(tmp_path_factory):
    """(workspace path, user raw ids, item raw ids): the string-id log through plan."""
    root = tmp_path_factory.mktemp("rawids")
    world = serendip.Workspace(str(root / "world"))
    world.world(**WORLD)
    world.close()
    ratings, items, users, item_ids = write_string_log(str(root / "world"), root)
    path = str(root / "ws")
    ws = serendip.Workspace(path)
    rep = ws.ingest(ratings=ratings, items=items, user_col="user", item_col="item", ts_col="when",
                    rating_col="rating", title_col="title", tags_col="tags")
    assert rep["user_ids"] == "string" and rep["item_ids"] == "string", rep.report
    ws.split()
    ws.cluster(**CLUSTER)
    ws.journeys()
    ws.train(**TRAIN)
    ws.plan(**PLAN)
    ws.close()
    return path, users, item_ids


def test_user_by_raw_id_equals_command(string_ws):
    path, users, item_ids = string_ws
    ws = serendip.Workspace(path, create=False)
    for raw in (users[0], users[16], users[-1]):
        a = ws.explore(user=raw, k=5)
        want = cli("explore", "--ws", path, "--json", "--user", raw, "--n", "5", "--items", "5").stdout
        assert a.json == want
        assert a.user_raw_id == raw
        assert isinstance(a.user, int) and a.user == json.loads(want)["user"]
        listed = [x for c in a.novel for x in c.items]
        assert listed and all(x.raw_id in item_ids for x in listed)
        # the internal number shown in "user" names the same user
        assert ws.explore(user=a.user, k=5).json == a.json
        assert ws.explore(user=str(a.user), k=5).json == a.json
    with pytest.raises(serendip.DataError, match='unknown user "nobody-here"'):
        ws.explore(user="nobody-here")
    ws.close()
    assert serendip.live_handles() == 0


def test_items_by_raw_id_equals_command(string_ws):
    path, _, item_ids = string_ws
    ws = serendip.Workspace(path, create=False)
    hist = [item_ids[3], item_ids[10], "no-such-item"]
    a = ws.explore(items=hist, k=3)
    want = cli("explore", "--ws", path, "--json", "--history", ",".join(hist), "--n", "5", "--items", "3").stdout
    assert a.json == want
    assert a.unknown_items == 1 and a.user is None and a.user_raw_id is None
    assert ws.explore(history=hist, k=3).json == a.json  # items= is history='s alias
    assert all(x.raw_id in item_ids for c in a.novel for x in c.items)
    # an Item's id (the internal number) is accepted back like its raw id
    first = a.novel[0].items[0]
    assert ws.explore(items=[first.id], k=3).json == ws.explore(items=[first.raw_id], k=3).json
    with pytest.raises(serendip.UsageError):
        ws.explore(items=hist, history=hist)
    ws.close()


def test_integer_dataset_unchanged(runs):
    _, p, _, _ = runs
    ws = serendip.Workspace(p, create=False)
    a = ws.explore(user=17, k=3)
    assert ws.explore(user="17", k=3).json == a.json
    assert a.user_raw_id is None and all(x.raw_id is None for c in a.novel for x in c.items)
    assert ws.explore(items=["5", 7], k=3).json == ws.explore(history=[5, 7], k=3).json
    with pytest.raises(serendip.UsageError, match='user "u_17" is not an integer id'):
        ws.explore(user="u_17")
    with pytest.raises(serendip.UsageError, match='item "i_5" is not an integer id'):
        ws.explore(items=["i_5"])
    with pytest.raises(serendip.DataError, match="unknown user 987654"):
        ws.explore(user="987654")
    ws.close()
