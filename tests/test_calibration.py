"""The door's rule, calibrated to the site (kiosk.calibration): measured on the enrolled people,
never looser than the model card's rule, strict until the site can be measured.

The first tests use synthetic unit vectors scored by the cosine and a small model card with an
impostor table, so every expected threshold can be worked out by hand. The last ones enrol real
ORL people (one camera, one room: the kind of site the rule is for) with the shipped model.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pytest

from kiosk.alignment import AlignmentSpec
from kiosk.calibration import (
    DEFAULT_RISK,
    GRANT_LINE,
    MIN_SITE_PEOPLE,
    STRICT_START_FAR,
    card_rule,
    door_rule,
    match_percent,
    measure_site,
    site_summary,
    tolerance_factor,
)
from kiosk.matching import person_means
from kiosk.modelcard import ModelCard
from kiosk.scoring import CosineScoring, JointBayesianScoring
from kiosk.settings import KioskSettings, settings_path

# A card whose one-comparison threshold (FAR 1%) is 0.40, down to 0.80 at FAR 1e-5.
TABLE = {"1e-05": 0.80, "0.0001": 0.70, "0.001": 0.60, "0.01": 0.40, "0.1": 0.20}
CARD = ModelCard(Path("m.keras"), AlignmentSpec(112, 0.0), 64, 0.40, "FAR 1%",
                 {"threshold": {"value": 0.40, "target_far": 0.01}}, target_far=0.01,
                 far_table=tuple(sorted((float(rate), t) for rate, t in TABLE.items())))

# The same card with mean-template tables: a stranger scores higher against a mean of three photos.
MEAN_TABLE_OF_3 = {"1e-05": 0.85, "0.0001": 0.75, "0.001": 0.65, "0.01": 0.45, "0.1": 0.25}
MEAN_CARD = dataclasses.replace(CARD, mean_far_tables={
    1: CARD.far_table, 3: tuple(sorted((float(rate), t) for rate, t in MEAN_TABLE_OF_3.items()))})


def gallery(people: int, per_person: int = 3, shared: float = 0.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors: each person a random direction with small variations; `shared` mixes in one
    direction common to everyone (what one camera, one background and one light add)."""
    rng = np.random.default_rng(seed)
    common = rng.normal(size=64)
    common /= np.linalg.norm(common)
    rows, ids = [], []
    for person in range(people):
        centre = rng.normal(size=64)
        centre /= np.linalg.norm(centre)
        for _ in range(per_person):
            vector = centre + 0.3 * rng.normal(size=64) / 8 + shared * common
            rows.append(vector / np.linalg.norm(vector))
            ids.append(person + 10)
    templates = np.asarray(rows, np.float32)
    person_ids = np.asarray(ids, np.int64)
    templates.flags.writeable = person_ids.flags.writeable = False
    return templates, person_ids


def test_the_site_is_measured_on_the_enrolled_people_against_each_other():
    templates, ids = gallery(6)
    site = measure_site(templates, ids, CosineScoring())
    assert (site.people, site.templates, site.impostor_scores) == (6, 18, 6 * 5)
    scores = templates @ templates.T
    # Each person's most alike template against each other person (by that person's best template).
    impostor = [scores[np.ix_(ids == one, ids == other)].max() for one in np.unique(ids) for other in np.unique(ids)
                if other != one]
    # Cosines are bounded by 1: modelled after Fisher's z-transform. Other scores as they are.
    assert site.bounded and site.mean == pytest.approx(np.mean(np.arctanh(impostor)), abs=1e-6)
    assert site.spread == pytest.approx(np.std(np.arctanh(impostor), ddof=1), abs=1e-6)
    unbounded = measure_site(templates, ids, JointBayesianScoring(np.zeros(64), np.eye(64), np.zeros((64, 64))))
    assert not unbounded.bounded and unbounded.impostor_scores == 6 * 5
    # The closest pair: a seventh person who is almost the first one.
    twin = (templates[:3] + 0.05 * templates[3:6]) / np.linalg.norm(templates[:3] + 0.05 * templates[3:6], axis=1,
                                                                      keepdims=True)
    site = measure_site(np.vstack([templates, twin]), np.r_[ids, [99, 99, 99]], CosineScoring())
    assert site.closest[:2] == (10, 99) and site.closest[2] > 0.9


