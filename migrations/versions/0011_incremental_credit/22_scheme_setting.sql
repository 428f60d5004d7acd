-- The valuation settings behind the numbers: every space's schemes with their temperature (and where
-- it came from) and which scheme is the space's default. Public surface, like 20_report.sql.

CREATE VIEW report.scheme_setting AS
SELECT sp.name AS space,
       vs.name AS scheme,
       vs.formula,
       coalesce(c.temperature, vs.temperature) AS temperature,
       CASE
           WHEN c.set_by IS NOT NULL THEN c.set_by
           WHEN vs.temperature IS NOT NULL THEN 'scheme'
       END AS temperature_set_by,
       c.rule AS temperature_rule,
       c.statistics AS temperature_statistics,
       c.calibrated_at,
       vs.scheme_id = coalesce(sp.default_scheme_id,
                               (SELECT d.scheme_id FROM gmv.valuation_scheme AS d WHERE d.is_default))
           AS is_space_default,
       vs.description
FROM gmv.embedding_space AS sp
CROSS JOIN gmv.valuation_scheme AS vs
LEFT JOIN gmv.scheme_calibration AS c ON c.space_id = sp.space_id AND c.scheme_id = vs.scheme_id;
COMMENT ON VIEW report.scheme_setting IS
    'Each embedding space''s valuation schemes: temperature (softmax schemes) with who set it (calibrated by rule, explicit, or the scheme''s own), the rule and statistics of a calibration, and whether the scheme is the space''s default.';
COMMENT ON COLUMN report.scheme_setting.space IS 'Embedding space name.';
COMMENT ON COLUMN report.scheme_setting.scheme IS 'Valuation scheme name.';
COMMENT ON COLUMN report.scheme_setting.formula IS
    'Weight formula: rank_linear, reciprocal_rank, softmax_distance, softmax_calibrated or uniform.';
COMMENT ON COLUMN report.scheme_setting.temperature IS
    'Softmax temperature T in the space''s distance units (null for schemes without one): w = exp(-(d - d_min) / T), normalised per generated image.';
COMMENT ON COLUMN report.scheme_setting.temperature_set_by IS
    'Where T comes from: calibrated (gmv value calibrate, by rule), explicit (gmv value set-temperature) or scheme (the scheme''s own fixed T).';
COMMENT ON COLUMN report.scheme_setting.temperature_rule IS 'The calibration rule that gave T (null unless calibrated).';
COMMENT ON COLUMN report.scheme_setting.temperature_statistics IS
    'The distance statistics the calibration used (JSON: counts, medians), so T can be re-derived.';
COMMENT ON COLUMN report.scheme_setting.calibrated_at IS 'When T was last calibrated or set for this space.';
COMMENT ON COLUMN report.scheme_setting.is_space_default IS
    'True for the scheme the space''s reports and statements use unless another is asked for.';
COMMENT ON COLUMN report.scheme_setting.description IS 'What the scheme does, in words.';
