"""train.data: embedded datasets, the grain pipeline, tensorflow-datasets sources."""

import itertools

import numpy as np
import pytest

from train import data
from train.data import augment
from train.errors import DatasetNotPreparedError, UserError


def test_digits_are_sklearn_digits_upsampled_split_and_standardised():
    from sklearn.datasets import load_digits

    ds = data.get_dataset("digits", image_size=16)
    x_train, y_train = ds.train.arrays["inputs"], ds.train.arrays["targets"]
    x_test, y_test = ds.test.arrays["inputs"], ds.test.arrays["targets"]
    assert x_train.shape == (1438, 16, 16, 3) and x_test.shape == (359, 16, 16, 3)
    assert np.bincount(y_test).tolist() == [36, 36, 35, 37, 36, 36, 36, 36, 35, 36]  # round(0.2 * class size)
    np.testing.assert_allclose([x_train.mean(), x_train.std()], [0.0, 1.0], atol=1e-5)
    # Undo the standardisation and 2x nearest upsampling: every example is a sklearn digit with its label.
    bunch = load_digits()
    reference = {(img.tobytes(), int(t)) for img, t in zip((bunch.images / 16.0).astype(np.float32), bunch.target)}
    restored = []
    for x, y in ((x_train, y_train), (x_test, y_test)):
        pixels = x[:, ::2, ::2, 0]
        lo, hi = pixels.min(), pixels.max()  # 0 and 16 grey levels map to the extremes
        restored += [(np.round((p - lo) / (hi - lo) * 16) / 16.0).astype(np.float32) for p in pixels]
        assert np.array_equal(x[:, ::2, ::2], x[:, 1::2, 1::2])  # nearest upsampling
    labels = np.concatenate([y_train, y_test])
    assert sum((img.tobytes(), int(t)) in reference for img, t in zip(restored, labels)) == 1797


def test_digits_split_is_deterministic_and_seeded():
    a = data.get_dataset("digits", image_size=8).test.arrays["inputs"]
    b = data.get_dataset("digits", image_size=8).test.arrays["inputs"]
    c = data.get_dataset("digits", image_size=8, split_seed=1).test.arrays["inputs"]
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_moving_digits_move_one_pixel_per_frame_in_the_labelled_direction():
    # Independent table: 0 right, 1 up, 2 left, 3 down (rows grow downwards).
    expected = {0: (0, 1), 1: (-1, 0), 2: (0, -1), 3: (1, 0)}
    ds = data.get_dataset("moving_digits", frames=5, size=14, directions=4)
    clips, labels = ds.train.arrays["inputs"][:50, ..., 0], ds.train.arrays["targets"][:50]
    assert clips.shape == (50, 5, 14, 14) and ds.num_classes == 4
    for clip, label in zip(clips, labels):
        first, last = clip[0], clip[-1]
        shifted = np.roll(first, (4 * expected[int(label)][0], 4 * expected[int(label)][1]), axis=(0, 1))
        np.testing.assert_array_equal(shifted, last)  # the digit never touches the border, so roll == move
    with pytest.raises(ValueError, match=r"size must be >= 8 \+ frames - 1 = 12"):
        data.get_dataset("moving_digits", frames=5, size=11)


def _keys_cubic(x, a=-0.5):
    x = np.abs(x)
    return np.where(x <= 1, (a + 2) * x**3 - (a + 3) * x**2 + 1, np.where(x < 2, a * (x**3 - 5 * x**2 + 8 * x - 4), 0.0))


