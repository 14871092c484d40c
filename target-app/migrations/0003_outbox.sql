-- Receipts waiting to be written to disk. A row is inserted in the same transaction as its order,
-- so a committed order always has its receipt queued, whatever happens to the disk afterwards.
CREATE TABLE outbox (
    id         bigserial   PRIMARY KEY,
    order_id   uuid        NOT NULL REFERENCES orders (id),
    payload    jsonb       NOT NULL,
    attempts   integer     NOT NULL DEFAULT 0,
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now()
);
