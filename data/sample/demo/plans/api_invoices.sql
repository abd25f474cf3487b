SELECT id, order_id, status, amount, created_at FROM invoices WHERE tenant_id = $1 ORDER BY created_at DESC LIMIT 50;
