#!/usr/bin/env python3
"""The fleet query of docs/README-fleet.md, in DuckDB and (when pyspark is installed) in Spark
local mode over the same store files, and whether they agree.

The query: the statements that cost the most across the fleet over the last 4 weeks: per server,
its latest snapshot minus its snapshot nearest 4 weeks before, grouped by normalized text.

    .venv/bin/python scripts/fleet_query.py STORE_DIR [--weeks 4] [--top 20] [--spark]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

# One query for both engines: {epoch} and {normalized} differ (DuckDB's epoch() and regexp flag
# 'g'; Spark's unix_seconds() and regexp_replace, which replaces every match by itself).
FLEET_TOP_SQL = """
WITH taken AS (SELECT server, snapshot_id, max(captured_at) AS captured_at FROM snapshots GROUP BY server, snapshot_id),
latest AS (SELECT server, max(captured_at) AS at FROM taken GROUP BY server),
candidates AS (
  SELECT t.server, t.snapshot_id, t.captured_at, l.at,
         row_number() OVER (PARTITION BY t.server
                            ORDER BY abs({epoch_t} - ({epoch_l} - {weeks} * 604800)), t.captured_at) AS n
  FROM taken t JOIN latest l ON t.server = l.server WHERE t.captured_at < l.at),
pair AS (SELECT c.server, c.snapshot_id AS base_id, t.snapshot_id AS latest_id
         FROM candidates c JOIN taken t ON t.server = c.server AND t.captured_at = c.at WHERE c.n = 1),
interval AS (
  SELECT a.server, a.query, a.calls - b.calls AS calls, a.total_exec_ms - b.total_exec_ms AS total_exec_ms
  FROM pair p
  JOIN snapshots a ON a.server = p.server AND a.snapshot_id = p.latest_id
  JOIN snapshots b ON b.server = p.server AND b.snapshot_id = p.base_id
       AND b.queryid = a.queryid AND b.datname = a.datname AND b.rolname = a.rolname
  WHERE a.calls >= b.calls)
SELECT {normalized} AS normalized, count(DISTINCT server) AS servers, sum(calls) AS calls,
       round(sum(total_exec_ms), 3) AS total_exec_ms
FROM interval
GROUP BY {normalized}
ORDER BY total_exec_ms DESC, normalized
LIMIT {top}
"""
NORMALIZED = {
    "duckdb": r"lower(regexp_replace(regexp_replace(query, '^\s*(/\*.*?\*/\s*)*', ''), '\s+', ' ', 'g'))",
    "spark": r"lower(regexp_replace(regexp_replace(query, '^\\s*(/\\*.*?\\*/\\s*)*', ''), '\\s+', ' '))",
}
EPOCH = {"duckdb": "epoch({})", "spark": "unix_seconds({})"}


def sql_for(engine: str, weeks: int = 4, top: int = 20) -> str:
    return FLEET_TOP_SQL.format(epoch_t=EPOCH[engine].format("t.captured_at"), epoch_l=EPOCH[engine].format("l.at"),
                                weeks=int(weeks), top=int(top), normalized=NORMALIZED[engine])


def run_duckdb(root: Path, weeks: int, top: int):
    import duckdb

    con = duckdb.connect()
    glob = str(root / "server=*" / "date=*" / "*.parquet").replace("'", "''")
    # one file per snapshot (a compacted file's name sorts last): exact while a compaction runs
    con.execute(f"""CREATE VIEW snapshots AS SELECT * EXCLUDE (filename)
        FROM read_parquet('{glob}', hive_partitioning = true, filename = true)
        QUALIFY filename = max(filename) OVER (PARTITION BY server, snapshot_id)""")
    return con.execute(sql_for("duckdb", weeks, top)).df()


def run_spark(root: Path, weeks: int, top: int):
    from pyspark.sql import SparkSession, Window
    from pyspark.sql import functions as F

    spark = (SparkSession.builder.master("local[2]").appName("perfkit-fleet")
             .config("spark.sql.session.timeZone", "UTC").config("spark.ui.enabled", "false").getOrCreate())
    try:
        frame = (spark.read.option("basePath", str(root)).parquet(str(root / "server=*" / "date=*" / "*.parquet"))
                 .withColumn("file", F.input_file_name()))
        window = Window.partitionBy("server", "snapshot_id")
        exact = frame.withColumn("keep", F.max("file").over(window)).where("file = keep").drop("file", "keep")
        exact.createOrReplaceTempView("snapshots")
        return spark.sql(sql_for("spark", weeks, top)).toPandas()
    finally:
        spark.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", type=Path)
    parser.add_argument("--weeks", type=int, default=4)
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--spark", action="store_true", help="also run it in Spark local mode and compare")
    args = parser.parse_args()
    started = time.perf_counter()
    duck = run_duckdb(args.store, args.weeks, args.top)
    print(f"DuckDB: {len(duck)} rows in {time.perf_counter() - started:.2f} s")
    print(duck.to_string(max_colwidth=70))
    if not args.spark:
        return 0
    started = time.perf_counter()
    spark = run_spark(args.store, args.weeks, args.top)
    print(f"Spark (local[2]): {len(spark)} rows in {time.perf_counter() - started:.2f} s")
    same = (len(duck) == len(spark) and list(duck["normalized"]) == list(spark["normalized"])
            and (duck["servers"].astype(int) == spark["servers"].astype(int)).all()
            and (duck["calls"].astype(float) == spark["calls"].astype(float)).all()
            and ((duck["total_exec_ms"].astype(float) - spark["total_exec_ms"].astype(float)).abs() < 0.01).all())
    print("DuckDB and Spark agree" if same else "DuckDB and Spark DIFFER")
    if not same:
        print(spark.to_string(max_colwidth=70))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
