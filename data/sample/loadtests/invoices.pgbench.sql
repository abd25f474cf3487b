\set tenant random(1, 30)
SELECT id, order_id, status, amount, created_at FROM invoices WHERE tenant_id = :tenant ORDER BY created_at DESC LIMIT 50;
