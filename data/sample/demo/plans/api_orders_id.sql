SELECT id, status, amount, created_at FROM invoices WHERE order_id = $1;
