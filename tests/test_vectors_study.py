"""Storage, dedup across seeds and methods, resume and the `fpprov vectors` CLI (issue 3, items 4-10)."""

from __future__ import annotations

import warnings

import pytest
import torch
from tiny import TOKEN_K, hand_built_dir  # noqa: F401  (a fixture)
from typer.testing import CliRunner

from fpprov.cli import app
from fpprov.errors import LowPrecisionWarning
from fpprov.models import load_model
from fpprov.db.store import open_store
from fpprov.vectors.study import VectorOptions, run_study

FAST = dict(max_steps=3000, rollout_steps=10, top_k=5)


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_torch_thread):
    """Tiny models gain nothing from threads (see conftest.one_torch_thread)."""


@pytest.fixture(scope="module")
def constant_dir(hand_built_dir):
    return hand_built_dir("constant")


@pytest.fixture(scope="module")
def constant_model(constant_dir):
    return load_model(str(constant_dir), device="cpu")


@pytest.fixture(scope="module")
def olmo_model(tiny_model_dir):
    # Iteration on this tiny OLMo 2 reaches several distinct FPs, each in under 10 steps.
    return load_model(str(tiny_model_dir("olmo2")), device="cpu")


@pytest.fixture
def store(tmp_path):
    with open_store(tmp_path / "v.duckdb") as s:
        yield s


def test_both_methods_one_fp_stored_with_who_found_it(store, constant_model):
    summary = run_study(store, constant_model, VectorOptions(seeds=(0, 1, 2), lr=1e-2, **FAST))
    assert [r["converged"] for m in ("iterate", "gradient") for r in summary.runs[m]] == [True] * 6
    (fp,) = store.query_dicts("SELECT * FROM vector_fps")
    assert fp["methods"] == ["gradient", "iterate"] and fp["seeds"] == [0, 1, 2] and fp["n_runs"] == 6
    e_k = constant_model.input_embeddings().weight[TOKEN_K]
    assert float((torch.tensor(fp["vector"]) - e_k).norm()) < 1e-4
    assert fp["stable"] and fp["rollout_dist_max"] < 1e-5 and len(fp["rollout_dist_by_l"]) == 10
    assert (fp["embedding"], fp["dtype"], fp["rollout_feed"], fp["stable_threshold"]) == \
        ("effective", "float32", "output", 1e-3)
    assert fp["top_token_id"] == TOKEN_K and fp["top_token_is_fp"] and fp["top_k"] == 5
    tokens = store.query_dicts("SELECT * FROM vector_fp_tokens ORDER BY rank")
    assert [t["rank"] for t in tokens] == [1, 2, 3, 4, 5] and tokens[0]["token_id"] == TOKEN_K
    runs = store.query_dicts("SELECT * FROM vector_runs ORDER BY run_id")
    assert {r["vector_id"] for r in runs} == {fp["vector_id"]}
    assert {(r["method"], r["detach"], r["lr_initial"]) for r in runs} == {("iterate", None, None),
                                                                           ("gradient", True, 0.01)}
    # The protocol's settings are recorded with each gradient run; lr=1e-2 replaced the default's value.
    assert {(r["protocol"], r["loss"], r["patience"]) for r in runs if r["method"] == "gradient"} == \
        {("default+custom", "squared", 100)}
    assert all("protocol=default+custom" in r["settings"] for r in runs if r["method"] == "gradient")
    assert all(r["init_std"] == 0.02 and r["batch_size"] == 3 and r["torch_version"] for r in runs)
    assert store.query("SELECT count(*) FROM models WHERE name = ?", [constant_model.name]) == [(1,)]


def test_distinct_fps_are_kept_apart(store, olmo_model):
    summary = run_study(store, olmo_model, VectorOptions(methods=("iterate",), seeds=tuple(range(6)), **FAST))
    fps = store.query_dicts("SELECT vector_id, vector, seeds FROM vector_fps")
    assert len(fps) >= 2
    found = sorted(s for fp in fps for s in fp["seeds"])
    assert found == [r["seed"] for r in summary.runs["iterate"] if r["converged"]]
    vectors = torch.tensor([fp["vector"] for fp in fps]).double()
    gaps = torch.cdist(vectors, vectors) + torch.eye(len(fps)) * 1e9
    assert float(gaps.min()) >= 1e-4


