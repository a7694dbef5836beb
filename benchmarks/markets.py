"""Scenario paths per second: genlab's CCC-GARCH-t simulation and its deep cvae generator against arch's simulator.

ours: `GarchT` fitted on the bundled sp500-20 universe (fitting is not timed), then one `GarchT.simulate` call for
10,000 paths x 252 days x 20 assets: the multivariate-t innovations (correlated, with a shared chi2 per day) and the
`garch_paths` recursion, vectorised over paths and assets with a loop over the days.
peer: arch's way of simulating, `arch_model(None, mean="Constant", vol="GARCH", p=1, q=1, dist="t").simulate(...)`,
one call per univariate series, with each asset's fitted mu, omega, alpha, beta and own nu (arch has no multivariate
simulator, so its assets are independent: it does less work per series than ours). Fair start: `burn=0` and
`initial_value_vol` = the same one-step-ahead variance at the origin that ours starts from, so both generate exactly
252 days per series, the first with that variance (arch sets sigma2[0] = initial_value_vol and then recurses);
`initial_value` only matters for ARX means and is left unset. 200,000 arch calls take minutes, so arch is timed on
100 paths x 20 assets (2,000 series) and scaled by 100: its cost per series is constant. ratio = peer / ours time
for the same 10,000 scenarios.
deep: the cvae with the app's default network, trained briefly (CVAE_STEPS; its speed does not depend on how well
it is trained, and training is not timed), then one `DeepGenerator.simulate` call of the same size: per day one
batched decoder pass over all 10,000 paths and the state recursion. Same peer figure, measured once.
"""

from __future__ import annotations

from apps.markets.classical import GarchT
from apps.markets.data import load_bundled, log_returns
from benchmarks.harness import median_time

N_PATHS, HORIZON, PEER_PATHS = 10_000, 252, 100
CVAE_STEPS = 200


def run() -> list[dict]:
    from arch import arch_model

    returns = log_returns(load_bundled("sp500-20")).to_numpy()  # (T, 20)
    model = GarchT().fit(returns)
    n_assets = returns.shape[1]
    t_ours = median_time(lambda: model.simulate(N_PATHS, HORIZON, seed=0), repeats=3)

    p = model.params
    per_asset = [[p[k][j] for k in ("mu", "omega", "alpha", "beta", "nu")] for j in range(n_assets)]
    sigma2_0 = 1e4 * model.next_variance()  # (A,) percent^2, the state ours starts from
    peers = [arch_model(None, mean="Constant", vol="GARCH", p=1, q=1, dist="t") for _ in range(n_assets)]

    def peer():
        for _ in range(PEER_PATHS):
            for am, params, s0 in zip(peers, per_asset, sigma2_0):
                am.simulate(params, nobs=HORIZON, burn=0, initial_value_vol=s0)

    t_peer = median_time(peer, repeats=3, warmup=0) * N_PATHS / PEER_PATHS
    t_cvae = _cvae_time(returns)
    peer_name = "arch simulate, one call per series"
    return [
        {
            "name": "markets: GARCH(1,1)-t scenario paths",
            "sizes": (
                f"{N_PATHS:,} paths x {HORIZON} days x {n_assets} assets (sp500-20 fit, not timed), CPU; arch timed "
                f"on {PEER_PATHS} paths x {n_assets} assets ({PEER_PATHS * n_assets:,} series) and scaled linearly"
            ),
            "ours_s": t_ours,
            "peer": peer_name,
            "peer_s": t_peer,
            "ratio": t_peer / t_ours,
        },
        {
            "name": "markets: deep cvae scenario paths",
            "sizes": (
                f"{N_PATHS:,} paths x {HORIZON} days x {n_assets} assets, default network ({CVAE_STEPS}-step fit, not "
                "timed), CPU; peer as above"
            ),
            "ours_s": t_cvae,
            "peer": peer_name,
            "peer_s": t_peer,
            "ratio": t_peer / t_cvae,
        },
    ]


def _cvae_time(returns) -> float:
    import dataclasses

    from apps.markets.config import DeepConfig, MarketsConfig
    from apps.markets.deep import DeepGenerator

    train = dataclasses.replace(MarketsConfig().train, steps=CVAE_STEPS, progress=False)
    g = DeepGenerator("cvae", DeepConfig(), train).fit(returns)
    return median_time(lambda: g.simulate(N_PATHS, HORIZON, seed=0), repeats=3)
