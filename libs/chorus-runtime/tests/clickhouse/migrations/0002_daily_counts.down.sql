DROP VIEW IF EXISTS daily_counts_mv SYNC;
DROP TABLE IF EXISTS daily_counts SYNC;
