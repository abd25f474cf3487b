SELECT id, status, total, created_at FROM orders WHERE tenant_id = $1 ORDER BY created_at DESC LIMIT 25;
