/* A later column; "a;b" inside a string literal must not split the statement. */
ALTER TABLE events ADD COLUMN IF NOT EXISTS platform LowCardinality(String) DEFAULT 'none;unknown' AFTER event_type;
