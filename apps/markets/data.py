"""Daily price data for the markets app: bundled universes, a cached yfinance adapter, alignment and returns.

Every loader returns the same schema: a pandas DataFrame of daily adjusted close prices with a tz-naive, sorted,
unique DatetimeIndex named "date" and one float column per upper-case ticker, none of them all-NaN. Real data comes
from three places: prices shipped inside the `arch` package ("sp500-index", "nasdaq-index"), a CSV of 20 S&P 500
stocks shipped inside the skfolio wheel ("sp500-20", fetched once with pip and kept under data/markets/raw/), and
Yahoo Finance through yfinance, whose downloads are cached as Parquet so a second run needs no network. yfinance
does not raise when offline (it logs and returns an empty frame), so failure is detected from the frame itself.
"""

from __future__ import annotations

import hashlib
import logging
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from shared.atomic import atomic_path
from shared.errors import ConfigError, DataError
from shared.wheels import extract_from_wheel

MIN_ROWS = 250  # about one trading year: the least history a daily risk model can be fitted on
SKFOLIO_MEMBER = "skfolio/datasets/data/sp500_dataset.csv.gz"
SKFOLIO_FILE = "sp500_dataset.csv.gz"
ROOT = Path(__file__).resolve().parents[2]  # repo root: defaults do not depend on the working directory
DEFAULT_RAW_DIR = ROOT / "data" / "markets" / "raw"  # gitignored (data/*/raw/)
DEFAULT_CACHE_DIR = ROOT / "data" / "markets" / "cache"  # gitignored (data/*/cache/)

SP500_20 = (
    "AAPL AMD BAC BBY CVX GE HD JNJ JPM KO LLY MRK MSFT PEP PFE PG RRC UNH WMT XOM".split()
)  # the columns of skfolio's sp500_dataset.csv.gz


class FetchError(DataError):
    """yfinance returned nothing usable for any ticker: offline, rate-limited, or every symbol unknown."""


# --------------------------------------------------------------------------------------------------- schema


def to_schema(prices: pd.DataFrame) -> pd.DataFrame:
    """Coerce prices to the schema: DatetimeIndex "date" (tz-naive, sorted, unique), float upper-case columns.

    Duplicate dates keep the last row (a re-sent quote supersedes the first). All-NaN columns raise DataError.
    """
    out = prices.copy()
    index = pd.DatetimeIndex(pd.to_datetime(out.index))
    if index.tz is not None:
        index = index.tz_localize(None)  # daily bars: the exchange-local calendar date is what matters
    out.index = index.normalize().rename("date")
    out.columns = [str(c).upper() for c in out.columns]
    out.columns.name = None
    out = out.sort_index()
    out = out[~out.index.duplicated(keep="last")]
    out = out.astype("float64")
    check_no_empty_columns(out)
    return out


def check_no_empty_columns(prices: pd.DataFrame) -> None:
    """Raise DataError naming the columns that hold no price at all."""
    empty = [c for c in prices.columns if prices[c].isna().all()]
    if empty:
        raise DataError(f"no prices at all for {', '.join(empty)} in the requested range: drop them or widen start/end")


# -------------------------------------------------------------------------------------------- bundled data


@dataclass(frozen=True)
class _Universe:
    description: str
    tickers: tuple[str, ...]
    loader: Callable[[], pd.DataFrame]


def _load_arch(module: str, ticker: str) -> pd.DataFrame:
    import importlib

    raw = importlib.import_module(f"arch.data.{module}").load()
    return to_schema(raw[["Adj Close"]].rename(columns={"Adj Close": ticker}))


def _load_sp500_20() -> pd.DataFrame:
    path = Path(DEFAULT_RAW_DIR) / SKFOLIO_FILE
    if not path.exists():
        prepare_skfolio(DEFAULT_RAW_DIR)
    return read_skfolio_csv(path)


