-- Selective dimension filter joined to the fact table through an index on an uncorrelated
-- column: nested loop + index scans vs. hash join + parallel seq scan is decided by
-- random_page_cost / effective_cache_size (default costs pick the slower seq scan plan).
SELECT p.category,
       count(*)                  AS sales,
       round(sum(s.amount), 2)   AS revenue,
       round(avg(s.quantity), 3) AS avg_quantity
FROM at_customers c
JOIN at_sales s    ON s.customer_id = c.customer_id
JOIN at_products p ON p.product_id = s.product_id
WHERE c.region = 'islands'
  AND c.segment = 'government'
  AND s.date_id BETWEEN 300 AND 1400
GROUP BY p.category
ORDER BY revenue DESC
LIMIT 5;
