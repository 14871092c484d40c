-- The catalogue. Stock starts very large so that load tests never run out: running out of stock
-- is a business answer (409), not the failure the harness is looking for.
CREATE TABLE products (
    id          bigserial PRIMARY KEY,
    name        text    NOT NULL,
    price_cents bigint  NOT NULL CHECK (price_cents >= 0),
    stock       integer NOT NULL CHECK (stock >= 0)
);

INSERT INTO products (name, price_cents, stock) VALUES
    ('Chaos monkey plush',          1999, 1000000),
    ('Circuit breaker keyring',      499, 1000000),
    ('Retry-After stopwatch',       2499, 1000000),
    ('Idempotency key (brass)',      799, 1000000),
    ('Timeout hourglass',           1299, 1000000),
    ('Stale cache cheese board',    3499, 1000000),
    ('Load shedder snow shovel',    4599, 1000000),
    ('Backpressure valve',          2999, 1000000),
    ('Outbox letterbox',            5999, 1000000),
    ('Panic button',                 999, 1000000),
    ('Problem+json mug',            1499, 1000000),
    ('Runbook notebook',             899, 1000000),
    ('Pager holster',               1799, 1000000),
    ('Game day dice',                699, 1000000),
    ('Error budget piggy bank',     2199, 1000000),
    ('Blast radius ruler',           599, 1000000),
    ('Postmortem pen',               399, 1000000),
    ('Failpoint pin set',           1199, 1000000),
    ('Graceful shutdown pillow',    2799, 1000000),
    ('Fivehundred t-shirt',         2499, 1000000);
