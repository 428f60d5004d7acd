"""gmv_sql: GMValuator (arXiv 2304.10701) data valuation for generative image models on PostgreSQL + pgvector."""

__version__ = "0.1.0"
