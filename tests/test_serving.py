from __future__ import annotations

import threading
import time

import pytest
import torch
from langchain_core.messages import FunctionMessage, HumanMessage, SystemMessage

from agent_cl.consolidation.trainer import ConsolidationTrainer
from agent_cl.consolidation.training_config import ConsolidationConfig
from agent_cl.memory.schema import Demonstration
from agent_cl.serving.backend import AdapterLoadError, ModelBackend
from agent_cl.serving.chat_model import BackendChatModel
from agent_cl.serving.local_backend import LocalBackend
from agent_cl.serving.rwlock import ReadWriteLock

QUESTION = [[{"role": "user", "content": "Who leads the Talvor Lab?"}]]


@pytest.fixture(scope="module")
def adapters(tiny_model_dir, tmp_path_factory):
    """Two different adapters trained for a few SFT steps on the tiny model."""
    root = tmp_path_factory.mktemp("adapters")
    paths = []
    for i, answer in enumerate(["Fenna Quenmar leads it.", "Nobody at all."]):
        torch.manual_seed(i)
        trainer = ConsolidationTrainer(
            tiny_model_dir,
            ConsolidationConfig(method="sft", steps=6, batch_size=1, learning_rate=5e-2, seed=i),
            torch_threads=1,
        )
        demo = Demonstration(query="Who leads the Talvor Lab?", answer=answer)
        paths.append(trainer.train([demo], root / f"a{i}").adapter_dir)
    return paths


@pytest.fixture
def backend(tiny_model_dir):
    return LocalBackend(tiny_model_dir, torch_threads=1)


def test_backend_implements_protocol(backend):
    assert isinstance(backend, ModelBackend)
    assert backend.health()["status"] == "ok"


def test_swap_changes_output_and_back(backend, adapters):
    base = backend.generate(QUESTION, max_new_tokens=8)
    assert base.adapter_version is None
    backend.swap(1, adapters[0])
    one = backend.generate(QUESTION, max_new_tokens=8)
    backend.swap(2, adapters[1])
    two = backend.generate(QUESTION, max_new_tokens=8)
    assert (one.adapter_version, two.adapter_version) == (1, 2)
    assert len({base.texts[0], one.texts[0], two.texts[0]}) == 3
    backend.swap(None)
    assert backend.generate(QUESTION, max_new_tokens=8).texts == base.texts


