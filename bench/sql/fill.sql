-- Top the table up to :target rows (psql -v target=N), spread over a few event
-- types, with created_at spread back in time.
SELECT greatest(:target - count(*), 0) AS missing FROM events \gset
\echo filling :missing rows
SELECT :missing > 0 AS need \gset
\if :need
INSERT INTO events (id, created_at, event_type, summary, author, detail, prev_hash, hash)
SELECT gen_random_uuid(),
       now() - make_interval(secs => (:missing - g) * 0.05),
       (ARRAY['bench.posted', 'task.updated', 'decision.made', 'hub.heartbeat'])[1 + g % 4],
       'bench event', 'bench', jsonb_build_object('n', g),
       sha256(int8send(g)), sha256(uuid_send(gen_random_uuid()))
FROM generate_series(1, :missing) AS g;
\endif
