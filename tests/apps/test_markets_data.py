"""Unit tests for apps/markets/data.py: the yfinance adapter on recorded offline and constructed responses, the
Parquet cache, bundled arch data, alignment, returns, splits and the user errors. No test touches the network:
`yf.download` and the pip subprocess are monkeypatched.
"""

import gzip
import io
import subprocess
import zipfile

import numpy as np
import pandas as pd
import pytest
import yfinance as yf

from apps.markets import data as md
from shared.errors import ConfigError, DataError


def offline_response() -> pd.DataFrame:
    """What yfinance 1.7 returns offline: no rows, MultiIndex columns (Price, Ticker), nothing raised."""
    columns = pd.MultiIndex.from_arrays([[], []], names=["Price", "Ticker"])
    return pd.DataFrame(index=pd.DatetimeIndex([], name="Date"), columns=columns)


def online_response(tickers, dead=(), n=300, start="2020-01-01") -> pd.DataFrame:
    """A yf.download-shaped frame: (Price, Ticker) columns, business days; tickers in `dead` are all-NaN."""
    dates = pd.bdate_range(start, periods=n, name="Date")
    rng = np.random.default_rng(0)
    fields = ["Close", "High", "Low", "Open", "Volume"]
    columns = pd.MultiIndex.from_product([fields, list(tickers)], names=["Price", "Ticker"])
    values = 100 * np.exp(np.cumsum(0.01 * rng.standard_normal((n, len(columns))), axis=0))
    frame = pd.DataFrame(values, index=dates, columns=columns)
    for t in dead:
        frame.loc[:, (slice(None), t)] = np.nan
    return frame


@pytest.fixture
def download(monkeypatch):
    """Replace yf.download; `download.response` is what it returns, `download.calls` counts calls."""

    class Fake:
        response = offline_response()
        calls = 0

        def __call__(self, tickers, **kwargs):
            Fake.calls += 1
            assert kwargs["auto_adjust"] is True and kwargs["progress"] is False
            return self.response

    fake = Fake()
    monkeypatch.setattr(yf, "download", fake)
    return fake


def test_offline_response_raises_fetch_error(download, tmp_path):
    with pytest.raises(md.FetchError, match="no data for AAPL"):
        md.fetch_yfinance(["aapl"], "2020-01-01", "2021-01-01", cache_dir=tmp_path)
    assert not list(tmp_path.iterdir())  # failures are not cached


def test_offline_auto_falls_back_to_bundled(download, tmp_path, capsys):
    prices = md.load_prices(["^GSPC"], start="2005-01-01", end="2006-12-31", cache_dir=tmp_path)
    assert download.calls == 1
    assert list(prices.columns) == ["^GSPC"]
    assert prices.index[0] >= pd.Timestamp("2005-01-01") and prices.index[-1] <= pd.Timestamp("2006-12-31")
    assert "bundled universe 'sp500-index'" in capsys.readouterr().err


def test_offline_unbundled_tickers_list_available(download, tmp_path):
    with pytest.raises(DataError, match="no bundled universe holds ZZZZ.*sp500-index: \\^GSPC"):
        md.load_prices(["ZZZZ"], cache_dir=tmp_path)


def test_offline_source_yfinance_raises(download, tmp_path):
    with pytest.raises(md.FetchError):
        md.load_prices(["^GSPC"], source="yfinance", cache_dir=tmp_path)


def test_online_response_to_schema(download, tmp_path):
    download.response = online_response(["MSFT", "AAPL"])
    prices = md.fetch_yfinance(["AAPL", "MSFT"], "2020-01-01", "2021-06-30", cache_dir=tmp_path)
    assert list(prices.columns) == ["AAPL", "MSFT"]  # requested order, not yfinance's sorted order
    assert prices.index.name == "date" and prices.index.tz is None
    assert prices.index.is_monotonic_increasing and prices.index.is_unique
    assert (prices.dtypes == "float64").all() and prices.shape == (300, 2)
    expected = download.response.xs("Close", axis=1, level=0)["AAPL"].to_numpy()
    np.testing.assert_allclose(prices["AAPL"].to_numpy(), expected)


def test_unknown_ticker_is_named(download, tmp_path):
    download.response = online_response(["AAPL", "NOPE"], dead=["NOPE"])
    with pytest.raises(DataError, match="unknown tickers NOPE") as err:
        md.fetch_yfinance(["AAPL", "NOPE"], cache_dir=tmp_path)
    assert not isinstance(err.value, md.FetchError)  # a bad symbol must not fall back silently
    with pytest.raises(DataError, match="unknown tickers NOPE"):
        md.load_prices(["AAPL", "NOPE"], cache_dir=tmp_path)


