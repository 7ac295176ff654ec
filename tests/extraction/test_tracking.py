"""Choosing one person and following it by box overlap (no torch needed)."""

import numpy as np
import pytest

from magicanimate.errors import ConfigError
from magicanimate.extraction.tracking import MIN_IOU, PersonChoiceError, PersonTracker, box_iou


def test_box_iou_against_hand_computed_overlaps():
    a = np.array([0.0, 0.0, 10.0, 10.0])
    boxes = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30], [2, 2, 4, 4], [0, 0, 0, 0]], float)
    # same box; half overlap 50 / (100 + 100 - 50); disjoint; inside 4 / 100; empty box
    np.testing.assert_allclose(box_iou(a, boxes), [1.0, 50 / 150, 0.0, 4 / 100, 0.0])


def test_automatic_choice_is_largest_area_times_score_then_the_same_person():
    tracker = PersonTracker()
    assert tracker(np.zeros((0, 4)), np.zeros(0)) is None  # frame 0: nobody
    # frame 1: a big unsure person (area 3600 x 0.5) and a smaller sure one (area 2400 x 0.99)
    first = np.array([[0, 0, 60, 60], [100, 0, 140, 60]], float)
    assert tracker(first, np.array([0.5, 0.99])) == 1
    # later the other grows and scores higher, listed first: the chosen person is still followed
    later = np.array([[0, 0, 80, 80], [102, 1, 142, 61]], float)
    assert tracker(later, np.array([0.999, 0.9])) == 1


def test_person_k_counts_from_the_left_and_is_checked():
    boxes = np.array([[200, 0, 240, 60], [0, 0, 40, 60], [100, 0, 140, 60]], float)
    scores = np.array([0.9, 0.9, 0.9])
    assert PersonTracker(person=1)(boxes, scores) == 1
    assert PersonTracker(person=2)(boxes, scores) == 2
    assert PersonTracker(person=3)(boxes, scores) == 0
    tracker = PersonTracker(person=4)
    tracker(np.zeros((0, 4)), np.zeros(0))
    with pytest.raises(PersonChoiceError, match=r"--person 4: the first frame with a person \(frame 1\) shows only 3"):
        tracker(boxes, scores)
    for bad in (0, -1, 1.5):
        with pytest.raises(ConfigError, match="whole number >= 1"):
            PersonTracker(person=bad)


def test_other_person_crossing_in_front_never_takes_over():
    chosen = np.array([40.0, 20.0, 80.0, 80.0])
    tracker = PersonTracker()
    picks = []
    for x in range(0, 120, 4):  # the other (smaller at first, then larger) walks across the chosen one
        other = np.array([x, 16.0, x + 40.0 + (10 if x > 20 else -10), 80.0])
        wobble = chosen + np.array([x % 3, 0, x % 3, 0])  # the chosen one sways a little
        picks.append(tracker(np.stack([other, wobble]), np.array([0.99, 0.9])))
    assert picks == [1] * len(picks)


def test_lost_person_is_not_replaced_and_is_found_again():
    tracker = PersonTracker()
    assert tracker(np.array([[0.0, 0.0, 40.0, 60.0]]), np.array([0.9])) == 0
    # the chosen person is missed; someone else stands nearby with too little overlap
    elsewhere = np.array([[30.0, 0.0, 70.0, 60.0]])
    assert box_iou(np.array([0.0, 0.0, 40.0, 60.0]), elsewhere)[0] < MIN_IOU
    assert tracker(elsewhere, np.array([0.99])) is None
    # back where it was: picked up again, the bystander still ignored
    assert tracker(np.array([[30.0, 0.0, 70.0, 60.0], [1.0, 0.0, 41.0, 60.0]]), np.array([0.99, 0.8])) == 1


def test_expected_motion_keeps_a_walker_apart_from_a_same_sized_bystander():
    # follow the walker (leftmost) while it passes a person standing still with a box of the same size:
    # where the two boxes nearly coincide, only the walker's motion tells them apart
    tracker = PersonTracker(person=1)
    standing = np.array([40.0, 20.0, 80.0, 80.0])
    picks = []
    for i in range(22):
        walker = np.array([2.0 + 4 * i, 20.0, 42.0 + 4 * i, 80.0])
        picks.append(tracker(np.stack([standing, walker]), np.array([0.9, 0.9])))
    assert picks == [1] * 22
