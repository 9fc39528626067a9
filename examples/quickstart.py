"""serendip quick start: from nothing to an explore answer and a metrics table (docs/api.md)."""
import sys
import serendip

ws = serendip.Workspace(sys.argv[1] if len(sys.argv) > 1 else "ws-quick")
tiny = "--tiny" in sys.argv  # a seconds-long run with toy models (the test suite's)
ws.world(seed=1, users=300 if tiny else 2000, items=200 if tiny else 1500)
ws.split()
ws.cluster(clusters=12 if tiny else 40, top=3 if tiny else 8)
ws.journeys()
ws.train(progress=True, **(dict(dim=16, layers=1, heads=2, kv_heads=1, hidden=32, vocab=300, seq_len=128, batch=4,
                                pretrain_steps=5, novelty_steps=5, align_steps=5) if tiny else {}))
ws.plan(n=4 if tiny else 8, constrained=True, progress=True)
ws.eval()
for c in ws.explore(user=1, n=3, k=2).novel:
    print(c.id, c.description, c.score, [i.title for i in c.items])
for m in ws.metrics(as_frame=False):  # ws.metrics() is a DataFrame when pandas is installed
    print("%-20s like_prob %.3f  hit %.3f  coverage %.3f" % (m["arm"], m["like_prob"], m["hit"], m["coverage"]))