def _bicubic_halve(image):
    """Antialiased bicubic downscale by 2 along H and W: the cubic kernel stretched 2x, interior pixels only."""
    taps = np.arange(-4, 4) + 0.5  # input pixel centres around an output centre, in input pixels
    weights = _keys_cubic(taps / 2.0)
    weights /= weights.sum()
    out = np.zeros((image.shape[0] // 2 - 4, image.shape[1] // 2 - 4, image.shape[2]))
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            y, x = 2 * (i + 2) - 3, 2 * (j + 2) - 3
            out[i, j] = np.einsum("h,w,hwc->c", weights, weights, image[y : y + 8, x : x + 8])
    return out


def test_photos_sr_pairs_are_aligned_bicubic_downscales():
    ds = data.get_dataset("photos_sr", scale=2, patch_size=16, test_tile=32)
    example = ds.test[5]
    assert example["inputs"].shape == (32, 32, 3) and example["targets"].shape == (64, 64, 3)
    want = _bicubic_halve(example["targets"].astype(np.float64))
    got = example["inputs"][2:-2, 2:-2]
    np.testing.assert_allclose(got, want, atol=1.5 / 255)  # uint8 rounding of the low-resolution photo
    patch = ds.train_map(ds.train[3], np.random.default_rng(0))
    assert patch["inputs"].shape == (16, 16, 3) and patch["targets"].shape == (32, 32, 3)
    assert 0.0 <= patch["inputs"].min() and patch["targets"].max() <= 1.0
    np.testing.assert_allclose(patch["inputs"][2:-2, 2:-2], _bicubic_halve(patch["targets"].astype(np.float64)), atol=1.5 / 255)


def test_volumes_labels_and_intensities():
    ds = data.get_dataset("volumes", size=12, num_classes=3, num_train=4, num_test=2, noise=0.1)
    x, y = ds.train.arrays["inputs"], ds.train.arrays["targets"]
    assert x.shape == (4, 12, 12, 12, 1) and y.shape == (4, 12, 12, 12) and set(np.unique(y)) <= {0, 1, 2}
    for k, mean in enumerate([0.0, 0.5, 1.0]):
        assert abs(x[..., 0][y == k].mean() - mean) < 0.05


def test_train_iterator_shuffles_each_epoch_and_resumes_from_its_state():
    ds = data.Dataset("toy", "classification", data.ArraySource({"inputs": np.arange(20.0)[:, None], "targets": np.arange(20)}),
                      data.ArraySource({"inputs": np.zeros((1, 1)), "targets": np.zeros(1, int)}), 20)
    it = data.train_iterator(ds, global_batch_size=5, seed=3)
    batches = [next(it)["targets"] for _ in range(8)]
    epoch1, epoch2 = np.concatenate(batches[:4]), np.concatenate(batches[4:])
    assert sorted(epoch1) == list(range(20)) and sorted(epoch2) == list(range(20))
    assert not np.array_equal(epoch1, epoch2) and not np.array_equal(epoch1, np.arange(20))
    again = data.train_iterator(ds, global_batch_size=5, seed=3)
    assert np.array_equal(next(again)["targets"], batches[0])
    other = data.train_iterator(ds, global_batch_size=5, seed=4)
    assert not np.array_equal(np.concatenate([next(other)["targets"] for _ in range(4)]), epoch1)
    resumed = data.train_iterator(ds, global_batch_size=5, seed=3)
    probe = data.train_iterator(ds, global_batch_size=5, seed=3)
    for _ in range(6):
        next(probe)
    resumed.set_state(probe.get_state())
    assert np.array_equal(next(resumed)["targets"], batches[6])


def _augmented_ids(n: int) -> data.Dataset:
    """Examples ``0 .. n-1`` whose augmentation adds a random fraction to the input."""
    ids = data.ArraySource({"inputs": np.arange(float(n))[:, None], "targets": np.arange(n)})
    augment = lambda element, rng: {**element, "inputs": element["inputs"] + rng.uniform()}  # noqa: E731
    return data.Dataset("toy", "classification", ids, ids, n, train_map=augment)


@pytest.mark.parametrize("count", [2, 3])
def test_process_shares_are_disjoint_cover_each_epoch_and_form_the_single_process_batches(count):
    ds, batch, steps_per_epoch = _augmented_ids(60), 12, 5
    one = data.train_iterator(ds, global_batch_size=batch, seed=7, process_index=0, process_count=1)
    shares = [data.train_iterator(ds, global_batch_size=batch, seed=7, process_index=p, process_count=count)
              for p in range(count)]
    for _ in range(2):  # two epochs
        epoch = []
        for _ in range(steps_per_epoch):
            blocks = [next(share) for share in shares]
            assert all(len(block["targets"]) == batch // count for block in blocks)
            whole = next(one)
            # Process p holds block p of the global batch, augmentation included.
            for key in ("targets", "inputs"):
                np.testing.assert_array_equal(np.concatenate([block[key] for block in blocks]), whole[key])
            epoch.append([block["targets"] for block in blocks])
        per_process = [np.concatenate([step[p] for step in epoch]) for p in range(count)]
        for p in range(count):
            for q in range(p):
                assert not set(per_process[p]) & set(per_process[q])  # disjoint
        assert sorted(np.concatenate(per_process)) == list(range(60))  # together: the whole epoch
    with pytest.raises(ValueError, match="process_index must be < process_count = 2, got 2"):
        data.train_iterator(ds, global_batch_size=batch, seed=7, process_index=2, process_count=2)


def test_processes_read_disjoint_shards(monkeypatch):
    import jax

    ds = data.Dataset("toy", "classification", data.ArraySource({"inputs": np.arange(24.0)[:, None], "targets": np.arange(24)}),
                      data.ArraySource({"inputs": np.arange(7.0)[:, None], "targets": np.arange(7)}), 24)
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    seen, evaluated = [], []
    for index in range(2):
        monkeypatch.setattr(jax, "process_index", lambda index=index: index)
        it = data.train_iterator(ds, global_batch_size=8, seed=0)
        seen.append(np.concatenate([next(it)["targets"] for _ in range(3)]))  # 3 steps x 8 = one epoch of 24
        evaluated.append(list(data.eval_batches(ds, global_batch_size=4)))
    assert not set(seen[0]) & set(seen[1]) and sorted(np.concatenate(seen)) == list(range(24))
    assert len(evaluated[0]) == len(evaluated[1]) == 2  # same number of batches on every process
    real = [b["targets"][b["weights"] > 0] for b in itertools.chain(*evaluated)]
    assert sorted(np.concatenate(real)) == list(range(7))
    with pytest.raises(UserError, match="not divisible by the 2 processes"):
        data.train_iterator(ds, global_batch_size=5, seed=0)


def test_eval_batches_cover_the_test_set_once_with_padding_weights():
    ds = data.get_dataset("digits", image_size=8)
    batches = list(data.eval_batches(ds, global_batch_size=100))
    assert [b["inputs"].shape[0] for b in batches] == [100] * 4
    weights = np.concatenate([b["weights"] for b in batches])
    assert weights.sum() == 359 and np.all(weights[:359] == 1)
    np.testing.assert_array_equal(np.concatenate([b["targets"] for b in batches])[:359], ds.test.arrays["targets"])


def test_pad_and_random_crop_is_a_window_of_the_zero_padded_image():
    rng = np.random.default_rng(0)
    image = rng.integers(1, 255, (6, 5, 3)).astype(np.uint8)
    padded = np.zeros((14, 13, 3), np.uint8)
    padded[4:10, 4:9] = image
    windows = {padded[y : y + 6, x : x + 5].tobytes() for y in range(9) for x in range(9)}
    crops = [augment.pad_and_random_crop(image, rng, pad=4) for _ in range(40)]
    assert all(c.shape == image.shape and c.tobytes() in windows for c in crops)
    assert len({c.tobytes() for c in crops}) > 10
    flips = [augment.random_flip(image, rng) for _ in range(40)]
    assert {f.tobytes() for f in flips} == {image.tobytes(), image[:, ::-1].tobytes()}


def test_cifar_through_mocked_tfds_data_source_without_tensorflow():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=6):
        ds = data.get_dataset("cifar10")
        raw = ds.train[0]
        element = ds.train_map(raw, np.random.default_rng(0))
        test = ds.eval_map(ds.test[0])
    assert ds.num_classes == 10 and len(ds.train) == 6
    assert element["inputs"].shape == (32, 32, 3) and element["inputs"].dtype == np.float32
    want = (ds.test[0]["image"] / 255.0 - np.array(augment.CIFAR10_MEAN)) / np.array(augment.CIFAR10_STD)
    np.testing.assert_allclose(test["inputs"], want, rtol=1e-5, atol=1e-6)
    assert test["targets"] == ds.test[0]["label"]


def test_unprepared_tfds_dataset_is_one_line_with_the_build_command(tmp_path):
    with pytest.raises(DatasetNotPreparedError) as info:
        data.get_dataset("cifar10", data_dir=str(tmp_path))
    message = str(info.value)
    assert "\n" not in message and f"tfds build cifar10 --data_dir {tmp_path} --file_format array_record" in message


def test_unknown_dataset_or_option_lists_valid_names():
    with pytest.raises(UserError, match=r"unknown dataset 'digitz'; did you mean 'digits'\?.*valid datasets: digits"):
        data.get_dataset("digitz")
    with pytest.raises(UserError, match=r"has no option 'imagesize'; did you mean 'image_size'"):
        data.get_dataset("digits", imagesize=16)


def test_imagenet_through_mocked_tfds_gives_fixed_size_crops():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=3):
        ds = data.get_dataset("imagenet2012", image_size=64)
        train = ds.train_map(ds.train[0], np.random.default_rng(0))
        test = ds.eval_map(ds.test[1])
    assert train["inputs"].shape == test["inputs"].shape == (64, 64, 3) and ds.num_classes == 1000


def test_ucf101_without_tensorflow_is_one_line():
    import importlib.util

    if importlib.util.find_spec("tensorflow") is not None:
        pytest.skip("TensorFlow is installed: the ucf101 data source is readable")
    with pytest.raises(UserError, match=r"^dataset 'ucf101' needs TensorFlow: .*'moving_digits'") as info:
        data.get_dataset("ucf101")
    assert "\n" not in str(info.value)
