"""agent-cl inside someone else's agent: retrieval before each model call, logging after the run.

`DemonstrationMiddleware` plugs into `langchain.agents.create_agent(..., middleware=[...])`;
`retrieve_node` / `log_node` do the same for any `StateGraph` with a `messages` key. Both use
one `EpisodeLogger`, so an episode is judged the same way wherever it ran:

- success comes from a verifier (a callable on the run's messages: True, False, or None for
  "cannot tell"), or, when it cannot tell, from feedback later:
  `record_outcome(run_id, success, correction=None)`. Undecided episodes wait in the store as
  `awaiting` (nights never claim them); a correction becomes the demonstration instead.
- an episode keeps the whole trajectory (LangChain message dicts, tool calls and tool results
  included), so nothing of the run is lost for consolidation or audit.

Retrieved demonstrations enter as the turns they were (`graphs.fewshot`: the whole run for a
tool episode, tool call and result included; measured on the embedded model: turns work as
few-shot evidence, inlined examples get copied, and a tool episode shown as prose teaches prose),
only those scoring at least `min_score` (0.8: the demo's measured threshold; below it neighbours
were other facts' and misled the model), within `token_budget` prompt tokens.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from typing import Any, NotRequired

from langchain.agents.middleware import AgentMiddleware, AgentState
from langchain_core.messages import AIMessage, BaseMessage, messages_to_dict
from langchain_core.utils.function_calling import convert_to_openai_tool
from langgraph.config import get_config

from agent_cl.config import validate_tenant
from agent_cl.graphs.fewshot import demonstration_messages, turns_text
from agent_cl.memory.base import DemonstrationStore
from agent_cl.memory.schema import SYSTEM_KEY, TOOLS_KEY, Demonstration, DemoStatus
from agent_cl.scoring.verifier_paths import verifier_path

# A verifier judges a finished run from its messages: True logs it, False drops it, None
# leaves the verdict to feedback.
Verifier = Callable[[Sequence[BaseMessage]], bool | None]
DEFAULT_MIN_SCORE = 0.8
DEFAULT_TOKEN_BUDGET = 512
# Few-shot turns carry this mark, so a run's own task and trajectory never include them.
_DEMO_MARK = {"agent_cl": "demonstration"}


def own_messages(messages: Sequence[BaseMessage]) -> list[BaseMessage]:
    """The run's messages without the demonstration turns we inserted."""
    return [m for m in messages if m.response_metadata.get("agent_cl") != "demonstration"]


def approx_tokens(text: str) -> int:
    """A tokenizer-free estimate (about 4 characters per token for English BPE vocabularies);
    the budget is a guard against prompt blow-up, not an exact count."""
    return len(text) // 4 + 1


def message_text(message: BaseMessage) -> str:
    return message.content if isinstance(message.content, str) else message.text


def tool_results_verifier(messages: Sequence[BaseMessage]) -> bool | None:
    """Success when the run called tools and none of them failed; otherwise it cannot tell."""
    results = [m for m in messages if m.type == "tool"]
    if not results:
        return None
    return all(getattr(m, "status", "success") != "error" for m in results)


