"""Operation loading (every validation error with its location), running, parallelism, reports."""

from __future__ import annotations

import textwrap
import threading
import time
from pathlib import Path

import pytest

import tests.engine.sample_workers  # noqa: F401  (registers the t_* workers)
from memscope.engine import OperationCatalog, OperationRunner, Resources, builtin_operation_files, parse_operation
from memscope.engine.registry import worker
from memscope.engine.worker import Worker
from memscope.errors import OperationLoadError, OperationRunError, ValidationError
from memscope.llm.base import UsageMeter

pytestmark = pytest.mark.unit


def load(text: str):
    return parse_operation(textwrap.dedent(text).lstrip(), "op.yaml")


def problems(text: str) -> list[str]:
    with pytest.raises(OperationLoadError) as info:
        load(text)
    return info.value.problems


def runner(**kw) -> OperationRunner:
    return OperationRunner(Resources(store=None, meter=UsageMeter(), **kw))  # type: ignore[arg-type]


def test_valid_operation_runs_in_order():
    spec = load(
        """
        name: demo
        mode: inline
        steps:
          - t_emit: {count: 4}
          - t_double: {}
        """
    )
    result = runner().run(spec, {})
    assert result.context["doubled"] == [0, 2, 4, 6]
    assert [s.written for s in result.report.steps] == [{"numbers": 4}, {"doubled": 4}]


def test_unknown_worker_names_location_and_lists_known():
    [p] = problems(
        """
        name: demo
        steps:
          - t_emit: {}
          - t_dubble: {}
        """
    )
    assert p.startswith("op.yaml:4:5: unknown worker 't_dubble' (did you mean 't_double'?)")
    assert "registered workers:" in p and "t_emit" in p


def test_unknown_param_and_wrong_type_point_at_the_param():
    found = problems(
        """
        name: demo
        steps:
          - t_emit:
              count: many
          - t_sleep_a: {secnds: 1}
        """
    )
    assert found[0].startswith("op.yaml:4:14: step 't_emit' (worker 't_emit'): param count:")
    assert "many" in found[0]
    assert found[1].startswith("op.yaml:5:17: step 't_sleep_a' (worker 't_sleep_a'): unknown param 'secnds'")
    assert "did you mean 'seconds'" in found[1]


def test_read_before_write():
    [p] = problems(
        """
        name: demo
        steps:
          - t_double: {}
          - t_emit: {}
        """
    )
    assert p.startswith("op.yaml:3:5: step 't_double' (worker 't_double') reads 'numbers' before any step writes it")


def test_parallel_branches_may_not_read_each_other_nor_write_one_field():
    found = problems(
        """
        name: demo
        steps:
          - parallel:
              - t_sleep_a: {}
              - t_also_a: {}
        """
    )
    assert len(found) == 1
    assert found[0].startswith("op.yaml:5:9: parallel branches 't_sleep_a' and 't_also_a' both write 'a'")
    [p] = problems(
        """
        name: demo
        steps:
          - parallel:
              - t_emit: {}
              - t_double: {}
        """
    )
    assert p.startswith("op.yaml:5:9: step 't_double'") and "reads 'numbers'" in p


def test_malformed_yaml_and_bad_shapes():
    [p] = problems("name: demo\nsteps:\n  - t_emit: {count: 3\n")
    assert p.startswith("op.yaml:4:1: invalid YAML")  # the config's loader and wording
    found = problems("name: demo\nmode: sometimes\nstepz: []\n")
    assert "op.yaml:3:1: stepz: unknown key; did you mean 'steps'? (allowed: name, description, mode, inputs," \
        " outputs, steps)" in found
    assert "op.yaml:2:7: mode: 'sometimes' is not allowed; choose one of: inline, queued" in found
    assert "op.yaml:1:1: steps: required key is missing; add it" in found
    found = problems("name: 2024\ninputs: [{a: 1, b: 2}]\noutputs: [a, a]\nsteps: []\n")  # the shape: a model
    assert found == [
        "op.yaml:2:10: inputs[0]: an input is a name, or a one-key mapping {name: default}; got {'a': 1, 'b': 2}",
        "op.yaml:3:10: outputs: outputs ['a'] are listed twice; list each once",
        "op.yaml:4:8: steps: steps must be a non-empty list of `- worker_name: {params}` items",
    ]
    assert any("steps must be a non-empty list" in x for x in found)
    with pytest.raises(OperationLoadError, match="empty"):
        load("")


