"""plugins.common.imagemetrics: FD/KID maths against references, extractors, safe loading."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import scipy.linalg
import torch

from plugins.common import imagemetrics as im
from studio.errors import UserError


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run faster on one thread, and far faster on a shared, busy CPU (OpenMP spin)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _scipy_fd(mu1, s1, mu2, s2) -> float:
    """pytorch-fid's reference formula with scipy's matrix square root."""
    covmean = np.real(scipy.linalg.sqrtm(s1 @ s2))
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def _random_spd(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def test_frechet_distance_matches_scipy_reference_on_known_gaussians() -> None:
    rng = np.random.default_rng(0)
    for d in (1, 4, 16, 64):
        mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
        s1, s2 = _random_spd(rng, d), _random_spd(rng, d)
        assert im.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(
            _scipy_fd(mu1, s1, mu2, s2), rel=1e-7, abs=1e-9)
    # closed form for diagonal covariances: |dmu|^2 + sum (sqrt(a) - sqrt(b))^2
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 9.0])
    mu1, mu2 = np.zeros(3), np.array([1.0, 2.0, 0.0])
    expected = 5.0 + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert im.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected)
    assert im.frechet_distance(mu1, np.diag(a), mu1, np.diag(a)) == pytest.approx(0.0, abs=1e-9)


def test_fd_from_samples_approaches_the_analytic_value() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(0.0, 1.0, size=(20000, 3))
    y = rng.normal(1.0, 2.0, size=(20000, 3))
    mu1, s1 = im.gaussian_stats(x)
    mu2, s2 = im.gaussian_stats(y)
    # |dmu|^2 = 3, trace term = 3 * (1 + 4 - 2*2) = 3
    assert im.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(6.0, rel=0.05)
    with pytest.raises(UserError):
        im.gaussian_stats(x[:1])


def _naive_kid(x: np.ndarray, y: np.ndarray) -> float:
    d = x.shape[1]
    m = len(x)
    k = lambda a, b: (a @ b / d + 1) ** 3  # noqa: E731
    sxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    syy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    sxy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return sxx + syy - 2 * sxy


def test_kid_is_the_unbiased_polynomial_mmd() -> None:
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(12, 5)), rng.normal(0.5, 1.0, size=(12, 5))
    mean, std = im.kernel_inception_distance(x, y, subsets=3, subset_size=12)
    assert mean == pytest.approx(_naive_kid(x, y), rel=1e-9)
    assert std == pytest.approx(0.0, abs=1e-12)  # every subset is the whole set
    same = rng.normal(size=(400, 5))
    other = rng.normal(size=(400, 5))
    near, _ = im.kernel_inception_distance(same, other, subsets=20, subset_size=200)
    far, _ = im.kernel_inception_distance(same, other + 1.0, subsets=20, subset_size=200)
    assert abs(near) < 0.1 * far


def _fake_inception_file(tmp_path, fid: bool, suffix: str = ".pth"):
    from plugins.common.featurenets import InceptionV3

    torch.manual_seed(0)
    net = InceptionV3(fid=fid)
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in net.state_dict().items()}
    state["fc.weight"] = torch.zeros(1008 if fid else 1000, 2048, dtype=torch.float16)
    state["fc.bias"] = torch.zeros(1008 if fid else 1000, dtype=torch.float16)
    if not fid:  # torchvision files carry the auxiliary head too
        state["AuxLogits.fc.weight"] = torch.zeros(1000, 768, dtype=torch.float16)
    path = tmp_path / f"inception{'_fid' if fid else '_tv'}{suffix}"
    if suffix == ".safetensors":
        from studio.storage import save_tensors

        save_tensors(path, state)
    else:
        torch.save(state, path)
    return path


def test_load_inception_both_weight_files_give_pool3_features(tmp_path) -> None:
    images = np.random.default_rng(3).integers(0, 255, size=(1, 32, 32, 1), dtype=np.uint8)
    ext = im.load_inception(_fake_inception_file(tmp_path, fid=True))
    assert isinstance(ext, im.FeatureExtractor)
    assert ext.comparable and "pytorch-fid" in ext.name
    f = ext.features(images)
    assert f.shape == (1, 2048) and np.isfinite(f).all()
    tv = im.load_inception(_fake_inception_file(tmp_path, fid=False, suffix=".safetensors"))
    assert "torchvision" in tv.name and not tv.comparable  # not the TF FID network
    # the FID variant really differs (TF pooling), so the two are not silently the same network
    assert type(tv.net.Mixed_7c).__name__ == "InceptionE" and tv.net.Mixed_7c.pool == "avg"
    assert ext.net.Mixed_7c.pool == "max"


def test_load_inception_refuses_wrong_files_clearly(tmp_path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        im.load_inception(tmp_path / "nope.pth")
    text = tmp_path / "notes.pth"
    text.write_text("hello")
    with pytest.raises(UserError, match="not a readable weights file"):
        im.load_inception(text)
    other = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(10, 20)}, other)
    with pytest.raises(UserError, match="not an InceptionV3"):
        im.load_inception(other)
    partial = tmp_path / "partial.pth"
    torch.save({"fc.weight": torch.zeros(1008, 2048)}, partial)
    with pytest.raises(UserError, match="missing"):
        im.load_inception(partial)

    evil = tmp_path / "evil.pth"  # a pickled object must never be unpickled
    torch.save({"x": argparse.Namespace(a=1)}, evil)
    with pytest.raises(UserError):
        im.load_inception(evil)


def _bars(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two classes: horizontal or vertical bars at random positions (16 px)."""
    imgs = np.zeros((n, 16, 16, 1), dtype=np.uint8)
    labels = np.arange(n) % 2
    for i in range(n):
        p = rng.integers(2, 14)
        if labels[i]:
            imgs[i, :, p - 1:p + 1] = 255
        else:
            imgs[i, p - 1:p + 1, :] = 255
    return imgs, labels


