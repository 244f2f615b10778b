-- Large sort that does not fit in 4MB work_mem (external merge); the deep OFFSET
-- defeats the bounded top-N heapsort (work_mem, parallel workers).
SELECT s.sale_id, s.customer_id, p.brand, s.amount
FROM at_sales s
JOIN at_products p ON p.product_id = s.product_id
WHERE s.date_id BETWEEN 732 AND 1096             -- calendar year 2022
ORDER BY p.brand, s.amount DESC, s.sale_id
OFFSET 100000
LIMIT 10;
