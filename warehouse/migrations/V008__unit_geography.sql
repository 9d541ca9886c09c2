-- Where the units are: the centre, bounds and approximate area of every unit, looked up by its statistics code
-- (MaHanhChinh) in the pinned vietnamadminunits package by the nightly reference step (ingestion/geography.py).
-- Derived from the units list and the package, so replaced whole at every run (no history of its own);
-- marts.dim_unit_geo publishes it.
SET ROLE {writer};

CREATE TABLE raw.unit_geography (
    unit_code      text             PRIMARY KEY,  -- MaDonVi
    stat_code      text,                          -- MaHanhChinh as served
    level          integer,                       -- CapDonVi
    geo_status     text             NOT NULL CHECK (geo_status IN ('located', 'derived', 'unknown_code', 'no_code')),
    geo_kind       text,                          -- province | district | commune: the list the code was looked up in
    geo_dataset    text,                          -- legacy (before 2025-07-01) | 2025
    geo_name       text,                          -- the package's name of the place
    lat            double precision,
    lon            double precision,
    south          double precision,
    west           double precision,
    north          double precision,
    east           double precision,
    centre_source  text,                          -- where the centre comes from
    area_method    text,                          -- how the area was drawn; null: no area
    area_geojson   jsonb,                         -- GeoJSON geometry (lon, lat), null when no area
    run_id         text             NOT NULL,
    computed_at    timestamptz      NOT NULL DEFAULT now(),
    package        text             NOT NULL      -- e.g. vietnamadminunits 1.0.4
);
COMMENT ON TABLE raw.unit_geography IS 'Centre, bounds and approximate area of every unit, from its MaHanhChinh and the vietnamadminunits package; replaced whole each night';

RESET ROLE;
