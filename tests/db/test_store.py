"""gmv_sql.embed.store on real PostgreSQL: spaces, COPY BINARY round trips, HNSW index life cycle."""

from __future__ import annotations

import json

import numpy as np
import pytest
from psycopg import sql

from gmv_sql import spaces
from gmv_sql.embed import store
from gmv_sql.errors import ConflictError, InputError, NotFoundError
from tests.factories import add_generated_images, add_training_images, make_license, make_owner, make_run


def _training(conn, n: int, tag: str = "t") -> np.ndarray:
    owner, license = make_owner(conn, "o"), make_license(conn, "l")
    return add_training_images(conn, [owner] * n, [license] * n, tag=tag)


def _read_back(conn, space, kind, ids) -> np.ndarray:
    id_column = "training_id" if kind == "training" else "generated_id"
    rows = conn.execute(
        sql.SQL("SELECT {}, embedding FROM {} ORDER BY 1").format(
            sql.Identifier(id_column), space.table(kind)
        )
    ).fetchall()
    got = {
        int(i): np.asarray(e.to_numpy() if hasattr(e, "to_numpy") else e, dtype=np.float32) for i, e in rows
    }
    return np.stack([got[int(i)] for i in ids])


@pytest.mark.parametrize("dim", [3, 512, 1280])
def test_vectors_round_trip_exactly(conn, dim):
    rng = np.random.default_rng(dim)
    ids = _training(conn, 50)
    # A full-precision index: a halfvec one cannot hold -3.4e38 (test_half_index_refuses_beyond_half_range).
    space = spaces.get_or_create_space(conn, "s", model="m", dim=dim, index_precision="full")
    vectors = rng.normal(size=(50, dim)).astype(np.float32)
    vectors[0, 0] = np.float32(1e-38)  # subnormal-adjacent and extreme values survive too
    vectors[1, -1] = np.float32(-3.4e38)
    assert store.copy_vectors(conn, space, "training", ids, vectors) == 50
    np.testing.assert_array_equal(_read_back(conn, space, "training", ids), vectors)


def test_half_index_refuses_beyond_half_range(conn):
    """A vector space with the default halfvec index keeps full precision, but the index cannot hold
    values beyond 65504: refused with the way out, nothing stored."""
    ids = _training(conn, 3)
    space = spaces.get_or_create_space(conn, "s", model="m", dim=4)
    assert (space.storage, space.index_precision) == ("vector", "half")
    vectors = np.ones((3, 4), dtype=np.float32)
    vectors[2, 1] = 1e5
    with pytest.raises(InputError, match="--precision full"):
        store.copy_vectors(conn, space, "training", ids, vectors)
    assert store.count_vectors(conn, space) == 0
    vectors[2, 1] = 0.123456789  # beyond half's resolution, kept exactly in the table
    store.copy_vectors(conn, space, "training", ids, vectors)
    np.testing.assert_array_equal(_read_back(conn, space, "training", ids), vectors)


def test_copy_streamed_in_several_pieces_round_trips(conn):
    """More rows than one piece of the stream (store.COPY_PIECE_ROWS), ids out of order."""
    n = 2 * store.COPY_PIECE_ROWS + 7
    rng = np.random.default_rng(7)
    ids = rng.permutation(_training(conn, n))
    space = spaces.get_or_create_space(conn, "p", model="m", dim=3)
    vectors = rng.normal(size=(n, 3)).astype(np.float32)
    assert store.copy_vectors(conn, space, "training", ids, vectors) == n
    np.testing.assert_array_equal(_read_back(conn, space, "training", ids), vectors)


def test_halfvec_round_trip_is_exact_for_half_precision_values(conn):
    rng = np.random.default_rng(1)
    ids = _training(conn, 20)
    space = spaces.get_or_create_space(conn, "h", model="m", dim=2048)
    assert space.storage == "halfvec"
    vectors = rng.normal(size=(20, 2048)).astype(np.float16).astype(np.float32)
    store.copy_vectors(conn, space, "training", ids, vectors)
    np.testing.assert_array_equal(_read_back(conn, space, "training", ids), vectors)


def test_generated_vectors_round_trip(conn):
    run = make_run(conn)
    ids = add_generated_images(conn, 10, run)
    space = spaces.get_or_create_space(conn, "g", model="m", dim=4)
    vectors = np.arange(40, dtype=np.float32).reshape(10, 4) + 0.5
    store.copy_vectors(conn, space, "generated", ids, vectors)
    np.testing.assert_array_equal(_read_back(conn, space, "generated", ids), vectors)
    assert store.missing(conn, space, "generated") == []