def test_resume_skips_stored_seeds_and_force_redoes_them(store, olmo_model):
    opts = dict(methods=("iterate",), **FAST)
    run_study(store, olmo_model, VectorOptions(seeds=(0, 1), **opts))
    first_ids = store.query("SELECT run_id FROM vector_runs ORDER BY run_id")
    fp_ids = store.query("SELECT vector_id FROM vector_fps ORDER BY vector_id")
    summary = run_study(store, olmo_model, VectorOptions(seeds=(0, 1, 2), **opts))
    assert summary.skipped["iterate"] == [0, 1]
    assert store.query("SELECT run_id FROM vector_runs WHERE seed < 2 ORDER BY run_id") == first_ids
    assert set(fp_ids) <= set(store.query("SELECT vector_id FROM vector_fps"))  # ids stay stable
    summary = run_study(store, olmo_model, VectorOptions(seeds=(0,), force=True, **opts))
    assert summary.skipped["iterate"] == []
    assert store.query("SELECT count(*) FROM vector_runs") == [(3,)]
    assert store.query("SELECT run_id FROM vector_runs WHERE seed = 0") != first_ids[:1]
    # Another setting is another run: the same seed is searched again, with its own settings text.
    run_study(store, olmo_model, VectorOptions(seeds=(0,), **{**opts, "tol": 1e-5}))
    assert store.query("SELECT count(DISTINCT settings) FROM vector_runs") == [(2,)]


def test_interrupted_run_keeps_finished_seeds(store, olmo_model):
    def interrupt(report):
        if report.step == 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_study(store, olmo_model, VectorOptions(methods=("iterate",), seeds=tuple(range(8)), **FAST),
                  progress=interrupt)
    kept = [row[0] for row in store.query("SELECT seed FROM vector_runs ORDER BY seed")]
    assert 0 < len(kept) < 8  # seeds that stopped before step 6 were written as they stopped
    summary = run_study(store, olmo_model, VectorOptions(methods=("iterate",), seeds=tuple(range(8)), **FAST))
    assert summary.skipped["iterate"] == kept and len(summary.runs["iterate"]) == 8


def test_bfloat16_warns_and_is_recorded(store, constant_dir):
    with pytest.warns(LowPrecisionWarning, match="precision"):
        model = load_model(str(constant_dir), dtype="bfloat16", device="cpu")
    run_study(store, model, VectorOptions(methods=("iterate",), seeds=(0,), tol=1e-2, **FAST))
    (row,) = store.query_dicts("SELECT dtype, settings FROM vector_runs")
    assert row["dtype"] == "bfloat16" and "dtype=bfloat16" in row["settings"]


def test_raw_embedding_convention_recorded(store, constant_model):
    run_study(store, constant_model, VectorOptions(methods=("iterate",), seeds=(0,), embedding="raw", **FAST))
    assert store.query("SELECT embedding FROM vector_runs") == [("raw",)]
    assert store.query("SELECT embedding FROM vector_fps") == [("raw",)]


runner = CliRunner()


def test_cli_help_lists_the_options():
    result = runner.invoke(app, ["vectors", "--help"])
    assert result.exit_code == 0
    for option in ("--method", "--seeds", "--embedding", "--no-detach", "--dtype", "--force", "--stable-threshold"):
        assert option in result.output


@pytest.mark.parametrize("args, message", [
    (["--method", "newton"], "unknown method"),
    (["--embedding", "scaled"], "unknown embedding"),
    (["--seeds", "0"], "--seeds"),
    (["--tol", "0"], "tol must be positive"),
])
def test_cli_bad_argument_is_one_line_exit_2(tmp_path, constant_dir, args, message):
    result = runner.invoke(app, ["vectors", str(constant_dir), "--db", str(tmp_path / "x.duckdb"), *args])
    assert result.exit_code == 2
    assert message in result.output and len(result.output.strip().splitlines()) == 1