# Index universes use the Yahoo symbols so a yfinance request for ^GSPC can fall back to the bundled copy.
_UNIVERSES: dict[str, _Universe] = {
    "sp500-index": _Universe(
        "S&P 500 index (^GSPC), daily adjusted close 1999-01-04..2018-12-31, from the arch package",
        ("^GSPC",),
        lambda: _load_arch("sp500", "^GSPC"),
    ),
    "nasdaq-index": _Universe(
        "NASDAQ Composite (^IXIC), daily adjusted close 1999-01-04..2018-12-31, from the arch package",
        ("^IXIC",),
        lambda: _load_arch("nasdaq", "^IXIC"),
    ),
    "sp500-20": _Universe(
        "20 S&P 500 stocks, daily adjusted close 1990-01-02..2022-12-28, from the skfolio wheel (fetched once)",
        tuple(SP500_20),
        _load_sp500_20,
    ),
}


def bundled_universes() -> dict[str, str]:
    """Names of the bundled universes and a one-line description of each."""
    return {name: u.description for name, u in _UNIVERSES.items()}


def _universe(name: str) -> _Universe:
    if name not in _UNIVERSES:
        raise ConfigError(f"unknown universe {name!r}: choose one of {', '.join(_UNIVERSES)}")
    return _UNIVERSES[name]


def load_bundled(name: str) -> pd.DataFrame:
    """All prices of bundled universe `name` in the schema, shape (T, n_tickers)."""
    return _universe(name).loader()


def read_skfolio_csv(path: str | Path) -> pd.DataFrame:
    """Read skfolio's sp500_dataset.csv.gz (date index, one adjusted-close column per ticker) into the schema."""
    try:
        raw = pd.read_csv(path, index_col=0, parse_dates=True)
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"cannot read {path} ({e}): delete it and run `make` online once to fetch it again") from e
    return to_schema(raw)


def prepare_skfolio(dest_dir: str | Path = DEFAULT_RAW_DIR, timeout: float = 300.0) -> Path:
    """Download the skfolio wheel with pip and extract its 20-stock S&P 500 CSV to `dest_dir`; return its path.

    Only the one CSV is kept; skfolio itself is not installed (its dependencies are heavy and unneeded).
    """
    dest = Path(dest_dir) / SKFOLIO_FILE
    hint = "run `make` online once, or use universe='sp500-index'"
    return extract_from_wheel("skfolio", {SKFOLIO_MEMBER: dest}, hint, timeout)[SKFOLIO_MEMBER]


# ------------------------------------------------------------------------------------------------ yfinance


def _normalise_tickers(tickers: str | Sequence[str]) -> list[str]:
    if isinstance(tickers, str):
        tickers = tickers.replace(",", " ").split()
    out = list(dict.fromkeys(str(t).strip().upper() for t in tickers if str(t).strip()))
    if not out:
        raise ConfigError("no tickers given: pass at least one symbol, e.g. tickers=['AAPL', 'MSFT']")
    return out


def _date_str(d) -> str | None:
    return None if d is None else pd.Timestamp(d).strftime("%Y-%m-%d")


def _cache_file(cache_dir: str | Path, tickers: list[str], start: str | None, end: str | None) -> Path:
    key = f"{','.join(sorted(tickers))}|{start or 'min'}|{end or 'max'}"
    head = "_".join(sorted(tickers))[:60].replace("^", "").replace("/", "-")
    digest = hashlib.sha1(key.encode()).hexdigest()[:12]  # the readable head may be cut; the hash keeps keys unique
    return Path(cache_dir) / f"yf_{head}_{start or 'min'}_{end or 'max'}_{digest}.parquet"