def test_parallel_really_overlaps():
    spec = load(
        """
        name: sleepers
        steps:
          - parallel:
              - t_sleep_a: {seconds: 0.4}
              - t_sleep_b: {seconds: 0.4}
        """
    )
    started = time.monotonic()
    result = runner().run(spec, {})
    elapsed = time.monotonic() - started
    # Sequential would take at least 0.8 s; concurrent branches finish near 0.4 s.
    assert elapsed < 0.75, elapsed
    assert [s.branch for s in result.report.steps] == [1, 2]


class _Store:
    """Just what Worker.overlaps asks of a store."""

    def __init__(self, in_process: bool) -> None:
        self.in_process = in_process


def test_store_bound_branches_on_an_in_process_store_run_one_after_another_on_one_thread():
    """On an in-process store (SQLite) store-bound branches are Python work: side by side they would only
    take turns at the GIL, so they run in turn on one thread while the others (a sleep here) run beside
    them. Against a networked store they get a thread each, as every branch did before."""
    spec = load(
        """
        name: mixed
        steps:
          - parallel:
              - t_sleep_a: {seconds: 0.4}
              - t_store_work: {into: work_a, seconds: 0.15}
              - t_store_work: {into: work_b, seconds: 0.15}
        """
    )
    local = OperationRunner(Resources(store=_Store(in_process=True), meter=UsageMeter()))  # type: ignore[arg-type]
    started = time.monotonic()
    result = local.run(spec, {})
    assert time.monotonic() - started < 0.6  # the two in turn (0.3 s) still beside the 0.4 s sleep
    (thread_a, start_a, end_a), (thread_b, start_b, end_b) = result.context["work_a"], result.context["work_b"]
    assert thread_a == thread_b != threading.current_thread().name and end_a <= start_b
    assert [s.branch for s in result.report.steps] == [1, 2, 3]
    sleep, step_a, step_b = result.report.steps  # each step's span in the run: beside the sleep, in turn
    assert sleep.start_ms < 100 and step_a.start_ms < 100 and step_b.start_ms >= step_a.start_ms + step_a.wall_ms
    remote = OperationRunner(Resources(store=_Store(in_process=False), meter=UsageMeter()))  # type: ignore[arg-type]
    result = remote.run(spec, {})
    (thread_a, start_a, end_a), (thread_b, start_b, end_b) = result.context["work_a"], result.context["work_b"]
    assert thread_a != thread_b and start_b < end_a and start_a < end_b  # side by side
    only_store = load(
        """
        name: searches
        steps:
          - parallel:
              - t_store_work: {into: work_a, seconds: 0.05}
              - t_store_work: {into: work_b, seconds: 0.05}
        """
    )
    result = local.run(only_store, {})
    assert result.context["work_a"][0] == result.context["work_b"][0] == threading.current_thread().name
    local.close()
    remote.close()


def test_the_retrieval_searches_are_store_bound_and_the_model_call_is_not(tmp_path: Path):
    from memscope.stores.sqlite import SqliteStore
    from memscope.workers.embed_query import EmbedQuery
    from memscope.workers.extract_query_time import ExtractQueryTime
    from memscope.workers.search_messages import SearchMessages

    with SqliteStore(tmp_path / "m.db") as store:
        on_sqlite = Resources(store=store, meter=UsageMeter())
        assert not SearchMessages(SearchMessages.Params(), on_sqlite).overlaps()
        assert EmbedQuery(EmbedQuery.Params(), on_sqlite).overlaps()
    networked = Resources(store=_Store(in_process=False), meter=UsageMeter())  # type: ignore[arg-type]
    assert SearchMessages(SearchMessages.Params(), networked).overlaps()
    assert not ExtractQueryTime(ExtractQueryTime.Params(), networked).overlaps()  # regexes: always Python


