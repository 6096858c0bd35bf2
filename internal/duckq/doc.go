// Package duckq is the DuckDB engine behind Forge's datasets: it turns user
// files (CSV, TSV, JSON lines, Parquet, a folder of them) and PostgreSQL
// queries into one deterministic Parquet file per dataset version, answers
// read-only SQL over those files, and profiles and compares them.
//
// Every operation opens its own in-memory DuckDB instance. That costs a few
// milliseconds and buys isolation: a user query runs in an instance that can
// read exactly the Parquet files it was given and whose configuration is
// locked, so nothing one query does can leak into another.
package duckq
