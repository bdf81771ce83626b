"""Per-sample learning trajectories of an RL run: LIMR's raw material. Chapter 2 introduces them.

LIM needs, for every training sample and every epoch, the fraction of its rollouts that were
correct. :class:`TrajectoryRecorder` collects one record ``(sample_id, epoch, reward, correct)``
per rollout and turns them into the ``acc`` matrix of ``alignkit.selection.lim_scores``.

Two ways to feed it:

* the from-scratch GRPO (``alignkit.grpo``): pass ``recorder.grpo_hook`` as ``on_rewards``;
* TRL's ``GRPOTrainer``: wrap the reward with ``recorder.wrap(reward_fn)`` (it reads the
  dataset's ``sample_id`` column, which TRL hands to reward functions) and add
  ``recorder.callback()`` to the trainer's callbacks, which tells the recorder the epoch.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from alignkit.io import atomic_write_text


class TrajectoryRecorder:
    """Records every rollout's reward and correctness, by sample id and epoch.

    ``correct_at``: a rollout is correct when its reward is >= this (LIMR counts reward
    exactly +1: its rewards are +1 / -0.5 / -1, so the default 1.0 does that).
    """

    def __init__(self, correct_at: float = 1.0):
        self.correct_at = float(correct_at)
        self.epoch = 0
        self.records: list[dict] = []

    def add(self, sample_ids: Sequence, epoch: int, rewards: Sequence[float],
            correct: Sequence[bool] | None = None) -> None:
        """Record one batch of rollouts (one entry per rollout; ids repeat within a group)."""
        sample_ids, rewards = list(sample_ids), [float(r) for r in rewards]
        if len(sample_ids) != len(rewards):
            raise ValueError(f"got {len(sample_ids)} sample ids for {len(rewards)} rewards")
        if correct is None:
            correct = [r >= self.correct_at for r in rewards]
        for sid, r, ok in zip(sample_ids, rewards, correct, strict=True):
            sid = sid.item() if hasattr(sid, "item") else sid
            self.records.append({"sample_id": sid, "epoch": int(epoch), "reward": r, "correct": bool(ok)})

    def grpo_hook(self, step: int, epoch: int, sample_ids, rewards) -> None:
        """``on_rewards`` hook for ``alignkit.grpo.train_grpo``."""
        self.add(sample_ids, epoch, rewards)

    def wrap(self, reward_fn: Callable, id_column: str = "sample_id") -> Callable:
        """A TRL reward function that returns ``reward_fn``'s rewards and records them.

        Needs the dataset column ``id_column`` (TRL passes columns to reward functions as
        keyword lists, one entry per completion) and ``recorder.callback()`` for the epoch.
        """

        def recorded(prompts=None, completions=None, **kwargs):
            if id_column not in kwargs:
                raise ValueError(f"the recorder needs a {id_column!r} column in the training dataset; "
                                 f"the reward function got columns {sorted(kwargs)}")
            rewards = list(reward_fn(prompts=prompts, completions=completions, **kwargs))
            ok = [r is not None and math.isfinite(float(r)) for r in rewards]
            self.add([s for s, k in zip(kwargs[id_column], ok, strict=True) if k], self.epoch,
                     [r for r, k in zip(rewards, ok, strict=True) if k])
            return rewards

        recorded.__name__ = getattr(reward_fn, "__name__", "reward")  # TRL logs by this name
        recorded.__doc__ = reward_fn.__doc__
        return recorded

    def callback(self):
        """A ``transformers.TrainerCallback`` that keeps ``self.epoch`` = the trainer's epoch.

        At each step's start ``state.epoch`` is ``e + done/steps_in_epoch`` within epoch ``e``
        (0-based), so its floor is the epoch whose prompts this step generates for.
        """
        from transformers import TrainerCallback

        recorder = self

        class EpochTracker(TrainerCallback):
            def on_step_begin(self, args, state, control, **kwargs):
                recorder.epoch = math.floor((state.epoch or 0.0) + 1e-6)

        return EpochTracker()

    def acc_matrix(self, sample_ids: Sequence | None = None,
                   n_epochs: int | None = None) -> tuple[np.ndarray, list]:
        """``(acc, ids)``: acc[i, k] = fraction of correct rollouts of ``ids[i]`` in epoch k, NaN
        where it had none. ``ids`` defaults to the sorted recorded ids (pass the whole pool to
        get NaN rows for samples never seen); ``n_epochs`` defaults to the last epoch seen + 1.
        """
        ids = sorted({r["sample_id"] for r in self.records}) if sample_ids is None else list(sample_ids)
        if n_epochs is None:
            n_epochs = 1 + max((r["epoch"] for r in self.records), default=-1)
        if n_epochs < 1:
            raise ValueError("no rollouts recorded yet, so there is no epoch to build acc from")
        row = {sid: i for i, sid in enumerate(ids)}
        hits = np.zeros((len(ids), n_epochs))
        counts = np.zeros((len(ids), n_epochs))
        for r in self.records:
            i = row.get(r["sample_id"])
            if i is not None and r["epoch"] < n_epochs:
                hits[i, r["epoch"]] += r["correct"]
                counts[i, r["epoch"]] += 1
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(counts > 0, hits / np.maximum(counts, 1), np.nan), ids

    def save(self, path: str | Path) -> Path:
        """Write the records as JSON lines, atomically (a crash leaves the old file whole)."""
        return atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in self.records))

    @classmethod
    def load(cls, path: str | Path, correct_at: float = 1.0) -> TrajectoryRecorder:
        """A recorder holding the records of a file written by :meth:`save`."""
        rec = cls(correct_at)
        with open(path) as f:
            rec.records = [json.loads(line) for line in f if line.strip()]
        return rec
