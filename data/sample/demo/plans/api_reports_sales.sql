SELECT user_id, id, total, created_at FROM (
    SELECT o.user_id, o.id, o.total, o.created_at,
           row_number() OVER (PARTITION BY o.user_id ORDER BY o.created_at DESC) AS recent
    FROM orders o WHERE o.tenant_id = $1 AND o.status IN ('paid', 'shipped')) ranked
WHERE recent <= 3 ORDER BY total DESC LIMIT 100;
