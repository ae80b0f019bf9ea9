"""Risk limits before an entry: open positions, trades per day, daily loss kill switch
(contracts against buying power are capped by ``setup.calculate_setup``). Pure: the loop
passes in the day's state."""

from __future__ import annotations

from dataclasses import dataclass

from gammaride.config import Settings


@dataclass
class DayRisk:
    """The session's running state. ``start_equity`` is the broker's previous-close equity."""

    session: object
    start_equity: float
    trades: int = 0
    realized_pnl: float = 0.0
    killed: bool = False

    def loss_limit_usd(self, settings: Settings) -> float:
        return settings.daily_loss_limit * self.start_equity

    def record_exit(self, pnl: float, settings: Settings) -> bool:
        """Add a closed trade's P&L; True when this exit trips the kill switch."""
        self.realized_pnl += float(pnl or 0.0)
        if not self.killed and self.realized_pnl <= -self.loss_limit_usd(settings):
            self.killed = True
            return True
        return False


def entry_block(settings: Settings, risk: DayRisk, open_positions: int) -> str | None:
    """Why no new entry may be made now, or None. Same wording as replay's skip reasons."""
    if open_positions >= settings.max_open_positions:
        return "position open"
    if risk.trades >= settings.max_trades_per_day:
        return f"max trades per day ({settings.max_trades_per_day}) reached"
    if risk.killed or risk.realized_pnl <= -risk.loss_limit_usd(settings):
        risk.killed = True
        return f"daily loss limit hit ({settings.daily_loss_limit:.0%} of start-of-day equity)"
    return None