class EpisodeLogger:
    """Retrieval and episode logging for one tenant's store; shared by the middleware and the
    StateGraph nodes."""

    def __init__(
        self,
        store: DemonstrationStore,
        *,
        tenant: str = "default",
        skill: str = "general",
        verifier: Verifier | None = None,
        k: int = 2,
        min_score: float = DEFAULT_MIN_SCORE,
        token_budget: int = DEFAULT_TOKEN_BUDGET,
    ) -> None:
        if k < 0:
            raise ValueError(f"k must be >= 0, got {k}")
        if token_budget < 0:
            raise ValueError(f"token_budget must be >= 0, got {token_budget}")
        if not -1.0 <= min_score <= 1.0:
            raise ValueError(f"min_score is a cosine similarity in [-1, 1], got {min_score}")
        if verifier is not None and not callable(verifier):
            raise TypeError("verifier must be a callable on the run's messages")
        self.store = store
        self.tenant = validate_tenant(tenant)
        self.skill = skill
        self.verifier = verifier
        self.k, self.min_score, self.token_budget = k, min_score, token_budget

    # -- before the model -------------------------------------------------------------------
    def retrieve(self, query: str) -> list[Demonstration]:
        """The closest demonstrations of this tenant above `min_score`, best first, as many as
        fit in the token budget."""
        if not query.strip() or self.k == 0 or not self.store.supports_vector_search:
            return []
        hits = self.store.search(query, k=self.k, tenant=self.tenant)
        chosen, used = [], 0
        for hit in hits:
            if hit.score < self.min_score:
                continue
            cost = approx_tokens(turns_text(demonstration_messages(hit.demonstration)))
            if used + cost > self.token_budget:
                break
            chosen.append(hit.demonstration)
            used += cost
        return chosen

    def few_shot(self, messages: Sequence[BaseMessage]) -> list[BaseMessage]:
        """Demonstration turns for the run's task (its first human message)."""
        task = next((m for m in own_messages(messages) if m.type == "human"), None)
        if task is None:
            return []
        return [
            turn
            for demo in self.retrieve(message_text(task))
            for turn in demonstration_messages(demo, mark=_DEMO_MARK)
        ]

    # -- after the run ----------------------------------------------------------------------
    def log(
        self,
        messages: Sequence[BaseMessage],
        run_id: str | None = None,
        *,
        tools: Sequence[dict[str, Any]] = (),
        system: str | None = None,
    ) -> Demonstration | None:
        """Judge the finished run; log it as pending (success), awaiting (undecided) or not at
        all (failure). Returns what was stored. `tools` (OpenAI specs) and `system` are what
        the model was asked under: the night renders the same prompt (models.conversation)."""
        messages = own_messages(messages)
        question = next((m for m in messages if m.type == "human"), None)
        answer = next((m for m in reversed(messages) if m.type == "ai" and message_text(m)), None)
        if question is None or answer is None or not message_text(answer).strip():
            return None  # nothing to learn from a run without a task or an answer
        verdict = self.verifier(messages) if self.verifier is not None else None
        if verdict is False:
            return None
        status = DemoStatus.PENDING if verdict else DemoStatus.AWAITING
        demo = Demonstration(
            query=message_text(question),
            answer=message_text(answer),
            tenant=self.tenant,
            skill=self.skill,
            status=status,
            metadata=self._metadata(run_id, tools, system),
            messages=messages_to_dict(list(messages)),
        )
        self.store.add([demo])
        return demo

    def _metadata(
        self, run_id: str | None, tools: Sequence[dict[str, Any]] = (), system: str | None = None
    ) -> dict[str, str]:
        """The run id (for feedback); the prompt it ran under; and, when the verifier can be
        imported by name, its path: the night gates this skill with the same verifier."""
        meta = {"run_id": run_id or uuid.uuid4().hex}
        if tools:
            meta[TOOLS_KEY] = json.dumps(list(tools))
        if system:
            meta[SYSTEM_KEY] = system
        path = verifier_path(self.verifier) if self.verifier is not None else None
        if path:
            meta["verifier"] = path
        return meta

    def record_outcome(self, run_id: str, success: bool, correction: str | None = None) -> str:
        """Feedback for an episode logged as awaiting: success makes it pending (a night learns
        it); a correction is logged as the demonstration instead; a plain failure rejects it.
        Returns the id of the demonstration a night will learn, or "" if none."""
        waiting = [
            d
            for d in self.store.list(tenant=self.tenant, status=DemoStatus.AWAITING)
            if d.metadata.get("run_id") == run_id
        ]
        if not waiting:
            raise KeyError(f"no episode awaiting feedback with run_id {run_id!r}")
        [episode] = waiting
        if success and correction is None:
            self.store.set_status([episode.id], DemoStatus.PENDING, tenant=self.tenant)
            return episode.id
        reason = "corrected by feedback" if correction else "failed by feedback"
        self.store.set_status([episode.id], DemoStatus.REJECTED, reason=reason, tenant=self.tenant)
        if not correction:
            return ""
        fixed = episode.model_copy(
            update={
                "answer": correction,
                "status": DemoStatus.PENDING,
                "metadata": {**episode.metadata, "corrected": True},
                "messages": _corrected_run(episode.messages, correction),
            }
        )
        [fixed_id] = self.store.add([fixed])
        return fixed_id


def _corrected_run(messages: list[dict], correction: str) -> list[dict]:
    """The run with its final answer replaced by the correction: a night trains on every
    assistant turn of a trajectory (consolidation.trajectories.expand), so a corrected episode
    that kept its wrong answer would teach the very answer feedback rejected."""
    if not messages:
        return messages
    if messages[-1].get("type") == "ai":
        messages = messages[:-1]
    return [*messages, *messages_to_dict([AIMessage(correction)])]


