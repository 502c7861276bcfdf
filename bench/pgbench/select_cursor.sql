-- Keyset page after a cursor at a random depth; run with -D maxseq=<max(seq)>.
\set cursor random(51, :maxseq + 1)
SELECT * FROM events WHERE seq < :cursor ORDER BY seq DESC LIMIT 50;
