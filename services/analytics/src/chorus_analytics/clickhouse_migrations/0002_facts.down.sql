DROP TABLE IF EXISTS audit_log SYNC;
DROP TABLE IF EXISTS account_metric_snapshots SYNC;
DROP TABLE IF EXISTS post_metric_snapshots SYNC;
DROP TABLE IF EXISTS post_deliveries SYNC;
