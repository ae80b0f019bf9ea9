"""Journal schema: named migrations, applied in order and recorded with the time they ran.

The column names of ``scans``, ``trades`` and ``runs`` are a stable interface for users'
SQL (listed in the README): add columns in new migrations, never rename or drop.
"""

from __future__ import annotations

from collections.abc import Callable

import duckdb

from gammaride.rules import ivrank
from gammaride.rules.gamma import GATES
from gammaride.rules.signals import DIRECTIONS, SKIP_CODES, WINDOWS


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


# Each later change is its own named migration, owned by the feature it serves. A migration
# only adds (tables, columns, backfills); an old journal opens and upgrades in order.


def m002_order_intents(con: duckdb.DuckDBPyConnection) -> None:
    """An order is journaled as an intent before it is sent, so a restart can find it."""
    con.execute(
        """
        CREATE TABLE order_intents (
            client_order_id VARCHAR PRIMARY KEY,
            run_id          BIGINT,
            trade_id        BIGINT,
            purpose         VARCHAR NOT NULL,        -- entry | exit | backstop | bracket
            symbol          VARCHAR,                 -- what is traded (contract or shares)
            underlying      VARCHAR,
            side            VARCHAR,
            qty             DOUBLE,
            decision_time   TIMESTAMPTZ,
            direction       VARCHAR,
            state           VARCHAR NOT NULL,        -- intended | sent | filled | rejected | booked | void
            order_id        VARCHAR,
            created_at      TIMESTAMPTZ NOT NULL,
            updated_at      TIMESTAMPTZ,
            detail_json     VARCHAR                  -- the setup, so a restart can rebuild the position
        )
        """
    )


def m003_runs_dry_run(con: duckdb.DuckDBPyConnection) -> None:
    """Dry runs become a column instead of a key inside settings_json."""
    con.execute("ALTER TABLE runs ADD COLUMN dry_run BOOLEAN DEFAULT false")
    con.execute(
        "UPDATE runs SET dry_run = coalesce("
        "TRY_CAST(json_extract(settings_json, '$.dry_run') AS BOOLEAN), false)"
    )


def m004_live_execution(con: duckdb.DuckDBPyConnection) -> None:
    """Fill slippage against the quote, the option feed used, IV by series, broker events."""
    con.execute("ALTER TABLE fills ADD COLUMN quote_price DOUBLE")      # quote the limit priced from
    con.execute("ALTER TABLE fills ADD COLUMN slippage DOUBLE")         # per contract, + = worse for us
    con.execute("ALTER TABLE scans ADD COLUMN option_feed VARCHAR")     # opra | indicative | NULL
    con.execute("ALTER TABLE scans ADD COLUMN iv_contract VARCHAR")
    con.execute("ALTER TABLE iv_observations ADD COLUMN expiry DATE")
    con.execute("ALTER TABLE iv_observations ADD COLUMN strike DOUBLE")
    con.execute("ALTER TABLE iv_observations ADD COLUMN dte_class VARCHAR")
    # earlier observations name their OCC contract: recover its expiry, strike and class
    occ = r"'^[A-Z.]{1,6}(\d{6})[CP](\d{8})$'"
    con.execute(
        f"UPDATE iv_observations SET expiry = strptime('20' || regexp_extract(contract, {occ}, 1), '%Y%m%d')::DATE, "
        f"strike = CAST(regexp_extract(contract, {occ}, 2) AS DOUBLE) / 1000 "
        f"WHERE regexp_matches(contract, {occ})"
    )
    con.execute(
        "UPDATE iv_observations SET dte_class = CASE WHEN expiry - session_date <= 0 THEN '0dte' "
        "WHEN expiry - session_date = 1 THEN '1dte' WHEN expiry - session_date <= 7 THEN '2-7dte' "
        "ELSE '8+dte' END WHERE expiry IS NOT NULL"
    )
    con.execute(
        """
        CREATE TABLE broker_events (
            run_id        BIGINT,
            occurred_at   TIMESTAMPTZ NOT NULL,
            activity_type VARCHAR NOT NULL,          -- liquidation | OPEXC | OPASN | OPEXP | shares
            symbol        VARCHAR,
            qty           DOUBLE,
            price         DOUBLE,
            trade_id      BIGINT,
            message       VARCHAR
        )
        """
    )


