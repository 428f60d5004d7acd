"""Value stage: refreshes the valuation materialized views defined in sql/derived/10_valuation.sql."""
