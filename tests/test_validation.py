"""The validation study (issue 24, `fpprov validate`) end to end on a micro design: two organisms trained in
seconds on stdlib text (one with words planted at 0, 30 and 300 runs into `mail`, one with nothing planted),
their corpora indexed, scanned and traced by fpprov's own pipeline, and the validation_* tables checked against
what was planted."""

from __future__ import annotations

import math

import pytest
from typer.testing import CliRunner

from fpprov.cli import app
from fpprov.db.store import open_store
from fpprov.organisms import TrainSettings
from fpprov.validation import QUICK, StudyOptions, run_study, with_overrides
from fpprov.validation.design import DESIGNS, ProvenanceSettings
from fpprov.validation.measure import dose_50

MICRO_TRAIN = TrainSettings(d_model=64, n_layers=2, n_heads=4, ffn=256, seq_len=64, batch_size=16, steps=80,
                            lr=3e-3, warmup=4, seed=0, checkpoint_every=0)
MICRO = with_overrides(QUICK, name="micro", doses=(0, 30, 300), words_per_dose=1, vocab_size=512, train=MICRO_TRAIN,
                       provenance=ProvenanceSettings(ladder=(2, 10), docs=10, controls=20, bin_width=1.0,
                                                     baseline_positions=200))
TABLES = ("validation_tokens", "validation_dose_response", "validation_flag_rates", "validation_attribution",
          "validation_natural", "validation_shared", "validation_summary", "validation_organisms")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("validation")
    options = StudyOptions(db=tmp / "study.duckdb", workdir=tmp / "work", design=MICRO, jobs=1)
    return options, run_study(options)


def _rows(db, sql, params=()):
    with open_store(db, read_only=True) as store:
        return store.query_dicts(sql, list(params))


def test_planted_words_at_the_top_dose_are_fps_and_their_twins_are_not(study):
    options, result = study
    top = _rows(options.db, "SELECT role, word, is_fp, prob FROM validation_tokens WHERE study_id = ? AND dose = 300",
                [result.study_id])
    assert {r["role"] for r in top} == {"planted", "twin"}
    assert all(r["is_fp"] and r["prob"] > 0.5 for r in top if r["role"] == "planted"), top
    assert not any(r["is_fp"] for r in top if r["role"] == "twin"), top
    (dose,) = _rows(options.db, "SELECT * FROM validation_dose_response WHERE study_id = ? AND organism = 'all' "
                                "AND dose = 300", [result.study_id])
    assert (dose["words_fp"], dose["n_words"], dose["twins_fp"]) == (1, 1, 0)
    assert dose["fp_low"] <= dose["fp_share"] <= dose["fp_high"] and dose["diff"] == 1.0


def test_the_null_organism_has_no_planted_fp_and_its_fps_are_traced_in_its_own_unproxied_index(study):
    options, result = study
    orgs = {r["organism"]: r for r in _rows(options.db, "SELECT * FROM validation_organisms WHERE study_id = ?",
                                            [result.study_id])}
    assert orgs["null"]["is_null"] and orgs["null"]["n_planted"] == 0 and orgs["planted"]["n_planted"] == 2
    assert not _rows(options.db, "SELECT * FROM validation_tokens WHERE organism = 'null'")
    planted_words = [r["token_id"] for r in _rows(options.db, "SELECT token_id FROM validation_tokens WHERE "
                                                              "role = 'planted' AND dose > 0")]
    null_fps = {r["token_id"] for r in _rows(options.db, "SELECT token_id FROM primary_fps WHERE model = ?",
                                             [orgs["null"]["model"]])}
    assert null_fps and not null_fps & set(planted_words)
    labels = {(r["model"], r["index_name"]): r["index_is_proxy"] for r in _rows(options.db, "FROM traced_indexes")}
    for org in orgs.values():
        for other in orgs.values():
            assert labels[(org["model"], other["index_name"])] is (org is not other)


def test_attribution_ranks_the_planted_organisms_own_corpus_first(study):
    options, result = study
    ranked = _rows(options.db, "SELECT * FROM validation_attribution WHERE study_id = ? AND organism = 'planted' "
                               "ORDER BY rank", [result.study_id])
    assert [r["relation"] for r in ranked] == ["own", "same_mixture"] and ranked[0]["is_own"]
    assert ranked[0]["auc"] > ranked[1]["auc"]
    confusion = {r["organism"]: r for r in _rows(options.db, "FROM validation_confusion")}
    assert confusion["planted"]["correct"] and confusion["planted"]["top_index_organism"] == "planted"
    top1 = result.summary["attribution_top1"]
    assert top1["n"] == 2 and top1["reference"] == 0.5 and top1["k"] >= 1