def test_bad_vectors_are_refused_and_nothing_is_stored(conn):
    ids = _training(conn, 3)
    space = spaces.get_or_create_space(conn, "s", model="m", dim=4)
    with pytest.raises(InputError, match="expected 4 dimensions for space 's', got 5"):
        store.copy_vectors(conn, space, "training", ids, np.ones((3, 5)))
    bad = np.ones((3, 4))
    bad[2, 1] = np.nan
    with pytest.raises(InputError, match="vector 2 .* NaN"):
        store.copy_vectors(conn, space, "training", ids, bad)
    with pytest.raises(InputError, match="3 ids but 2 vectors"):
        store.copy_vectors(conn, space, "training", ids, np.ones((2, 4)))
    assert len(store.missing(conn, space, "training")) == 3


def test_get_or_create_space_refuses_another_model(conn):
    spaces.get_or_create_space(conn, "s", model="a", dim=8, weights_sha256="x", preprocessing={"k": [1, 2]})
    again = spaces.get_or_create_space(
        conn, "s", model="a", dim=8, weights_sha256="x", preprocessing={"k": [1, 2]}
    )
    assert again.preprocessing == {"k": [1, 2]}
    with pytest.raises(ConflictError, match="model 'a' \\(asked 'b'\\)"):
        spaces.get_or_create_space(
            conn, "s", model="b", dim=8, weights_sha256="x", preprocessing={"k": [1, 2]}
        )
    with pytest.raises(ConflictError, match="weights sha256"):
        spaces.get_or_create_space(
            conn, "s", model="a", dim=8, weights_sha256="y", preprocessing={"k": [1, 2]}
        )
    with pytest.raises(NotFoundError, match="no embedding space 'nope'"):
        spaces.get_space(conn, "nope")
    assert [s.name for s in spaces.list_spaces(conn)] == ["s"]


def test_dimension_limits_pick_storage(conn):
    assert spaces.choose_storage(2000) == "vector"
    assert spaces.choose_storage(2001) == "halfvec"
    with pytest.raises(InputError, match="4096 dimensions do not fit"):
        spaces.choose_storage(4096)
    with pytest.raises(InputError):
        spaces.get_or_create_space(conn, "big", model="m", dim=4096)


def test_drop_and_build_index_and_it_is_used(conn):
    ids = _training(conn, 300)
    space = spaces.get_or_create_space(
        conn, "s", model="m", dim=16, hnsw_m=8, hnsw_ef_construction=32, index_precision="full"
    )
    store.drop_index(conn, space)
    assert conn.execute("SELECT to_regclass(%s)", (f"gmv.{space.index_name}",)).fetchone()[0] is None
    rng = np.random.default_rng(0)
    store.copy_vectors(conn, space, "training", ids, rng.normal(size=(300, 16)).astype(np.float32))
    with conn.transaction():
        store.build_index(conn, space)
    definition = conn.execute(
        "SELECT indexdef FROM pg_indexes WHERE indexname = %s", (space.index_name,)
    ).fetchone()[0]
    assert "hnsw" in definition and "vector_cosine_ops" in definition and "m='8'" in definition
    conn.execute("SET enable_seqscan = off")
    plan = conn.execute(
        sql.SQL("EXPLAIN (FORMAT JSON) SELECT training_id FROM {} ORDER BY embedding <=> %s LIMIT 5").format(
            space.table("training")
        ),
        (rng.normal(size=16).astype(np.float32),),
    ).fetchone()[0]
    assert space.index_name in json.dumps(plan)


def test_maintenance_work_mem_grows_with_data():
    space = spaces.EmbeddingSpace(1, "s", "m", None, {}, 512)
    assert store.maintenance_work_mem_for(space, 0) == "64MB"
    assert (
        store.maintenance_work_mem_for(space, 200_000)
        == f"{int(np.ceil(200_000 * (2048 + 256 + 64) * 1.3 / 2**20))}MB"
    )
    assert store.maintenance_work_mem_for(space, 10**9) == "4096MB"


@pytest.mark.parametrize("dim,storage", [(2000, "vector"), (4000, "halfvec")])
def test_largest_indexable_vectors_fit_inline(conn, dim, storage):
    ids = _training(conn, 3)
    space = spaces.get_or_create_space(conn, "big", model="m", dim=dim, storage=storage)
    vectors = np.random.default_rng(dim).normal(size=(3, dim)).astype(np.float16).astype(np.float32)
    store.copy_vectors(conn, space, "training", ids, vectors)
    np.testing.assert_array_equal(_read_back(conn, space, "training", ids), vectors)
    # STORAGE PLAIN: the table has no TOAST relation at all, every vector is stored inline.
    toast = conn.execute(
        "SELECT reltoastrelid FROM pg_class WHERE oid = %s::regclass",
        (f"gmv.training_embedding_{space.space_id}",),
    ).fetchone()[0]
    assert toast == 0