def test_scored_by_their_means_each_person_is_measured_against_the_others_means():
    templates, ids = gallery(6)
    site = measure_site(templates, ids, CosineScoring(), "mean")
    assert (site.people, site.templates, site.impostor_scores) == (6, 18, 6 * 5)
    assert (site.strategy, site.templates_per_person) == ("mean", 3)
    means, people = person_means(templates, ids)
    impostor = [float(max(templates[ids == one] @ means[j])) for one in people for j in range(6) if people[j] != one]
    assert site.mean == pytest.approx(np.mean(np.arctanh(impostor)), abs=1e-6)
    assert site.spread == pytest.approx(np.std(np.arctanh(impostor), ddof=1), abs=1e-6)
    best = measure_site(templates, ids, CosineScoring())
    assert (best.strategy, best.templates_per_person) == ("best", 3) and best.mean != pytest.approx(site.mean)


def test_a_door_scoring_means_asks_each_person_for_the_rate_of_the_cards_mean_table():
    # A stranger is compared with 20 means, not with 60 templates, and against means of three.
    plain = door_rule(MEAN_CARD, measure_site(*gallery(20), CosineScoring(), "mean"))
    assert plain.source == "model card"
    assert plain.threshold == pytest.approx(MEAN_CARD.threshold_at_far(1 / DEFAULT_RISK / 20, 3))
    assert plain.threshold > door_rule(MEAN_CARD, measure_site(*gallery(20), CosineScoring())).threshold
    # People of one photo each are read from the table of one.
    single = measure_site(*gallery(20, per_person=1), CosineScoring(), "mean")
    assert card_rule(MEAN_CARD, 0.01, single) == pytest.approx(MEAN_CARD.threshold_at_far(0.01 / 20, 1))
    # Too few people to measure: the strict starting rate, read from the mean table of three.
    few = door_rule(MEAN_CARD, measure_site(*gallery(3), CosineScoring(), "mean"))
    assert few.source == "strict start" and few.threshold == pytest.approx(0.75)  # 1e-4 of the table of three


def test_few_people_get_the_strict_starting_rule():
    for people in (0, 1, MIN_SITE_PEOPLE - 1):
        templates, ids = gallery(people)
        rule = door_rule(CARD, measure_site(templates, ids, CosineScoring()))
        # Each comparison at STRICT_START_FAR (0.70 on the card's table), or the card's own rule
        # for the gallery where that is stricter (four people of three templates: 1e-3 / 12).
        expected = max(CARD.threshold_at_far(STRICT_START_FAR), CARD.threshold_at_far(1e-3 / max(3 * people, 1)))
        assert rule.source == "strict start" and rule.threshold == pytest.approx(expected) and expected >= 0.70
        assert rule.site_threshold is None and rule.estimated_far is None
    assert "strict starting rule" in site_summary(rule, {})[0] and f"from {MIN_SITE_PEOPLE} people on" in site_summary(rule, {})[0]


