"""Tables: owners, licences, training and generated images, embedding spaces, matches, schemes, pools.

Data lives here; everything derived (valuation views, report views, grants) is in 0002 so that it
can be dropped and rebuilt without touching a row. Per-space embedding tables are created at run
time by gmv_sql.embed.store (their dimension is only known then) and live in schema gmv too.

Revision ID: 0001_tables
Revises:
Create Date: 2026-11-29
"""

from alembic import op

revision = "0001_tables"
down_revision = None
branch_labels = None
depends_on = None

UPGRADE = r"""
CREATE EXTENSION IF NOT EXISTS vector;
CREATE SCHEMA IF NOT EXISTS gmv;
COMMENT ON SCHEMA gmv IS 'gmv_sql data: images, owners, licences, embeddings, matches. Analysts read schema report instead.';

CREATE TABLE gmv.owner (
    owner_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (length(btrim(name)) > 0),
    contact     text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE gmv.owner IS 'Who holds the rights to training images and is paid royalties.';

CREATE TABLE gmv.license (
    license_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name            text NOT NULL UNIQUE CHECK (length(btrim(name)) > 0),
    royalty_bearing boolean NOT NULL DEFAULT true,
    excluded        boolean NOT NULL DEFAULT false,
    url             text,
    created_at      timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE gmv.license IS 'Licences of training images. royalty_bearing: credit is paid; excluded: images under it are never matched.';

CREATE TABLE gmv.training_image (
    training_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sha256       text NOT NULL UNIQUE CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    uri          text NOT NULL,
    owner_id     bigint NOT NULL REFERENCES gmv.owner,
    license_id   bigint NOT NULL REFERENCES gmv.license,
    width        integer CHECK (width > 0),
    height       integer CHECK (height > 0),
    attributes   jsonb NOT NULL DEFAULT '{}'::jsonb,
    opted_out    boolean NOT NULL DEFAULT false,
    ingested_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX training_image_owner_idx ON gmv.training_image (owner_id);
CREATE INDEX training_image_license_idx ON gmv.training_image (license_id);
COMMENT ON TABLE gmv.training_image IS 'Images a model was trained on; identity is the sha256 of the file bytes. opted_out images are never matched.';

CREATE TABLE gmv.generator (
    generator_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          text NOT NULL UNIQUE CHECK (length(btrim(name)) > 0),
    description   text,
    created_at    timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE gmv.generator IS 'A generative model (GAN, VAE, diffusion, ...) whose outputs are valued.';

CREATE TABLE gmv.generation_run (
    run_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    generator_id  bigint NOT NULL REFERENCES gmv.generator,
    name          text NOT NULL CHECK (length(btrim(name)) > 0),
    attributes    jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (generator_id, name)
);
COMMENT ON TABLE gmv.generation_run IS 'One batch of generated images from one generator.';

CREATE TABLE gmv.generated_image (
    generated_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sha256        text NOT NULL UNIQUE CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    uri           text NOT NULL,
    run_id        bigint NOT NULL REFERENCES gmv.generation_run,
    quality       double precision NOT NULL DEFAULT 1
                  CHECK (quality >= 0 AND quality < 'Infinity'::double precision),
    prompt        text,
    width         integer CHECK (width > 0),
    height        integer CHECK (height > 0),
    attributes    jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    ingested_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX generated_image_run_idx ON gmv.generated_image (run_id);
CREATE INDEX generated_image_created_idx ON gmv.generated_image (created_at);
COMMENT ON TABLE gmv.generated_image IS 'Images a generator produced; quality is the weight q_j of GMValuator (default 1), created_at picks the royalty period.';

CREATE TABLE gmv.embedding_space (
    space_id              integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name                  text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9_.-]{0,62}$'),
    model                 text NOT NULL,
    weights_sha256        text,
    preprocessing         jsonb NOT NULL DEFAULT '{}'::jsonb,
    dim                   integer NOT NULL CHECK (dim BETWEEN 1 AND 16000),
    storage               text NOT NULL DEFAULT 'vector' CHECK (storage IN ('vector', 'halfvec')),
    distance              text NOT NULL DEFAULT 'cosine' CHECK (distance IN ('cosine', 'l2', 'inner_product')),
    hnsw_m                integer NOT NULL DEFAULT 16 CHECK (hnsw_m BETWEEN 2 AND 100),
    hnsw_ef_construction  integer NOT NULL DEFAULT 64 CHECK (hnsw_ef_construction BETWEEN 4 AND 1000),
    match_k               integer CHECK (match_k BETWEEN 1 AND 1000),
    created_at            timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE gmv.embedding_space IS 'One embedding space = one model + weights hash + preprocessing + dim. Vectors live in gmv.training_embedding_<space_id> and gmv.generated_embedding_<space_id>. match_k is fixed by the first gmv match.';

CREATE TABLE gmv.match (
    space_id      integer NOT NULL REFERENCES gmv.embedding_space ON DELETE CASCADE,
    generated_id  bigint NOT NULL REFERENCES gmv.generated_image ON DELETE CASCADE,
    rank          integer NOT NULL CHECK (rank >= 1 AND rank <= k),
    training_id   bigint NOT NULL REFERENCES gmv.training_image ON DELETE CASCADE,
    distance      double precision NOT NULL,
    k             integer NOT NULL CHECK (k BETWEEN 1 AND 1000),
    exact         boolean NOT NULL DEFAULT false,
    matched_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (space_id, generated_id, rank),
    UNIQUE (space_id, generated_id, training_id)
);
CREATE INDEX match_training_idx ON gmv.match (training_id);
COMMENT ON TABLE gmv.match IS 'The k nearest training images of each generated image in one embedding space (rank 1 = nearest).';

CREATE TABLE gmv.valuation_scheme (
    scheme_id    integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9_.-]{0,62}$'),
    formula      text NOT NULL CHECK (formula IN ('rank_linear', 'reciprocal_rank', 'softmax_distance', 'uniform')),
    temperature  double precision CHECK (temperature > 0),
    is_default   boolean NOT NULL DEFAULT false,
    description  text NOT NULL DEFAULT '',
    CHECK ((formula = 'softmax_distance') = (temperature IS NOT NULL))
);
CREATE UNIQUE INDEX valuation_scheme_one_default ON gmv.valuation_scheme (is_default) WHERE is_default;
COMMENT ON TABLE gmv.valuation_scheme IS 'How a rank (or distance) becomes a weight; weights are normalised to sum to 1 per generated image.';
INSERT INTO gmv.valuation_scheme (name, formula, temperature, is_default, description) VALUES
    ('rank_linear', 'rank_linear', NULL, true, 'weight k - r + 1: the rank-weighted valuation of GMValuator (arXiv 2304.10701 v1)'),
    ('reciprocal_rank', 'reciprocal_rank', NULL, false, 'weight 1 / r'),
    ('softmax_distance', 'softmax_distance', 0.1, false, 'weight exp(-(d - d_min) / T), T = temperature (cosine distance units)'),
    ('uniform', 'uniform', NULL, false, 'weight 1: plain k-NN count');

CREATE TABLE gmv.revenue_pool (
    pool_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    period      date NOT NULL CHECK (period = date_trunc('month', period)::date),
    amount      numeric(18, 2) NOT NULL CHECK (amount >= 0),
    currency    text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    space_id    integer NOT NULL REFERENCES gmv.embedding_space ON DELETE CASCADE,
    scheme_id   integer NOT NULL REFERENCES gmv.valuation_scheme ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (period, space_id, scheme_id)
);
COMMENT ON TABLE gmv.revenue_pool IS 'Money to split for one month over owners of royalty-bearing images, pro rata to credit.';
"""

DOWNGRADE = r"""
DROP SCHEMA IF EXISTS gmv CASCADE;
"""


def upgrade() -> None:
    op.get_bind().exec_driver_sql(UPGRADE)


def downgrade() -> None:
    op.get_bind().exec_driver_sql(DOWNGRADE)