def test_failing_step_is_wrapped_once_with_cause():
    spec = load("name: failing\nsteps:\n  - t_emit: {}\n  - t_fail: {}\n")
    with pytest.raises(OperationRunError) as info:
        runner().run(spec, {})
    err = info.value
    assert (err.operation, err.step, err.worker) == ("failing", 2, "t_fail")
    assert isinstance(err.__cause__, ZeroDivisionError)
    assert "operation 'failing' failed at step 2 (worker 't_fail'): ZeroDivisionError: boom" in str(err)


def test_worker_that_skips_a_declared_write_is_an_error():
    spec = load("name: lazy\nsteps:\n  - t_lazy: {}\n")
    with pytest.raises(OperationRunError, match="did not set"):
        runner().run(spec, {})


def test_inputs_required_optional_and_unknown():
    spec = load("name: ins\ninputs: [user_id, {top_k: 5}]\nsteps:\n  - t_emit: {}\n")
    assert runner().run(spec, {"user_id": "u"}).context.values["top_k"] == 5
    with pytest.raises(ValidationError, match="needs input 'user_id'"):
        runner().run(spec, {})
    with pytest.raises(ValidationError, match="unknown inputs"):
        runner().run(spec, {"user_id": "u", "topk": 3})


def test_llm_step_skipped_without_model_marks_run_degraded():
    spec = load("name: needs\nsteps:\n  - t_emit: {}\n  - t_needs_llm: {}\n")
    report = runner().run(spec, {}).report
    assert report.degraded
    assert report.steps[1].skipped == "no LLM configured"
    assert report.llm_calls == 0
    assert any("OPENAI_API_KEY" in n for n in report.notices)


def test_report_counts_model_usage_per_step():
    spec = load("name: needs\nsteps:\n  - t_emit: {}\n  - t_needs_llm: {}\n  - t_needs_llm: {}\n")
    report = runner(llm=object()).run(spec, {}).report
    assert [s.llm_calls for s in report.steps] == [0, 1, 1]
    assert (report.llm_calls, report.prompt_tokens, report.completion_tokens) == (2, 22, 10)
    assert report.to_dict()["llm_calls"] == 2


def test_duplicate_worker_name_fails_at_registration():
    with pytest.raises(ValueError, match="already registered"):

        @worker("t_emit")
        class Other(Worker):
            """Clashes."""


def test_user_folder_overrides_builtin(tmp_path: Path):
    builtin = {f.stem for f in builtin_operation_files()}
    name = "reflect_and_reconsolidate" if builtin else "custom"  # the API reads no output of it
    (tmp_path / "mine.yaml").write_text(f"name: {name}\nsteps:\n  - t_emit: {{}}\n")
    catalog = OperationCatalog(paths=[tmp_path])
    spec = catalog.get(name)
    assert spec.source == str(tmp_path / "mine.yaml")
    if builtin:
        assert spec.notes and "overrides built-in" in spec.notes[0]


def test_every_builtin_operation_loads():
    catalog = OperationCatalog()
    for required in ("retrieve_memory", "consolidate_memory", "reflect_and_reconsolidate",
                     "add_memory", "list_memory", "delete_memory"):
        assert required in catalog
    assert catalog.get("retrieve_memory").mode == "inline"
    assert catalog.get("consolidate_memory").mode == "queued"


def test_declared_outputs_are_returned_and_nothing_else():
    spec = load("name: demo\noutputs: [doubled]\nsteps:\n  - t_emit: {}\n  - t_double: {}\n")
    result = runner().run(spec, {})
    assert result.outputs == {"doubled": [0, 2, 4]}
    assert result["doubled"] == [0, 2, 4]
    with pytest.raises(KeyError, match="declares no output 'numbers'; its outputs: \\['doubled'\\]"):
        result["numbers"]