def m005_costs_and_option_paths(con: duckdb.DuckDBPyConnection) -> None:
    """Net and gross P&L with the source of the prices; the option's own path per trade."""
    con.execute("ALTER TABLE trades ADD COLUMN pnl_source VARCHAR")     # fills | option_bars | black_scholes | delta_estimate
    con.execute("ALTER TABLE trades ADD COLUMN gross_pnl_usd DOUBLE")   # before costs; pnl_usd is net
    con.execute("ALTER TABLE trades ADD COLUMN fees_usd DOUBLE")
    con.execute("ALTER TABLE trades ADD COLUMN spread_usd DOUBLE")
    con.execute("ALTER TABLE trades ADD COLUMN slippage_usd DOUBLE")
    con.execute("ALTER TABLE runs ADD COLUMN outlier_prints INTEGER")
    con.execute(
        "UPDATE trades SET gross_pnl_usd = pnl_usd, pnl_source = CASE "
        "WHEN run_id IN (SELECT run_id FROM runs WHERE mode = 'replay') THEN 'delta_estimate' "
        "ELSE 'fills' END WHERE pnl_usd IS NOT NULL"
    )
    con.execute(
        """
        CREATE TABLE option_paths (
            trade_id  BIGINT NOT NULL,
            minute    INTEGER NOT NULL,              -- 0 = the decision minute, 1 = first bar after
            bar_time  TIMESTAMPTZ NOT NULL,          -- bar start
            open      DOUBLE,
            high      DOUBLE,
            low       DOUBLE,
            close     DOUBLE,
            volume    DOUBLE,
            source    VARCHAR,                       -- option_bars | black_scholes | fills
            PRIMARY KEY (trade_id, minute)
        )
        """
    )


def m006_trade_identity(con: duckdb.DuckDBPyConnection) -> None:
    """One identity per trade; a replay run may supersede an earlier run's trades."""
    con.execute("ALTER TABLE trades ADD COLUMN superseded_by BIGINT")   # run_id that replaced it
    con.execute("ALTER TABLE runs ADD COLUMN replaces_runs VARCHAR")     # comma list of run ids


def m007_calibrations(con: duckdb.DuckDBPyConnection) -> None:
    """Every calibrate run is a look; the publish decision accounts for all of them."""
    con.execute(
        """
        CREATE TABLE calibrations (
            calibration_id  BIGINT PRIMARY KEY,
            run_at          TIMESTAMPTZ NOT NULL,
            look            INTEGER NOT NULL,        -- 1 = first look at this journal
            symbol          VARCHAR,
            objective       VARCHAR,                 -- atr | usd
            trades          INTEGER,                 -- closed trades calibrated on
            scored_trades   INTEGER,                 -- of those, scored out of sample
            sessions        INTEGER,                 -- scored sessions
            statistic       DOUBLE,                  -- mean out-of-sample improvement per trade
            ci_low          DOUBLE,                  -- anytime-valid interval of the statistic
            ci_high         DOUBLE,
            alpha_spent     DOUBLE,                  -- level of this look's chain; NULL: no test
            chain           INTEGER,                 -- looks whose sequences extend one another
            sequence_key    VARCHAR,                 -- objective and settings of the sequence
            sequence_digest VARCHAR,                 -- digest of the scored sequence
            verdict         VARCHAR,
            published       BOOLEAN NOT NULL,
            forced          BOOLEAN,
            out_path        VARCHAR,
            detail_json     VARCHAR
        )
        """
    )


def m008_scan_skip_code(con: duckdb.DuckDBPyConnection) -> None:
    """Which gate failed, as a code the report can count: window, warmup, volume, iv,
    direction (the entry rules), gamma, risk, data, market, order, error (``signals.SKIP_CODES``)."""
    con.execute("ALTER TABLE scans ADD COLUMN skip_code VARCHAR")


def m009_scan_gamma(con: duckdb.DuckDBPyConnection) -> None:
    """Dealer gamma exposure measured at each scan."""
    for col, kind in [
        ("gex_net", "DOUBLE"),          # $ per 1% move, calls +, puts -
        ("gex_calls", "DOUBLE"),
        ("gex_puts", "DOUBLE"),
        ("gex_0dte", "DOUBLE"),
        ("zero_gamma", "DOUBLE"),
        ("call_wall", "DOUBLE"),
        ("put_wall", "DOUBLE"),
        ("gamma_regime", "VARCHAR"),    # short | long | NULL
        ("gamma_contracts", "INTEGER"),
        ("gamma_bs_count", "INTEGER"),  # contracts whose gamma came from Black-Scholes
        ("gamma_reason", "VARCHAR"),    # why the measure is missing
        ("gamma_gate", "VARCHAR"),      # off | short_only
    ]:
        con.execute(f"ALTER TABLE scans ADD COLUMN {col} {kind}")


def m010_schema_state(con: duckdb.DuckDBPyConnection) -> None:
    """The schema this journal last passed its full check with (a digest of its tables and
    columns, at its migration version): a journal that still matches it opens with one
    query instead of rebuilding every migration to compare."""
    con.execute(
        """
        CREATE TABLE schema_state (
            version      INTEGER NOT NULL,       -- migrations applied when it was checked
            fingerprint  VARCHAR NOT NULL,       -- md5 of the sorted table.column names
            checked_at   TIMESTAMPTZ NOT NULL
        )
        """
    )


