"""The claims ledger's one verdict rule, its JSON, the committed ledgers, and the intervals."""

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from alignkit.io import atomic_write_json, read_json
from alignkit.ledger import Claim, Ledger, check_record, markdown_table, verdict
from alignkit.runtime import results_root
from alignkit.stats import bootstrap_ci, mean_ci, seeds_units_bootstrap, wilson_ci


def greater(margin=0.0, **kw):
    return Claim("g", "a beats b", "empirical", source="paper Table 1", paper="44.6 vs 40.0",
                 statistic="difference of rates", hypothesis="greater", margin=margin,
                 margin_reason="direction only", **kw)


# --- the rule -----------------------------------------------------------------------------------

def _by_sets(hypothesis, lo, hi, m):
    """An independent statement of the rule: the claim holds on a set C of statistic values;
    reproduced when the interval lies inside C, not reproduced when it misses C's closure."""
    if hypothesis == "greater":
        inside, misses = lo > m, hi < m  # C = (m, inf), closure [m, inf)
    elif hypothesis == "less":
        inside, misses = hi < m, lo > m  # C = (-inf, m), closure (-inf, m]
    else:
        inside, misses = (-m <= lo and hi <= m), (hi < -m or lo > m)  # C = [-m, m]
    return "reproduced" if inside else "not reproduced" if misses else "inconclusive"


finite = st.floats(-10, 10, allow_nan=False)


@settings(max_examples=400, deadline=None)
@given(h=st.sampled_from(["greater", "less", "equivalent"]), a=finite, b=finite, m=finite)
def test_verdict_agrees_with_the_set_formulation(h, a, b, m):
    lo, hi = min(a, b), max(a, b)
    if h == "equivalent":
        m = abs(m) + 1e-3
    assert verdict("empirical", hypothesis=h, margin=m, ci=(lo, hi)) == _by_sets(h, lo, hi, m)


@pytest.mark.parametrize("h, ci, m, want", [
    ("greater", (0.01, 0.2), 0.0, "reproduced"), ("greater", (-0.2, -0.01), 0.0, "not reproduced"),
    ("greater", (-0.01, 0.2), 0.0, "inconclusive"), ("greater", (0.0, 0.2), 0.0, "inconclusive"),
    ("less", (-0.2, -0.01), 0.0, "reproduced"), ("less", (0.01, 0.2), 0.0, "not reproduced"),
    ("equivalent", (-0.04, 0.05), 0.05, "reproduced"), ("equivalent", (0.06, 0.2), 0.05, "not reproduced"),
    ("equivalent", (-0.2, -0.06), 0.05, "not reproduced"), ("equivalent", (0.0, 0.2), 0.05, "inconclusive"),
])
def test_verdict_cases(h, ci, m, want):
    assert verdict("empirical", hypothesis=h, margin=m, ci=ci) == want


def test_math_and_not_run_verdicts_and_malformed_tests():
    assert verdict("math", residual=1e-12, tolerance=1e-10) == "verified"
    assert verdict("math", residual=-1e-9, tolerance=1e-10) == "failed"
    assert verdict("math", residual=math.nan, tolerance=1e-10) == "failed"
    assert verdict("not_run") == "not at this scale"
    for bad in (dict(hypothesis="greater", margin=0, ci=(1, 0)), dict(hypothesis="more", margin=0, ci=(0, 1)),
                dict(hypothesis="equivalent", margin=0, ci=(0, 1)), dict(hypothesis="less", margin=0, ci=None)):
        with pytest.raises(ValueError):
            verdict("empirical", **bad)
    with pytest.raises(ValueError, match="partly"):
        verdict("partly")


# --- pre-registration -----------------------------------------------------------------------------

def test_claims_are_checked_when_registered():
    with pytest.raises(ValueError, match="brief"):
        Claim("x", "c", "math", source="the brief, section 2", paper="1", statistic="r", tolerance=0.1)
    with pytest.raises(ValueError, match="margin"):
        Claim("x", "c", "empirical", source="paper", paper="1", statistic="s", hypothesis="greater")
    with pytest.raises(ValueError, match="> 0"):
        Claim("x", "c", "empirical", source="paper", paper="1", statistic="s", hypothesis="equivalent",
              margin=0.0, margin_reason="r")
    with pytest.raises(ValueError, match="why"):
        Claim("x", "c", "empirical", source="paper", paper="1", statistic="s", hypothesis="less", margin=1.0)
    with pytest.raises(ValueError, match="tolerance"):
        Claim("x", "c", "math", source="derived here", paper="exact", statistic="r")