def test_an_output_no_step_writes_is_a_load_error_at_its_line():
    found = problems(
        """
        name: demo
        outputs: [doubled, dubled]
        steps:
          - t_emit: {}
          - t_double: {}
        """
    )
    assert found == [
        "op.yaml:2:20: output 'dubled' is written by no step (did you mean 'doubled'?);"
        " the steps write: doubled, numbers"
    ]


def test_an_optional_read_of_a_field_written_only_later_is_a_load_error():
    found = problems(
        """
        name: demo
        steps:
          - t_emit: {}
          - t_maybe_doubled: {}
          - t_double: {}
        """
    )
    assert len(found) == 1 and found[0].startswith("op.yaml:4:5: step 't_maybe_doubled'")
    assert "optionally reads 'doubled', which only step 't_double' (line 5) writes" in found[0]
    # never written at all is fine: the field is optional
    assert runner().run(load("name: ok\nsteps:\n  - t_maybe_doubled: {}\n"), {}).context["count"] == 0


def test_a_skipped_step_degrades_the_run_through_its_report():
    spec = load("name: needs\noutputs: [committed]\nsteps:\n  - t_needs_llm: {}\n  - t_commit: {}\n")
    result = runner().run(spec, {})
    assert result.report.steps[0].degraded and not result.report.steps[1].degraded
    assert result["committed"] is False and result.report.to_dict()["degraded"] is True
    assert runner(llm=object()).run(spec, {})["committed"] is True


def test_overriding_a_builtin_without_the_outputs_the_api_reads_fails_at_load(tmp_path: Path):
    (tmp_path / "retrieve_memory.yaml").write_text(
        "name: retrieve_memory\ninputs: [user_id, query]\noutputs: [numbers]\nsteps:\n  - t_emit: {}\n"
    )
    with pytest.raises(OperationLoadError) as info:
        OperationCatalog(paths=[tmp_path])
    [problem] = info.value.problems
    assert problem.startswith(f"{tmp_path / 'retrieve_memory.yaml'}:3:1: operation 'retrieve_memory' must declare")
    assert "['results', 'pending_messages', 'context_text', 'query_time']" in problem


def test_a_timed_inline_run_is_handed_to_one_thread_and_times_each_step():
    spec = load(
        """
        name: timed
        mode: inline
        steps:
          - t_thread: {into: thread_a}
          - t_sleep_a: {seconds: 0.3}
          - t_sleep_b: {seconds: 0.3}
          - t_thread: {into: thread_b}
        """
    )
    timed = OperationRunner(Resources(store=None, meter=UsageMeter()), step_timeout_s=0.5)  # type: ignore[arg-type]
    result = timed.run(spec, {})
    timed.close()
    # every step on the same run thread (one hand-off), not the caller's; 0.6 s in all, each step under 0.5 s
    assert result.context["thread_a"] == result.context["thread_b"] != threading.current_thread().name
    assert result.context["thread_a"].startswith("memscope-run")


def test_a_timed_inline_run_fails_at_the_step_that_hangs():
    spec = load(
        """
        name: hangs
        mode: inline
        steps:
          - t_emit: {}
          - parallel:
              - t_sleep_a: {seconds: 0.1}
              - t_sleep_b: {seconds: 3}
          - t_double: {}
        """
    )
    timed = OperationRunner(Resources(store=None, meter=UsageMeter()), step_timeout_s=0.5)  # type: ignore[arg-type]
    started = time.monotonic()
    with pytest.raises(OperationRunError, match=r"step 2 \(worker 't_sleep_a\+t_sleep_b'\).*longer than 0.5s"):
        timed.run(spec, {})
    assert time.monotonic() - started < 2.5  # the hang is 3 s: the call did not wait for it
    failing = load("name: failing\nmode: inline\nsteps:\n  - t_emit: {}\n  - t_fail: {}\n")
    with pytest.raises(OperationRunError) as info:
        timed.run(failing, {})
    assert (info.value.step, info.value.worker) == (2, "t_fail")
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    timed.close()
