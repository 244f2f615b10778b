-- Star join with filters on every dimension: join order / join method / parallel workers.
SELECT p.category,
       c.region,
       count(*)                AS sales,
       sum(s.quantity)         AS units,
       round(sum(s.amount), 2) AS revenue
FROM at_sales s
JOIN at_dates d     ON d.date_id = s.date_id
JOIN at_customers c ON c.customer_id = s.customer_id
JOIN at_products p  ON p.product_id = s.product_id
WHERE d.year IN (2021, 2022)
  AND d.is_weekend = false
  AND c.segment IN ('corporate', 'small-business', 'government')
  AND p.category BETWEEN 'category-05' AND 'category-14'
  AND s.discount < 0.20
GROUP BY p.category, c.region
ORDER BY revenue DESC
LIMIT 20;