def test_bad_adapter_is_refused_and_old_keeps_serving(backend, adapters, tmp_path):
    backend.swap(1, adapters[0])
    before = backend.generate(QUESTION, max_new_tokens=8).texts
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "adapter_config.json").write_text((adapters[0] / "adapter_config.json").read_text())
    (corrupt / "adapter_model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(AdapterLoadError):
        backend.swap(2, corrupt)
    with pytest.raises(AdapterLoadError):
        backend.swap(3, tmp_path / "missing")
    after = backend.generate(QUESTION, max_new_tokens=8)
    assert after.adapter_version == 1 and after.texts == before


def test_in_flight_generation_finishes_on_old_weights(backend, adapters):
    """A swap waits for running generations; they answer with the adapter they started on."""
    backend.swap(1, adapters[0])
    expected_old = backend.generate(QUESTION, max_new_tokens=40).texts
    results = {}
    started = threading.Event()
    original = backend._generate_with

    def slow_generate(*args, **kwargs):
        started.set()
        time.sleep(0.5)  # hold the read lock while the swap is requested
        return original(*args, **kwargs)

    backend._generate_with = slow_generate
    worker = threading.Thread(
        target=lambda: results.update(r=backend.generate(QUESTION, max_new_tokens=40))
    )
    worker.start()
    started.wait(5)
    t0 = time.perf_counter()
    backend.swap(2, adapters[1])
    waited = time.perf_counter() - t0
    worker.join(10)
    backend._generate_with = original
    assert results["r"].adapter_version == 1
    assert results["r"].texts == expected_old
    assert waited > 0.2  # the swap really waited for the in-flight request
    assert backend.generate(QUESTION, max_new_tokens=8).adapter_version == 2


def test_bad_requests_get_clear_errors(backend):
    with pytest.raises(ValueError, match="at least one"):
        backend.generate([])
    with pytest.raises(ValueError, match="non-empty user message"):
        backend.generate([[{"role": "user", "content": "  "}]])
    with pytest.raises(ValueError, match="max_new_tokens"):
        backend.generate(QUESTION, max_new_tokens=0)
    with pytest.raises(ValueError, match="adapter_path"):
        backend.swap(1)


def test_chat_model_reports_the_serving_version(backend, adapters):
    chat = BackendChatModel(backend=backend, max_new_tokens=6)
    reply = chat.invoke([SystemMessage("Be brief."), HumanMessage("Who leads the Talvor Lab?")])
    assert reply.response_metadata["adapter_version"] is None
    backend.swap(1, adapters[0])
    assert chat.invoke("Who leads the Talvor Lab?").response_metadata["adapter_version"] == 1
    with pytest.raises(ValueError, match="unsupported message type"):
        chat.invoke([FunctionMessage("x", name="legacy")])  # tool turns are supported
    with pytest.raises(TypeError):
        BackendChatModel(backend=object())


def test_rwlock_writer_waits_for_reader_and_blocks_new_readers():
    lock = ReadWriteLock()
    events = []
    with lock.read():

        def write():
            with lock.write():
                events.append("w")

        writer = threading.Thread(target=write)
        writer.start()
        time.sleep(0.1)
        assert events == []  # writer waits for the reader
    writer.join(2)
    assert events == ["w"]


def test_tools_chat_template_is_the_models_own_plus_the_same_tools_prompt(embedded_model_dir):
    """vLLM's template for the embedded model writes, with or without tools and an app's system
    message, the very prompt the night trains with and BackendChatModel sends in process
    (models.conversation through the model's own template); tool calls render as the model
    emits them."""
    from langchain_core.utils.function_calling import convert_to_openai_tool
    from transformers import AutoTokenizer

    from agent_cl.evals.tools_skill import lab_leader
    from agent_cl.models.chat import DEFAULT_SYSTEM, render_prompt
    from agent_cl.models.conversation import conversation
    from agent_cl.scoring.tool_calls import tools_prompt
    from agent_cl.serving.vllm_server import tools_chat_template

    template = tools_chat_template(embedded_model_dir).read_text()
    tokenizer = AutoTokenizer.from_pretrained(embedded_model_dir)
    tools = [convert_to_openai_tool(lab_leader)]
    plain = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    for messages in (plain, plain[1:]):
        for bound in ([], tools):
            served = tokenizer.apply_chat_template(
                messages,
                tools=bound or None,
                chat_template=template,
                tokenize=False,
                add_generation_prompt=True,
            )
            assert served == render_prompt(tokenizer, conversation(messages, bound))
    bare = tokenizer.apply_chat_template(
        plain[1:], chat_template=template, tokenize=False, add_generation_prompt=True
    )
    assert DEFAULT_SYSTEM in bare and "SmolLM" not in bare  # the product's line, not SmolLM's
    call = {"name": "lab_leader", "arguments": '{"lab": "Nerost"}'}
    turns = [
        *plain,
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"type": "function", "function": call}],
        },
        {"role": "tool", "content": "Quenvel Ostrami"},
    ]
    text = tokenizer.apply_chat_template(turns, tools=tools, chat_template=template, tokenize=False)
    assert "Be brief.\n\n" + tools_prompt(tools) in text
    assert '<tool_call>{"name": "lab_leader", "arguments": {"lab": "Nerost"}}</tool_call>' in text
    assert tools_chat_template(embedded_model_dir.parent) is None  # not a model: no template


def test_batched_answers_come_back_in_the_order_asked(embedded_model_dir):
    """Batches are filled shortest prompt first; each answer must still land on its question."""
    from agent_cl.models.chat import generate_batch, load_causal_lm, load_tokenizer

    model, tok = load_causal_lm(embedded_model_dir), load_tokenizer(embedded_model_dir)
    questions = ["Hi", "Please list every planet of the solar system in order.", "2+2?", "Why?"]
    convs = [
        [{"role": "user", "content": q * (3 if i % 2 else 1)}] for i, q in enumerate(questions)
    ]
    together = generate_batch(model, tok, convs, max_new_tokens=6, batch_size=2)
    alone = [generate_batch(model, tok, [c], max_new_tokens=6)[0] for c in convs]
    assert together == alone
    assert len(set(alone)) > 1  # distinct answers, so a shuffle would show
