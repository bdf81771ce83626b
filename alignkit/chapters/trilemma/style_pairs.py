"""Synthetic two-group preference pairs (a majority likes formal answers, a minority casual ones).

Chapter 5's reward-model experiment uses this generator (the RLHF trilemma's
"preference collapse" on a real model). Every pair answers the same question in two styles with
the same content, so the only thing a reward model can learn is the style that annotators
prefer. Each label comes from an annotator drawn from the population: with probability
``minority_share`` from the minority (prefers casual with probability ``rates[1]``), otherwise from
the majority (prefers formal with probability ``rates[0]``). Topics are split so that ``split="test"``
questions never appear in training. Nothing is downloaded; the data are made here, seeded.

:func:`held_out_p_casual` fits (with ``alignkit.reward_model.fit_bt_head``) the chapter's reward heads on frozen features
(a converged, initialisation-free fit, so the result does not move with the machine).
"""

from __future__ import annotations

import numpy as np

from alignkit.reward_model import fit_bt_head

# (question, the content of the answer); the first 16 are for training, the last 8 held out
TOPICS: list[tuple[str, str]] = [
    ("How do I boil an egg?", "put the egg in boiling water for about nine minutes, then cool it in cold water."),
    ("How can I sleep better?", "keep a regular bedtime and avoid screens for an hour before sleep."),
    ("How do I water a cactus?", "water it deeply about once every two weeks and let the soil dry out in between."),
    ("How should I start running?", "begin with short easy runs three times a week and increase the distance slowly."),
    ("How do I save money on food?", "plan your meals for the week and buy only what is on your list."),
    ("How do I clean a cast iron pan?", "rinse it with hot water, dry it well and rub in a little oil."),
    ("How can I learn a language?", "practise a little every day and talk with native speakers when you can."),
    ("How do I fix a slow laptop?", "close unused programs and remove apps that start automatically."),
    ("How do I keep basil alive?", "give it plenty of sun and pinch off the flowers as they appear."),
    ("How can I focus while studying?", "work in short blocks with breaks and keep your phone in another room."),
    ("How do I write a thank-you note?", "name the gift or favour, say how it helped, and keep it short."),
    ("How do I remove a coffee stain?", "blot it quickly and rinse with cold water before washing."),
    ("How do I prepare for an interview?", "research the company and practise answering common questions aloud."),
    ("How do I make rice fluffy?", "rinse the rice first and let it rest covered for ten minutes after cooking."),
    ("How can I drink more water?", "carry a bottle with you and drink a glass with every meal."),
    ("How do I back up my photos?", "copy them to an external drive and to a cloud service as well."),
    ("How do I calm down before a talk?", "take slow deep breaths and rehearse your opening lines."),
    ("How do I stop a squeaky door?", "put a few drops of oil on the hinges and swing the door a few times."),
    ("How do I choose a ripe avocado?", "press it gently; a ripe one gives a little without feeling soft."),
    ("How can I read more books?", "carry a book everywhere and read a few pages whenever you wait."),
    ("How do I descale a kettle?", "boil a mix of water and vinegar, let it sit, then rinse it well."),
    ("How do I keep my desk tidy?", "clear it at the end of each day and keep only what you use daily."),
    ("How do I defrost bread?", "leave it at room temperature for an hour or toast the slices directly."),
    ("How can I remember names?", "repeat the name when you hear it and use it once in the conversation."),
]
N_TRAIN_TOPICS = 16

FORMAL = ["Certainly. To answer your question, {c} I hope this is helpful.",
          "Thank you for your question. My recommendation is as follows: {c} Kind regards.",
          "Good question. The recommended approach is this: {c} Please let me know if you require anything further.",
          "I would suggest the following. {c} I trust this answers your question."]
CASUAL = ["Hey! Easy one, {c} Hope that helps :)",
          "Oh nice, so basically {c} You got this!!",
          "lol ok so {c} Easy peasy, good luck!",
          "Haha sure thing, just {c} Have fun with it!"]


def render(question: str, answer: str) -> tuple[str, str]:
    """The prompt and completion strings a reward model reads (plain text, no chat template)."""
    return f"Question: {question}\n", f"Answer: {answer}"


