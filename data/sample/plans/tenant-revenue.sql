SELECT o.id, sum(i.quantity * i.price) FROM orders o JOIN order_items i ON i.order_id = o.id WHERE o.tenant_id = 3 GROUP BY o.id ORDER BY 2 DESC LIMIT 20
