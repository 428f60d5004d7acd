"""Recall-targeted matching: the calibrated ef_search / probes reaches the target recall@k over the
whole run (against numpy exact search), on a clustered synthetic set and on real images (sklearn's
digits), for HNSW and IVFFlat; the cheapest setting that clears the target is taken."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest

from gmv_sql.db.connect import connect
from gmv_sql.errors import InputError
from gmv_sql.index import builder
from gmv_sql.match import matcher, tuning
from tests.factories import numpy_knn, seed


def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    pixels = load_digits().data.astype(np.float32)
    order = np.random.default_rng(0).permutation(len(pixels))
    pixels = pixels[order]
    return pixels[:1500], pixels[1500:]  # 1,500 training images, 297 "generated" (held-out real digits)


def _clustered() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    centres = rng.normal(size=(40, 32))
    training = centres[rng.integers(0, 40, 3000)] + 0.6 * rng.normal(size=(3000, 32))
    generated = training[rng.integers(0, 3000, 300)] + 0.5 * rng.normal(size=(300, 32))
    return training.astype(np.float32), generated.astype(np.float32)


def _run_recall(conn, world, k: int) -> float:
    order, _ = numpy_knn(world["training_vectors"], world["generated_vectors"], k)
    stored: dict[int, set[int]] = {}
    for g, t in conn.execute("SELECT generated_id, training_id FROM gmv.match"):
        stored.setdefault(g, set()).add(t)
    hits = [
        len(stored[g] & set(world["training_ids"][order[j]])) / k
        for j, g in enumerate(world["generated_ids"])
    ]
    return float(np.mean(hits))


@pytest.mark.parametrize("data", ["clustered", "digits"])
@pytest.mark.parametrize(("kind", "target"), [("hnsw", 0.95), ("hnsw", 0.99), ("ivfflat", 0.95)])
def test_target_recall_is_reached_over_the_whole_run(conn, db_url, data, kind, target):
    training, generated = _clustered() if data == "clustered" else _digits()
    world = seed(conn, training_vectors=training, generated_vectors=generated, seed=1)
    space = world["space"]
    if kind == "ivfflat":
        space = builder.build(conn, space, kind="ivfflat", lists=30).space  # ~50-100 rows per list
    else:
        space = builder.build(conn, space, m=8, ef_construction=32).space  # a modest graph: recall varies
    result = matcher.match_space(partial(connect, db_url), space, k=10, workers=2, target_recall=target)
    tuned = result.tuning
    assert tuned is not None and tuned.reached
    assert tuned.sample == min(len(generated), {0.95: 50, 0.99: 250}[target])
    assert tuned.setting == ("probes" if kind == "ivfflat" else "ef_search")
    assert (result.probes if kind == "ivfflat" else result.ef_search) == tuned.value
    # The cheapest setting whose recall clears the target with confidence was taken: those before fell short.
    value, recall, lower = tuned.tried[-1]
    assert (value, recall) == (tuned.value, tuned.recall) and lower >= target
    assert all(lower < target for _, _, lower in tuned.tried[:-1])
    achieved = _run_recall(conn, world, 10)
    assert achieved >= target, (achieved, tuned)


def test_sample_grows_with_the_target():
    assert [tuning.default_sample(t) for t in (0.5, 0.9, 0.95, 0.98, 0.99, 0.999, 1.0)] == [
        50,
        50,
        50,
        125,
        250,
        1000,
        1000,
    ]


def test_tiny_spaces_and_given_settings_are_not_calibrated(conn, db_url):
    world = seed(conn, n_training=300, n_generated=20, dim=8)
    result = matcher.match_space(partial(connect, db_url), world["space"], k=5, target_recall=0.99)
    assert result.tuning.recall is None and "only 300 training vectors" in result.tuning.note
    assert result.ef_search == matcher.DEFAULT_EF_SEARCH
    again = matcher.match_space(
        partial(connect, db_url), world["space"], k=5, target_recall=0.99, ef_search=20, rematch=True
    )
    assert again.tuning is None and again.ef_search == 20
    with pytest.raises(InputError, match="--target-recall 1.5"):
        matcher.match_space(partial(connect, db_url), world["space"], target_recall=1.5)


def test_cli_prints_the_chosen_setting_and_recall(gmv, conn):
    training, generated = _digits()
    seed(conn, training_vectors=training, generated_vectors=generated, seed=1)
    out = gmv("match", "--space", "test", "--k", "10", "--target-recall", "0.9").output
    line = next(li for li in out.splitlines() if li.startswith("calibrated for recall 0.9: ef_search="))
    assert "on 50 sampled images, reaching the target 0.9" in line
    ef = int(line.split("ef_search=")[1].split(":")[0])
    assert f"(k=10, HNSW, ef_search={ef}," in out


def test_few_pending_images_are_matched_exactly_instead_of_calibrating(conn, db_url):
    training, generated = _digits()
    world = seed(conn, training_vectors=training, generated_vectors=generated[:30], seed=1)
    result = matcher.match_space(partial(connect, db_url), world["space"], k=10, target_recall=0.95)
    assert result.tuning.setting == "exact" and "30 images to match cost no more than calibrating on 50" in (
        result.tuning.note
    )
    assert result.exact and result.setting == "exact search" and result.matched == 30
    assert conn.execute("SELECT bool_and(exact), count(*) FROM gmv.match").fetchone() == (True, 300)
    assert _run_recall(conn, world, 10) == 1.0


def test_cli_does_not_claim_a_calibration_it_skipped(gmv, conn):
    seed(conn, n_training=300, n_generated=20, dim=8)
    out = gmv("match", "--space", "test", "--k", "5").output
    assert "setting for recall 0.95: ef_search=" in out and "not calibrated: only 300 training vectors" in out
    assert "calibrated for recall" not in out
