-- Orders. The CHECK constraints are the last line of defence: with the `validation` protection off,
-- invalid input reaches them and the request fails with a 500 instead of a 422.
CREATE TABLE orders (
    id              uuid        PRIMARY KEY,
    product_id      bigint      NOT NULL REFERENCES products (id),
    quantity        integer     NOT NULL CHECK (quantity > 0),
    customer_email  text        NOT NULL CHECK (customer_email ~ '^[^@[:space:]]+@[^@[:space:]]+$'
                                                AND length(customer_email) <= 254),
    amount_cents    bigint      NOT NULL CHECK (amount_cents >= 0),
    -- NULL when the client sent no key; NULLs never conflict with each other.
    idempotency_key text        UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now()
);
