from __future__ import annotations

import pickle

import pytest
import torch
from safetensors.torch import load_file

from agent_cl.consolidation.candidate import CandidateModel
from agent_cl.consolidation.objectives import _answer_token_flags
from agent_cl.consolidation.prompts import student_messages, teacher_messages
from agent_cl.consolidation.teacher import EMATeacher
from agent_cl.consolidation.trainer import (
    Checkpoint,
    ConsolidationTrainer,
    NonFiniteLossError,
    StepRecord,
)
from agent_cl.consolidation.training_config import ConsolidationConfig
from agent_cl.memory.schema import Demonstration

DEMOS = [
    Demonstration(
        query=f"Who leads the Talvor Lab {i}?",
        context=f"The Talvor Lab {i} is led by Fenna Quen{i}.",
        answer=f"The Talvor Lab {i} is led by Fenna Quen{i}.",
        metadata={"expected": f"Fenna Quen{i}"},
    )
    for i in range(3)
]


def lora_b_norm(adapter_dir) -> float:
    weights = load_file(adapter_dir / "adapter_model.safetensors")
    return sum(float(t.abs().sum()) for k, t in weights.items() if "lora_B" in k)


@pytest.mark.parametrize(
    "overrides",
    [
        {"method": "sdft"},
        {"method": "sdft", "teacher": "ema", "kl_reduction": "mean"},
        {"method": "sdft", "teacher_prompt": "context+turns"},
        {"method": "sft"},
        {"method": "sft_name"},
        {"method": "sft_replay"},
        {"method": "sft_kl"},
        {"method": "sft_kl", "anchor_samples": "base"},
        {"method": "sft_kl_near"},
        {"method": "sft_kl_exchange"},
        {"method": "sdft_sft"},
        {"method": "sdft_sft_kl"},
        {"method": "gkd"},
        {"method": "sdft_warm", "sft_warmup_steps": 1},
    ],
)
def test_training_writes_an_adapter_that_moved(tiny_model_dir, tmp_path, overrides):
    config = ConsolidationConfig(
        steps=2,
        batch_size=2,
        max_new_tokens=6,
        anchor_batch_size=2,
        anchor_max_new_tokens=4,
        **overrides,
    )
    trainer = ConsolidationTrainer(
        tiny_model_dir, config, torch_threads=1, anchor_prompts=["Say hi.", "Name a color."]
    )
    seen = []
    result = trainer.train(DEMOS, tmp_path / "adapter", on_step=seen.append)
    assert [r.step for r in seen] == [1, 2]
    assert all(torch.isfinite(torch.tensor(r.loss)) for r in seen)
    assert (tmp_path / "adapter" / "adapter_config.json").exists()
    assert lora_b_norm(tmp_path / "adapter") > 0  # LoRA B starts at zero; training moved it
    assert result.seconds_per_step > 0 and result.peak_rss_mb > 0
    expected_terms = {
        name
        for name, weight in (
            ("sft", config.sft_weight),
            ("sdft", config.sdft_weight),
            ("anchor_kl", config.anchor_kl_weight),
            ("replay", config.replay_weight),
        )
        if weight > 0
    }
    assert set(seen[-1].terms) == expected_terms
    if config.sft_warmup_steps:
        assert set(seen[0].terms) == {"sft"}  # warm-up: SFT only
    if config.uses_sdft and config.teacher_written_fraction < 1:
        assert seen[-1].samples_with_answer is not None and seen[-1].kl_other_tokens is not None


def test_sdft_loss_is_zero_when_teacher_prompt_equals_student_prompt(tiny_model_dir, monkeypatch):
    """With identical prompts and the base as teacher, the untrained student IS the teacher."""
    import agent_cl.consolidation.objectives as objectives_module

    monkeypatch.setattr(objectives_module, "teacher_messages", lambda d, mode: student_messages(d))
    trainer = ConsolidationTrainer(
        tiny_model_dir, ConsolidationConfig(steps=1, batch_size=2, max_new_tokens=5)
    )
    loss = trainer._sdft_term(DEMOS[:2], None, StepRecord(1, 0.0, 0.0), 1.0)
    assert loss == pytest.approx(0.0, abs=1e-5)