def test_domain_classifier_learns_classes_and_round_trips(tmp_path) -> None:
    rng = np.random.default_rng(4)
    imgs, labels = _bars(80, rng)
    clf = im.train_domain_classifier(imgs, labels, steps=60, size=16, width=8, seed=0,
                                     class_names=["h", "v"])
    assert not clf.comparable and "domain" in clf.name and clf.mode == "classes"
    assert clf.val_accuracy is not None and clf.val_accuracy >= 0.9
    probs = clf.predict_proba(imgs)
    assert probs.shape == (80, 2) and np.allclose(probs.sum(1), 1.0)
    assert (probs.argmax(1) == labels).mean() >= 0.9
    path = clf.save(tmp_path / "clf.safetensors")
    back = im.DomainClassifier.load(path)
    assert back.classes == ["h", "v"] and back.val_accuracy == clf.val_accuracy
    np.testing.assert_allclose(back.features(imgs), clf.features(imgs), rtol=1e-6)
    # colour inputs are accepted by a grayscale classifier (and vice versa)
    assert clf.features(np.repeat(imgs[:3], 3, axis=-1)).shape == (3, clf.feature_dim)
    not_clf = tmp_path / "plain.safetensors"
    from studio.storage import save_tensors

    save_tensors(not_clf, {"w": torch.zeros(2)})
    with pytest.raises(UserError, match="not a domain classifier"):
        im.DomainClassifier.load(not_clf)


def test_domain_classifier_is_deterministic_and_rotation_mode_for_unlabelled() -> None:
    rng = np.random.default_rng(5)
    imgs, _ = _bars(40, rng)
    imgs[:, :4, :4] = 255  # a corner mark so that rotations are distinguishable
    a = im.train_domain_classifier(imgs, None, steps=40, size=16, width=8, seed=1)
    b = im.train_domain_classifier(imgs, np.full(40, -1), steps=40, size=16, width=8, seed=1)
    assert a.mode == b.mode == "rotation" and len(a.classes) == 4
    np.testing.assert_array_equal(a.features(imgs), b.features(imgs))
    assert a.val_accuracy is not None and a.val_accuracy > 0.5  # chance is 0.25


def test_evaluate_images_reports_domain_metrics() -> None:
    rng = np.random.default_rng(6)
    imgs, labels = _bars(60, rng)
    clf = im.train_domain_classifier(imgs, labels, steps=30, size=16, width=8)
    same = im.evaluate_images(imgs[:30], imgs[30:], clf)
    noise = rng.integers(0, 255, size=(30, 16, 16, 1), dtype=np.uint8)
    far = im.evaluate_images(imgs[:30], noise, clf)
    assert set(same) >= {"fd", "kid", "kid_std", "extractor", "comparable", "n_real", "n_fake"}
    assert same["comparable"] is False and "domain" in same["extractor"]
    assert same["n_real"] == 30 and same["n_fake"] == 30
    assert far["fd"] > same["fd"] and far["kid"] > same["kid"]
    with pytest.raises(UserError):
        im.evaluate_images(imgs[:1], imgs[:5], clf)
