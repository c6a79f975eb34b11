-- The column mappings a merchant chose for files whose headers name columns in their own words
-- (`Voucher Code, Product SKU, Loyalty Points, Batch`): one per header layout, so the next
-- batch with a known layout is mapped without asking. `layout` is the header's names trimmed
-- and lower-cased, joined by U+001F; `fields` the column each of the file's columns is staged
-- as (null: ignored), in file order.

CREATE TABLE column_mappings (
    merchant_id uuid        NOT NULL,
    layout      text        NOT NULL,
    fields      jsonb       NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  uuid,
    CONSTRAINT column_mappings_pkey PRIMARY KEY (merchant_id, layout),
    CONSTRAINT column_mappings_fields_array CHECK (jsonb_typeof(fields) = 'array'),
    CONSTRAINT column_mappings_layout_length CHECK (length(layout) <= 65536)
);
