-- autotune "analytic-large" workload: the "analytic" star schema at 15x the sales and
-- 4x the customers: ~1.1 GB of fact table heap (~1.6 GB with indexes), over 10x the
-- default shared_buffers. Loaded once and kept between sessions (cache: true).
--
-- Everything is generated with generate_series; "random" values come from
-- hashint4extended(i, seed), which hashes the integer value (not its bytes),
-- so the data is identical on every run and every platform. random() is
-- never used.
--
--   at_dates       1,500 days starting 2020-01-01
--   at_customers 200,000 customers (8 regions, 5 segments)
--   at_products    5,000 products (20 categories, 250 brands)
--   at_sales  15,000,000 sales, appended in date order (date_id correlates
--                        with the physical order, customer_id does not);
--                        product popularity is skewed towards low ids
--
-- Idempotent: drops and recreates its tables. Runs as one multi-statement
-- string (no psql meta-commands).

DROP TABLE IF EXISTS at_sales;
DROP TABLE IF EXISTS at_customers;
DROP TABLE IF EXISTS at_products;
DROP TABLE IF EXISTS at_dates;

CREATE TABLE at_dates (
    date_id     integer NOT NULL,
    day         date    NOT NULL,
    year        integer NOT NULL,
    quarter     integer NOT NULL,
    month       integer NOT NULL,
    day_of_week integer NOT NULL,
    is_weekend  boolean NOT NULL
);

INSERT INTO at_dates
SELECT i,
       d,
       extract(year FROM d)::int,
       extract(quarter FROM d)::int,
       extract(month FROM d)::int,
       extract(isodow FROM d)::int,
       extract(isodow FROM d) >= 6
FROM generate_series(1, 1500) AS i,
     LATERAL (SELECT date '2019-12-31' + i AS d) AS x;

CREATE TABLE at_customers (
    customer_id  integer       NOT NULL,
    name         text          NOT NULL,
    region       text          NOT NULL,
    segment      text          NOT NULL,
    signup_date  integer       NOT NULL,
    credit_limit numeric(10,2) NOT NULL
);

INSERT INTO at_customers
SELECT i,
       'customer-' || lpad(i::text, 6, '0'),
       (ARRAY['north','south','east','west','central',
              'north-east','south-west','islands'])[1 + abs(hashint4extended(i, 11) % 8)],
       (ARRAY['consumer','corporate','small-business',
              'home-office','government'])[1 + abs(hashint4extended(i, 12) % 5)],
       1 + abs(hashint4extended(i, 13) % 1500),
       (1000 + abs(hashint4extended(i, 14) % 49000))::numeric(10,2)
FROM generate_series(1, 200000) AS i;

CREATE TABLE at_products (
    product_id integer       NOT NULL,
    name       text          NOT NULL,
    category   text          NOT NULL,
    brand      text          NOT NULL,
    list_price numeric(10,2) NOT NULL
);

INSERT INTO at_products
SELECT i,
       'product-' || lpad(i::text, 5, '0'),
       'category-' || lpad((1 + abs(hashint4extended(i, 21) % 20))::text, 2, '0'),
       'brand-'    || lpad((1 + abs(hashint4extended(i, 22) % 250))::text, 3, '0'),
       (1 + abs(hashint4extended(i, 23) % 50000) / 100.0)::numeric(10,2)
FROM generate_series(1, 5000) AS i;

CREATE TABLE at_sales (
    sale_id     bigint        NOT NULL,
    date_id     integer       NOT NULL,
    customer_id integer       NOT NULL,
    product_id  integer       NOT NULL,
    store_id    integer       NOT NULL,
    quantity    integer       NOT NULL,
    unit_price  numeric(10,2) NOT NULL,
    discount    numeric(4,2)  NOT NULL,
    amount      numeric(12,2) NOT NULL
);

INSERT INTO at_sales
SELECT i,
       1 + ((i - 1)::bigint * 1500 / 15000000)::int,             -- date order
       1 + abs(hashint4extended(i, 31) % 200000),                 -- uniform
       1 + floor(5000 * u * u)::int,                              -- skewed
       1 + abs(hashint4extended(i, 33) % 200),
       q,
       p,
       disc,
       round(q * p * (1 - disc), 2)
FROM generate_series(1, 15000000) AS i,
     LATERAL (SELECT (abs(hashint4extended(i, 32)) % 1000000) / 1000000.0::float8 AS u,
                     1 + abs(hashint4extended(i, 34) % 10)::int AS q,
                     (1 + abs(hashint4extended(i, 35) % 50000) / 100.0)::numeric(10,2) AS p,
                     (abs(hashint4extended(i, 36) % 6) * 0.05)::numeric(4,2) AS disc) AS r;

ALTER TABLE at_dates     ADD PRIMARY KEY (date_id);
ALTER TABLE at_customers ADD PRIMARY KEY (customer_id);
ALTER TABLE at_products  ADD PRIMARY KEY (product_id);
ALTER TABLE at_sales     ADD PRIMARY KEY (sale_id);

CREATE INDEX at_sales_date_idx     ON at_sales (date_id);
CREATE INDEX at_sales_customer_idx ON at_sales (customer_id);
CREATE INDEX at_customers_region_idx ON at_customers (region, segment);

ANALYZE at_dates;
ANALYZE at_customers;
ANALYZE at_products;
ANALYZE at_sales;
