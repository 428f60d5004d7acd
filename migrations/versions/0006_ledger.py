"""The ledger: recorded match runs, scoped revenue pools, and issued statements that never change.

Tables:
- gmv.match_run: one row per `gmv match` (space, k, exact or index with its parameters, ef_search,
  the recall@k measured against exact search, images matched, start and end, versions);
  gmv.match.run_id names the run that wrote each match row (NULL for rows older than this revision).
  No foreign key from gmv.match (per-row checks on the bulk-written table; see 0003).
- gmv.revenue_pool gains a scope: generator_id and optionally run_id (NULL = every generator / run),
  unique per (period, space, scheme, generator, run) with NULLs equal.
- gmv.statement, gmv.statement_line (per owner), gmv.statement_credit (per training image and owner)
  and gmv.statement_match (the match rows a statement was computed from): issued rows, frozen by
  triggers (sql/derived/25_ledger.sql). They copy names and values instead of referencing the data
  tables, so deleting an image, an owner or a space never touches what was paid.

Derived objects (the immutability triggers, report.statement* / report.match_run / report.space)
come from the frozen copy of sql/derived/ beside this file.

Revision ID: 0006_ledger
Revises: 0005_calibrated_weighting
Create Date: 2026-12-02
"""

from pathlib import Path

from alembic import op

revision = "0006_ledger"
down_revision = "0005_calibrated_weighting"
branch_labels = None
depends_on = None

VERSIONS = Path(__file__).parent
FROZEN_SQL = VERSIONS / "0006_ledger"
PREVIOUS_SQL = VERSIONS / "0005_calibrated_weighting"

