"""Chapter 4 benchmark: best-of-N vs the KL-optimal tilt on a memoryless LM, by convolution over levels.

Prints (1) agreement and speed against brute-force enumeration of all K^m sequences where that is
still feasible, as a ratio; (2) a scaling table, time vs m, for the tilted-FFT convolution and the
exact O(m^2) log-space convolution (up to m = 10^4); (3) the per-token reward / KL curves up to m = 10^4.

    python benchmarks/bench_04_memoryless.py            # about a minute on 2 CPU cores
"""

from __future__ import annotations

import time

import numpy as np

from alignkit.theory import (
    best_of_n_distribution,
    best_of_n_vs_tilt,
    kl,
    kl_constrained_optimum,
    sequence_reward_logpmf,
    tilt,
)

P, R, DELTA = np.array([0.5, 0.3, 0.2]), np.array([0.0, 1.0, 2.0]), 0.15  # a 3-letter source (our choice, derived here)


def timed(fn, *args, repeat: int = 1):
    """Best-of-``repeat`` wall time and the result of ``fn(*args)``."""
    best, out = np.inf, None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn(*args)
        best = min(best, time.perf_counter() - start)
    return best, out


def by_enumeration(m: int) -> dict:
    """Brute force: all K^m sequences as outcomes; best-of-N, the tilt and KLs over sequences."""
    seqs = np.indices((P.size,) * m).reshape(m, -1)
    p_seq = np.prod(P[seqs], axis=0)
    r_seq = np.sum(R[seqs], axis=0)
    p_seq /= p_seq.sum()
    _, lam = kl_constrained_optimum(P, R, DELTA)
    phi = tilt(p_seq, r_seq, lam)
    bon = best_of_n_distribution(p_seq, r_seq, log_n=m * DELTA)
    return {"reward_bon": bon @ r_seq / m, "kl_bon": kl(bon, p_seq) / m, "kl_bon_tilt": kl(bon, phi) / m}


def main() -> None:
    print(f"source p={P.tolist()}, r={R.tolist()}, delta={DELTA} nats/token, N = exp(m * delta)\n")
    print("1) convolution over levels vs enumeration of all 3^m sequences")
    print(f"{'m':>4} {'sequences':>10} {'enum s':>8} {'conv s':>8} {'ratio':>8} {'max |diff|':>11}")
    for m in (4, 8, 10, 12):
        t_enum, brute = timed(by_enumeration, m)
        t_conv, conv = timed(best_of_n_vs_tilt, P, R, m, DELTA, repeat=3)
        diff = max(abs(brute[k] - conv[k]) for k in brute)
        print(f"{m:>4} {3**m:>10} {t_enum:>8.3f} {t_conv:>8.4f} {t_enum / t_conv:>7.2g}x {diff:>11.1e}")

    print("\n2) scaling: time to get the total-reward law (log space) and the full best-of-N vs tilt row")
    print(f"{'m':>6} {'levels':>7} {'fft s':>8} {'direct s':>9} {'fft vs direct':>14} {'row s':>7}")
    for m in (10, 100, 1000, 3000, 10_000, 30_000):
        t_fft, (_, lp_fft) = timed(sequence_reward_logpmf, P, R, m)
        if m <= 10_000:
            t_dir, (_, lp_dir) = timed(sequence_reward_logpmf, P, R, m, "direct")
            on = np.isfinite(lp_dir)
            agree = f"{np.max(np.abs(lp_fft[on] - lp_dir[on])):.1e}"
            t_dir_s = f"{t_dir:.3f}"
        else:
            t_dir_s, agree = "-", "-"
        t_row, _ = timed(best_of_n_vs_tilt, P, R, m, DELTA)
        print(f"{m:>6} {lp_fft.size:>7} {t_fft:>8.3f} {t_dir_s:>9} {agree:>14} {t_row:>7.2f}")

    print("\n3) per-token curves (binary source p(1)=0.3, delta=0.1, values checked numerically here)")
    print(f"{'m':>6} {'E_BoN r/m':>10} {'x*':>9} {'KL(BoN||p)/m':>13} {'bound/m':>9} {'KL(BoN||tilt)/m':>16} {'total':>7}")
    for m in (10, 100, 1000, 10_000):
        row = best_of_n_vs_tilt(np.array([0.7, 0.3]), np.array([0.0, 1.0]), m, 0.1)
        print(f"{m:>6} {row['reward_bon']:>10.5f} {row['reward_tilt']:>9.6f} {row['kl_bon']:>13.5f} "
              f"{row['bound']:>9.5f} {row['kl_bon_tilt']:>16.2e} {row['kl_bon_tilt_total']:>7.3f}")


if __name__ == "__main__":
    main()