# The scan columns whose values come from a fixed vocabulary, each defined once in the rules.
SCAN_VOCABULARIES: dict[str, tuple[str, ...]] = {
    "window": WINDOWS,
    "direction": DIRECTIONS,
    "skip_code": SKIP_CODES,
    "gamma_gate": GATES,
    "iv_source": ivrank.SOURCES,
}


def enum_type(values) -> str:
    """A DuckDB ENUM type of ``values``, sorted: ORDER BY on it stays alphabetical, as on text."""
    return "ENUM(" + ", ".join("'" + v.replace("'", "''") + "'" for v in sorted(set(values))) + ")"


# The vocabularies as m011 shipped them. A migration is history: a value added to a rule's
# vocabulary later needs a new migration that widens the column's type, or journals made
# before it refuse the new value (a test compares a new journal's types with
# SCAN_VOCABULARIES and fails until that migration exists).
M011_VOCABULARIES: dict[str, tuple[str, ...]] = {
    "window": ("am", "pm"),
    "direction": ("call", "put"),
    "skip_code": ("window", "warmup", "volume", "iv", "direction", "gamma", "risk", "data", "market",
                  "order", "error"),
    "gamma_gate": ("off", "short_only"),
    "iv_source": ("constant", "rv_proxy", "iv_history", "off", "none"),
}


def m011_scan_vocabularies(con: duckdb.DuckDBPyConnection) -> None:
    """The scan columns of a fixed vocabulary (``M011_VOCABULARIES``) stored as DuckDB ENUM
    types: a byte per row instead of a string, which makes writing a replay's scans about a
    third cheaper. SQL reads them as text (``WHERE skip_code = 'volume'``, ``LIKE``, ``||``,
    ``coalesce`` with a string); a value outside the vocabulary is refused on insert. Values
    an older journal already holds join its vocabulary, so nothing it holds is lost."""
    columns = list(M011_VOCABULARIES)
    held = con.execute("SELECT " + ", ".join(f'list(DISTINCT "{c}")' for c in columns) + " FROM scans").fetchall()[0]
    for column, values in zip(columns, held, strict=True):
        kind = enum_type([*M011_VOCABULARIES[column], *(str(v) for v in values or [] if v is not None)])
        con.execute(f'ALTER TABLE scans ALTER COLUMN "{column}" TYPE {kind}')


MIGRATIONS: list[tuple[str, Callable[[duckdb.DuckDBPyConnection], None]]] = [
    ("m001_initial", m001_initial),
    ("m002_order_intents", m002_order_intents),
    ("m003_runs_dry_run", m003_runs_dry_run),
    ("m004_live_execution", m004_live_execution),
    ("m005_costs_and_option_paths", m005_costs_and_option_paths),
    ("m006_trade_identity", m006_trade_identity),
    ("m007_calibrations", m007_calibrations),
    ("m008_scan_skip_code", m008_scan_skip_code),
    ("m009_scan_gamma", m009_scan_gamma),
    ("m010_schema_state", m010_schema_state),
    ("m011_scan_vocabularies", m011_scan_vocabularies),
]
SCHEMA_VERSION = len(MIGRATIONS)

SCAN_COLUMNS = [
    "run_id", "scan_no", "decision_time", "scanned_at", "symbol", "in_window", "window",
    "volume", "avg_volume", "vol_ratio", "vol_spike", "price", "price_change", "direction",
    "atr", "iv", "iv_percentile", "iv_source", "signal", "skip_reason", "trade_id",
    # m004
    "option_feed", "iv_contract",
    # m008
    "skip_code",
    # m009
    "gex_net", "gex_calls", "gex_puts", "gex_0dte", "zero_gamma", "call_wall", "put_wall",
    "gamma_regime", "gamma_contracts", "gamma_bs_count", "gamma_reason", "gamma_gate",
]
TRADE_COLUMNS = [
    "trade_id", "run_id", "symbol", "instrument", "contract_symbol", "direction", "status",
    "entry_time", "entry_price", "exit_time", "exit_price", "exit_reason", "hard_stop_time",
    "atr", "tp", "sl", "tp_mult", "sl_mult", "phase", "atr_bucket", "iv_percentile",
    "contracts", "entry_premium", "exit_premium", "pnl_usd", "r_multiple", "mfe_atr",
    "mae_atr", "client_order_id",
    # m005
    "pnl_source", "gross_pnl_usd", "fees_usd", "spread_usd", "slippage_usd",
    # m006
    "superseded_by",
]
OPTION_PATH_COLUMNS = [
    "trade_id", "minute", "bar_time", "open", "high", "low", "close", "volume", "source",
]
PATH_COLUMNS = ["trade_id", "minute", "bar_time", "open", "high", "low", "close"]
