DROP VIEW IF EXISTS published_daily_mv SYNC;
DROP TABLE IF EXISTS published_daily SYNC;
DROP VIEW IF EXISTS account_metrics_daily_mv SYNC;
DROP TABLE IF EXISTS account_metrics_daily SYNC;
DROP VIEW IF EXISTS post_metrics_daily_mv SYNC;
DROP TABLE IF EXISTS post_metrics_daily SYNC;
