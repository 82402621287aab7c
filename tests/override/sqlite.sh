#!/bin/sh
# sqlite3: a table of a few hundred thousand rows built by a recursive CTE,
# an index, joins, aggregates, a sort, window functions, text functions.
# Prints only deterministic results.  Runs in the current directory.
set -eu
ROWS=${STRATA_OVERRIDE_SQLITE_ROWS:-300000}
rm -f t.db t.db-journal
sqlite3 -batch t.db <<SQL
PRAGMA journal_mode=OFF;
PRAGMA cache_size=-65536;
CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER, grp INTEGER, name TEXT, payload BLOB);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < $ROWS)
INSERT INTO t(id, k, grp, name, payload)
  SELECT x, (x * 2654435761) % 1000003, x % 97,
         printf('name-%08d-%s', (x * 7919) % 1000003, substr('abcdefghijklmnopqrstuvwxyz', 1 + x % 26)),
         zeroblob(x % 300)
  FROM c;
CREATE INDEX t_k ON t(k);
CREATE INDEX t_name ON t(name);
SELECT count(*), sum(k), min(name), max(name), sum(length(payload)) FROM t;
SELECT grp, count(*), sum(k) % 1000000007, avg(length(name)) FROM t GROUP BY grp ORDER BY grp LIMIT 10;
SELECT id, k, name FROM t WHERE k BETWEEN 1000 AND 1100 ORDER BY k, id;
SELECT count(*) FROM t WHERE name LIKE 'name-0001%';
SELECT group_concat(id, ',') FROM (SELECT id FROM t ORDER BY name DESC LIMIT 40);
SELECT count(DISTINCT k), count(DISTINCT substr(name, 6, 4)) FROM t;
SELECT a.grp, count(*) FROM t a JOIN t b ON b.id = a.k WHERE a.id <= 50000 GROUP BY a.grp ORDER BY 2 DESC, 1 LIMIT 5;
SELECT id, sum(k) OVER (ORDER BY id ROWS BETWEEN 3 PRECEDING AND CURRENT ROW) FROM t WHERE id % 25000 = 0;
SELECT hex(md5) FROM (SELECT group_concat(name, '') AS md5 FROM (SELECT name FROM t WHERE grp = 5 ORDER BY k LIMIT 200));
UPDATE t SET name = upper(name) || '/' || grp WHERE id % 3 = 0;
DELETE FROM t WHERE id % 7 = 0;
SELECT count(*), sum(length(name)), max(name) FROM t;
CREATE TABLE u AS SELECT grp, group_concat(name, ';') AS names FROM t GROUP BY grp;
SELECT grp, length(names) FROM u ORDER BY length(names) DESC, grp LIMIT 5;
VACUUM;
PRAGMA integrity_check;
SQL