TABLES = r"""
CREATE TABLE gmv.match_run (
    run_id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    space_id          integer NOT NULL REFERENCES gmv.embedding_space ON DELETE CASCADE,
    k                 integer NOT NULL CHECK (k BETWEEN 1 AND 1000),
    exact             boolean NOT NULL,
    index_kind        text,
    index_params      jsonb NOT NULL DEFAULT '{}'::jsonb,
    ef_search         integer,
    probes            integer,
    rematch           boolean NOT NULL DEFAULT false,
    recall_at_k       double precision CHECK (recall_at_k BETWEEN 0 AND 1),
    recall_sample     integer NOT NULL DEFAULT 0 CHECK (recall_sample >= 0),
    recall_status     text NOT NULL DEFAULT 'pending'
                      CHECK (recall_status IN ('pending', 'measured', 'skipped', 'exact', 'nothing_matched')),
    images_matched    integer NOT NULL DEFAULT 0,
    rows_written      bigint NOT NULL DEFAULT 0,
    started_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at       timestamptz,
    gmv_sql_version   text NOT NULL,
    postgres_version  text NOT NULL DEFAULT current_setting('server_version'),
    pgvector_version  text
);
CREATE INDEX match_run_space_idx ON gmv.match_run (space_id);
COMMENT ON TABLE gmv.match_run IS 'One gmv match run: how its matches were found (exact or index, parameters), the recall@k it measured, and versions.';

ALTER TABLE gmv.match ADD COLUMN run_id bigint;
COMMENT ON COLUMN gmv.match.run_id IS 'The gmv.match_run that wrote this row (NULL: matched before runs were recorded).';

ALTER TABLE gmv.revenue_pool
    ADD COLUMN generator_id bigint REFERENCES gmv.generator ON DELETE CASCADE,
    ADD COLUMN run_id bigint REFERENCES gmv.generation_run ON DELETE CASCADE,
    ADD CHECK (run_id IS NULL OR generator_id IS NOT NULL),
    DROP CONSTRAINT revenue_pool_period_space_id_scheme_id_key,
    ADD CONSTRAINT revenue_pool_scope_key
        UNIQUE NULLS NOT DISTINCT (period, space_id, scheme_id, generator_id, run_id);
COMMENT ON COLUMN gmv.revenue_pool.generator_id IS 'Scope: only this generator''s outputs share the pool (NULL: every generator).';
COMMENT ON COLUMN gmv.revenue_pool.run_id IS 'Scope: only this generation run''s outputs (NULL: every run of the generator).';

CREATE TABLE gmv.statement (
    statement_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind          text NOT NULL CHECK (kind IN ('original', 'adjustment', 'reversal')),
    period        date NOT NULL CHECK (period = date_trunc('month', period)::date),
    space_id      integer NOT NULL,
    space         text NOT NULL,
    scheme_id     integer NOT NULL,
    scheme        text NOT NULL,
    generator     text,
    run           text,
    scope         text NOT NULL,
    pool          numeric(18, 2) NOT NULL,
    amount        numeric(18, 2) NOT NULL,
    currency      text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    reason        text,
    reverses      bigint REFERENCES gmv.statement,
    issued_at     timestamptz NOT NULL DEFAULT now(),
    issued_by     text NOT NULL DEFAULT session_user,
    provenance    jsonb NOT NULL,
    CHECK ((kind = 'reversal') = (reverses IS NOT NULL))
);
CREATE INDEX statement_scope_idx ON gmv.statement (period, space_id, scheme_id, scope);
COMMENT ON TABLE gmv.statement IS 'An issued royalty statement: frozen (triggers refuse UPDATE and DELETE); corrected only by adjustment or reversal statements.';

CREATE TABLE gmv.statement_line (
    statement_id    bigint NOT NULL REFERENCES gmv.statement,
    owner_id        bigint NOT NULL,
    owner           text NOT NULL,
    credit          double precision NOT NULL,
    unpaid_credit   double precision NOT NULL,
    share           double precision NOT NULL,
    due             numeric(18, 2) NOT NULL,
    issued_before   numeric(18, 2) NOT NULL,
    amount          numeric(18, 2) NOT NULL,
    PRIMARY KEY (statement_id, owner_id)
);
COMMENT ON TABLE gmv.statement_line IS 'Per owner: due (what the data said at issue), issued_before (earlier statements of the scope), amount = due - issued_before.';

CREATE TABLE gmv.statement_credit (
    statement_id     bigint NOT NULL REFERENCES gmv.statement,
    training_id      bigint NOT NULL,
    owner_id         bigint NOT NULL,
    sha256           text,
    uri              text,
    owner            text NOT NULL,
    license          text,
    royalty_bearing  boolean NOT NULL,
    credit           double precision NOT NULL,
    n_matches        integer NOT NULL,
    due              numeric(18, 2) NOT NULL,
    issued_before    numeric(18, 2) NOT NULL,
    amount           numeric(18, 2) NOT NULL,
    PRIMARY KEY (statement_id, training_id, owner_id)
);
COMMENT ON TABLE gmv.statement_credit IS 'Per training image (and its owner): credit and cents; a line''s amounts add up to its owner''s statement_line.';

CREATE TABLE gmv.statement_match (
    statement_id  bigint NOT NULL REFERENCES gmv.statement,
    generated_id  bigint NOT NULL,
    rank          integer NOT NULL,
    training_id   bigint NOT NULL,
    distance      double precision NOT NULL,
    k             integer NOT NULL,
    quality       double precision NOT NULL,
    match_run_id  bigint,
    PRIMARY KEY (statement_id, generated_id, rank)
);
COMMENT ON TABLE gmv.statement_match IS 'The match rows (with the generated image''s quality) a statement was computed from; gmv statement verify recomputes from them.';
"""

DROP_TABLES = r"""
DROP TABLE IF EXISTS gmv.statement_match, gmv.statement_credit, gmv.statement_line, gmv.statement;
DELETE FROM gmv.revenue_pool WHERE generator_id IS NOT NULL;  -- scoped pools do not exist before this revision
ALTER TABLE gmv.revenue_pool
    DROP CONSTRAINT revenue_pool_scope_key,
    DROP COLUMN run_id,
    DROP COLUMN generator_id,
    ADD CONSTRAINT revenue_pool_period_space_id_scheme_id_key UNIQUE (period, space_id, scheme_id);
ALTER TABLE gmv.match DROP COLUMN run_id;
DROP TABLE IF EXISTS gmv.match_run;
"""


def _execute(statements: str) -> None:
    # Straight to psycopg without parameters, so format()'s %s / %I in the PL/pgSQL are not placeholders.
    op.get_bind().connection.driver_connection.execute(statements)


def _apply(folder: Path) -> None:
    for path in sorted(folder.glob("*.sql")):
        _execute(path.read_text(encoding="utf-8"))


def upgrade() -> None:
    _execute((FROZEN_SQL / "00_drop_derived.sql").read_text(encoding="utf-8"))
    _execute(TABLES)
    _apply(FROZEN_SQL)


def downgrade() -> None:
    # Drop this revision's derived objects first: the report views read the columns dropped below.
    _execute((FROZEN_SQL / "00_drop_derived.sql").read_text(encoding="utf-8"))
    _execute(DROP_TABLES)
    _apply(PREVIOUS_SQL)
