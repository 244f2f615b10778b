-- Large sort that does not fit in 4MB work_mem (external merge; in-memory quicksort from
-- ~16MB). The OFFSET is deep (over half the rows), so no bounded top-N heapsort is used.
SELECT s.sale_id, s.customer_id, p.brand, s.amount
FROM at_sales s
JOIN at_products p ON p.product_id = s.product_id
WHERE s.date_id BETWEEN 732 AND 881              -- 2022-01-01 .. 2022-05-30
ORDER BY p.brand, s.amount DESC, s.sale_id
OFFSET 1200000
LIMIT 10;
