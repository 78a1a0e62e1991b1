"""Nearest training examples of samples: images, features, text, music, levels."""

from __future__ import annotations

import numpy as np
import pytest

from plugins.audit.engine import memorization as mem


def img(seed, size=16):
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def test_tiled_l2_is_the_worst_tile():
    a = np.zeros((1, 16, 16, 1))
    b = np.zeros((1, 16, 16, 1))
    b[0, :4, :4, 0] = 1.0  # one tile of the 4 x 4 grid entirely different
    d = mem.tiled_l2_matrix(a, b)
    assert d[0, 0] == pytest.approx(1.0)  # the whole-image RMS would be 0.25
    b2 = b.copy()
    b2[0, :4, :4, 0] = 0.2
    assert mem.tiled_l2_matrix(a, b2)[0, 0] == pytest.approx(0.2)
    assert mem.tiled_l2_matrix(a, a)[0, 0] == pytest.approx(0.0)


def test_nearest_images_finds_copies_and_near_copies():
    train = [img(i) for i in range(30)]
    near = np.clip(train[5].astype(int) + 3, 0, 255).astype(np.uint8)  # slightly brighter
    samples = [train[3].copy(), near, img(100), img(101)]
    r = mem.nearest_images(samples, train, [f"t{i}" for i in range(30)])
    assert [p.example for p in r.nearest[:2]] == ["t3", "t5"]
    assert r.nearest[0].distance == pytest.approx(0.0, abs=1e-6)
    assert r.nearest[1].distance < 0.02
    assert r.nearest[2].distance > 0.3
    assert r.copied.k == 2 and r.copied.n == 4
    assert r.nearest[0].detail["relative"] < 0.01 < r.nearest[2].detail["relative"]


def test_images_of_other_sizes_are_compared_at_the_training_size():
    from PIL import Image

    # smooth images (4 x 4 blocks): resampling noise would blur every pixel
    train = [np.kron(img(i, 4), np.ones((4, 4, 1), dtype=np.uint8)) for i in range(5)]
    big = np.asarray(Image.fromarray(train[2]).resize((32, 32), Image.Resampling.NEAREST))
    r = mem.nearest_images([big, big[:, :, 0]], train, list("abcde"))
    assert r.nearest[0].example == "c" and r.nearest[0].distance < 0.1


def test_nearest_features_by_cosine():
    t = np.eye(4)
    s = np.array([[0, 2.0, 0, 0], [1, 1, 1, 1.0]])
    r = mem.nearest_features(s, t, list("abcd"), threshold=0.01)
    assert r.nearest[0].example == "b" and r.nearest[0].distance == pytest.approx(0.0)
    assert r.copied.k == 1


TRAIN = ("It was the best of times, it was the worst of times, it was the age of wisdom, it was "
         "the age of foolishness, it was the epoch of belief, it was the epoch of incredulity, "
         "it was the season of Light, it was the season of Darkness.")


def test_text_exact_and_near_exact_runs_with_the_passage():
    corpus = mem.TextCorpus([mem.TextDoc("dickens", TRAIN), mem.TextDoc("other",
                                                                      "Nothing to see here.")])
    exact = "He wrote: it was the age of wisdom, it was the age of foolishness, it was the " \
            "epoch of belief. Then he stopped."
    near = "IT WAS THE AGE OF WISDOM; it was the age of FOOLISHNESS, it was the epoch of " \
           "belief, it was the era of incredulity"
    fresh = "A completely different sentence about boats and rivers and the sea."
    r = mem.nearest_texts([exact, near, fresh], corpus, min_tokens=12)
    e, n, f = r.nearest
    assert e.example == "dickens" and e.detail["exact_tokens"] >= 20
    assert "age of wisdom" in e.detail["training_passage"]
    assert "it was the age of wisdom" in e.detail["sample_passage"]
    assert "Then he stopped" not in e.detail["sample_passage"]
    assert n.detail["exact_tokens"] < 12 <= n.detail["near_tokens"]
    assert n.detail["substitutions"] >= 1  # "era" for "epoch"
    assert f.example == "" and f.detail["exact_tokens"] == 0
    assert r.copied.k == 2


def test_music_overlap_survives_transposition():
    piece = [(60 + (i * 7) % 12, i * 0.5, 0.5) for i in range(40)]
    other = [(50 + (i * 5) % 9, i * 0.25, 0.25) for i in range(40)]
    transposed = [(p + 5, s + 10, d) for p, s, d in piece[5:30]]
    r = mem.nearest_music([transposed, other[:10]], [piece, other[10:]], ["bach", "x"],
                          min_notes=16)
    assert r.nearest[0].example == "bach" and r.nearest[0].detail["notes"] >= 24
    assert r.copied.k == 1


def test_level_windows():
    rng = np.random.default_rng(0)
    lv = ["".join(rng.choice(list("-X?E"), 40)) for _ in range(10)]
    copy = [row[5:30] for row in lv]
    fresh = ["".join(rng.choice(list("-X?E"), 25)) for _ in range(10)]
    r = mem.nearest_levels([copy, fresh], [lv], ["level1"], window=6)
    assert r.nearest[0].detail["share"] == 1.0 and r.nearest[0].example == "level1"
    assert r.nearest[1].detail["share"] < 0.1
    assert r.copied.k == 1
