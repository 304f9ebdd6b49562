"""The model card's impostor table and the gallery-size-aware threshold built on it."""
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


def test_the_shipped_threshold_is_its_impostor_tables_entry(engine):
    # Both come from the same held-out impostor pairs, so from one template to two the kiosk's
    # threshold moves by the table's slope, not by the gap between two estimates of one rate
    # (0.450 from 1,000 pairs against 0.482 from 229,468, with the older rule).
    card = engine.card
    assert card.threshold == pytest.approx(card.threshold_at_far(card.target_far), abs=1e-6)


def test_gallery_threshold_keeps_the_cards_rate_per_visitor(engine):
    card = engine.card
    assert engine.gallery_threshold(1) == engine.threshold
    thresholds = [engine.gallery_threshold(n) for n in (1, 3, 30, 300, 3000)]
    assert thresholds == sorted(thresholds) and thresholds[-1] > thresholds[0]
    assert engine.gallery_threshold(30) == pytest.approx(max(card.threshold, card.threshold_at_far(card.target_far / 30)))
    # match() uses it: a score between the card's and the gallery's threshold is no match in a big gallery.
    import numpy as np

    score = (engine.threshold + engine.gallery_threshold(300)) / 2
    query, template = _pair_scoring(engine, score)
    others = np.tile(-query, (299, 1))
    templates = np.vstack([template, others])
    person_ids = np.r_[1, np.arange(2, 301)]
    assert engine.match(query, templates, person_ids)[0].verdict == "unknown"
    assert engine.match(query, templates[:1], person_ids[:1], threshold=engine.threshold)[0].verdict == "match"
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
