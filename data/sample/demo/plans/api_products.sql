SELECT id, name, price FROM products WHERE tenant_id = $1 ORDER BY name LIMIT 100;
