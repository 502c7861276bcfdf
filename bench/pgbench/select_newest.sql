-- Keyset page: the 50 newest events.
SELECT * FROM events ORDER BY seq DESC LIMIT 50;
