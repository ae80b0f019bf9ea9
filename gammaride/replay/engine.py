"""Fast replay: the scanner's rules over a whole history in one vectorized pass.

Signals, setup and exits are the same functions the live scanner calls. Only the
bookkeeping that is sequential by nature (one position at a time, trades per day,
the daily loss limit, equity for sizing) loops, and it loops over signals, not bars.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from gammaride.config import NS_MIN, Settings
from gammaride.rules import ivrank
from gammaride.rules.costs import MULTIPLIER, CostModel, estimated_costs, round_trip
from gammaride.rules.exits import (
    EXIT_HARD_STOP,
    EXIT_TIME,
    evaluate_exits,
    excursions,
    outlier_prints,
    without_outliers,
)
from gammaride.rules.gamma import REPLAY_REASON
from gammaride.rules.risk import DayRisk, entry_block
from gammaride.rules.session import expiry_and_hard_stop, session_close_minutes
from gammaride.rules.setup import ExitPlan, ExitPolicy, calculate_setup, direction_sign, exit_levels
from gammaride.rules.signals import SKIP_DATA, SKIP_RISK, compute_signals

SKIP_END_OF_DATA = "end of data before the exit"
PNL_DELTA = "delta_estimate"


@dataclass(frozen=True)
class IVChoice:
    """How replay gets the IV percentile: a constant, the realized-vol proxy, or gate off."""

    mode: str = "proxy"  # proxy | constant | off
    value: float | None = None
    daily: pd.Series | None = None  # daily closes for the proxy

    def __post_init__(self) -> None:
        if self.mode not in {"proxy", "constant", "off"}:
            raise ValueError(f"IV mode {self.mode!r} is not proxy, constant or off")
        if self.mode == "constant" and (
            self.value is None or not np.isfinite(self.value) or not 0 <= self.value <= 1
        ):
            raise ValueError(
                f"--iv-percentile {self.value!r} is not in [0, 1]; pass e.g. --iv-percentile 0.45"
            )

    def for_bars(self, bars: pd.DataFrame, symbol: str) -> tuple[np.ndarray | None, pd.Categorical]:
        """(IV percentile per bar or None when the gate is off, source per bar)."""
        n = len(bars)
        if self.mode == "off":
            return None, _constant(ivrank.SOURCE_OFF, n)
        if self.mode == "constant":
            return np.full(n, float(self.value)), _constant(ivrank.SOURCE_CONSTANT, n)
        daily = self.daily
        if daily is None:
            from gammaride.data.bars import load_daily

            daily = load_daily() if symbol.upper() == "SPY" else pd.Series(dtype=float)
        # Sessions in the minute bars but not in the daily file extend it with their closes.
        dates = bars.index.tz_localize(None).normalize()
        own = pd.Series(bars["close"].to_numpy(), index=dates).groupby(level=0).last()
        closes = pd.concat([daily, own[~own.index.isin(daily.index)]]).sort_index()
        uniq, inverse = np.unique(dates.asi8, return_inverse=True)
        per_session = ivrank.proxy_for_sessions(pd.DatetimeIndex(uniq), closes)
        values = per_session[inverse]
        source = pd.Categorical.from_codes(
            np.isfinite(values).astype(np.int8), pd.Index([ivrank.SOURCE_NONE, ivrank.SOURCE_PROXY], dtype=object)
        )
        return values, source


def _constant(text: str, n: int) -> pd.Categorical:
    """One text for every row, as a categorical (no per-row Python strings)."""
    return pd.Categorical.from_codes(np.zeros(n, dtype=np.int8), pd.Index([text], dtype=object))


def _set_rows(values: pd.Series, rows: np.ndarray, new: np.ndarray) -> pd.Categorical:
    """A categorical column with ``new`` texts (None: missing) at ``rows``."""
    cat = values.array
    given = pd.Index(new, dtype=object)
    extra = [t for t in given.dropna().unique() if t not in cat.categories]
    categories = cat.categories.append(pd.Index(extra, dtype=object)) if extra else cat.categories
    codes = cat.codes.copy()
    codes[rows] = categories.get_indexer(given)
    return pd.Categorical.from_codes(codes, categories)


@dataclass
class ReplayResult:
    scans: pd.DataFrame
    trades: pd.DataFrame
    paths: pd.DataFrame
    policy: ExitPolicy
    option_paths: pd.DataFrame = field(default_factory=pd.DataFrame)
    outlier_prints: int = 0
    costs: CostModel = field(default_factory=CostModel)

    def summary(self) -> dict:
        t = self.trades
        n = len(t)
        return {
            "bars": len(self.scans),
            "in_window": int(self.scans["in_window"].sum()),
            "signals": int(self.scans["signal"].sum()),
            "trades": n,
            "wins": int((t["pnl_usd"] > 0).sum()) if n else 0,
            "win_rate": float((t["pnl_usd"] > 0).mean()) if n else None,
            "pnl_usd": float(t["pnl_usd"].sum()) if n else 0.0,
            "avg_r": float(t["r_multiple"].mean()) if n else None,
            "exit_reasons": t["exit_reason"].value_counts().to_dict() if n else {},
            "gross_pnl_usd": float(t["gross_pnl_usd"].sum()) if n else 0.0,
            "costs_usd": float(t[["fees_usd", "spread_usd", "slippage_usd"]].to_numpy().sum()) if n else 0.0,
            "pnl_sources": t["pnl_source"].value_counts().to_dict() if n else {},
            "outlier_prints": self.outlier_prints,
            "costs": self.costs.describe(),
        }


def replay(
    bars: pd.DataFrame,
    settings: Settings,
    policy: ExitPolicy | None = None,
    iv: IVChoice | None = None,
    first_trade_id: int = 1,
    pricer=None,
) -> ReplayResult:
    """Every bar's decision, the trades they lead to and each trade's 20-minute path.

    Dollar P&L is net of :mod:`gammaride.rules.costs`. Without ``pricer`` it is a delta estimate
    (pure); a pricer (:class:`gammaride.replay.pricing.OptionPricer`) prices the option each
    entry would have bought from its own history and returns its path.
    """
    policy = policy or ExitPolicy.phase1(settings)
    costs = CostModel.from_settings(settings)
    iv = iv or IVChoice()
    symbol = settings.symbol
    iv_pct, iv_source = iv.for_bars(bars, symbol)
    sig = compute_signals(bars, settings, iv_pct)
    n = len(bars)

    start_ns = bars.index.asi8
    opens = bars["open"].to_numpy(dtype=float)
    closes = bars["close"].to_numpy(dtype=float)
    # Bad prints never touch a TP or SL: their extremes fall back to the bar's body.
    prior_atr = np.r_[np.nan, sig["atr"].to_numpy(dtype=float)[:-1]]
    bad_high, bad_low = outlier_prints(opens, bars["high"].to_numpy(dtype=float),
                                       bars["low"].to_numpy(dtype=float), closes, prior_atr,
                                       settings.outlier_atr)
    highs, lows = without_outliers(opens, bars["high"].to_numpy(dtype=float),
                                   bars["low"].to_numpy(dtype=float), closes, bad_high, bad_low)
    hold = settings.max_hold_minutes

    cand = np.flatnonzero(sig["signal"].to_numpy())
    dec_ns = start_ns[cand] + NS_MIN
    midnight = bars.index[cand].normalize().asi8 if len(cand) else np.array([], dtype=np.int64)
    dec_min = (dec_ns - midnight) // NS_MIN
    close_min = session_close_minutes(pd.DatetimeIndex(bars.index[cand].tz_localize(None).normalize()))
    same_day, stop_min = expiry_and_hard_stop(settings, symbol, dec_min, close_min)
    stop_ns = midnight + stop_min * NS_MIN
    hold_ns = dec_ns + hold * NS_MIN
    limit_ns = np.minimum(hold_ns, stop_ns)
    end_reason = np.where(hold_ns <= stop_ns, EXIT_TIME, EXIT_HARD_STOP).astype(object)

    # Bars after each decision: positions i+1 .. i+hold, evaluable while they end by the limit.
    pos = cand[:, None] + np.arange(1, hold + 1)[None, :]
    inside = pos < n
    pos_c = np.minimum(pos, max(n - 1, 0))
    bar_start = start_ns[pos_c]
    valid = inside & (bar_start >= dec_ns[:, None]) & (bar_start + NS_MIN <= limit_ns[:, None])
    n_valid = valid.sum(axis=1)
    # Data ending before the position's clock runs out cannot be evaluated honestly.
    last_end = start_ns[-1] + NS_MIN if n else 0
    truncated = (n_valid == 0) | ((limit_ns > last_end) & (n_valid < hold))

    atr = sig["atr"].to_numpy()[cand]
    entry = closes[cand]
    direction = sig["direction"].to_numpy()[cand]
    sign = direction_sign(direction)
    tp_mult, sl_mult, bucket = policy.lookup(atr)
    tp, sl = exit_levels(direction, entry, atr, tp_mult, sl_mult)
    ex = evaluate_exits(
        sign, tp, sl, opens[pos_c], highs[pos_c], lows[pos_c], closes[pos_c], n_valid, end_reason
    )
    exit_ns = start_ns[pos_c[np.arange(len(cand)), np.maximum(ex.bar, 0)]] + NS_MIN
    ivp = sig["iv_percentile"].to_numpy()[cand]

    # Per-contract P&L of every candidate entry, so the risk gates book what it would cost.
    exit_pos = pos_c[np.arange(len(cand)), np.maximum(ex.bar, 0)]
    delta_gross = sign * (ex.price - entry) * MULTIPLIER * settings.replay_delta
    priced = None
    if pricer is not None and len(cand):
        candidates = pd.DataFrame({
            "decision_ns": dec_ns, "exit_ns": exit_ns, "direction": direction, "entry": entry,
            "exit": ex.price, "exit_close": closes[exit_pos], "same_day": same_day,
            "usable": ~truncated,
        })
        priced = pricer.price(candidates, bars, settings)
    if priced is not None:
        unit = round_trip(priced["entry_mid"], priced["exit_mid"], np.ones(len(cand)), costs,
                          priced["spread"])
        by_options = priced["pnl_source"].notna().to_numpy()
        net_pc = np.where(by_options, unit.net_usd,
                          estimated_costs(delta_gross, np.ones(len(cand)), costs).net_usd)
    else:
        by_options = np.zeros(len(cand), dtype=bool)
        net_pc = estimated_costs(delta_gross, np.ones(len(cand)), costs).net_usd

    plans = [ExitPlan(float(tp[j]), float(sl[j]), float(tp_mult[j]), float(sl_mult[j]), str(bucket[j]), policy.phase)
             for j in range(len(cand))]
    accepted, skip = _book(settings, cand, dec_ns, midnight, exit_ns, truncated, net_pc, direction, entry, atr, ivp,
                           plans)
    k = np.flatnonzero(accepted["taken"])
    ids = np.arange(first_trade_id, first_trade_id + len(k))
    trade_ids = np.zeros(n, dtype=np.int64)
    trade_ids[cand[k]] = ids
    skip_code = np.where(truncated, SKIP_DATA, SKIP_RISK).astype(object)
    skip_code[accepted["taken"]] = None

    tz = bars.index.tz
    contracts = accepted["contracts"][k]
    move = sign[k] * (ex.price[k] - entry[k])
    mfe, mae = excursions(sign[k], entry[k], atr[k], highs[pos_c[k]], lows[pos_c[k]], ex.bar[k] + 1)
    opt = by_options[k]
    est = estimated_costs(delta_gross[k] * contracts, contracts, costs)
    if priced is not None:
        real = round_trip(priced["entry_mid"].to_numpy()[k], priced["exit_mid"].to_numpy()[k],
                          contracts, costs, priced["spread"].to_numpy()[k])
        book = {f: np.where(opt, getattr(real, f), getattr(est, f)) for f in real.__dataclass_fields__}
        pnl_source = np.where(opt, priced["pnl_source"].to_numpy()[k], PNL_DELTA).astype(object)
        contract_symbol = np.where(opt, priced["contract_symbol"].to_numpy()[k], None).astype(object)
    else:
        book = {f: getattr(est, f) for f in est.__dataclass_fields__}
        pnl_source = np.full(len(k), PNL_DELTA, dtype=object)
        contract_symbol = np.full(len(k), None, dtype=object)
    trades = pd.DataFrame(
        {
            "trade_id": ids,
            "symbol": symbol,
            "instrument": "options",
            "contract_symbol": contract_symbol,
            "direction": direction[k],
            "status": "closed",
            "entry_time": pd.DatetimeIndex(dec_ns[k], tz="UTC").tz_convert(tz),
            "entry_price": entry[k],
            "exit_time": pd.DatetimeIndex(exit_ns[k], tz="UTC").tz_convert(tz),
            "exit_price": ex.price[k],
            "exit_reason": ex.reason[k],
            "hard_stop_time": pd.DatetimeIndex(stop_ns[k], tz="UTC").tz_convert(tz),
            "atr": atr[k],
            "tp": tp[k],
            "sl": sl[k],
            "tp_mult": tp_mult[k],
            "sl_mult": sl_mult[k],
            "phase": policy.phase,
            "atr_bucket": bucket[k],
            "iv_percentile": ivp[k],
            "contracts": contracts,
            "entry_premium": book["entry_premium"],
            "exit_premium": book["exit_premium"],
            "pnl_usd": book["net_usd"],
            "gross_pnl_usd": book["gross_usd"],
            "fees_usd": book["fees_usd"],
            "spread_usd": book["spread_usd"],
            "slippage_usd": book["slippage_usd"],
            "pnl_source": pnl_source,
            "r_multiple": move / (sl_mult[k] * atr[k]),
            "mfe_atr": mfe,
            "mae_atr": mae,
            "client_order_id": None,
        }
    )
    trades["same_day_expiry"] = same_day[k]

    # The underlying's path for the whole max-hold span after entry, even past the exit.
    in_path = inside[k] & (bar_start[k] >= dec_ns[k, None]) & (bar_start[k] < hold_ns[k, None])
    rows, cols = np.nonzero(in_path)
    p = pos_c[k][rows, cols]
    paths = pd.DataFrame(
        {
            "trade_id": ids[rows],
            "minute": cols + 1,
            "bar_time": bars.index[p],
            "open": opens[p],
            "high": highs[p],
            "low": lows[p],
            "close": closes[p],
        }
    )

    scans = sig.reset_index(drop=True).drop(columns=["iv_ok"])
    scans.insert(0, "scan_no", np.arange(1, n + 1))
    scans["symbol"] = _constant(symbol, n)
    scans["scanned_at"] = pd.Series(pd.NaT, index=scans.index, dtype="datetime64[ns, UTC]")
    scans["iv"] = np.nan
    scans["iv_source"] = iv_source
    scans["skip_reason"] = _set_rows(scans["skip_reason"], cand, skip)
    scans["skip_code"] = _set_rows(scans["skip_code"], cand, skip_code)
    scans["trade_id"] = pd.arrays.IntegerArray(trade_ids, trade_ids == 0)
    # no dealer-gamma measure, and so no gamma gate: Alpaca keeps no history of open interest
    scans["gamma_reason"] = _constant(REPLAY_REASON, n)
    scans["gamma_gate"] = _constant("off", n)
    option_paths = pd.DataFrame()
    if priced is not None:
        option_paths = pricer.paths_for(k, ids)
    return ReplayResult(scans=scans, trades=trades, paths=paths, policy=policy,
                        option_paths=option_paths, outlier_prints=int((bad_high | bad_low).sum()),
                        costs=costs)


def _book(settings, cand, dec_ns, midnight, exit_ns, truncated, net_per_contract, direction, entry, atr, ivp,
          plans):
    """Walk the signals in time order with the scanner's own risk gates (positions, trades
    per day, daily loss limit) and size each entry with the scanner's
    :func:`~gammaride.rules.setup.calculate_setup` from the equity at that moment (no
    buying-power cap: replay has no account); the equity moves by each trade's net P&L."""
    m = len(cand)
    taken = np.zeros(m, dtype=bool)
    contracts = np.zeros(m, dtype=np.int64)
    skip = np.full(m, None, dtype=object)
    open_exits: list[tuple[int, float]] = []  # (exit time, pnl) of open positions
    equity = settings.starting_equity
    day = None
    risk: DayRisk | None = None
    for j in range(m):
        t = dec_ns[j]
        if midnight[j] != day:
            while open_exits:  # positions never cross sessions: realize, then a new day
                equity += heapq.heappop(open_exits)[1]
            day = midnight[j]
            risk = DayRisk(session=day, start_equity=equity)
        while open_exits and open_exits[0][0] <= t:  # flat at a bar's end may enter again
            pnl = heapq.heappop(open_exits)[1]
            equity += pnl
            risk.record_exit(pnl, settings)
        block = SKIP_END_OF_DATA if truncated[j] else entry_block(settings, risk, len(open_exits))
        if block:
            skip[j] = block
            continue
        taken[j] = True
        contracts[j] = calculate_setup(direction[j], entry[j], atr[j], ivp[j], equity, settings,
                                       plan=plans[j]).contracts
        pnl = net_per_contract[j] * contracts[j]
        heapq.heappush(open_exits, (int(exit_ns[j]), float(pnl)))
        risk.trades += 1
    return {"taken": taken, "contracts": contracts}, skip


