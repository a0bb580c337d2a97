"""LOSO folds, zero-shot splits and fixed lists (mellm_core.data.splits)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mellm_core.data.splits import fixed_split, loso_folds, natural_key, read_id_list, zero_shot
from mellm_core.errors import InputError
from mellm_core.records import Sample


def _s(sample_id: str, subject: str, dataset: str = "casme2") -> Sample:
    return Sample(sample_id, "o.jpg", "a.jpg", dataset=dataset, subject=subject)


def test_natural_key_orders_numbers_by_value():
    names = ["sub10", "sub2", "sub1", "s3", "006", "sub02b"]
    assert sorted(names, key=natural_key) == ["006", "s3", "sub1", "sub2", "sub02b", "sub10"]


def test_loso_folds_exact():
    samples = [_s("a", "sub10"), _s("b", "sub2"), _s("c", "sub2"), _s("d", "sub1")]
    folds = loso_folds(samples)
    assert [f[0] for f in folds] == ["casme2/sub1", "casme2/sub2", "casme2/sub10"]
    assert [[s.sample_id for s in f[2]] for f in folds] == [["d"], ["b", "c"], ["a"]]
    assert [[s.sample_id for s in f[1]] for f in folds] == [["a", "b", "c"], ["a", "d"], ["b", "c", "d"]]


def test_loso_keeps_same_named_subjects_of_two_datasets_apart():
    samples = [_s("a", "s1", "smic"), _s("b", "s1", "samm"), _s("c", "s2", "smic")]
    folds = {name: test for name, _, test in loso_folds(samples)}
    assert set(folds) == {"smic/s1", "samm/s1", "smic/s2"}
    assert [s.sample_id for s in folds["smic/s1"]] == ["a"]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["casme2", "samm"]), st.integers(1, 12)), min_size=1, max_size=40),
    st.randoms(use_true_random=False),
)
def test_loso_covers_every_sample_once_without_subject_leaks(pairs, rnd):
    samples = [_s(f"id{i}", f"sub{n}", d) for i, (d, n) in enumerate(pairs)]
    folds = loso_folds(samples)
    tested = [s.sample_id for _, _, test in folds for s in test]
    assert sorted(tested) == sorted(s.sample_id for s in samples)  # each sample tested exactly once
    for subject, train, test in folds:
        assert {f"{s.dataset}/{s.subject}" for s in test} == {subject}
        assert subject not in {f"{s.dataset}/{s.subject}" for s in train}
        assert len(train) + len(test) == len(samples)
    shuffled = samples[:]
    rnd.shuffle(shuffled)
    assert [f[0] for f in loso_folds(shuffled)] == [f[0] for f in folds]  # fold order is deterministic


def test_zero_shot_trains_on_one_dataset_and_tests_on_another():
    samples = [_s("a", "1", "dfme"), _s("b", "sub01", "casme2"), _s("c", "2", "dfme"), _s("d", "006", "samm")]
    train, test = zero_shot(samples, ["dfme"], ["casme2", "samm"])
    assert [s.sample_id for s in train] == ["a", "c"]
    assert [s.sample_id for s in test] == ["b", "d"]


def test_zero_shot_rejects_overlap_and_absent_datasets():
    samples = [_s("a", "1", "dfme"), _s("b", "sub01", "casme2")]
    with pytest.raises(InputError, match="'casme2' is both a training and a test dataset"):
        zero_shot(samples, ["dfme", "casme2"], ["casme2"])
    with pytest.raises(
        InputError, match=r"test dataset 'samm' has no samples \(datasets present: casme2, dfme\)"
    ):
        zero_shot(samples, ["dfme"], ["samm"])


def test_fixed_split_groups_by_lists_in_list_order():
    samples = [_s(f"dfme/{k}/{i}", str(i)) for k in ("train", "TestA") for i in range(3)]
    random.Random(0).shuffle(samples)
    lists = {"train": ["dfme/train/2", "dfme/train/0", "dfme/train/1"], "TestA": ["dfme/TestA/1"]}
    split = fixed_split(samples, lists)
    assert [s.sample_id for s in split["train"]] == lists["train"]
    assert [s.sample_id for s in split["TestA"]] == ["dfme/TestA/1"]


def test_fixed_split_errors_name_the_sample():
    samples = [_s("x", "1"), _s("y", "2")]
    with pytest.raises(InputError, match="list 'TestB' names sample 'z'"):
        fixed_split(samples, {"TestB": ["x", "z"]})
    with pytest.raises(InputError, match="sample 'x' is in both list 'train' and list 'TestA'"):
        fixed_split(samples, {"train": ["x"], "TestA": ["y", "x"]})


def test_read_id_list(tmp_path):
    path = tmp_path / "testa.txt"
    path.write_text("# DFME TestA\ndfme/TestA/1\n\n  dfme/TestA/2  # checked\n", encoding="utf-8")
    assert read_id_list(path) == ["dfme/TestA/1", "dfme/TestA/2"]
    with pytest.raises(InputError, match="id list .*missing.txt does not exist"):
        read_id_list(tmp_path / "missing.txt")
