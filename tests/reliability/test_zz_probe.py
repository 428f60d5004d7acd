import random, shutil, subprocess
import pytest
from tests.reliability.helpers import write_png

@pytest.mark.parametrize("trial", range(200, 230))
def test_probe(gmv, tmp_path, trial):
    a = tmp_path / "a"; b = tmp_path / "b"
    paths = [write_png(a / f"{i:05d}.png", seed=i) for i in range(2000)]
    order = list(range(2000)); random.Random(trial).shuffle(order)
    b.mkdir()
    for rank, i in enumerate(order):
        shutil.copyfile(paths[i], b / f"{rank:05d}.png")
    args = ("--owner", "alice", "--license", "cc-by", "--batch-size", "200", "--workers", "1", "-q")
    procs = [gmv.popen("ingest", "training", f, *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for f in (a, b)]
    outs = [p.communicate(timeout=150) for p in procs]
    for p, (o, e) in zip(procs, outs):
        if p.returncode:
            open(f"/tmp/gmv_d/fail_{trial}.txt", "w").write(f"{p.returncode}\n{o}\n{e}")
    assert all(p.returncode == 0 for p in procs)
