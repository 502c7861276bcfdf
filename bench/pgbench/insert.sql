-- One event per transaction: new seq from the sequence, random uuid id,
-- random unique 32-byte hash (sha256 of a fresh uuid), the API's body.
INSERT INTO events (id, created_at, event_type, summary, author, detail, prev_hash, hash)
VALUES (gen_random_uuid(), now(), 'bench.posted', 'bench event', 'bench', '{"n":1}',
        sha256(uuid_send(gen_random_uuid())), sha256(uuid_send(gen_random_uuid())));
