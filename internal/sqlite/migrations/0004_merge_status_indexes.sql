-- 0004_merge_status_indexes: drop the two violation indexes led by
-- received_at and by speed alone.
--
-- A dashboard page across every status now merges one range of each
-- status's index (violations_status_received, violations_status_speed),
-- and the hourly statistics read violations_status_received for each
-- status. Each dropped index cost the ingest path a B-tree insert per
-- report; the speed one dirtied one page per distinct speed in every
-- commit. Without them a store of 200,000 reports takes 5-18% less time
-- per stored report (internal/sqlite BenchmarkIngestGrown, run against
-- both schemas one after the other).
DROP INDEX violations_received;
DROP INDEX violations_speed;