def normalise_yfinance(raw: pd.DataFrame | None, tickers: Sequence[str]) -> pd.DataFrame:
    """Turn a yf.download frame (MultiIndex columns (Price, Ticker)) into the schema, columns in `tickers` order.

    Raises FetchError when nothing came back (yfinance offline returns an empty frame and only logs), and
    DataError naming the tickers that came back all-NaN (unknown or delisted symbols) when others did not.
    """
    tickers = _normalise_tickers(tickers)
    if raw is None or raw.empty:
        raise FetchError(f"yfinance returned no data for {', '.join(tickers)} (offline or rate-limited)")
    if isinstance(raw.columns, pd.MultiIndex):
        if "Close" not in raw.columns.get_level_values(0):
            raise FetchError(f"yfinance returned no 'Close' prices for {', '.join(tickers)}")
        close = raw.xs("Close", axis=1, level=0)
    elif "Close" in raw.columns and len(tickers) == 1:  # multi_level_index=False for a single ticker
        close = raw[["Close"]].set_axis(tickers, axis=1)
    else:
        raise FetchError(f"yfinance returned unexpected columns {list(raw.columns)[:6]} for {', '.join(tickers)}")
    close = close.copy()
    close.columns = [str(c).upper() for c in close.columns]
    close = close.reindex(columns=tickers)  # a ticker missing entirely shows up as all-NaN, like an unknown one
    unknown = [t for t in tickers if close[t].isna().all()]
    if len(unknown) == len(tickers):
        raise FetchError(f"yfinance returned no prices for {', '.join(tickers)} (offline, or unknown symbols)")
    if unknown:
        raise DataError(f"unknown tickers {', '.join(unknown)}: yfinance has no prices for them; check the symbols")
    return to_schema(close)


