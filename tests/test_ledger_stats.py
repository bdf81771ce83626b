"""Ledger JSON shape, atomic writes, and the intervals the ledgers report."""

import json

import numpy as np
import pytest
from scipy import stats

from alignkit.io import atomic_write_json, read_json
from alignkit.ledger import Ledger
from alignkit.stats import bootstrap_ci, fmt_ci, mean_ci


def test_ledger_roundtrip(tmp_path):
    led = Ledger("00_start_here", "smoke", seeds=[0, 1])
    led.add("c1", "a claim", "1.0", fmt_ci(0.9, 0.8, 1.0), "partly", "small scale")
    path = led.save(tmp_path)
    assert path == tmp_path / "00_start_here" / "smoke.json"
    data = read_json(path)
    assert set(data) == {"chapter", "scale", "commit", "seeds", "claims"}
    assert data["claims"][0] == {"id": "c1", "claim": "a claim", "paper": "1.0",
                                 "ours": "0.9 [0.8, 1]", "verdict": "partly", "note": "small scale"}
    assert "| a claim |" in led.to_markdown()


def test_ledger_rejects_bad_verdicts_duplicates_and_empty(tmp_path):
    led = Ledger("x", "smoke")
    with pytest.raises(ValueError, match="maybe"):
        led.add("c1", "claim", "1", "1", "maybe")
    with pytest.raises(ValueError, match="no claims"):
        led.save(tmp_path)
    led.add("c1", "claim", "1", "1", "reproduced")
    with pytest.raises(ValueError, match="c1"):
        led.add("c1", "claim", "1", "1", "reproduced")


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
