"""Smoke tests of `memscope bench ...`: each command on tiny sizes against real parts, so none can rot.

No timing is asserted (speed belongs in the benchmarks themselves); the figures' shape and the
measured recall / verdicts are.
"""

from __future__ import annotations

import json
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from benchmarks.locomo import load_conversation, parse_session_date
from memscope.cli import app
from tests.support.scripted_server import ScriptedServer

pytestmark = pytest.mark.integration


def invoke(*args: str) -> Any:
    """Run `memscope bench ...` and return its JSON output."""
    result = CliRunner().invoke(app, ["bench", *args, "--json"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return json.loads(result.stdout)


def write_locomo(folder: Path) -> Path:
    """A tiny conversation in the LoCoMo file format: two sessions, a photo, four questions (one adversarial)."""
    conv = {
        "speaker_a": "Caroline",
        "speaker_b": "Melanie",
        "session_1_date_time": "1:56 pm on 8 May, 2023",
        "session_1": [
            {"speaker": "Caroline", "dia_id": "D1:1", "text": "Hey Mel! How have you been?"},
            {"speaker": "Melanie", "dia_id": "D1:2", "text": "Busy with the kids. I painted a sunrise over the lake."},
            {"speaker": "Caroline", "dia_id": "D1:3", "text": "I went to a support group yesterday, it was moving."},
        ],
        "session_2_date_time": "7:55 pm on 9 June, 2023",
        "session_2": [
            {"speaker": "Melanie", "dia_id": "D2:1", "text": "We went camping at the beach with the family."},
            {
                "speaker": "Caroline",
                "dia_id": "D2:2",
                "text": "Look at this!",
                "img_url": ["http://example.invalid/x.jpg"],
                "blip_caption": "a photo of a violin on a wooden table",
                "query": "violin",
            },
            {"speaker": "Melanie", "dia_id": "D2:3", "text": "Lovely. Pottery class is my new hobby."},
        ],
        "qa": [
            {"question": "What did Melanie paint?", "answer": "a sunrise", "evidence": ["D1:2"], "category": 4},
            {"question": "Where did Melanie go camping?", "answer": "the beach", "evidence": ["D2:1"], "category": 4},
            {"question": "What instrument does Caroline play?", "answer": "violin", "evidence": ["D2:2"],
             "category": 3},
            {"question": "Did Caroline paint?", "adversarial_answer": "yes", "evidence": ["D1:2"], "category": 5},
        ],
    }  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "conv-01.json").write_text(json.dumps(conv), encoding="utf-8")
    return folder


def server_config(tmp_path: Path, server: ScriptedServer) -> Path:
    """A config file with LLM and embeddings on the scripted server."""
    openai = {"api_key": "test", "base_url": server.openai_base_url}
    cfg = {
        "store": {"path": str(tmp_path / "unused.db")},
        "llm": {"backend": "openai", "model": "test-model", **openai},
        "embedding": {"backend": "openai", "model": "test-embed", "dim": 64, **openai},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def test_session_dates_and_turns_parse(tmp_path: Path) -> None:
    assert parse_session_date("1:56 pm on 8 May, 2023") == datetime(2023, 5, 8, 13, 56, tzinfo=UTC)
    assert parse_session_date("12:48 am on 1 February, 2023") == datetime(2023, 2, 1, 0, 48, tzinfo=UTC)
    with pytest.raises(ValueError, match="unrecognised LoCoMo session date"):
        parse_session_date("yesterday")
    conv = load_conversation(write_locomo(tmp_path) / "conv-01.json")
    assert [t.dia_id for t in conv.turns] == ["D1:1", "D1:2", "D1:3", "D2:1", "D2:2", "D2:3"]
    assert conv.turns[4].content == "Look at this! [shares a photo of a violin on a wooden table]"
    assert conv.turns[1].created_at > conv.turns[0].created_at  # order kept within a session
    assert conv.last_date.date() == datetime(2023, 6, 9).date()
    assert len(conv.scored_questions()) == 3  # the adversarial one is not scored


def test_bench_retrieval_times_the_real_operation(tmp_path: Path) -> None:
    png = tmp_path / "latency.png"
    out = invoke("retrieval", "--memories", "120", "--memories", "300", "--users", "3", "--queries", "5",
                 "--locomo", str(write_locomo(tmp_path / "locomo")), "--plot", str(png))  # fmt: skip
    assert [r["memories"] for r in out] == [120, 300, 6]
    assert [r["user_memories"] for r in out] == [40, 100, 6]
    assert out[2]["store"] == "sqlite, LoCoMo conv-01" and out[2]["latency"]["count"] == 2  # 3 questions, 1 first
    for row in out:
        assert row["embedder"] == "local" and row["steps_p50_ms"]["embed_query"] > 0  # the real model ran
        assert row["latency"]["p50"] <= row["latency"]["p95"] <= row["latency"]["p99"]
        assert {"search_memories", "fuse_scores", "format_context"} <= set(row["steps_p50_ms"])
        assert 0 < row["steps_share"]["embed_query"] <= 100
        kinds = row["latency_by_kind"]  # questions naming a time and the rest, every question in one of them
        assert set(kinds) <= {"names a time", "other"}
        assert sum(k["count"] for k in kinds.values()) == row["latency"]["count"]
        assert row["peak_rss_mb"] > 0
    assert out[0]["latency"]["count"] == 5
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.unit
def test_the_time_outside_steps_counts_steps_that_ran_side_by_side_once() -> None:
    """A parallel group's steps overlap (the query embedding beside BM25) or run in turn on one thread (an
    in-process store's searches): the time no step accounts for is the run's minus the union of spans."""
    from benchmarks.retrieval import busy_ms
    from memscope.engine.report import StepReport

    steps = [StepReport(1, "embed_query", wall_ms=3.0, start_ms=0.1), StepReport(1, "rank_by_text", 1.0, 0.2),
             StepReport(1, "extract_query_time", 1.0, 1.3), StepReport(2, "search_memories", 0.5, 3.5),
             StepReport(2, "search_messages", 1.0, 4.0)]  # fmt: skip
    assert busy_ms(steps) == pytest.approx(3.0 + 1.5)
    assert busy_ms([]) == 0.0


def test_bench_retrieval_times_a_retrieval_after_each_write(tmp_path: Path) -> None:
    out = invoke("retrieval", "--memories", "200", "--queries", "3", "--writes", "4")
    assert out[0]["after_write"]["count"] == 4 and out[0]["after_write"]["p50"] > 0
    plain = CliRunner().invoke(app, ["bench", "retrieval", "-n", "50", "--queries", "2", "--no-progress"])
    assert plain.exit_code == 0 and "right after a one-memory write" not in plain.output
    shown = CliRunner().invoke(app, ["bench", "retrieval", "-n", "50", "--queries", "2", "--writes", "2",
                                     "--no-progress"])  # fmt: skip
    assert shown.exit_code == 0 and "right after a one-memory write" in shown.output
    refused = CliRunner().invoke(app, ["bench", "retrieval", "-n", "50", "--writes", "2", "--keep", str(tmp_path)])
    assert refused.exit_code == 2 and "without --keep" in refused.output


def test_bench_retrieval_times_another_operation_question_by_question(tmp_path: Path) -> None:
    """--against runs each question through a second retrieve_memory too, alternating with the shipped one;
    here the shipped one without rank_by_text (the searches then run BM25 themselves: the same items)."""
    import memscope

    shipped = Path(memscope.__file__).parent.parent / "operations" / "retrieve_memory.yaml"
    inline = tmp_path / "inline.yaml"
    inline.write_text("\n".join(line for line in shipped.read_text(encoding="utf-8").splitlines()
                                if "- rank_by_text" not in line), encoding="utf-8")  # fmt: skip
    out = invoke("retrieval", "-n", "120", "--queries", "6", "--locomo", str(write_locomo(tmp_path / "locomo")),
                 "--against", str(inline))  # fmt: skip
    assert len(out) == 2
    for row in out:
        against = row["against"]
        assert against["operation"] == str(inline) and against["same_results"] == 1.0
        assert against["latency"]["count"] == row["latency"]["count"] and against["latency"]["p50"] > 0
        assert set(against["median_diff_by_kind_ms"]) <= {"names a time", "other"}
    table = CliRunner().invoke(app, ["bench", "retrieval", "-n", "50", "--queries", "2", "--against", str(inline),
                                     "--no-progress"])  # fmt: skip
    assert table.exit_code == 0 and "each question through both" in table.output
    assert invoke("retrieval", "-n", "50", "--queries", "2")[0]["against"] == {}  # none without it
    listing = tmp_path / "list.yaml"
    listing.write_text((shipped.parent / "list_memory.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: retrieve_memory\nsteps: [\n", encoding="utf-8")
    for path, says in ((listing, "takes a retrieve_memory"), (broken, "broken.yaml"), (tmp_path / "nope.yaml", "nope")):
        refused = CliRunner().invoke(app, ["bench", "retrieval", "-n", "50", "--against", str(path)])
        assert refused.exit_code == 2 and says in refused.output, refused.output


def test_bench_retrieval_can_embed_queries_with_the_numpy_path() -> None:
    out = invoke("retrieval", "--memories", "60", "--queries", "3", "--embedder", "local-numpy")
    assert out[0]["embedder"] == "local-numpy" and out[0]["steps_p50_ms"]["embed_query"] > 0
    result = CliRunner().invoke(app, ["bench", "retrieval", "-n", "10", "--embedder", "gpu"])
    assert result.exit_code == 2 and "local-onnx-fp32" in result.output


def test_bench_retrieval_keeps_and_reuses_a_filled_store(tmp_path: Path) -> None:
    kept = tmp_path / "kept"
    first = invoke("retrieval", "--memories", "150", "--queries", "3", "--keep", str(kept))
    db = kept / "bench-150-1.db"
    assert db.exists() and (kept / "bench-150-1.json").exists()
    again = invoke("retrieval", "--memories", "150", "--queries", "3", "--keep", str(kept))
    assert again[0]["fill_s"] == first[0]["fill_s"] and again[0]["latency"]["count"] == 3  # not filled again
    assert again[0]["user_memories"] == 150
    with pytest.raises(Exception, match="SQLite stores only"):
        from benchmarks.retrieval import run_retrieval_bench

        run_retrieval_bench(10, queries=1, store_kind="elasticsearch", keep=kept, show_progress=False)


def test_bench_ingest_reports_embedded_and_celery_rows() -> None:
    out = invoke("ingest", "--messages", "15")
    embedded, celery = out["rows"]
    assert embedded["latency"]["count"] == 15 and embedded["unavailable"] is None
    # Celery runs when Redis answers, else the row says why; either way it does not crash the command
    assert (celery["latency"] is not None and celery["latency"]["count"] == 15) or celery["unavailable"]


def test_bench_longrun_samples_fds_threads_and_rss() -> None:
    out = invoke("longrun", "--retrieves", "40", "--samples", "3", "--job-every", "10")
    samples = out["samples"]
    assert [s["retrieves"] for s in samples] == [40, 60, 80]  # 40 warm-up, then 20 per sample
    assert [s["jobs"] for s in samples] == [4, 6, 8]
    assert all(s["fds"] > 0 and s["threads"] > 0 and s["rss_mb"] > 0 for s in samples)
    assert set(out["growth"]) == {"fds", "threads", "rss_mb"}


def test_bench_locomo_measures_recall(tmp_path: Path, model_server: ScriptedServer) -> None:
    data = write_locomo(tmp_path / "locomo")
    out = invoke("locomo", "--data", str(data), "--k", "2", "--config", str(server_config(tmp_path, model_server)))
    assert out["questions"] == 3 and out["k"] == 2
    assert out["per_category"]["single-hop"]["questions"] == 2
    assert out["per_category"]["multi-hop"]["questions"] == 0
    assert out["conversations"]["conv-01"]["turns"] == 6
    assert 0.0 < out["recall"] <= 1.0
    assert 0 < out["item_tokens_per_query"] <= out["context_tokens_per_query"]  # recall is weighed against tokens
    # embeddings come from the scripted server; no chat call is made without --consolidate
    assert model_server.requests_to("/embeddings") and not model_server.requests_to("/chat/completions")


def test_bench_locomo_measures_recall_on_elasticsearch(tmp_path: Path, model_server: ScriptedServer) -> None:
    from tests.support.es import es_url, fresh_prefix

    url, prefix = es_url(), fresh_prefix("locomo")
    config = server_config(tmp_path, model_server)
    cfg = yaml.safe_load(config.read_text(encoding="utf-8"))
    cfg["store"] = {"backend": "elasticsearch", "elasticsearch": {"url": url, "index_prefix": prefix}}
    config.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    out = invoke("locomo", "--data", str(write_locomo(tmp_path / "locomo")), "--k", "2", "--config", str(config))
    assert out["questions"] == 3 and out["conversations"]["conv-01"]["turns"] == 6
    assert out["per_category"]["single-hop"]["recall"] > 0  # the turns were searched on Elasticsearch
    from benchmarks.locomo import load_conversation, prepare
    from memscope.stores.elasticsearch import ElasticsearchStore

    conv = load_conversation(tmp_path / "locomo" / "conv-01.json")
    prepared = prepare(conv, tmp_path / "stores", settings={**cfg, "llm": {"backend": "none"}})
    try:
        store = prepared.memory.runtime.store
        assert isinstance(store, ElasticsearchStore) and store.index_prefix.startswith(f"{prefix}-locomo-conv-01-")
        assert store.stats("locomo-user").total_messages == 6
    finally:
        prepared.close()
    with urllib.request.urlopen(f"{url.rstrip('/')}/_cat/indices/{prefix}*?format=json") as resp:
        assert json.load(resp) == []  # each conversation's indices are deleted afterwards


def test_a_failed_locomo_ingest_leaves_no_elasticsearch_indices(tmp_path: Path, model_server: ScriptedServer) -> None:
    from benchmarks.locomo import load_conversation, prepare
    from tests.support.es import es_url, fresh_prefix
    from tests.support.scripted_server import EMBED_TAG, Fault

    model_server.script(EMBED_TAG, *[Fault.status(400, "no embeddings today")] * 5)
    url, prefix = es_url(), fresh_prefix("locomo")
    cfg = yaml.safe_load(server_config(tmp_path, model_server).read_text(encoding="utf-8"))
    cfg |= {"store": {"backend": "elasticsearch", "elasticsearch": {"url": url, "index_prefix": prefix}},
            "llm": {"backend": "none"}}  # fmt: skip
    conv = load_conversation(write_locomo(tmp_path / "locomo") / "conv-01.json")
    with pytest.raises(Exception, match=r"could not be embedded|no embeddings today"):
        prepare(conv, tmp_path / "stores", settings=cfg)
    with urllib.request.urlopen(f"{url.rstrip('/')}/_cat/indices/{prefix}*?format=json") as resp:
        assert json.load(resp) == []


def write_wordnet(folder: Path) -> Path:
    """A tiny WordNet database: a licence header and a few synsets per part of speech."""
    folder.mkdir(parents=True, exist_ok=True)
    header = "  1 This software and database is being provided to you, the LICENSEE, by Princeton\n"
    glosses = {
        "noun": ['a flat piece of canvas used for painting; "she painted a sunrise on the canvas"', "a body of water"],
        "verb": ['go camping in a tent; "we camped at the beach with the kids"', "move fast"],
        "adj": ["of or relating to music played on a violin"],
        "adv": ['in a careful manner; "she read the book carefully"'],
    }
    for part, lines in glosses.items():
        body = "".join(f"{n:08d} 05 n 01 word 0 000 | {gloss}  \n" for n, gloss in enumerate(lines))
        (folder / f"data.{part}").write_text(header + body, encoding="utf-8")
    return folder


def test_wordnet_sentences_are_its_glosses_and_examples(tmp_path: Path) -> None:
    from benchmarks.locomo_scale import wordnet_sentences

    texts = wordnet_sentences(write_wordnet(tmp_path / "wn"))
    assert "she painted a sunrise on the canvas" in texts and "a flat piece of canvas used for painting" in texts
    assert "move fast" not in texts  # under three words
    assert not any("LICENSEE" in t or '"' in t for t in texts)
    assert texts == wordnet_sentences(tmp_path / "wn") and len(wordnet_sentences(tmp_path / "wn", 2)) == 2
    with pytest.raises(FileNotFoundError, match="apt-get install wordnet-base"):
        wordnet_sentences(tmp_path / "nowhere")


@pytest.mark.parametrize("kind", ["messages", "memories"])
def test_locomo_scale_asks_the_questions_among_distractors(tmp_path: Path, kind: str) -> None:
    from benchmarks.locomo_scale import report, run_scale

    data, wordnet = write_locomo(tmp_path / "locomo"), write_wordnet(tmp_path / "wn")
    run = run_scale(data, [0, 5], k=2, wordnet=wordnet, kind=kind, show_progress=False)
    assert run.rows == {0: {"conv-01": 6}, 5: {"conv-01": 11}}  # the distractors were in the user's store
    assert [len(r) for r in run.results.values()] == [3, 3]
    assert all(0.0 <= r.recall <= 1.0 for results in run.results.values() for r in results)
    report(run, 2, as_json=True)
    with pytest.raises(ValueError, match="WordNet gives 8 sentences"):
        run_scale(data, [9], wordnet=wordnet, show_progress=False)
    with pytest.raises(ValueError, match="--k must be at least 1"):
        run_scale(data, [0], k=0, wordnet=wordnet, show_progress=False)


def test_locomo_scale_applies_a_config_file(tmp_path: Path) -> None:
    from benchmarks.locomo_scale import run_scale

    data, wordnet = write_locomo(tmp_path / "locomo"), write_wordnet(tmp_path / "wn")
    config = tmp_path / "no-pending.yaml"
    config.write_text("retrieval:\n  include_pending: false\n", encoding="utf-8")
    shipped = run_scale(data, [2], k=2, wordnet=wordnet, show_progress=False).results[2]
    chosen = run_scale(data, [2], k=2, wordnet=wordnet, show_progress=False, config=config).results[2]
    # without the pending turns attached, each context block is only its items
    assert all(c.context_tokens < s.context_tokens for c, s in zip(chosen, shipped, strict=True))


def test_bench_locomo_qa_answers_and_judges(tmp_path: Path, model_server: ScriptedServer) -> None:
    model_server.script("locomo_answer", "a sunrise", "the mountains")
    model_server.script(
        "locomo_judge",
        {"reasoning": "same thing", "label": "CORRECT"},
        {"reasoning": "beach is not mountains", "label": "WRONG"},
    )
    data = write_locomo(tmp_path / "locomo")
    config = server_config(tmp_path, model_server)
    out = invoke("locomo-qa", "--data", str(data), "--limit-questions", "2", "--config", str(config))
    assert out["questions"] == 2 and out["j_score"] == 0.5
    assert [r["label"] for r in out["rows"]] == ["CORRECT", "WRONG"]
    assert [r["answer"] for r in out["rows"]] == ["a sunrise", "the mountains"]
    assert out["tokens_per_question"]["answer_prompt"] > 0 and out["tokens_per_question"]["judge_prompt"] > 0
    asks = [r for r in model_server.requests_to("/chat/completions") if r.tag == "locomo_answer"]
    assert "sunrise" in asks[0].json["messages"][0]["content"]  # asked with the retrieved memory in context


def test_bench_locomo_qa_without_a_model_says_what_to_do(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["bench", "locomo-qa", "--data", str(write_locomo(tmp_path / "d"))])
    assert result.exit_code == 2
    assert "locomo-qa needs an LLM" in result.output


def test_bench_embed_measures_the_builtin_embedder_in_a_fresh_process() -> None:
    out = invoke("embed", "--queries", "3", "--batches", "1")
    rows = {row["backend"]: row for row in out["rows"]}
    assert set(rows) == {"numpy", "onnx-fp32", "onnx-int8", "sentence-transformers"}
    for name in ("numpy", "onnx-fp32", "onnx-int8"):
        builtin = rows[name]
        assert builtin["unavailable"] is None, builtin
        assert builtin["install_mb"] > 50  # the weights alone are 87 MiB
        assert 0 < builtin["first_vector_s"] < 60 and builtin["batch1_per_s"] > 0 and builtin["batch64_per_s"] > 0
        assert 0 < builtin["query_p50_ms"] <= builtin["query_p95_ms"]
        assert builtin["peak_rss_mb"] > 0
    assert rows["onnx-int8"]["install_mb"] > rows["numpy"]["install_mb"]  # onnxruntime and onnx on top
    # sentence-transformers is an extra: measured when installed, else the row says what is missing
    other = rows["sentence-transformers"]
    assert (other["batch1_per_s"] or 0) > 0 or "not installed" in other["unavailable"]


def test_leave_one_out_scores_each_conversation_with_the_setting_picked_on_the_others() -> None:
    from benchmarks.locomo import QuestionResult
    from benchmarks.locomo_loo import leave_one_out

    def result(conv: str, recall: float) -> QuestionResult:
        return QuestionResult(conv, 4, "q?", ["D1:1"], [], recall, 1.0)

    # "fits-a" wins in-sample (0.65 against 0.5) on the strength of conversation a alone: held out, a is
    # scored with "plain" (picked on b and c), b and c with "fits-a" (picked with a's help), below 0.5.
    by_setting = {
        "plain": [result("a", 0.5), result("b", 0.5), result("c", 0.5)],
        "fits-a": [result("a", 1.0), result("b", 0.4), result("c", 0.55)],
    }
    held, picks = leave_one_out(by_setting)
    assert picks == {"a": "plain", "b": "fits-a", "c": "fits-a"}
    assert held == pytest.approx((0.5 + 0.4 + 0.55) / 3)
