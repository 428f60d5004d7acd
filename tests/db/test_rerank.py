"""gmv match --rerank-space: candidates from one space's index, final top-k by another space's distance."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest

from gmv_sql import spaces
from gmv_sql.db.connect import connect
from gmv_sql.embed import store
from gmv_sql.errors import ConflictError, InputError
from gmv_sql.match import matcher
from tests.factories import numpy_knn, refused, seed


def _two_spaces(conn, *, n_training=300, n_generated=40, opted_out=None):
    """Space a (seeded, 16-d) and space b (other 12-d vectors of the same images)."""
    world = seed(conn, n_training=n_training, n_generated=n_generated, dim=16, space="a", opted_out=opted_out)
    rng = np.random.default_rng(11)
    b_training = rng.normal(size=(n_training, 12)).astype(np.float32)
    b_generated = rng.normal(size=(n_generated, 12)).astype(np.float32)
    with conn.transaction():
        b = spaces.get_or_create_space(conn, "b", model="synthetic-b", dim=12)
        store.copy_vectors(conn, b, "training", world["training_ids"], b_training, source="t")
        store.copy_vectors(conn, b, "generated", world["generated_ids"], b_generated, source="t")
    world.update(b=b, b_training=b_training, b_generated=b_generated)
    return world


def _reference(world, k, candidates):
    """Exact top-N in a, then those ordered by b's cosine distance, first k: {generated_id: [(training_id, d)]}."""
    eligible = ~world["opted_out"]
    order, _ = numpy_knn(world["training_vectors"], world["generated_vectors"], candidates, eligible=eligible)
    expected = {}
    for j, g in enumerate(world["generated_ids"]):
        pool = order[j]
        tb = world["b_training"][pool].astype(np.float64)
        gb = world["b_generated"][j].astype(np.float64)
        d = 1 - (tb @ gb) / (np.linalg.norm(tb, axis=1) * np.linalg.norm(gb))
        best = np.argsort(d, kind="stable")[:k]
        expected[int(g)] = [(int(world["training_ids"][pool[i]]), float(d[i])) for i in best]
    return expected


def _stored(conn, space_id):
    rows = conn.execute(
        "SELECT generated_id, rank, training_id, distance, rerank_space_id, candidates FROM gmv.match"
        " WHERE space_id = %s ORDER BY generated_id, rank",
        (space_id,),
    ).fetchall()
    out: dict[int, list] = {}
    for g, _rank, t, d, _r, _c in rows:
        out.setdefault(g, []).append((t, d))
    return out, {(r[4], r[5]) for r in rows}


@pytest.mark.parametrize("exact", [True, False])
def test_rerank_equals_a_numpy_reference_and_is_recorded(conn, db_url, exact):
    opted_out = np.zeros(300, bool)
    opted_out[::17] = True
    world = _two_spaces(conn, opted_out=opted_out)
    result = matcher.match_space(
        partial(connect, db_url),
        world["space"],
        k=4,
        exact=exact,
        rerank_space=world["b"],
        candidates=20,
        workers=1,
    )
    assert result.matched == 40 and result.rerank_space == "b" and result.candidates == 20
    stored, settings = _stored(conn, world["space"].space_id)
    assert settings == {(world["b"].space_id, 20)}
    expected = _reference(world, 4, 20)
    for g, rows in expected.items():
        assert [t for t, _ in stored[g]] == [t for t, _ in rows], g
        assert [d for _, d in stored[g]] == pytest.approx([d for _, d in rows], abs=1e-5)


def test_rerank_setting_is_fixed_per_space_until_rematch(conn, db_url):
    world = _two_spaces(conn, n_training=60, n_generated=5)
    run = partial(matcher.match_space, partial(connect, db_url), world["space"], k=3, workers=1)
    run(rerank_space=world["b"], candidates=10)
    # New generated images later: a run without flags keeps the space's setting.
    from tests.factories import add_generated_images

    new = add_generated_images(conn, 2, world["run_id"], tag="later")
    rng = np.random.default_rng(3)
    store.copy_vectors(conn, world["space"], "generated", new, rng.normal(size=(2, 16)), source="t")
    store.copy_vectors(conn, world["b"], "generated", new, rng.normal(size=(2, 12)), source="t")
    again = run()
    assert again.matched == 2 and again.rerank_space == "b" and again.candidates == 10
    assert _stored(conn, world["space"].space_id)[1] == {(world["b"].space_id, 10)}
    with pytest.raises(ConflictError, match="add --rematch"):
        run(rerank_space=world["b"], candidates=12)
    run(rematch=True)
    assert _stored(conn, world["space"].space_id)[1] == {(None, None)}
    with pytest.raises(InputError, match="between k"):
        run(rerank_space=world["b"], candidates=2, rematch=True)
    with pytest.raises(InputError, match="is the space matched in"):
        run(rerank_space=world["space"], rematch=True)


def test_cli_rerank_and_its_refusals(gmv, conn):
    world = _two_spaces(conn, n_training=60, n_generated=5)
    out = gmv("match", "--space", "a", "--k", "3", "--rerank-space", "b", "--candidates", "12").output
    assert "12 candidates re-ranked by space 'b'" in out
    refused(
        gmv,
        "match",
        "--space",
        "a",
        "--candidates",
        "5",
        reason="--candidates only works with --rerank-space",
    )
    refused(gmv, "match", "--space", "a", "--rerank-space", "nope", reason="no embedding space 'nope'")
    # A training image without a vector in b: re-ranking cannot see it.
    conn.execute(
        "DELETE FROM gmv.training_embedding_2 WHERE training_id = %s", (int(world["training_ids"][0]),)
    )
    refused(
        gmv,
        "match",
        "--space",
        "a",
        "--rerank-space",
        "b",
        "--rematch",
        reason="have a vector in space 'a' but not in 'b'",
    )
    assert conn.execute("SELECT count(*) FROM gmv.match").fetchone()[0] == 15  # the refusals wrote nothing


def test_near_copies_of_reranked_matches_use_the_rerank_space_threshold(conn, db_url):
    world = _two_spaces(conn, n_training=60, n_generated=5)
    matcher.match_space(
        partial(connect, db_url), world["space"], k=3, rerank_space=world["b"], candidates=10, workers=1
    )
    conn.execute(
        "UPDATE gmv.embedding_space SET near_copy_distance = 0, near_copy_source = 'set' WHERE name = 'a'"
    )
    conn.execute(
        "UPDATE gmv.embedding_space SET near_copy_distance = 5, near_copy_source = 'set' WHERE name = 'b'"
    )
    rows = conn.execute("SELECT DISTINCT space, distance_space FROM report.near_copy").fetchall()
    assert rows == [("a", "b")]


def test_deleting_the_rerank_space_deletes_its_reranked_matches(conn, db_url):
    world = _two_spaces(conn, n_training=60, n_generated=5)
    matcher.match_space(
        partial(connect, db_url), world["space"], k=3, rerank_space=world["b"], candidates=10, workers=1
    )
    assert conn.execute("SELECT count(*) FROM gmv.match").fetchone()[0] == 15
    conn.execute("DELETE FROM gmv.embedding_space WHERE name = 'b'")
    assert conn.execute("SELECT count(*) FROM gmv.match").fetchone()[0] == 0