def test_cli_runs_and_summarises(tmp_path, constant_dir):
    db = tmp_path / "cli.duckdb"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = runner.invoke(app, ["vectors", str(constant_dir), "--db", str(db), "--seeds", "2",
                                     "--rollout-steps", "5", "--top-k", "3", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "1 vector FPs (1 stable)" in result.output and "iterate: 2/2 seeds converged" in result.output
    with open_store(db) as s:
        assert s.query("SELECT count(*), sum(n_runs) FROM vector_fps") == [(1, 4)]


def test_cli_explains_precision_floor(tmp_path, tiny_model_dir):
    qwen = tiny_model_dir("qwen3")
    result = runner.invoke(app, ["vectors", str(qwen), "--db", str(tmp_path / "p.duckdb"), "--method", "iterate",
                                 "--seeds", "1", "--tol", "1e-12", "--stall-window", "40", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "0/1 seeds converged (1 precision_floor)" in result.output and "pass a larger --tol" in result.output


# -- options check themselves once; the CLI only maps the error ---------------------------------------

@pytest.mark.parametrize("fields, args", [
    ({"methods": ("newton",)}, ["--method", "newton"]), ({"embedding": "scaled"}, ["--embedding", "scaled"]),
    ({"rollout_feed": "y"}, ["--rollout-feed", "y"]), ({"seeds": ()}, ["--seeds", "0"]),
    ({"tol": 0.0}, ["--tol", "0"]), ({"max_steps": 0}, ["--max-steps", "0"]), ({"top_k": 0}, ["--top-k", "0"])])
def test_vector_options_check_gives_the_clis_one_line_message(tmp_path, fields, args):
    from fpprov.errors import FpprovError

    with pytest.raises(FpprovError) as raised:
        VectorOptions(**fields)
    db = tmp_path / "x.duckdb"
    result = runner.invoke(app, ["vectors", "no-such-model-needed", "--db", str(db), *args])
    assert result.exit_code == 2 and result.output.strip() == f"error: {raised.value}" and not db.exists()


def test_vectors_cli_has_no_check_of_its_own_and_the_study_does_not_check_again(tmp_path, constant_dir, constant_model,
                                                                            monkeypatch, store):
    from pathlib import Path

    import fpprov
    from fpprov.errors import FpprovError

    calls = []
    monkeypatch.setattr(VectorOptions, "check", lambda self: calls.append(self))
    options = VectorOptions(methods=("iterate",), seeds=(0,), **FAST)
    run_study(store, constant_model, options)
    assert calls == [options]

    def refuse(self):
        raise FpprovError(f"library says no to top_k={self.top_k}")

    monkeypatch.setattr(VectorOptions, "check", refuse)
    result = runner.invoke(app, ["vectors", str(constant_dir), "--db", str(tmp_path / "x.duckdb"), "--top-k", "7"])
    assert result.exit_code == 2 and result.output.strip() == "error: library says no to top_k=7"
    source = Path(fpprov.__file__).parent.joinpath("cli", "vectors.py").read_text()
    for copy in ("unknown method", "unknown embedding", "unknown rollout feed", "must be at least", "unknown dtype"):
        assert copy not in source


def test_cli_protocol_and_patience_reach_the_stored_runs(tmp_path, constant_dir):
    db = tmp_path / "protocols.duckdb"
    common = ["--db", str(db), "--method", "gradient", "--seeds", "1", "--max-steps", "3", "--rollout-steps", "2",
              "--device", "cpu"]
    for extra in (["--protocol", "seed"], ["--patience", "7"]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = runner.invoke(app, ["vectors", str(constant_dir), *common, *extra])
        assert result.exit_code == 0, result.output
    with open_store(db) as s:
        rows = s.query("SELECT protocol, patience, weight_decay, lr_floor, loss FROM vector_runs ORDER BY protocol")
    # --max-steps replaces each protocol's cap, so both are recorded as +custom; the rest is the protocol's
    assert rows == [("default+custom", 7, 0.0, rows[0][3], "squared"), ("seed+custom", 1000, 0.0, 3e-9, "norm")]


def test_cli_unknown_protocol_is_one_line(tmp_path):
    db = tmp_path / "x.duckdb"
    result = runner.invoke(app, ["vectors", "no-such-model-needed", "--protocol", "newton", "--db", str(db)])
    assert result.exit_code == 2 and "unknown gradient protocol 'newton'" in result.output and not db.exists()


def test_cli_embedding_both_studies_raw_then_effective_from_one_load(tmp_path, constant_dir, monkeypatch):
    import fpprov.models

    loads = []
    real_load = fpprov.models.load_model
    monkeypatch.setattr(fpprov.models, "load_model", lambda *a, **k: loads.append(a) or real_load(*a, **k))
    db = tmp_path / "both.duckdb"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = runner.invoke(app, ["vectors", str(constant_dir), "--db", str(db), "--embedding", "both",
                                     "--method", "iterate", "--seeds", "2", "--rollout-steps", "3", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert len(loads) == 1
    assert result.output.index("in the raw embedding space") < result.output.index("in the effective embedding space")
    with open_store(db) as s:
        assert s.query("SELECT embedding, count(*) FROM vector_runs GROUP BY embedding ORDER BY embedding") == [
            ("effective", 2), ("raw", 2)]
        assert s.query("SELECT DISTINCT embedding FROM vector_fps ORDER BY embedding") == [("effective",), ("raw",)]
