-- Big GROUP BY: ~0.75M (customer, month) groups from five months of sales -> a hash aggregate
-- that spills to disk at default work_mem (work_mem, hash_mem_multiplier).
SELECT width_bucket(t.total, 0, 10000, 10) AS spend_bucket,
       count(*)                            AS customer_months,
       round(avg(t.orders), 3)             AS avg_orders,
       round(avg(t.max_quantity), 3)       AS avg_max_quantity
FROM (
    SELECT s.customer_id, d.month,
           sum(s.amount)   AS total,
           count(*)        AS orders,
           max(s.quantity) AS max_quantity
    FROM at_sales s
    JOIN at_dates d ON d.date_id = s.date_id
    WHERE s.date_id BETWEEN 367 AND 517          -- 2021-01-01 .. 2021-05-31
    GROUP BY s.customer_id, d.month
) t
GROUP BY 1
ORDER BY 1;