def test_ledger_records_only_registered_claims_once_and_all_of_them(tmp_path):
    claims = [greater(bounds=(-1, 1)),
              Claim("m", "an identity", "math", source="derived here", paper="exact", statistic="r",
                    tolerance=1e-10),
              Claim("t2", "Table 2", "not_run", source="paper Table 2", paper="32.5")]
    led = Ledger("00_start_here", "smoke", claims, seeds=[0])
    with pytest.raises(ValueError, match="not pre-registered"):
        led.estimate("zzz", 0.1, (0.0, 0.2), method="m", n=3)
    with pytest.raises(ValueError, match="range"):
        led.estimate("g", 0.5, (0.2, 1.3), method="t over 3 seeds", n=3)  # leaves [-1, 1]
    with pytest.raises(ValueError, match="lo <= estimate <= hi"):
        led.estimate("g", 0.5, (0.6, 0.9), method="m", n=3)
    with pytest.raises(ValueError, match="empirical"):
        led.residual("g", 0.0)
    led.estimate("g", 0.1, (0.02, 0.2), method="bootstrap over prompts, paired", n=96)
    with pytest.raises(ValueError, match="already"):
        led.estimate("g", 0.1, (0.02, 0.2), method="m", n=96)
    with pytest.raises(ValueError, match=r"\['m', 't2'\]"):
        led.save(tmp_path)
    led.residual("m", 3e-15)
    led.skip("t2", "needs 16 GPUs")
    data = read_json(led.save(tmp_path))
    assert set(data) == {"chapter", "scale", "commit", "seeds", "environment", "claims"}
    assert {"dtype", "cpu_bf16_units", "cpu_threads", "torch", "trl"} <= set(data["environment"])
    assert [c["verdict"] for c in data["claims"]] == ["reproduced", "verified", "not at this scale"]
    assert data["claims"][0]["test"] == {
        "statistic": "difference of rates", "estimate": 0.1, "ci": [0.02, 0.2], "level": 0.95,
        "hypothesis": "greater", "margin": 0.0, "margin_reason": "direction only", "bounds": [-1, 1],
        "method": "bootstrap over prompts, paired", "n": 96}
    assert all(check_record(c) == [] for c in data["claims"])


def test_check_record_catches_a_typed_in_verdict_and_markdown_keeps_long_cells():
    led = Ledger("x", "smoke", [greater()])
    rec = led.estimate("g", 0.1, (-0.1, 0.3), method="m", n=5)
    assert rec["verdict"] == "inconclusive" and check_record(rec) == []
    assert check_record({**rec, "verdict": "reproduced"}) == [
        "g: verdict 'reproduced' but the rule gives 'inconclusive'"]
    long = {**rec, "claim": "word " * 40 + "end | of it"}
    assert ("word " * 40 + "end / of it") in markdown_table([long])


def test_every_committed_ledger_follows_the_rule():
    """The project's own check of results/*/<scale>.json, with the project's code."""
    files = sorted(results_root().glob("*/cpu.json"))
    assert files, "no committed ledgers"
    problems = []
    for path in files:
        data = json.loads(path.read_text())
        assert data["claims"], f"{path} has no claims"
        problems += [f"{path.parent.name}: {p}" for c in data["claims"] for p in check_record(c)]
    assert problems == []


# --- atomic writes and intervals ---------------------------------------------------------------

def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    path = tmp_path / "r.json"
    atomic_write_json(path, {"a": 1})
    with pytest.raises(ValueError):
        atomic_write_json(path, {"a": float("nan")})  # JSON has no NaN: refused, old file kept
    assert json.loads(path.read_text()) == {"a": 1}
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_mean_ci_matches_scipy():
    x = np.array([0.1, 0.4, 0.35, 0.2])
    m, lo, hi = mean_ci(x)
    ref = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
    assert m == pytest.approx(x.mean()) and (lo, hi) == pytest.approx(ref)
    assert np.isnan(mean_ci([3.0])[1])


def test_bootstrap_ci_covers_the_mean_of_a_normal_sample():
    x = np.random.default_rng(0).normal(2.0, 1.0, size=400)
    est, lo, hi = bootstrap_ci(x, n_boot=500)
    assert lo < 2.0 < hi and lo < est < hi
    assert hi - lo == pytest.approx(2 * 1.96 / 20, rel=0.25)


@pytest.mark.parametrize("k, n", [(0, 10), (3, 32), (16, 32), (32, 32), (1, 1)])
def test_wilson_matches_scipy_and_stays_in_0_1(k, n):
    p, lo, hi = wilson_ci(k, n)
    ref = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert p == k / n and (lo, hi) == pytest.approx((ref.low, ref.high), abs=1e-12)
    assert 0.0 <= lo <= p <= hi <= 1.0
    with pytest.raises(ValueError, match="successes"):
        wilson_ci(n + 1, n)


