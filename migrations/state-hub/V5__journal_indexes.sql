-- Journal read paths at 10M events (bench/journal-scale.sh; plan and figures in docs/journal-growth.md).
-- The journal is append-only and hash-chained: only indexes change here, never rows.

-- `noun=` listings filter with `event_type LIKE '<noun>.%'`. Under any collation but "C" (this server
-- runs C.UTF-8, most run en_US.UTF-8) a default btree cannot serve a LIKE prefix, so a rare noun
-- (e.g. `token`) walked the whole table: 4-6 s at 10M events. text_pattern_ops compares bytewise
-- and serves both the prefix range and `event_type = $1`, so it replaces events_by_type (same
-- columns) instead of adding an index.
DROP INDEX events_by_type;
CREATE INDEX events_by_type ON events (event_type text_pattern_ops, seq);

-- `since=`/`until=` listings. The BRIN index only feeds lossy bitmaps (a one-hour window: 15 ms
-- at 10M); a btree reads the window exactly (0.6 ms) and gives the planner a cheap alternative to
-- walking the primary key. It does everything the BRIN index did, so that one goes.
CREATE INDEX events_by_created_at ON events (created_at);
DROP INDEX events_by_time;