def test_parquet_cache_round_trip(download, tmp_path):
    download.response = online_response(["AAPL", "MSFT"])
    first = md.fetch_yfinance(["AAPL", "MSFT"], "2020-01-01", "2021-06-30", cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.parquet"))) == 1
    download.response = offline_response()  # a second run offline must not need the network
    second = md.fetch_yfinance(["MSFT", "AAPL"], "2020-01-01", "2021-06-30", cache_dir=tmp_path)
    third = md.load_prices(["AAPL", "MSFT"], "2020-01-01", "2021-06-30", cache_dir=tmp_path)
    assert download.calls == 1
    pd.testing.assert_frame_equal(first, second[["AAPL", "MSFT"]])
    pd.testing.assert_frame_equal(first, third)


def test_load_bundled_sp500_index():
    prices = md.load_bundled("sp500-index")
    assert prices.shape == (5031, 1) and list(prices.columns) == ["^GSPC"]
    assert prices.index[0] == pd.Timestamp("1999-01-04") and prices.index[-1] == pd.Timestamp("2018-12-31")
    assert prices.index.name == "date" and prices.index.is_unique and prices.notna().all().all()
    assert set(md.bundled_universes()) == {"sp500-index", "nasdaq-index", "sp500-20"}


def test_align_drops_non_common_dates():
    idx = pd.to_datetime(["2020-01-02", "2020-01-03", "2020-01-06", "2020-01-07"]).rename("date")
    prices = pd.DataFrame({"A": [1.0, 2.0, np.nan, 4.0], "B": [np.nan, 1.0, 2.0, 3.0]}, index=idx)
    aligned, dropped = md.align(prices)
    assert dropped == 2
    assert list(aligned.index) == list(idx[[1, 3]])


def test_log_returns_and_split():
    prices = md.load_bundled("sp500-index").loc["2010":"2012"]
    returns = md.log_returns(prices)
    assert returns.shape == (len(prices) - 1, 1) and returns.index[0] == prices.index[1]
    np.testing.assert_allclose(returns.iloc[0, 0], np.log(prices.iloc[1, 0] / prices.iloc[0, 0]))
    train, test = md.train_test_split_by_date(returns, "2012-01-01")
    assert train.index.max() < pd.Timestamp("2012-01-01") <= test.index.min()
    assert len(train) + len(test) == len(returns)
    with pytest.raises(ConfigError, match="empty test set"):
        md.train_test_split_by_date(returns, "2030-01-01")


def test_start_after_end_is_config_error():
    with pytest.raises(ConfigError, match="after end"):
        md.load_prices(universe="sp500-index", start="2010-01-01", end="2009-01-01")


def test_too_short_history_is_data_error():
    with pytest.raises(DataError, match="only .* common trading days.*need 250"):
        md.load_prices(universe="sp500-index", start="2010-01-01", end="2010-06-30")


def test_ticker_not_in_bundled_universe(download):
    with pytest.raises(DataError, match="AAPL not in bundled universe 'sp500-index': use \\^GSPC"):
        md.load_prices(["AAPL"], universe="sp500-index", source="bundled")


def test_all_nan_series_is_data_error():
    idx = pd.bdate_range("2020-01-01", periods=5)
    with pytest.raises(DataError, match="no prices at all for B"):
        md.to_schema(pd.DataFrame({"a": np.ones(5), "b": np.full(5, np.nan)}, index=idx))


def test_prepare_skfolio_via_fake_pip(monkeypatch, tmp_path):
    csv = "Date,AAPL,MSFT\n2020-01-02,1.0,2.0\n2020-01-03,1.5,2.5\n"

    def fake_run(cmd, **kwargs):
        assert cmd[1:4] == ["-m", "pip", "download"] and "--no-deps" in cmd and kwargs["timeout"]
        dest = cmd[cmd.index("-d") + 1]
        with zipfile.ZipFile(f"{dest}/skfolio-9.9.9-py3-none-any.whl", "w") as wheel:
            wheel.writestr(md.SKFOLIO_MEMBER, gzip.compress(csv.encode()))
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(subprocess, "run", fake_run)
    path = md.prepare_skfolio(tmp_path / "raw")
    prices = md.read_skfolio_csv(path)
    assert list(prices.columns) == ["AAPL", "MSFT"] and prices.index.name == "date" and len(prices) == 2
    assert pd.read_csv(io.BytesIO(gzip.decompress(path.read_bytes())), index_col=0).shape == (2, 2)


def test_prepare_skfolio_failure_is_one_line(monkeypatch, tmp_path):
    def failing_run(cmd, **kwargs):
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found for skfolio\n")

    monkeypatch.setattr(subprocess, "run", failing_run)
    with pytest.raises(DataError, match="could not download the skfolio wheel.*sp500-index") as err:
        md.prepare_skfolio(tmp_path)
    assert "\n" not in str(err.value)
