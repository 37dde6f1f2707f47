"""How a run's answer is made, once the run is planned (smolcrew/run.py holds the rest of its lifecycle):

- `dispatch`: router mode: each step of the route plan goes to its specialist; results travel along the plan's
  edges (`depends_on`);
- `manage`: manager mode: the manager's agent loop, delegating as it sees fit;
- `reply`: a message that wants no tool (chit-chat, facts the user stated, questions about the conversation;
  agents/replies.py decides) is answered in one model call from the conversation. The conversation it rests on
  is recorded as the output of a `recall_conversation` call, so the validation cascade checks the reply
  against it like any answer against its tools' outputs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from smolcrew.agents.dispatch import PREVIOUS_RESULT, asks_question, with_context
from smolcrew.agents.replies import acknowledgement, list_acknowledged, missed_fact, only_thanks, said_back
from smolcrew.agents.specialists import tool_roles
from smolcrew.errors import ModelUnavailableError
from smolcrew.result import RunState

if TYPE_CHECKING:
    from smolagents.memory import MemoryStep

    from smolcrew.agents.router import RoutePlan
    from smolcrew.agents.team import Team
    from smolcrew.memory.recorder import RunRecorder
    from smolcrew.memory.records import StepRecord

__all__ = ["CAPABILITIES", "RELEVANT", "REPLY_AGENT", "REPLY_SYSTEM", "dispatch", "manage", "reply"]

REPLY_AGENT = "assistant"
"""The agent name a direct reply's records carry."""
RELEVANT = "What the user said earlier that bears on this message:"
"""Closes a reply's conversation (smolcrew/conversation.py): those lines go next to the message."""
REPLY_MAX_TOKENS = 160
CAPABILITIES = (
    "Besides talking, you can transcribe audio, translate text, read text aloud, describe images and read the "
    "text in them, generate images, read PDFs and tables, summarize texts, and calculate."
)
"""Also part of a reply's evidence: a reply that lists what the assistant can do rests on it."""
_WHAT_YOU_DO = re.compile(
    r"^\W*(?:(?:so|and|ok(?:ay)?|hi|hey|hello)\W+)?(?:what (?:else )?(?:can|could) you (?:do|help(?: me| us)? with)|"
    r"what (?:kinds?|sorts?|types?) of (?:things|stuff|tasks|work) (?:can|could) you (?:do|help(?: me| us)? with)|"
    r"what are you (?:able to do|good at|capable of)|how can you help(?: me| us)?)\W*$",
    re.IGNORECASE,
)
"""A question about what the assistant can do: answered from `CAPABILITIES` (the 0.5B, asked, tells the user
what *they* can do: "You can ask questions, provide information...")."""
_NO_ANSWER = re.compile(
    r"\b(?:don'?t|do not|doesn'?t|can'?t|cannot) know\b|^\W*you know\W*$|\bsmolcrew\b|\bassistant\b|^\W*you\W*$", re.I
)
"""A reply to a question on stated facts that answers nothing: the 0.5B, given the fact, says "You don't know." or
answers as itself ("You're smolcrew, a friendly assistant."); the fact that bears on the question is said back."""
_WELCOME = "You're welcome! Anything else I can do for you?"
_LISTENING = "I'm here whenever you need me."
"""What a message that asks nothing gets when the 0.5B's reply answers nothing (see `_NO_ANSWER`)."""
_FRIENDLY = "You are smolcrew, a friendly assistant. Reply to the user's last message in one to three short sentences."
REPLY_SYSTEM = (
    f"{_FRIENDLY} When they ask about something said earlier, answer from the conversation below with the user's "
    "own words (their names, numbers, places, job), speaking to them as 'you', and never guess: if it is not "
    f"there, say you don't know. {CAPABILITIES} When asked what you can do, say so."
)
_MADE_UP = re.compile(
    r"\b(?:jokes?|poems?|story|stories|riddles?|puns?|limericks?|haikus?|fun facts?|one more|another one)\b", re.I
)
"""A message asking for something made up ("you know some joke?", "one more, but about cats"): the reply is
written without the rule to say "you don't know", which the 0.5B, given it, applies to the joke."""


@dataclass(frozen=True)
class _Recall:
    """What the recorder needs of a tool: its name."""

    name: str = "recall_conversation"


def _finished_delegations(records: Sequence[StepRecord]) -> list[Any]:
    """The answers of the router's delegations that finished, in order, up to the first that did not."""
    finals = {r.payload.get("parent"): r.payload.get("output") for r in records if r.kind == "final_answer"}
    answers = []
    for record in records:
        if record.kind == "delegation" and record.agent == "router":
            delegation = f"{record.run_id}:{record.seq}"
            if delegation not in finals:
                break
            answers.append(finals[delegation])
    return answers


def _unrepeated(text: str, lines: int = 3) -> str:
    """A reply without the loop a small model falls into ("The budget is 4,000.\nThe budget is 5,000.\n..."):
    each line once, at most `lines` of them."""
    kept = list(dict.fromkeys(_LOOP.sub(r"\1", line).strip() for line in text.splitlines() if line.strip()))
    return "\n".join(kept[:lines])


_LOOP = re.compile(r"\b(\w.{0,40}?)(?:[\s,;.!]+\1\b){2,}", re.IGNORECASE)
"""A phrase said three times or more in a row, within a line ("You, you, you, ..."): said once."""