def style_pairs(split: str = "train", n_topics: int | None = None) -> list[dict[str, str]]:
    """Every (question, formal answer, casual answer) of a split, with matched wrapper variants.

    ``n_topics`` keeps only the first topics of the split (fewer texts to embed at small scales).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    topics = TOPICS[:N_TRAIN_TOPICS] if split == "train" else TOPICS[N_TRAIN_TOPICS:]
    if n_topics is not None:
        if not (1 <= n_topics <= len(topics)):
            raise ValueError(f"n_topics must be in [1, {len(topics)}] for split {split!r}, got {n_topics!r}")
        topics = topics[:n_topics]
    pairs = []
    for question, content in topics:
        for formal, casual in zip(FORMAL, CASUAL, strict=True):
            prompt, f_text = render(question, formal.format(c=content[0].upper() + content[1:]))
            _, c_text = render(question, casual.format(c=content))
            pairs.append({"prompt": prompt, "formal": f_text, "casual": c_text})
    return pairs


def two_group_preferences(n_pairs: int, minority_share: float, *, rates=(0.9, 0.9), split: str = "train",
                          group_context: bool = False, n_topics: int | None = None,
                          seed: int = 0) -> list[dict]:
    """``n_pairs`` labelled pairs in TRL's preference format (``prompt``, ``chosen``, ``rejected``).

    ``rates[0]``: how often a majority annotator prefers the formal answer; ``rates[1]``: how often a
    minority annotator prefers the casual one. Extra keys ``group`` (0 majority, 1 minority) and
    ``casual_chosen`` are for analysis (TRL ignores them). ``group_context=True`` writes the
    annotator's group into the prompt: the "condition on the group" relaxation. ``n_topics``
    limits the questions used (see ``style_pairs``).
    """
    if not (0 <= minority_share <= 1):
        raise ValueError(f"minority_share must be in [0, 1], got {minority_share!r}")
    if n_pairs < 1:
        raise ValueError(f"n_pairs must be >= 1, got {n_pairs!r}")
    if any(not (0 <= r <= 1) for r in rates) or len(rates) != 2:
        raise ValueError(f"rates must be two probabilities (majority formal, minority casual), got {rates!r}")
    rng = np.random.default_rng(seed)
    pairs = style_pairs(split, n_topics)
    rows = []
    for idx in rng.integers(0, len(pairs), size=n_pairs):
        pair = pairs[idx]
        group = int(rng.random() < minority_share)
        casual_chosen = bool(rng.random() < rates[1]) if group else bool(rng.random() >= rates[0])
        prompt = pair["prompt"]
        if group_context:
            prompt = f"[annotator group: {'minority' if group else 'majority'}]\n" + prompt
        chosen, rejected = (pair["casual"], pair["formal"]) if casual_chosen else (pair["formal"], pair["casual"])
        rows.append({"prompt": prompt, "chosen": chosen, "rejected": rejected, "group": group,
                     "casual_chosen": casual_chosen})
    return rows


def population_casual_rate(minority_share: float, rates=(0.9, 0.9)) -> float:
    """The pooled probability that a random annotator prefers the casual answer."""
    return float((1 - minority_share) * (1 - rates[0]) + minority_share * rates[1])


# head seeds per scale for the frozen-feature sweep (cheap: one convex fit per seed and share)
HEAD_SEEDS = {"smoke": 2, "cpu": 10, "gpu": 10, "cluster": 10}


def head_seeds(scale) -> tuple[int, ...]:
    """The seeds of the frozen-feature reward-model sweep at ``scale`` (a name or a ``Scale``)."""
    from alignkit.scale import sizes_for

    return tuple(range(sizes_for(HEAD_SEEDS, scale, owner="chapter 5's reward-model sweep")))


def held_out_p_casual(features: dict, train_topics: int, test_pairs: list[dict], shares, seeds, *,
                      n_pairs: int, l2: float = 1e-2):
    """sigmoid(r(casual) - r(formal)) on each held-out pair, ``(shares, seeds, pairs)``.

    For each minority share and seed: ``n_pairs`` labels from :func:`two_group_preferences`
    (that seed), a ``fit_bt_head`` on their frozen ``features`` (text -> vector), scored on
    ``test_pairs``. Chapter 5's reward-model sweep.
    """
    import torch

    def stack(rows, a, b):
        return (torch.stack([features[r["prompt"] + r[a]] for r in rows]),
                torch.stack([features[r["prompt"] + r[b]] for r in rows]))

    casual, formal = stack(test_pairs, "casual", "formal")
    out = np.empty((len(shares), len(seeds), len(test_pairs)))
    for i, share in enumerate(shares):
        for j, seed in enumerate(seeds):
            rows = two_group_preferences(n_pairs, share, n_topics=train_topics, seed=seed)
            head = fit_bt_head(*stack(rows, "chosen", "rejected"), l2=l2)
            with torch.no_grad():
                out[i, j] = torch.sigmoid(head(casual) - head(formal)).squeeze(-1).numpy()
    return out


def pair_scores(model, tokenizer, pairs: list[dict]) -> list[dict]:
    """The reward model's scores of the formal and the casual answer of each pair in ``pairs``.

    Returns one dict per pair: ``question`` (the prompt without "Question: "), ``formal`` and ``casual``
    (the two rewards) and ``p_casual`` = sigmoid(r_casual - r_formal), the probability the
    Bradley-Terry model gives the minority's answer. Chapter 5 prints a few before and after
    training the reward model with TRL.
    """
    from alignkit.reward_model import score_texts

    if not pairs:
        raise ValueError("pairs is empty; give at least one dict with prompt/formal/casual")
    formal = score_texts(model, tokenizer, [p["prompt"] + p["formal"] for p in pairs])
    casual = score_texts(model, tokenizer, [p["prompt"] + p["casual"] for p in pairs])
    return [{"question": p["prompt"].removeprefix("Question: ").strip(), "formal": float(f), "casual": float(c),
             "p_casual": float(1 / (1 + np.exp(f - c)))}
            for p, f, c in zip(pairs, formal, casual, strict=True)]
