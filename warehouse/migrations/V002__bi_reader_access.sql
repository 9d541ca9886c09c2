-- The read-only role reads the tables and views of marts, and nothing else: no other
-- schema, no CREATE anywhere, no temporary tables.
GRANT CONNECT ON DATABASE {database} TO {bi_reader};
GRANT USAGE ON SCHEMA marts TO {bi_reader};
GRANT SELECT ON ALL TABLES IN SCHEMA marts TO {bi_reader};

-- Tables and views the writer creates in marts later are readable without a new grant.
ALTER DEFAULT PRIVILEGES FOR ROLE {writer} IN SCHEMA marts GRANT SELECT ON TABLES TO {bi_reader};

-- BI tools find the marts without schema-qualified names.
ALTER ROLE {bi_reader} IN DATABASE {database} SET search_path = marts;