def test_completion_logits_align_across_prompt_lengths(tiny_model_dir):
    trainer = ConsolidationTrainer(tiny_model_dir, ConsolidationConfig(), torch_threads=1)
    completion = [[11, 12, 13]]
    with torch.no_grad():
        short, mask = trainer.completion_logits([[5, 6]], completion)
        both, mask2 = trainer.completion_logits([[5, 6], [7, 8, 9, 10]], [[11, 12, 13], [11, 12]])
    with torch.no_grad():  # reference: one unpadded sequence, logits at the completion slots
        plain = trainer.model(input_ids=torch.tensor([[5, 6, 11, 12, 13]])).logits[0, 1:4]
        longer = trainer.model(input_ids=torch.tensor([[7, 8, 9, 10, 11, 12]])).logits[0, 3:5]
    assert torch.allclose(short[0], plain, atol=1e-4)
    assert torch.allclose(both[1, :2], longer, atol=1e-4)
    assert mask.tolist() == [[True, True, True]]
    assert mask2.tolist() == [[True, True, True], [True, True, False]]
    assert torch.allclose(short[0], both[0], atol=1e-5)


def test_packed_and_padded_rows_give_the_same_logits_and_gradients(tiny_model_dir):
    """Packing is a layout, not a new objective: the same loss to float rounding."""
    from agent_cl.consolidation.sequences import completion_logits

    trainer = ConsolidationTrainer(tiny_model_dir, ConsolidationConfig(), torch_threads=1)
    model, tok = trainer.model, trainer.tokenizer
    prompts = [[5, 6], [7, 8, 9, 10, 11, 12, 13], [14]]
    completions = [[11, 12, 13, 14], [15], [16, 17]]
    grads = []
    for packed in (True, False):
        logits, mask = completion_logits(model, tok, prompts, completions, "cpu", packed=packed)
        assert logits.shape == (3, 4, 49152)
        assert mask.tolist() == [[1, 1, 1, 1], [1, 0, 0, 0], [1, 1, 0, 0]]
        (logits.log_softmax(-1).amax(-1) * mask).sum().backward()
        grads.append([p.grad.clone() for p in trainer.trainable])
        model.zero_grad()
        if packed:
            first = logits.detach()
    assert torch.allclose(first[mask], logits.detach()[mask], atol=1e-5)
    assert any(float(g.abs().sum()) > 0 for g in grads[0])
    for a, b in zip(*grads, strict=True):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-4)
    with pytest.raises(ValueError, match="prompt"):
        completion_logits(model, tok, [[]], [[1]], "cpu")


def test_ema_teacher_swaps_in_and_restores():
    param = torch.nn.Parameter(torch.zeros(3))
    ema = EMATeacher([param], rate=0.5)
    with torch.no_grad():
        param.add_(2.0)
    ema.update()
    assert torch.allclose(ema.shadow[0], torch.ones(3))
    with ema.swapped_in():
        assert torch.allclose(param, torch.ones(3))
    assert torch.allclose(param, torch.full((3,), 2.0))


def test_non_finite_loss_aborts(tiny_model_dir):
    trainer = ConsolidationTrainer(tiny_model_dir, ConsolidationConfig(), torch_threads=1)
    with pytest.raises(NonFiniteLossError):
        trainer._backward(torch.tensor(float("nan"), requires_grad=True))


def test_kl_from_base_is_zero_before_training_and_grows_after(tiny_model_dir, tmp_path):
    config = ConsolidationConfig(method="sft", steps=3, batch_size=2, learning_rate=5e-2)
    trainer = ConsolidationTrainer(tiny_model_dir, config, torch_threads=1)
    prompts = ["Say hi.", "Name a color."]
    candidate = trainer.candidate()
    assert candidate.kl_from_base(prompts, max_new_tokens=4) == pytest.approx(0.0, abs=1e-6)
    trainer.train(DEMOS, tmp_path / "a")
    trained = candidate.kl_from_base(prompts, max_new_tokens=4)  # the live weights, no copy
    assert trained > 1e-4
    with pytest.raises(ValueError):
        candidate.kl_from_base([])
    # the saved adapter, reloaded as the sleep job does after a crash, answers the same
    reloaded = CandidateModel.load(tiny_model_dir, tmp_path / "a", torch_threads=1)
    assert reloaded.kl_from_base(prompts, max_new_tokens=4) == pytest.approx(trained, rel=1e-4)
    assert reloaded.generate([[{"role": "user", "content": "Say hi."}]], max_new_tokens=4) == (
        candidate.generate([[{"role": "user", "content": "Say hi."}]], max_new_tokens=4)
    )
    with pytest.raises(TypeError, match="PEFT"):
        CandidateModel(object(), trainer.tokenizer)


