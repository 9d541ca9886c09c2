select
    procedure_code,
    procedure_name,
    field_code,
    field_name,
    online_level,
    legal_duration,
    duration_unit,
    returns_paper_result
from {{ ref('stg_api__procedures') }}