def fetch_yfinance(
    tickers: str | Sequence[str],
    start=None,
    end=None,
    cache_dir: str | Path = DEFAULT_CACHE_DIR,
) -> pd.DataFrame:
    """Daily adjusted close prices from Yahoo Finance, shape (T, n_tickers), cached as Parquet under `cache_dir`.

    A cached download for the same tickers and dates is returned without touching the network; delete the cache
    file to refresh it (a request with no `end` is cached too, so it does not pick up new days by itself).
    """
    tickers = _normalise_tickers(tickers)
    start, end = _date_str(start), _date_str(end)
    path = _cache_file(cache_dir, tickers, start, end)
    if path.exists():
        try:
            return to_schema(pd.read_parquet(path))
        except (OSError, ValueError) as e:
            raise DataError(f"cannot read cached prices {path} ({e}): delete the file and fetch again") from e

    import yfinance as yf  # imported here: it is slow to import and only this adapter needs it

    # yfinance's end is exclusive; ours is inclusive, like the bundled data's .loc slicing
    end_excl = None if end is None else _date_str(pd.Timestamp(end) + pd.Timedelta(days=1))
    kwargs = {"period": "max"} if start is None and end is None else {"start": start, "end": end_excl}
    # yfinance logs every failed ticker and warns about its own pandas usage; the failure is reported here in one
    # line instead, so its logger and warnings are muted for the call.
    yf_logger = logging.getLogger("yfinance")
    level = yf_logger.level
    yf_logger.setLevel(logging.CRITICAL + 1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            raw = yf.download(tickers, auto_adjust=True, progress=False, **kwargs)
    except Exception as e:  # yfinance mostly logs, but network errors can still escape
        raise FetchError(f"yfinance download failed for {', '.join(tickers)} ({type(e).__name__}: {e})") from e
    finally:
        yf_logger.setLevel(level)
    prices = normalise_yfinance(raw, tickers)
    with atomic_path(path) as tmp:
        prices.to_parquet(tmp)
    return prices


# --------------------------------------------------------------------------------------------- the front door


def load_prices(
    tickers: str | Sequence[str] | None = None,
    start=None,
    end=None,
    universe: str = "sp500-20",
    source: str = "auto",
    cache_dir: str | Path = DEFAULT_CACHE_DIR,
) -> pd.DataFrame:
    """Aligned daily prices, shape (T, n_tickers) with T >= 250, in the schema.

    source="bundled" reads `universe` (all its tickers when `tickers` is None); "yfinance" downloads (or reads the
    cache); "auto" tries the cache, then yfinance, then falls back to a bundled universe holding every ticker,
    saying so on stderr. Dates where not every ticker trades are dropped (see `align`).
    """
    if source not in ("auto", "bundled", "yfinance"):
        raise ConfigError(f"unknown source {source!r}: choose 'auto', 'bundled' or 'yfinance'")
    start_ts = None if start is None else pd.Timestamp(start)
    end_ts = None if end is None else pd.Timestamp(end)
    if start_ts is not None and end_ts is not None and start_ts > end_ts:
        raise ConfigError(f"start {start_ts.date()} is after end {end_ts.date()}: swap them or fix the dates")
    _universe(universe)  # fail early on a typo even when the universe is only a fallback
    wanted = None if tickers is None else _normalise_tickers(tickers)

    if wanted is None or source == "bundled":
        prices = _from_bundled(universe, wanted)
    else:
        try:
            prices = fetch_yfinance(wanted, start_ts, end_ts, cache_dir=cache_dir)
        except FetchError as e:
            if source == "yfinance":
                raise
            name = universe if set(wanted) <= set(_UNIVERSES[universe].tickers) else _holding(wanted)
            if name is None:
                raise DataError(
                    f"yfinance is unavailable and no bundled universe holds {', '.join(wanted)}: "
                    f"use tickers from {_available()}"
                ) from e
            print(f"note: yfinance unavailable ({e}); using bundled universe {name!r}", file=sys.stderr)
            prices = _from_bundled(name, wanted)

    prices = prices.loc[start_ts:end_ts]
    check_no_empty_columns(prices)
    prices, dropped = align(prices)
    if dropped:
        print(f"note: dropped {dropped} dates on which not every ticker traded", file=sys.stderr)
    if len(prices) < MIN_ROWS:
        span = f"{_date_str(start_ts) or 'the start'} and {_date_str(end_ts) or 'the end'}"
        raise DataError(
            f"only {len(prices)} common trading days for {', '.join(prices.columns)} between {span}: "
            f"need {MIN_ROWS}; widen the range"
        )
    return prices


def _holding(tickers: list[str]) -> str | None:
    """The first bundled universe that holds every ticker, or None."""
    return next((n for n, u in _UNIVERSES.items() if set(tickers) <= set(u.tickers)), None)


def _available() -> str:
    return "; ".join(f"{n}: {' '.join(u.tickers)}" for n, u in _UNIVERSES.items())


def _from_bundled(universe: str, tickers: list[str] | None) -> pd.DataFrame:
    u = _universe(universe)
    if tickers is not None:
        missing = [t for t in tickers if t not in u.tickers]
        if missing:
            raise DataError(
                f"{', '.join(missing)} not in bundled universe {universe!r}: use {' '.join(u.tickers)}, "
                "or fetch them with source='yfinance' online"
            )
    prices = u.loader()
    return prices if tickers is None else prices[tickers]


# ------------------------------------------------------------------------------------------ alignment, returns


def align(prices: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Keep only dates on which every asset has a price (inner join over calendars); return (aligned, n_dropped).

    Holidays differ across exchanges and listings start on different days; rather than forward-filling (which
    invents zero returns), such dates are dropped and the count is returned so callers can report it.
    """
    aligned = prices.dropna(how="any")
    return aligned, len(prices) - len(aligned)


def log_returns(prices: pd.DataFrame) -> pd.DataFrame:
    """Daily log returns log(p_t / p_{t-1}), shape (T - 1, n_tickers), indexed by the later date."""
    if prices.isna().any().any():
        raise DataError("prices contain gaps (NaN): call align(prices) before log_returns")
    if (prices <= 0).any().any():
        bad = [c for c in prices.columns if (prices[c] <= 0).any()]
        raise DataError(f"non-positive prices in {', '.join(bad)}: log returns need prices > 0; check the data")
    return np.log(prices).diff().iloc[1:]


def train_test_split_by_date(returns: pd.DataFrame, split_date) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split at `split_date`: train holds dates before it, test the date itself and after (no look-ahead)."""
    split = pd.Timestamp(split_date)
    train, test = returns.loc[returns.index < split], returns.loc[returns.index >= split]
    if train.empty or test.empty:
        first, last = returns.index.min(), returns.index.max()
        raise ConfigError(
            f"split date {split.date()} leaves an empty {'train' if train.empty else 'test'} set: "
            f"choose a date inside {_date_str(first)}..{_date_str(last)}"
        )
    return train, test
