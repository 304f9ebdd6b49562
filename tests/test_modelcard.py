"""The model card's impostor tables and the gallery-size-aware rule built on them."""
from __future__ import annotations

import json
import shutil

import pytest

from kiosk.modelcard import ModelCard, ModelCardError, card_path_for, default_model_path


def _card_copy(tmp_path, edit) -> ModelCard:
    model = default_model_path()
    if not model.exists():
        pytest.skip("no shipped model")
    target = tmp_path / model.name  # the card names its files (a TFLite model names itself)
    shutil.copy(model, target)
    raw = json.loads(card_path_for(model).read_text())
    edit(raw)
    card_path_for(target).write_text(json.dumps(raw))
    return ModelCard.load(target)


def _table(raw, thresholds):
    raw["impostor_far_table"] = {"impostor_pairs": 1000, "thresholds": thresholds}


def test_threshold_at_far_interpolates_in_log_rate_and_clamps(tmp_path):
    card = _card_copy(tmp_path, lambda raw: _table(raw, {"0.01": 0.4, "0.0001": 0.6, "1e-06": 0.8}))
    assert card.far_table == ((1e-06, 0.8), (0.0001, 0.6), (0.01, 0.4))
    assert card.threshold_at_far(1e-4) == pytest.approx(0.6)
    assert card.threshold_at_far(1e-3) == pytest.approx(0.5)  # halfway in log(rate)
    assert card.threshold_at_far(1e-9) == pytest.approx(0.8)  # below the table: its strictest point
    assert card.threshold_at_far(0.5) == pytest.approx(0.4)
    with pytest.raises(ValueError):
        card.threshold_at_far(0)


def test_a_table_whose_thresholds_rise_with_the_rate_is_refused(tmp_path):
    with pytest.raises(ModelCardError, match="fall as the rate rises"):
        _card_copy(tmp_path, lambda raw: _table(raw, {"0.01": 0.6, "0.0001": 0.4}))


def _mean_tables(raw, by_templates):
    raw["mean_template_far_tables"] = {"by_templates": {
        count: {"impostor_pairs": 1000, "thresholds": thresholds} for count, thresholds in by_templates.items()}}


def test_a_card_with_mean_tables_scores_people_by_their_mean_and_reads_the_table_of_their_photos(tmp_path):
    def edit(raw):
        _table(raw, {"0.01": 0.4, "0.0001": 0.6})
        _mean_tables(raw, {"1": {"0.01": 0.4, "0.0001": 0.6}, "3": {"0.01": 0.45, "0.0001": 0.65},
                           "5": {"0.01": 0.47, "0.0001": 0.67}})

    card = _card_copy(tmp_path, edit)
    assert card.strategy == "mean" and sorted(card.mean_far_tables) == [1, 3, 5]
    assert card.threshold_at_far(1e-4) == pytest.approx(0.6)  # one photo against one photo
    assert card.threshold_at_far(1e-4, 1) == pytest.approx(0.6)
    assert card.threshold_at_far(1e-4, 2) == pytest.approx(0.65)  # no table of two: the next larger count
    assert card.threshold_at_far(1e-4, 3) == pytest.approx(0.65)
    assert card.threshold_at_far(1e-4, 9) == pytest.approx(0.67)  # beyond the largest: the largest
    assert card.threshold_at_far(1e-3, 5) == pytest.approx(0.57)
    without = _card_copy(tmp_path, lambda raw: raw.pop("mean_template_far_tables", None))
    assert without.strategy == "best" and without.mean_far_table(3) == ()


def test_a_broken_mean_table_is_refused_by_name(tmp_path):
    with pytest.raises(ModelCardError, match="mean_template_far_tables of 3 thresholds must fall"):
        _card_copy(tmp_path, lambda raw: _mean_tables(raw, {"3": {"0.01": 0.7, "0.0001": 0.4}}))
    with pytest.raises(ModelCardError, match="a non-empty table for each count"):
        _card_copy(tmp_path, lambda raw: _mean_tables(raw, {"0": {"0.01": 0.4}}))