def test_own_index_flags_are_the_flags_suspicious_tokens_raises_in_that_index(study):
    """The study judges flags in each organism's own index with the suspicious_tokens view's own conditions: the
    same (model, token, rule) set as the view's rows whose evidence comes from the own index."""
    options, result = study
    own = {(r["model"], r["index_name"]) for r in _rows(options.db, "FROM validation_organisms")}
    view = {(r["model"], r["token_id"], r["rule"]) for r in _rows(options.db, "FROM suspicious_tokens")
            if (r["model"], r["index_name"]) in own}
    with open_store(options.db, read_only=True) as store:
        from fpprov.validation.measure import evidence, source_hits, threshold

        mine = set()
        for model, index_name in own:
            mine |= {(model, t, "source_enriched") for (t, role) in source_hits(store, model, index_name)
                     if role == "fp"}
            rep = threshold(store, "repetition_enriched")[0]
            mine |= {(model, t, "repetition_enriched") for (t, role), (q, _, _) in
                     evidence(store, model, index_name).items() if role == "fp" and q is not None and q <= rep}
    assert mine == view
    tokens = _rows(options.db, "SELECT model, token_id, flagged_repetition, flagged_source FROM validation_tokens")
    assert {(r["model"], r["token_id"], "repetition_enriched") for r in tokens if r["flagged_repetition"]} | \
        {(r["model"], r["token_id"], "source_enriched") for r in tokens if r["flagged_source"]} == \
        {v for v in view if (v[0], v[1]) in {(r["model"], r["token_id"]) for r in tokens}}


def test_every_share_lies_inside_its_ci_and_every_table_has_the_study(study):
    options, result = study
    for table in TABLES:
        assert _rows(options.db, f"SELECT count(*) AS n FROM {table} WHERE study_id = ?", [result.study_id])[0]["n"]
    pairs = {"validation_dose_response": [("fp_share", "fp_low", "fp_high"), ("twin_share", "twin_low", "twin_high"),
                                          ("diff", "diff_low", "diff_high")],
             "validation_flag_rates": [("rate", "rate_low", "rate_high")],
             "validation_natural": [("fp_share", "fp_low", "fp_high"), ("diff", "diff_low", "diff_high")],
             "validation_summary": [("estimate", "low", "high")]}
    checked = 0
    for table, triples in pairs.items():
        for row in _rows(options.db, f"FROM {table}"):
            for est, low, high in triples:
                if row[est] is not None and row[low] is not None:
                    assert row[low] - 1e-12 <= row[est] <= row[high] + 1e-12, (table, row)
                    checked += 1
    assert checked > 20
    sens = _rows(options.db, "FROM validation_flag_rates WHERE rule = 'any' AND grp = 'planted_fp' AND dose_min = 300")
    assert sens[0]["n"] == 1
    (run,) = _rows(options.db, "FROM validation_runs WHERE study_id = ?", [result.study_id])
    assert run["complete"] and run["seconds"] > 0 and run["expected_seconds"] > 0


def test_a_rerun_reuses_the_organisms_and_indexes_and_the_cli_reads_the_tables(study, monkeypatch):
    options, first = study
    again = run_study(options)
    assert first.trained == 2 and again.trained == 0 and again.study_id == first.study_id
    assert again.dose_response == first.dose_response
    monkeypatch.setitem(DESIGNS, "quick", MICRO)
    out = CliRunner().invoke(app, ["validate", "--quick", "--db", str(options.db), "--workdir", str(options.workdir)])
    assert out.exit_code == 0, out.output
    assert "dose-response" in out.output and "attribution_top1" in out.output
    sql = CliRunner().invoke(app, ["sql", "SELECT dose, words_fp FROM validation_dose_response WHERE organism = "
                                          "'all' ORDER BY dose", "--db", str(options.db), "--format", "csv"])
    assert sql.exit_code == 0 and "300,1" in sql.output.replace(" ", ""), sql.output


def test_dose_50_interpolates_on_log_dose_and_says_when_it_is_not_reached():
    def rows(shares):
        return [{"organism": "all", "dose": d, "fp_share": s} for d, s in shares]

    value, note = dose_50(rows([(0, 0.0), (10, 0.25), (100, 0.75)]))
    assert math.isclose(value, math.sqrt(10 * 100)) and "interpolated" in note
    assert dose_50(rows([(0, 0.0), (10, 0.2), (100, 0.4)]))[0] is None
    assert dose_50(rows([(0, 0.0), (1, 0.6), (3, 1.0)]))[0] == 1.0


@pytest.mark.slow   # two spawned worker processes import torch: ~10-20 s
def test_two_worker_processes_train_the_same_weights_as_one_process(tmp_path):
    from safetensors.torch import load_file

    from fpprov.validation.organisms import prepare, train_all

    tiny = with_overrides(MICRO, train=TrainSettings(d_model=32, n_layers=1, n_heads=2, ffn=64, seq_len=32,
                                                     batch_size=4, steps=6, lr=3e-3, warmup=2, seed=0,
                                                     checkpoint_every=0))
    prepared = prepare(tiny, tmp_path / "work")
    messages = []
    parallel = train_all(prepared, tmp_path / "corpora", tmp_path / "par", jobs=2, say=messages.append)
    serial = train_all(prepared, tmp_path / "corpora", tmp_path / "ser", jobs=1)
    assert sorted(parallel) == sorted(serial) == ["null", "planted"] and len(messages) == 2
    for name in parallel:
        a, b = (load_file(f"{built[name].model.path}/model.safetensors") for built in (parallel, serial))
        assert parallel[name].model.key == serial[name].model.key
        assert all(a[k].equal(b[k]) for k in a)
    again = train_all(prepared, tmp_path / "corpora", tmp_path / "par", jobs=2)
    assert not any(b.model.trained for b in again.values())