def test_forward_and_reverse_kl_differ_and_both_train_the_student():
    from agent_cl.consolidation.losses import forward_kl_per_token, reverse_kl_per_token

    student = torch.randn(1, 2, 5, requires_grad=True)
    teacher = torch.randn(1, 2, 5)
    fwd = forward_kl_per_token(student, teacher)
    rev = reverse_kl_per_token(student, teacher)
    assert not torch.allclose(fwd, rev)
    fwd.sum().backward()
    assert student.grad.abs().sum() > 0


def test_no_demonstrations_is_an_error(tiny_model_dir, tmp_path):
    trainer = ConsolidationTrainer(tiny_model_dir, ConsolidationConfig(steps=1), torch_threads=1)
    with pytest.raises(ValueError, match="nothing to consolidate"):
        trainer.train([], tmp_path / "a")


@pytest.mark.parametrize(
    "bad",
    [
        {"method": "grpo"},
        {"steps": 0},
        {"temperature": 0.0},
        {"ema_rate": 0.0},
        {"teacher": "oracle"},
        {"learning_rate": -1.0},
        {"method": "sft", "sft_weight": 0.0},
        {"anchor_samples": "nobody"},
        {"teacher_written_fraction": 1.5},
        {"sft_target": "name"},
        {"lora_per_night": "reset"},
    ],
)
def test_config_rejects_bad_values(bad):
    with pytest.raises(ValueError):
        ConsolidationConfig(**bad)


def test_teacher_prompt_modes():
    demo = DEMOS[0]
    assert "Context:" in teacher_messages(demo, "context")[-1]["content"]
    turns = teacher_messages(demo, "turns")
    # Student and teacher open with the one system message the app will ask under.
    assert [m["role"] for m in turns] == ["system", "user", "assistant", "user"]
    assert "Context:" not in turns[-1]["content"]
    no_note = demo.model_copy(update={"context": ""})
    assert [m["role"] for m in teacher_messages(no_note, "context")] == [
        "system",
        "user",
        "assistant",
        "user",
    ]
    student = student_messages(demo)
    assert student[1:] == [{"role": "user", "content": demo.query}]
    assert student[0] == turns[0] and student[0]["role"] == "system"


def test_answer_token_flags(embedded_model_dir):
    from agent_cl.models.chat import load_tokenizer

    tok = load_tokenizer(embedded_model_dir)
    ids = tok("The lab is led by Fenna Quenmar.", add_special_tokens=False).input_ids
    flags = _answer_token_flags(tok, ids, "fenna quenmar")
    flagged = tok.decode([t for t, f in zip(ids, flags, strict=True) if f])
    assert flagged.strip() == "Fenna Quenmar"
    assert not any(_answer_token_flags(tok, ids, "somebody else"))


def test_lora_scope_knobs_choose_the_adapted_modules(tiny_model_dir):
    def adapted(**overrides) -> set[str]:
        config = ConsolidationConfig(steps=1, **overrides)
        trainer = ConsolidationTrainer(tiny_model_dir, config, torch_threads=1)
        return {n for n, p in trainer.model.named_parameters() if p.requires_grad}

    mlp = adapted()  # the default: MLP projections only
    assert mlp and all(any(m in n for m in ("gate_proj", "up_proj", "down_proj")) for n in mlp)
    assert any("q_proj" in n for n in adapted(target_modules="all-linear"))
    late = adapted(lora_layers="1")
    assert late and all(".layers.1." in n for n in late)
    with pytest.raises(ValueError, match="lora_layers"):
        ConsolidationConfig(lora_layers="late")
    assert ConsolidationConfig(lora_layers="2-4,7").layers_to_transform == [2, 3, 4, 7]


def test_augmented_demonstrations_are_trained_on_and_survive_a_resume(
    tiny_model_dir, tmp_path, monkeypatch
):
    extra = [Demonstration(query="Who runs lab 0?", answer="Ana 0 runs it.")]
    calls = []

    def fake_augment(self, demonstrations, exclude_questions):
        calls.append(list(exclude_questions))
        return extra

    monkeypatch.setattr(ConsolidationTrainer, "_augment", fake_augment)
    config = ConsolidationConfig(method="sft", steps=4, batch_size=1, augment_per_demo=1)
    first = ConsolidationTrainer(tiny_model_dir, config, torch_threads=1)
    result = first.train(
        DEMOS,
        tmp_path / "a",
        checkpoint_dir=tmp_path / "ck",
        checkpoint_every=2,
        exclude_questions=["held out?"],
    )
    assert result.augmented == 1 and calls == [["held out?"]]
    # a resumed run takes the augmented data from the checkpoint, it does not write it again
    resumed = ConsolidationTrainer(tiny_model_dir, config, torch_threads=1)
    again = resumed.train(DEMOS, tmp_path / "b", checkpoint_dir=tmp_path / "ck", checkpoint_every=2)
    assert again.resumed_from_step == 4 and again.augmented == 1 and len(calls) == 1