def test_the_shipped_threshold_is_its_impostor_tables_entry(engine):
    # Both come from the same held-out impostor pairs, so from one template to two the kiosk's
    # threshold moves by the table's slope, not by the gap between two estimates of one rate
    # (0.450 from 1,000 pairs against 0.482 from 229,468, with the older rule).
    card = engine.card
    assert card.threshold == pytest.approx(card.threshold_at_far(card.target_far), abs=1e-6)


def test_the_cards_rule_keeps_its_rate_per_visitor_as_the_gallery_grows(engine):
    import numpy as np

    from kiosk.calibration import card_rule, measure_site

    card, rng = engine.card, np.random.default_rng(0)

    def gallery(people: int, per_person: int = 3):
        vectors = rng.normal(size=(per_person * people, engine.embedding_size)).astype(np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True), np.repeat(np.arange(people), per_person)

    def rule_for(people: int) -> float:
        return card_rule(card, card.target_far, measure_site(*gallery(people), engine.scoring, engine.strategy))

    thresholds = [rule_for(n) for n in (1, 10, 100, 1000)]
    assert thresholds == sorted(thresholds) and thresholds[-1] > thresholds[0]
    # A stranger meets each person's mean (or, scored by the best template, each template).
    if engine.strategy == "mean":
        assert rule_for(10) == pytest.approx(max(card.threshold, card.threshold_at_far(card.target_far / 10, 3)))
    else:
        assert rule_for(10) == pytest.approx(max(card.threshold, card.threshold_at_far(card.target_far / 30)))
    # match() applies the door's rule: a score above the card's one-comparison threshold but below
    # the rule for 300 people is no match there, and is one at the card's threshold.
    score = engine.threshold + 0.01
    query, template = _pair_scoring(engine, score)
    others, _ = gallery(299, per_person=1)
    templates, person_ids = np.vstack([template, others]), np.arange(1, 301)
    assert score < engine.door_rule(templates, person_ids).threshold
    assert engine.match(query, templates, person_ids)[0].verdict == "unknown"
    assert engine.match(query, templates, person_ids, threshold=engine.threshold)[0].verdict == "match"
    # The door itself, with one person enrolled, holds the strictest threshold the card vouches for.
    assert engine.match(query, templates[:1], person_ids[:1])[0].verdict == "unknown"


def _pair_scoring(engine, score: float):
    """Two unit vectors that the engine's scoring (whatever the card's) scores at `score`: the
    query, and a template slid from the query towards a random direction until it does."""
    import numpy as np

    rng = np.random.default_rng(0)
    query, away = (v / np.linalg.norm(v) for v in rng.normal(size=(2, engine.embedding_size)))

    def template(t: float) -> np.ndarray:
        v = (1 - t) * query + t * away
        return (v / np.linalg.norm(v)).astype(np.float32)

    low, high = 0.0, 1.0  # the score falls from the query's own to the random direction's
    assert engine.similarity(query, template(high)) < score < engine.similarity(query, template(low))
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if engine.similarity(query, template(middle)) > score else (low, middle)
    assert engine.similarity(query, template(low)) == pytest.approx(score, abs=1e-6)
    return query.astype(np.float32), template(low)


def test_a_card_on_another_scale_states_its_own_ambiguity_margin(tmp_path, detector):
    from kiosk.engine import DEFAULT_AMBIGUITY_MARGIN, FaceEngine

    plain = _card_copy(tmp_path, lambda raw: raw.pop("ambiguity_margin", None))
    for entry in ("tflite", "scoring"):  # the other files the card names, beside the copy
        if entry in plain.raw and not (tmp_path / plain.raw[entry]["file"]).exists():
            shutil.copy(default_model_path().with_name(plain.raw[entry]["file"]), tmp_path / plain.raw[entry]["file"])
    assert plain.ambiguity_margin is None
    assert FaceEngine(plain.path, detector).ambiguity_margin == DEFAULT_AMBIGUITY_MARGIN

    def narrow(raw):
        raw["ambiguity_margin"] = 0.0065  # a cosine squeezed between 0.87 (strangers) and 0.91 (the threshold)

    card = _card_copy(tmp_path, narrow)
    assert card.ambiguity_margin == pytest.approx(0.0065)
    assert FaceEngine(card.path, detector).ambiguity_margin == pytest.approx(0.0065)
    assert FaceEngine(card.path, detector, ambiguity_margin=0.02).ambiguity_margin == 0.02
