"""Journal schema: named migrations, applied in order and recorded with the time they ran.

The column names of ``scans``, ``trades`` and ``runs`` are a stable interface for users'
SQL (listed in the README): add columns in new migrations, never rename or drop.
"""

from __future__ import annotations

from collections.abc import Callable

import duckdb


def m001_initial(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """
        CREATE TABLE runs (
            run_id        BIGINT PRIMARY KEY,
            mode          VARCHAR NOT NULL,          -- replay | offline | paper | live
            symbol        VARCHAR NOT NULL,
            instrument    VARCHAR,                   -- options | shares
            status        VARCHAR NOT NULL,          -- running | completed | failed | interrupted
            started_at    TIMESTAMPTZ NOT NULL,
            finished_at   TIMESTAMPTZ,
            source        VARCHAR,                   -- bars files, server URL, ...
            phase         INTEGER,
            exit_policy   VARCHAR,
            iv_source     VARCHAR,
            settings_json VARCHAR,
            version       VARCHAR,
            summary_json  VARCHAR
        )
        """
    )
    con.execute(
        """
        CREATE TABLE scans (
            run_id         BIGINT NOT NULL,
            scan_no        INTEGER NOT NULL,
            decision_time  TIMESTAMPTZ,
            scanned_at     TIMESTAMPTZ,              -- wall clock (live); NULL in replay
            symbol         VARCHAR NOT NULL,
            in_window      BOOLEAN,
            "window"       VARCHAR,                  -- am | pm | NULL
            volume         DOUBLE,
            avg_volume     DOUBLE,
            vol_ratio      DOUBLE,
            vol_spike      BOOLEAN,
            price          DOUBLE,
            price_change   DOUBLE,
            direction      VARCHAR,                  -- call | put | NULL
            atr            DOUBLE,
            iv             DOUBLE,
            iv_percentile  DOUBLE,
            iv_source      VARCHAR,
            signal         BOOLEAN,                  -- every gate passed
            skip_reason    VARCHAR,                  -- NULL when an entry was made
            trade_id       BIGINT,
            PRIMARY KEY (run_id, scan_no)
        )
        """
    )
    con.execute(
        """
        CREATE TABLE trades (
            trade_id        BIGINT PRIMARY KEY,
            run_id          BIGINT NOT NULL,
            symbol          VARCHAR NOT NULL,
            instrument      VARCHAR,
            contract_symbol VARCHAR,
            direction       VARCHAR NOT NULL,
            status          VARCHAR NOT NULL,        -- open | closed
            entry_time      TIMESTAMPTZ NOT NULL,
            entry_price     DOUBLE NOT NULL,         -- underlying
            exit_time       TIMESTAMPTZ,
            exit_price      DOUBLE,
            exit_reason     VARCHAR,                 -- tp | sl | time | hard_stop | manual
            hard_stop_time  TIMESTAMPTZ,
            atr             DOUBLE,
            tp              DOUBLE,
            sl              DOUBLE,
            tp_mult         DOUBLE,
            sl_mult         DOUBLE,
            phase           INTEGER,
            atr_bucket      VARCHAR,
            iv_percentile   DOUBLE,
            contracts       INTEGER,
            entry_premium   DOUBLE,
            exit_premium    DOUBLE,
            pnl_usd         DOUBLE,
            r_multiple      DOUBLE,
            mfe_atr         DOUBLE,
            mae_atr         DOUBLE,
            client_order_id VARCHAR
        )
        """
    )
    con.execute(
        """
        CREATE TABLE trade_paths (
            trade_id  BIGINT NOT NULL,
            minute    INTEGER NOT NULL,              -- 1 = first bar after the entry decision
            bar_time  TIMESTAMPTZ NOT NULL,          -- bar start
            open      DOUBLE,
            high      DOUBLE,
            low       DOUBLE,
            close     DOUBLE,
            PRIMARY KEY (trade_id, minute)
        )
        """
    )
    con.execute(
        """
        CREATE TABLE orders (
            order_id        VARCHAR PRIMARY KEY,     -- broker id, or PAPER_SIM_### when none was sent
            client_order_id VARCHAR,
            run_id          BIGINT,
            trade_id        BIGINT,
            symbol          VARCHAR,
            side            VARCHAR,
            qty             DOUBLE,
            order_type      VARCHAR,
            order_class     VARCHAR,
            limit_price     DOUBLE,
            stop_price      DOUBLE,
            purpose         VARCHAR,                 -- entry | exit | backstop | bracket
            status          VARCHAR,
            submitted_at    TIMESTAMPTZ,
            updated_at      TIMESTAMPTZ,
            message         VARCHAR
        )
        """
    )
    con.execute(
        """
        CREATE TABLE fills (
            order_id   VARCHAR NOT NULL,
            run_id     BIGINT,
            trade_id   BIGINT,
            symbol     VARCHAR,
            side       VARCHAR,
            qty        DOUBLE,
            price      DOUBLE,
            filled_at  TIMESTAMPTZ
        )
        """
    )
    con.execute(
        """
        CREATE TABLE iv_observations (
            observed_at   TIMESTAMPTZ NOT NULL,
            session_date  DATE NOT NULL,
            symbol        VARCHAR NOT NULL,
            contract      VARCHAR,
            iv            DOUBLE,
            source        VARCHAR
        )
        """
    )
    con.execute(
        """
        CREATE TABLE errors (
            run_id       BIGINT,
            occurred_at  TIMESTAMPTZ NOT NULL,
            scan_no      INTEGER,
            context      VARCHAR,
            error_type   VARCHAR,
            message      VARCHAR
        )
        """
    )


MIGRATIONS: list[tuple[str, Callable[[duckdb.DuckDBPyConnection], None]]] = [
    ("m001_initial", m001_initial),
]
SCHEMA_VERSION = len(MIGRATIONS)

SCAN_COLUMNS = [
    "run_id", "scan_no", "decision_time", "scanned_at", "symbol", "in_window", "window",
    "volume", "avg_volume", "vol_ratio", "vol_spike", "price", "price_change", "direction",
    "atr", "iv", "iv_percentile", "iv_source", "signal", "skip_reason", "trade_id",
]
TRADE_COLUMNS = [
    "trade_id", "run_id", "symbol", "instrument", "contract_symbol", "direction", "status",
    "entry_time", "entry_price", "exit_time", "exit_price", "exit_reason", "hard_stop_time",
    "atr", "tp", "sl", "tp_mult", "sl_mult", "phase", "atr_bucket", "iv_percentile",
    "contracts", "entry_premium", "exit_premium", "pnl_usd", "r_multiple", "mfe_atr",
    "mae_atr", "client_order_id",
]
PATH_COLUMNS = ["trade_id", "minute", "bar_time", "open", "high", "low", "close"]