def reply(team: Team, message: str, conversation: str | None, recorder: RunRecorder) -> tuple[Any, RunState]:
    """Answer `message` in one call of the manager's model, from `conversation` (what earlier turns said)."""
    from smolagents.models import ChatMessage, MessageRole

    with recorder.agent(REPLY_AGENT):
        earlier = conversation or "(no earlier turns)"
        recalled = recorder.call_tool(
            _Recall(), {}, lambda: f"{earlier}\n\nThe user's message: {message}\n\n{CAPABILITIES}"
        )
        before, _, relevant = earlier.partition(f"\n\n{RELEVANT}\n")
        # The message goes as the user's (answered, not echoed), with what bears on it right before it.
        asked = f"{RELEVANT}\n{relevant}\n\n{message}" if relevant else message
        made_up = bool(_MADE_UP.search(message))
        system = _FRIENDLY if made_up else REPLY_SYSTEM
        messages = [
            ChatMessage(role=MessageRole.SYSTEM, content=[{"type": "text", "text": f"{system}\n\n{before}"}]),
            ChatMessage(role=MessageRole.USER, content=[{"type": "text", "text": asked}]),
        ]
        facts = [line[2:] for line in relevant.splitlines() if line.startswith("- ")]
        known = acknowledgement(message) or list_acknowledged(message, facts)
        if known is None and _WHAT_YOU_DO.match(message):
            known = CAPABILITIES.replace("you can", "I can", 1)
        if known is not None:
            answer, usage = known, None
        else:
            output = team.manager.model.generate(messages, max_tokens=REPLY_MAX_TOKENS)
            answer = _unrepeated(output.content if isinstance(output.content, str) else str(output.content or ""))
            usage = output.token_usage
            answer = answer if made_up else _grounded(message, answer, facts)
        recorder.step(
            "action",  # the audit trail shows the recall, as it shows every tool call
            {
                "calls": ["recall_conversation"],
                "observations": recalled,
                "model_output": answer,
                "input_tokens": usage.input_tokens if usage else 0,
                "output_tokens": usage.output_tokens if usage else 0,
            },
        )
        recorder.step("final_answer", {"output": answer})
    return (answer, "success") if answer else (None, "error")


def _grounded(message: str, answer: str, facts: list[str]) -> str:
    """The reply, or what stands in for a reply that answers nothing or answers from another fact."""
    if facts and asks_question(message) and (_NO_ANSWER.search(answer) or answer == _LISTENING):
        return said_back(message, facts) or said_back(message, facts, closest=False) or answer
    if facts and asks_question(message):  # answered, but from another fact ("Contract value?" -> "Priya Nair.")
        return missed_fact(message, answer, facts) or answer
    if not asks_question(message) and _NO_ANSWER.search(answer):  # "thx for listening" -> "You don't know."
        return _WELCOME if only_thanks(message) else _LISTENING
    return answer


def dispatch(
    team: Team,
    plan: RoutePlan,
    recorder: RunRecorder,
    images: list[Any],
    context: str | None,
    resumed: Sequence[StepRecord] = (),
) -> tuple[Any, RunState]:
    done = _finished_delegations(resumed)
    answers: list[Any] = []
    with recorder.agent("router"):
        for number, step in enumerate(plan.steps):
            if number < len(done):  # finished before the run stopped: keep its answer
                answers.append(done[number])
                continue
            agent = team.specialists[step.specialist]
            if (lacking := agent.lacking(step.task)) is not None:
                raise ModelUnavailableError(
                    f"the {step.specialist} specialist cannot do this here: {lacking.name} would, but its model "
                    f"({', '.join(tool_roles(lacking)) or 'none'}) cannot load",
                    backend=lacking.name,
                    fix="point that role at local weights in the config's [models] (`smolcrew models` lists the "
                    "roles, `smolcrew doctor` what loads)",
                )
            task = with_context(context, step.task)
            for source in step.depends_on:  # results travel along the plan's edges
                task += f"\n\n{PREVIOUS_RESULT} ({plan.steps[source].specialist}): {answers[source]}"
            with recorder.delegation(step.specialist, task):
                result = agent.run(task, images=images or None, return_full_result=True)
            if result.state == "max_steps_error":
                return None, "max_steps_error"
            answers.append(result.output)
    return _final_answer(plan, answers), "success"


def _final_answer(plan: RoutePlan, answers: list[Any]) -> Any:
    """The last step's answer, or every result no later step used, in order ("caption a.jpg, transcribe b.wav")."""
    used = {source for step in plan.steps for source in step.depends_on}
    ends = [answer for number, answer in enumerate(answers) if number not in used]
    if len(ends) > 1 and all(isinstance(answer, str) for answer in ends):
        return "\n\n".join(ends)
    return answers[-1] if answers else None


def manage(
    team: Team,
    prompt: str,
    recorder: RunRecorder,
    images: list[Any],
    max_steps: int | None,
    memory: list[MemoryStep] | None,
    resuming: bool,
) -> tuple[Any, RunState]:
    manager = team.manager
    with recorder.agent("manager"):
        if memory is None:
            result = manager.run(prompt, images=images or None, max_steps=max_steps, return_full_result=True)
        else:
            manager.memory.reset()
            manager.memory.steps = list(memory)
            task = "Continue the task above from where it stopped." if resuming else prompt
            result = manager.run(task, images=images or None, max_steps=max_steps, reset=False, return_full_result=True)
    return result.output, result.state
