-- Window functions: each customer's top-3 sales in half a year and the gap to the next
-- larger sale. One big sort on (customer_id, amount) feeds the window (work_mem, jit).
SELECT c.segment,
       count(*)                        AS top_sales,
       round(avg(w.amount), 2)         AS avg_top_amount,
       round(avg(w.gap_to_larger), 2)  AS avg_gap_to_larger,
       count(*) FILTER (WHERE w.rn = 1) AS customers
FROM (
    SELECT s.customer_id,
           s.amount,
           row_number() OVER by_amount               AS rn,
           lag(s.amount) OVER by_amount - s.amount   AS gap_to_larger
    FROM at_sales s
    WHERE s.date_id BETWEEN 1097 AND 1277        -- first half of 2023
    WINDOW by_amount AS (PARTITION BY s.customer_id ORDER BY s.amount DESC, s.sale_id)
) w
JOIN at_customers c ON c.customer_id = w.customer_id
WHERE w.rn <= 3
GROUP BY c.segment
ORDER BY c.segment;