def test_wilson_ends_exactly_at_0_and_1_for_all_or_none():
    # centre - half is a rounding error off 0 for many n (1.4e-17 at k=0, n=3), which put
    # lo above p = 0 and made the ledger refuse the claim (CI, chapter 2 at smoke)
    for n in range(1, 400):
        assert wilson_ci(0, n)[:2] == (0.0, 0.0)
        assert wilson_ci(n, n)[0::2] == (1.0, 1.0)
        for k in (1, n // 2, n - 1):
            p, lo, hi = wilson_ci(k, n)
            assert 0.0 <= lo <= p <= hi <= 1.0


def test_seeds_units_bootstrap_respects_the_range_and_pairs():
    rng = np.random.default_rng(1)
    a = (rng.random((3, 32)) < 0.15).astype(float)  # 3 seeds x 32 prompts of pass/fail
    m, lo, hi = seeds_units_bootstrap(a)
    assert 0.0 <= lo <= m <= hi <= 1.0 and m == pytest.approx(a.mean())
    d, dlo, dhi = seeds_units_bootstrap(a, a)  # a method against itself: exactly zero
    assert (d, dlo, dhi) == (0.0, 0.0, 0.0)
    b = np.clip(a + (rng.random(a.shape) < 0.3), 0, 1)  # b passes wherever a does, and more
    d, dlo, dhi = seeds_units_bootstrap(b, a)
    assert 0.0 < dlo <= d <= dhi <= 1.0
    with pytest.raises(ValueError, match="shape"):
        seeds_units_bootstrap(a, a[:, :5])


def test_seeds_units_bootstrap_covers_the_true_rate():
    """Coverage over 200 simulated experiments (3 seeds x 40 prompts, rate 0.3) is near 95%."""
    rng = np.random.default_rng(2)
    hits = 0
    for _ in range(200):
        p = np.clip(0.3 + rng.normal(0, 0.1, size=40), 0, 1)  # per-prompt difficulty
        x = (rng.random((3, 40)) < p).astype(float)
        _, lo, hi = seeds_units_bootstrap(x, n_boot=300, seed=int(rng.integers(1 << 30)))
        hits += lo <= 0.3 <= hi
    assert 0.85 <= hits / 200 <= 0.995


def test_design_power_sees_a_seed_level_part_that_only_more_seeds_shrink():
    """A pilot whose runs each land higher or lower on every unit (a seed effect): the projection
    matches the simulated spread of the planned design, and more units alone cannot shrink it."""
    from alignkit.stats import design_power

    rng = np.random.default_rng(1)
    sd_units, sd_seeds, sd_noise = 0.15, 0.05, 0.4

    def draw(seeds, units):
        return (rng.normal(0, sd_units, units)[None, :] + rng.normal(0, sd_seeds, (seeds, 1))
                + rng.normal(0, sd_noise, (seeds, units)))

    got = design_power(draw(40, 2000), n_units=450, n_seeds=2)
    exact = np.sqrt(sd_units**2 / 450 + sd_seeds**2 / 2 + sd_noise**2 / 900)
    assert got["se"] == pytest.approx(exact, rel=0.15)
    assert got["sd_seeds"] == pytest.approx(sd_seeds, rel=0.3)
    spread = np.std([draw(2, 450).mean() for _ in range(2000)])  # the planned design, simulated
    assert got["se"] == pytest.approx(spread, rel=0.15)
    pilot = draw(40, 2000)
    floor = design_power(pilot, n_units=450)["sd_seeds"] / np.sqrt(2)  # 2 seeds, any number of units
    assert design_power(pilot, n_units=10**6, n_seeds=2)["se"] == pytest.approx(floor, rel=0.02)
    assert design_power(draw(40, 2000), n_units=450, n_seeds=8)["se"] < 0.6 * got["se"]


def test_design_power_recovers_the_simulated_standard_error():
    """A pilot drawn from known variance components: the projected standard error of a bigger
    design matches the one computed from those components, and the real spread of that design."""
    from alignkit.stats import design_power

    rng = np.random.default_rng(0)
    sd_units, sd_within = 0.3, 0.4

    def draw(seeds, units):
        return rng.normal(0, sd_units, units)[None, :] + rng.normal(0, sd_within, (seeds, units))

    got = design_power(draw(3, 4000), n_units=150, n_seeds=3)
    exact = np.sqrt((sd_units**2 + sd_within**2 / 3) / 150)
    assert got["se"] == pytest.approx(exact, rel=0.05)
    assert got["sd_units"] == pytest.approx(sd_units, rel=0.1)
    assert got["sd_within"] == pytest.approx(sd_within, rel=0.05)
    assert got["half_width"] == pytest.approx(1.959964 * got["se"])
    assert got["mde"] == pytest.approx((1.959964 + 0.841621) * got["se"], rel=1e-5)
    spread = np.std([draw(3, 150).mean() for _ in range(2000)])  # the planned design, simulated
    assert got["se"] == pytest.approx(spread, rel=0.1)
    assert design_power(draw(3, 4000), n_units=150, n_seeds=30)["se"] < got["se"]  # more seeds help
    assert got["sd_seeds"] < 0.02  # no run-level part in this pilot
    with pytest.raises(ValueError, match="units"):
        design_power([[0.1]], n_units=10)
    with pytest.raises(ValueError, match="n_units"):
        design_power(draw(2, 10), n_units=0)