def _run_id() -> str:
    """The LangChain run id the caller passed (`config={"run_id": ...}`), else a fresh one."""
    try:
        run_id = get_config().get("run_id")
    except RuntimeError:  # outside a runnable context
        run_id = None
    return str(run_id) if run_id else uuid.uuid4().hex


class EpisodeState(AgentState):
    agent_cl_run_id: NotRequired[str]
    agent_cl_demonstration_id: NotRequired[str | None]


class DemonstrationMiddleware(AgentMiddleware):
    """`create_agent(model, tools, middleware=[DemonstrationMiddleware(store, verifier=...)])`:
    few-shot demonstrations before every model call, the run logged after it."""

    state_schema = EpisodeState

    def __init__(self, store: DemonstrationStore, **options: Any) -> None:
        super().__init__()
        self.episodes = EpisodeLogger(store, **options)
        # run id -> (system prompt, tool specs) of its model calls, until the run is logged
        self._prompts: dict[str, tuple[str | None, list[dict[str, Any]]]] = {}

    def before_agent(self, state, runtime) -> dict[str, Any] | None:
        return {"agent_cl_run_id": _run_id()}

    def wrap_model_call(self, request, handler):
        self._remember_prompt(request)
        turns = self.episodes.few_shot(request.messages)
        return handler(request.override(messages=[*turns, *request.messages]) if turns else request)

    async def awrap_model_call(self, request, handler):
        self._remember_prompt(request)
        turns = self.episodes.few_shot(request.messages)
        return await handler(
            request.override(messages=[*turns, *request.messages]) if turns else request
        )

    def _remember_prompt(self, request) -> None:
        """The system prompt and tools the model is called with: the run's messages do not
        hold them, and the night must train under the prompt the app serves with."""
        run_id = request.state.get("agent_cl_run_id")
        if run_id:
            tools = [convert_to_openai_tool(t) for t in request.tools or []]
            self._prompts[run_id] = (request.system_prompt, tools)

    def after_agent(self, state, runtime) -> dict[str, Any] | None:
        run_id = state.get("agent_cl_run_id")
        system, tools = self._prompts.pop(run_id, (None, []))
        demo = self.episodes.log(state["messages"], run_id, tools=tools, system=system)
        return {"agent_cl_demonstration_id": demo.id if demo else None}

    def record_outcome(self, run_id: str, success: bool, correction: str | None = None) -> str:
        return self.episodes.record_outcome(run_id, success, correction)


def retrieve_node(episodes: EpisodeLogger, *, key: str = "messages"):
    """A StateGraph node that puts demonstration turns before the task in `state[key]`. Add it
    before your model node; the turns are ordinary messages, so any chat model sees them."""

    def retrieve(state: dict) -> dict:
        if len(own_messages(state[key])) != len(state[key]):
            return {}  # this run already has its turns (a loop back through the node)
        turns = episodes.few_shot(state[key])
        if not turns:
            return {}
        return {key: _insert_before_task(state[key], turns)}

    return retrieve


def log_node(episodes: EpisodeLogger, *, key: str = "messages", id_key: str | None = None):
    """A StateGraph node that judges and logs the finished run (add it before END); with
    `id_key`, the stored demonstration's id (or None) is written to that state key."""

    def log(state: dict) -> dict:
        demo = episodes.log(state[key], _run_id())
        return {id_key: demo.id if demo else None} if id_key else {}

    return log


def _insert_before_task(messages: Sequence[BaseMessage], turns: list[BaseMessage]):
    """With `add_messages`, returning the whole list with new messages would append them; we
    rebuild the list with fresh ids so the turns land before the task."""
    from langchain_core.messages import RemoveMessage
    from langgraph.graph.message import REMOVE_ALL_MESSAGES

    index = next(i for i, m in enumerate(messages) if m.type == "human")
    return [
        RemoveMessage(id=REMOVE_ALL_MESSAGES),
        *messages[:index],
        *turns,
        *messages[index:],
    ]


__all__ = [
    "DemonstrationMiddleware",
    "EpisodeLogger",
    "Verifier",
    "log_node",
    "retrieve_node",
    "tool_results_verifier",
]
