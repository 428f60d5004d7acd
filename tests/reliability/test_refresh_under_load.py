"""`gmv value refresh` while 8 gmv_reader connections query report.* in a loop: no reader errors,
no reader ever waits on a lock, no query takes longer than READER_BOUND_S, and every answer is
consistent (shares sum to 1, royalty amounts to the pool, totals are an old or a new total).

A control run does a plain (non-concurrent) refresh held open for a few seconds: the same probes
must then see readers blocked, which shows the measurement can fail.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import psycopg
import pytest

from gmv_sql.value.refresh import refresh
from tests.factories import add_generated, reader_url, seed

READERS = 8
READER_BOUND_S = 5.0  # the stated bound: no report query may take longer than this during a refresh
ROUNDS = 2

QUERIES = {
    "training_value": "SELECT scheme, sum(value), sum(share), count(*) FROM report.training_value GROUP BY scheme",
    "owner_value": "SELECT owner, value, share FROM report.owner_value WHERE scheme = 'rank_linear'",
    "royalty_statement": "SELECT period, sum(amount), min(pool_amount) FROM report.royalty_statement GROUP BY period",
    "attribution": "SELECT generated_id, rank, owner, weight FROM report.attribution"
    " WHERE scheme = 'uniform' ORDER BY generated_id DESC, rank LIMIT 50",
}


@dataclass
class Load:
    stop: threading.Event = field(default_factory=threading.Event)
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    inconsistent: list[str] = field(default_factory=list)
    totals_seen: set[float] = field(default_factory=set)
    lock_waits: int = 0
    waits: list = field(default_factory=list)  # (wait_event, reader query, blocking queries) seen
    samples: int = 0
    queries: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _reader(url: str, load: Load, index: int) -> None:
    names = list(QUERIES)
    try:
        with psycopg.connect(url, autocommit=True, application_name=f"reliability-reader-{index}") as conn:
            i = index
            while not load.stop.is_set():
                name = names[i % len(names)]
                i += 1
                started = time.monotonic()
                rows = conn.execute(QUERIES[name]).fetchall()
                elapsed = time.monotonic() - started
                problems = _check(name, rows, load)
                with load.lock:
                    load.latencies.append(elapsed)
                    load.queries += 1
                    load.inconsistent += problems
    except Exception as exc:  # any reader error fails the test
        with load.lock:
            load.errors.append(f"reader {index}: {type(exc).__name__}: {exc}")


def _check(name: str, rows, load: Load) -> list[str]:
    problems = []
    if name == "training_value":
        for scheme, total, share, _n in rows:
            if total and abs(float(share) - 1.0) > 1e-9:
                problems.append(f"{scheme}: shares sum to {share}")
            with load.lock:
                load.totals_seen.add(round(float(total), 6))
    elif name == "royalty_statement":
        for period, amount, pool in rows:
            if amount != pool:
                problems.append(f"{period}: amounts {amount} != pool {pool}")
    return problems


def _sampler(admin_url: str, load: Load) -> None:
    """Watches pg_stat_activity: a reader waiting on a lock is a reader blocked by the refresh."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        while not load.stop.is_set():
            waits = conn.execute(
                "SELECT a.wait_event, left(a.query, 80),"
                " (SELECT string_agg(left(b.query, 120), ' | ') FROM pg_stat_activity b WHERE b.pid = ANY(pg_blocking_pids(a.pid)))"
                " FROM pg_stat_activity a WHERE a.application_name LIKE 'reliability-reader-%%'"
                " AND a.wait_event_type = 'Lock'"
            ).fetchall()
            with load.lock:
                load.samples += 1
                load.lock_waits += len(waits)
                load.waits += waits
            time.sleep(0.02)


def _run_load(db_url: str, work) -> tuple[Load, float]:
    load = Load()
    threads = [threading.Thread(target=_reader, args=(reader_url(db_url), load, i)) for i in range(READERS)]
    threads.append(threading.Thread(target=_sampler, args=(db_url, load)))
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)  # readers are looping before the first refresh starts
        started = time.monotonic()
        work()
        elapsed = time.monotonic() - started
        time.sleep(0.3)
    finally:
        load.stop.set()
        for t in threads:
            t.join(timeout=30)
    return load, elapsed


@pytest.fixture
def populated(conn):
    seeded = seed(conn, n_training=1000, n_generated=600, dim=16, k=10)
    refresh(conn)
    return seeded


def _totals(conn) -> set[float]:
    rows = conn.execute(
        "SELECT vs.name, sum(g.quality) FROM gmv.generated_image g CROSS JOIN gmv.valuation_scheme vs"
        " WHERE EXISTS (SELECT 1 FROM gmv.match m WHERE m.generated_id = g.generated_id) GROUP BY vs.name"
    ).fetchall()
    return {round(float(total), 6) for _, total in rows}


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_value_refresh_never_blocks_readers(gmv, conn, populated):
    published = _totals(conn)
    refresh_seconds = []

    def work():
        for r in range(ROUNDS):
            add_generated(conn, populated, 200, start=r * 200, seed=r + 10)
            published.update(_totals(conn))
            started = time.monotonic()
            gmv.run("value", "refresh", timeout=120)
            refresh_seconds.append(time.monotonic() - started)

    load, _ = _run_load(gmv.url, work)
    assert load.errors == []
    assert load.inconsistent == []
    assert load.queries >= READERS * ROUNDS
    assert load.lock_waits == 0, f"readers seen waiting on a lock {load.lock_waits} times: {load.waits[:3]}"
    worst = max(load.latencies)
    assert worst < READER_BOUND_S, f"a reader waited {worst:.2f}s"
    assert load.totals_seen <= published, (load.totals_seen, published)  # only old or new totals, never a mix
    assert len(load.totals_seen) >= 2  # the readers did see the refreshes publish
    latencies = sorted(load.latencies)
    print(
        f"\nrefresh under load: {READERS} readers, {load.queries} queries, {ROUNDS} refreshes "
        f"({', '.join(f'{s:.2f}s' for s in refresh_seconds)}); reader latency p50 {latencies[len(latencies) // 2]:.3f}s "
        f"p99 {latencies[int(len(latencies) * 0.99)]:.3f}s max {worst:.3f}s; lock waits 0 in {load.samples} samples"
    )


@pytest.mark.timeout(120)
def test_control_a_blocking_refresh_is_detected(db_url, conn, populated):
    """A plain REFRESH (as before 0011) held an ACCESS EXCLUSIVE lock: the probes above must see readers wait."""
    hold = READER_BOUND_S + 1.0

    def work():
        with psycopg.connect(db_url) as writer:  # one transaction: the lock is held until commit
            writer.execute("LOCK TABLE gmv.training_credit IN ACCESS EXCLUSIVE MODE")
            writer.execute("SELECT pg_sleep(%s)", (hold,))
            writer.commit()

    load, _ = _run_load(db_url, work)
    assert load.errors == []
    assert load.lock_waits > 0
    assert max(load.latencies) >= READER_BOUND_S
    print(
        f"\ncontrol (ACCESS EXCLUSIVE lock held {hold:.0f}s): max reader wait {max(load.latencies):.2f}s, "
        f"readers seen waiting on a lock {load.lock_waits} times in {load.samples} samples"
    )
