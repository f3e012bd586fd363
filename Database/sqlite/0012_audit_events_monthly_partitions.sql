-- 0012 audit trail partitioned by month: PostgreSQL only (see Database/postgres/0012). SQLite has no table
-- partitioning; its archive job keeps deleting archived events by seq ranges. This script keeps both folders on the
-- same numbers, so a change made to both later gets one version.
SELECT 1;
