"""Download 1-minute and daily bars from Alpaca into the local history cache.

Bars go to Parquet files by symbol and month in the folder 'history' next to the journal
(or --cache DIR). Only months the cache lacks are asked for: a second fetch of a cached
span sends no request, and an interrupted fetch resumes where it stopped. History comes
from the SIP feed by default (free when older than 15 minutes; --feed iex otherwise), and
each file records its feed. Requests are paced to Alpaca's 200 a minute.

Keys: ALPACA_API_KEY / ALPACA_SECRET_KEY (or Colab secrets); free paper keys serve history.
--url points at an offline server on this machine ('gammaride serve --history').

Example: gammaride fetch SPY --start 2024-02-01 --end 2024-12-31
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from gammaride.commands._common import add_journal_argument, journal_path

CACHE_FOLDER = "history"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("symbol", metavar="SYMBOL", help="stock symbol, e.g. SPY")
    parser.add_argument("--start", required=True, metavar="DATE", help="first date, e.g. 2024-02-01")
    parser.add_argument("--end", required=True, metavar="DATE", help="last date (inclusive)")
    add_journal_argument(parser)
    add_cache_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print what was fetched as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def add_cache_arguments(parser: argparse.ArgumentParser) -> None:
    """--cache, --feed, --url: shared by fetch and replay --alpaca."""
    parser.add_argument("--cache", default=None, metavar="DIR",
                        help="history cache folder (default: 'history' next to the journal)")
    parser.add_argument("--feed", choices=["sip", "iex"], default="sip",
                        help="stock feed (default sip: free for history older than 15 minutes)")
    parser.add_argument("--url", default=None, metavar="URL",
                        help="an offline Alpaca server on this machine instead of Alpaca")


def cache_dir(args: argparse.Namespace) -> Path:
    return Path(args.cache) if args.cache else journal_path(args).parent / CACHE_FOLDER


def make_fetcher(args: argparse.Namespace):
    """A Fetcher over the cache with the keys found (none needed while the cache suffices)."""
    from gammaride.data.cache import BarCache
    from gammaride.data.fetch import Fetcher
    from gammaride.keys import find_keys, safe_url

    keys = find_keys()
    if args.url:
        safe_url(args.url)  # the keys go to --url: loopback only
        if keys is None:
            from gammaride.offline import DEFAULT_KEY_ID, DEFAULT_SECRET_KEY

            return Fetcher(BarCache(cache_dir(args)), DEFAULT_KEY_ID, DEFAULT_SECRET_KEY, url=args.url,
                           feed=args.feed, quiet=args.quiet)
    key_id, secret = (keys.key_id, keys.secret) if keys else (None, None)
    return Fetcher(BarCache(cache_dir(args)), key_id, secret, url=args.url, feed=args.feed,
                   quiet=args.quiet)


def run(args: argparse.Namespace) -> int:
    fetcher = make_fetcher(args)
    stats = fetcher.fetch_stock(args.symbol, args.start, args.end)
    out = {
        "symbol": args.symbol.upper(), "cache": str(fetcher.cache.root), "feed": fetcher.feed,
        "requests": stats.requests, "bars": stats.bars, "months_fetched": len(stats.months_fetched),
        "months_cached": len(stats.months_cached), "retries_429": stats.retries_429,
        "rate_wait_s": round(fetcher.limiter.waited + stats.backoff_seconds, 1),
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    if not stats.requests:
        print(f"{out['symbol']} {args.start} .. {args.end} is already in {out['cache']} ({fetcher.feed}); "
              "no request sent")
        return 0
    print(f"Fetched {out['bars']:,} {out['symbol']} bars ({fetcher.feed}) in {out['requests']} requests "
          f"into {out['cache']}: {out['months_fetched']} month files written, "
          f"{out['months_cached']} months already cached")
    if out["rate_wait_s"]:
        print(f"  waited {out['rate_wait_s']} s for the rate limit ({stats.retries_429} answers of 429)")
    return 0
