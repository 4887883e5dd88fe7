-- 0004_merge_status_indexes: drop the two violation indexes led by
-- received_at and by speed alone, as the SQLite store's migration 0004
-- does.
--
-- A dashboard page across every status is now the merge of one page of
-- each status, each a range of violations_status_received or
-- violations_status_speed, and the hourly statistics read
-- violations_status_received for each status. Each dropped index cost
-- every ingested report one more B-tree insert.
DROP INDEX violations_received;
DROP INDEX violations_speed;