def run_replay(
    journal,
    bars: pd.DataFrame,
    settings: Settings,
    policy: ExitPolicy | None = None,
    iv: IVChoice | None = None,
    source: str | None = None,
    pricer=None,
) -> tuple[int, ReplayResult]:
    """Replay and journal the run atomically: all of it, or (on any error) none of it."""
    policy = policy or ExitPolicy.phase1(settings)
    iv = iv or IVChoice()
    with journal.transaction():
        first = journal.next_trade_id()
        result = replay(bars, settings, policy, iv, first_trade_id=first, pricer=pricer)
        run_id = journal.start_run(
            "replay", settings.symbol, instrument="options", source=source, phase=policy.phase,
            exit_policy=policy.describe(), iv_source=iv.mode if iv.mode != "constant" else f"constant {iv.value}",
            settings=settings.as_dict(),
        )
        result.scans["run_id"] = run_id
        result.trades["run_id"] = run_id
        journal.write_scans(result.scans)
        journal.write_trades(result.trades)
        journal.write_paths(result.paths)
        journal.write_option_paths(result.option_paths)
        journal.con.execute("UPDATE runs SET outlier_prints = ? WHERE run_id = ?",
                            [result.outlier_prints, run_id])
        journal.finish_run(run_id, "completed", result.summary())
    return run_id, result