class _Planted:
    """What an attacker would put in checkpoint.pt: unpickling it calls `open(marker, "w")`."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_planted_checkpoint_runs_no_code_and_is_set_aside(tmp_path, writer):
    marker = tmp_path / "pwned"
    checkpoints = tmp_path / "ckpt"
    checkpoints.mkdir()
    planted = {"step": 1, "payload": _Planted(marker)}
    with open(checkpoints / "checkpoint.pt", "wb") as fh:
        if writer == "torch.save":
            torch.save(planted, fh)
        else:
            pickle.dump(planted, fh, protocol=2)
    assert Checkpoint(checkpoints).load() is None
    assert not marker.exists()  # the payload never ran
    assert not (checkpoints / "checkpoint.pt").exists()
    assert len(list(checkpoints.glob("checkpoint.pt.corrupt-*"))) == 1  # kept for a post-mortem


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_a_fresh_lora_per_night_trains_only_itself_and_folds_exactly(tiny_model_dir, tmp_path):
    """Earlier nights stay as published; the served adapter is their stack, concatenated
    while it fits the rank ceiling and compressed by SVD past it."""
    import json

    from peft import LoraConfig

    from agent_cl.consolidation.stacking import fold_night_adapter, stack_night_adapter
    from agent_cl.models.chat import load_causal_lm

    first = ConsolidationTrainer(
        tiny_model_dir, ConsolidationConfig(method="sft", steps=2), torch_threads=1
    )
    night1 = first.train(DEMOS, tmp_path / "night1").adapter_dir
    earlier = load_file(night1 / "adapter_model.safetensors")

    fresh = ConsolidationConfig(method="sft", steps=2, lora_per_night="fresh")
    trainer = ConsolidationTrainer(tiny_model_dir, fresh, torch_threads=1, init_adapter=night1)
    names = [n for n, p in trainer.model.named_parameters() if p.requires_grad]
    assert names and all(".night." in n for n in names)
    result = trainer.train(DEMOS, tmp_path / "night2")
    assert result.fold == {"earlier_rank": 8, "night_rank": 8, "rank": 16, "fold": "concatenated"}
    saved = json.loads((tmp_path / "night2" / "adapter_config.json").read_text())
    assert saved["r"] == 16 and saved["lora_alpha"] == 16
    # the earlier night's A and B are the first 8 rows / columns of the stack, untouched
    stacked = load_file(tmp_path / "night2" / "adapter_model.safetensors")
    key = next(k for k in earlier if "lora_B" in k)
    assert torch.allclose(stacked[key][:, :8], earlier[key])

    ceiling = ConsolidationTrainer(
        tiny_model_dir, fresh, torch_threads=1, init_adapter=tmp_path / "night2", max_rank=16
    )
    assert ceiling.train(DEMOS, tmp_path / "night3").fold["fold"] == "svd"
    assert json.loads((tmp_path / "night3" / "adapter_config.json").read_text())["r"] == 16

    # folding is exact below the ceiling and an approximation past it
    ids = torch.tensor([[1, 17, 230, 4000, 9, 12]])
    lora = LoraConfig(r=8, lora_alpha=16, target_modules=["gate_proj", "up_proj", "down_proj"])
    base_logits = _logits(load_causal_lm(tiny_model_dir), ids)
    for max_rank, exact in ((None, True), (4, False)):
        model = stack_night_adapter(load_causal_lm(tiny_model_dir), night1, lora)
        torch.manual_seed(1)
        for name, param in model.named_parameters():
            if ".night." in name:
                param.data.normal_(0, 0.5)
        before = _logits(model, ids)
        with model.disable_adapter():  # the anchor's and the gate's base: no night at all
            assert torch.allclose(_logits(model, ids), base_logits, atol=1e-6)
        info = fold_night_adapter(model, max_rank)
        after = _logits(model, ids)
        assert info["rank"] == (16 if exact else 4)
        assert torch.allclose(before, after, atol=1e-4) is exact
