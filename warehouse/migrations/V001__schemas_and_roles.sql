-- The six schemas of the warehouse layers and the database-level privileges of the roles.
-- Placeholders {writer}, {bi_reader} and {database} are replaced by quoted identifiers
-- (warehouse/migrate.py); write {{ and }} for literal braces. The roles themselves are
-- created by warehouse/bootstrap.py, which keeps their passwords out of SQL files.

-- The writer owns every layer so the pipeline (loaders, dbt) can create, replace and drop
-- its own objects. ALTER ... OWNER also adopts schemas that existed before the bootstrap.
CREATE SCHEMA IF NOT EXISTS raw AUTHORIZATION {writer};
ALTER SCHEMA raw OWNER TO {writer};
COMMENT ON SCHEMA raw IS 'Source data as loaded, unchanged';

CREATE SCHEMA IF NOT EXISTS staging AUTHORIZATION {writer};
ALTER SCHEMA staging OWNER TO {writer};
COMMENT ON SCHEMA staging IS 'Cleaned, typed and renamed source data (one model per source table)';

CREATE SCHEMA IF NOT EXISTS intermediate AUTHORIZATION {writer};
ALTER SCHEMA intermediate OWNER TO {writer};
COMMENT ON SCHEMA intermediate IS 'Joins and business logic shared by several marts';

CREATE SCHEMA IF NOT EXISTS marts AUTHORIZATION {writer};
ALTER SCHEMA marts OWNER TO {writer};
COMMENT ON SCHEMA marts IS 'Facts and dimensions for BI: the only schema bi_reader can read';

CREATE SCHEMA IF NOT EXISTS dq AUTHORIZATION {writer};
ALTER SCHEMA dq OWNER TO {writer};
COMMENT ON SCHEMA dq IS 'Data-quality results and quarantined rows';

CREATE SCHEMA IF NOT EXISTS audit AUTHORIZATION {writer};
ALTER SCHEMA audit OWNER TO {writer};
COMMENT ON SCHEMA audit IS 'Pipeline run log and schema migration history';

-- Nothing is granted to PUBLIC: every role gets exactly what it needs. The writer may
-- create schemas (dbt stores test failures in its own schema) and temporary tables
-- (dbt incremental models stage through them).
REVOKE CONNECT, TEMPORARY ON DATABASE {database} FROM PUBLIC;
GRANT CONNECT, CREATE, TEMPORARY ON DATABASE {database} TO {writer};

-- Only owners may create in public (the default since PostgreSQL 15; explicit for clarity).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