def test_a_site_where_strangers_look_alike_gets_a_stricter_door_by_itself():
    plain = door_rule(CARD, measure_site(*gallery(20), CosineScoring()))
    alike = door_rule(CARD, measure_site(*gallery(20, shared=1.2), CosineScoring()))
    # Distinct people: the card's rule for 60 templates is the stricter one, and it stays in force.
    assert plain.source == "model card" and plain.threshold == pytest.approx(CARD.threshold_at_far(1 / DEFAULT_RISK / 60))
    # One camera makes everyone alike: the site's quantile takes over, far above the card's rule.
    site = alike.calibration
    expected = math.tanh(site.mean + tolerance_factor(1 / DEFAULT_RISK / 20, 20 * 19 // 2) * site.spread)
    assert alike.source == "site" and alike.threshold == pytest.approx(expected)
    assert alike.threshold > math.tanh(NormalDist(site.mean, site.spread).inv_cdf(1 - 1 / DEFAULT_RISK / 20)) > plain.threshold
    assert 0 < alike.estimated_far < 1 / DEFAULT_RISK  # the bound is on the safe side of the estimate
    assert "measured at this site from 20 enrolled people" in site_summary(alike, {})[0]


def test_the_fewer_people_measured_the_wider_the_safety_margin():
    z = NormalDist().inv_cdf(1 - 0.001)
    factors = [tolerance_factor(0.001, pairs) for pairs in (10, 45, 190, 4950, 10 ** 6)]
    assert factors == sorted(factors, reverse=True) and factors[0] > z + 1.0
    assert factors[-1] == pytest.approx(z, abs=0.01)


def test_a_stricter_risk_is_never_looser_and_the_shipped_risk_never_below_the_card():
    for shared in (0.0, 1.2):
        site = measure_site(*gallery(20, shared=shared), CosineScoring())
        thresholds = [door_rule(CARD, site, risk).threshold for risk in (DEFAULT_RISK, 1000, 10000)]
        assert thresholds == sorted(thresholds) and thresholds[0] >= CARD.threshold
        assert door_rule(CARD, site, 20).threshold <= thresholds[0]  # a looser risk is looser
    with pytest.raises(ValueError, match="positive"):
        door_rule(CARD, site, 0)


def test_people_see_a_match_out_of_100_with_the_door_at_the_grant_line():
    assert match_percent(0.9, threshold=0.9, low=0.3) == GRANT_LINE
    assert match_percent(0.3, threshold=0.9, low=0.3) == 0 and match_percent(-5, 0.9, 0.3) == 0
    assert match_percent(1.5, threshold=0.9, low=0.3) == 100 and match_percent(9.0, 0.9, 0.3) == 100
    # At or above the grant line exactly when the door opens.
    assert match_percent(0.8999, 0.9, 0.3) < GRANT_LINE <= match_percent(0.9001, 0.9, 0.3)
    assert match_percent(1.0, 0.9, 0.3) == 75


def test_an_old_threshold_override_cannot_loosen_the_door(tmp_path, caplog):
    # An older kiosk's settings with a similarity override that let everyone in: ignored, the door
    # follows the shipped risk, and the log says so.
    settings_path(tmp_path).write_text('{"threshold": 0.0, "retention_days": 7}')
    loaded = KioskSettings.load(tmp_path)
    assert loaded.risk == DEFAULT_RISK and loaded.retention_days == 7 and "no longer used" in caplog.text
    # A looser risk needs its own confirmation, in the file as in the window.
    settings_path(tmp_path).write_text('{"risk": 20}')
    assert KioskSettings.load(tmp_path).risk == DEFAULT_RISK and "not confirmed" in caplog.text
    assert KioskSettings(risk=20).problems() == [
        f"risk: 1 in 20 lets in more strangers than the shipped 1 in {DEFAULT_RISK}; confirm it with looser_risk_confirmed"]
    assert KioskSettings(risk=20, looser_risk_confirmed=True).problems() == []
    assert KioskSettings(risk=50).problems()[0].startswith("risk: must be one of 20, 100, 1000, 10000")
    settings_path(tmp_path).write_text('{"risk": 20, "looser_risk_confirmed": true}')
    assert KioskSettings.load(tmp_path).risk == 20


# -- a real one-camera site ----------------------------------------------------------------


@pytest.fixture(scope="module")
def orl_site(tmp_path_factory, engine, orl):
    """Six ORL people enrolled from 3 photos each (as `enroll` does), in a real database."""
    from benchmarks.door import enrol_gallery
    from benchmarks.orl import orl_protocol

    enrol, genuine, strangers = orl_protocol(orl)
    chosen = dict(list(enrol.items())[:6])
    data_dir = tmp_path_factory.mktemp("orl-site")
    conn, names, _ = enrol_gallery(engine, data_dir, chosen)
    yield data_dir, conn, names, genuine, strangers
    conn.close()


@pytest.mark.orl
def test_a_one_camera_site_sets_its_own_stricter_rule_and_updates_it_on_enrolment(orl_site, engine):
    from kiosk.gallery import Gallery

    _, conn, names, genuine, strangers = orl_site
    gallery = Gallery(conn)
    templates, ids = gallery.matrix()
    rule = engine.door_rule(templates, ids)
    # Strangers in one room look alike to the model: the site's rule is stricter than the card's.
    assert rule.source == "site" and rule.threshold > rule.card_threshold
    assert engine.measure_site(templates, ids) is rule.calibration  # measured once per gallery, not per frame
    closest = rule.calibration.closest
    assert {names[closest[0]], names[closest[1]]} <= set(names.values())
    # The enrolled are let in, the never-enrolled are not (the same camera, the same room).
    from kiosk.images import load_image

    def verdicts(photos):
        out = []
        for photo in photos:
            rgb = load_image(photo)
            match = engine.match(engine.embed_faces(rgb, engine.detect(rgb)[:1]), templates, ids)[0]
            out.append(names[match.person_id] if match.verdict == "match" else None)
        return out

    enrolled = list(names.values())
    granted = verdicts([genuine[person][0] for person in enrolled])
    assert set(granted) - {None} <= set(enrolled) and all(g in (None, p) for g, p in zip(granted, enrolled))
    assert sum(g is not None for g in granted) >= 4, granted  # six people: still a wide safety margin
    assert verdicts([photos[0] for photos in list(strangers.values())[:6]]) == [None] * 6
    # Removing a person measures the site again, by itself.
    gallery.remove(enrolled[0])
    fewer = engine.door_rule(*gallery.matrix())
    assert fewer.calibration.people == 5 and fewer.calibration is not rule.calibration


@pytest.mark.orl
def test_the_admin_window_shows_the_rule_in_force_for_the_people_enrolled(orl_site, engine, qtbot):
    from kiosk.ui.admin_window import AdminWindow

    data_dir, conn, names, _, _ = orl_site
    window = AdminWindow(data_dir, card=engine.card)  # its own connection to the site's database
    qtbot.addWidget(window)
    try:
        from kiosk.gallery import Gallery

        templates, ids = Gallery(conn).matrix()
        for risk in (DEFAULT_RISK, 1000):
            window.settings_tab.risk_combo.setCurrentIndex(window.settings_tab.risk_combo.findData(risk))
            rule = engine.door_rule(templates, ids, risk)
            text = window.settings_tab.rule_label.text()
            assert f"threshold {rule.threshold:.3f}" in text and "measured at this site" in text
        a, b, _ = rule.calibration.closest
        assert f"{names[a]} and {names[b]}" in text and math.isfinite(rule.threshold)
    finally:
        window.close()


def test_a_large_site_is_measured_in_parts_with_the_same_result(monkeypatch):
    import kiosk.calibration as calibration

    templates, ids = gallery(9, shared=0.8)
    for strategy in ("best", "mean"):
        whole = measure_site(templates, ids, CosineScoring(), strategy)
        monkeypatch.setattr(calibration, "ROWS_AT_ONCE", 4)  # parts of one or two people
        parts = measure_site(templates, ids, CosineScoring(), strategy)
        monkeypatch.undo()
        assert (parts.impostor_scores, parts.closest[:2]) == (whole.impostor_scores, whole.closest[:2]) == (
            9 * 8, whole.closest[:2])
        # The same sums (float32 products in parts of another size round a little differently).
        assert parts.mean == pytest.approx(whole.mean, abs=1e-6) and parts.spread == pytest.approx(whole.spread, rel=1e-5)
        assert parts.closest[2] == pytest.approx(whole.closest[2])


def test_a_very_large_site_is_measured_on_an_even_share_of_its_templates(monkeypatch):
    import kiosk.calibration as calibration

    templates, ids = gallery(30, shared=0.8)
    whole = measure_site(templates, ids, CosineScoring(), "mean")
    monkeypatch.setattr(calibration, "MOST_ROWS", 45)  # 15 of the 30 people, against all 30
    half = measure_site(templates, ids, CosineScoring(), "mean")
    assert half.impostor_scores == 15 * 29 and (half.people, half.templates) == (30, 90)
    assert half.mean == pytest.approx(whole.mean, abs=0.02) and half.spread == pytest.approx(whole.spread, rel=0.2)


@pytest.mark.orl
def test_the_door_benchmark_sets_the_door_beside_the_cards_rule_alone(orl_site, engine):
    from benchmarks.door import rules_for
    from kiosk.gallery import Gallery

    _, conn, _, _, _ = orl_site
    templates, ids = Gallery(conn).matrix()
    rules = rules_for(engine, templates, ids)
    assert list(rules) == ["door_1_in_100", "door_1_in_1000", "card_rule_only_1_in_100", "card_rule_only_1_in_1000",
                           "card_threshold"]
    for risk in (100, 1000):
        door, card = rules[f"door_1_in_{risk}"], rules[f"card_rule_only_1_in_{risk}"]
        rule = engine.door_rule(templates, ids, risk)
        assert door[0] == rule.threshold and card[0] == rule.card_threshold and door[0] >= card[0]
        assert door[1]["risk"] == card[1]["risk"] == risk
    # Stricter at 1 in 1,000 than at 1 in 100, and both far above the card's one-comparison threshold.
    assert rules["door_1_in_1000"][0] > rules["door_1_in_100"][0] > rules["card_threshold"][0] == engine.threshold
