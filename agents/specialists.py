"""The five specialists: who they are (name, description for routing) and which tools they carry.

A description is read twice: by the manager LLM deciding whom to call, and by the semantic router (embedded
next to the example requests in `data/routing_examples.jsonl`). Write them as lists of what the agent does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smolagents import Tool

from smolcrew.pool import PipelinePool
from smolcrew.tools.arithmetic import Calculate, ConvertUnits, CountWords
from smolcrew.tools.audio import ClassifyAudio, EnhanceSpeech, SeparateSources, SynthesizeSpeech, TranscribeSpeech
from smolcrew.tools.base import CheckedTool
from smolcrew.tools.context import ToolContext
from smolcrew.tools.documents import AnswerFromPdf, AnswerFromScannedPage, ReadTextInImage
from smolcrew.tools.files import Workspace
from smolcrew.tools.generation import EditImage, GenerateImage, RestyleImage
from smolcrew.tools.generation_media import GenerateImageFromEdges, GenerateVideo, UpscaleImage
from smolcrew.tools.language import (
    AnswerFromText,
    CheckEntailment,
    CheckGrammar,
    ClassifyTextZeroShot,
    DetectLanguage,
    ExtractEntities,
    TagPartsOfSpeech,
)
from smolcrew.tools.language_seq2seq import GenerateText, ReplyInConversation, SummarizeText, TranslateText
from smolcrew.tools.rag import AnswerWithCitations, SearchDocuments
from smolcrew.tools.recall import RecallMemory, TraceRun
from smolcrew.tools.table_questions import AnswerTableQuestion
from smolcrew.tools.tables import DescribeTable, QueryTable, ReadTableInImage
from smolcrew.tools.text import ClassifySentiment, CompareSentences, RankPassages
from smolcrew.tools.video import ClassifyVideoZeroShot
from smolcrew.tools.vision import (
    AnswerImageQuestion,
    CaptionImage,
    ClassifyImage,
    ClassifyImageZeroShot,
    DescribeImageSentiment,
    DetectObjects,
    EstimateDepth,
    SegmentImage,
)

if TYPE_CHECKING:
    from smolcrew.memory.mirror import Mirror

__all__ = ["SPECIALISTS", "Specialist", "load_examples", "tool_roles"]


@dataclass(frozen=True, slots=True)
class Specialist:
    name: str
    description: str
    tool_factories: tuple[type[Tool], ...] = ()

    def build_tools(
        self,
        pool: PipelinePool,
        workspace: Workspace,
        memory: Mirror | None = None,
        *,
        usable_only: bool = True,
        roots: tuple[Path, ...] | None = None,
        chat_model: Any = None,
    ) -> list[Tool]:
        """One instance of each tool, bound to the run's pool, workspace, memory and the folders it may read files
        from (`roots`; None: any) and the crew's `chat_model` (for `CheckedTool.chat_fallback`): every call of the
        tool runs in that context (see tools.context), whichever thread smolagents runs the agent's code in. Only
        the tools whose model can load here (`usable_tools`), unless `usable_only` is False."""
        context = ToolContext(pool=pool, workspace=workspace, memory=memory, roots=roots, chat_model=chat_model)
        usable = self.usable_tools(pool, chat_model=chat_model) if usable_only else self.tool_factories
        tools = [factory() for factory in usable]
        for tool in tools:
            if isinstance(tool, CheckedTool):
                tool.context = context
        return tools

    def usable_tools(self, pool: PipelinePool, *, chat_model: Any = None) -> list[type[Tool]]:
        """The tools whose model can load here (see `PipelinePool.can_load`): a small model offered a tool that
        can only fail calls it again and again, so tools without their model are not offered at all. A tool with
        `optional_roles` needs one of them (transcribe_speech: the multilingual or the English-only Whisper); a
        tool with `chat_fallback` is offered whenever there is a `chat_model`."""
        return [
            factory
            for factory in self.tool_factories
            if (chat_model is not None and getattr(factory, "chat_fallback", False)) or _models_here(factory, pool)
        ]

    def tool_names(self) -> list[str]:
        return [factory.name for factory in self.tool_factories]


SPECIALISTS: dict[str, Specialist] = {
    spec.name: spec
    for spec in (
        Specialist(
            "vision",
            "Looks at existing images and videos: classifies a photo, detects and counts objects, segments or "
            "removes a background, captions or describes a picture, answers questions about an image, estimates "
            "depth, reads text in a photo or a scanned page (OCR), classifies what happens in a video clip.",
            (
                ClassifyImage,
                DetectObjects,
                SegmentImage,
                CaptionImage,
                ClassifyImageZeroShot,
                AnswerImageQuestion,
                EstimateDepth,
                DescribeImageSentiment,
                ReadTextInImage,
                AnswerFromScannedPage,
                ClassifyVideoZeroShot,
                Calculate,
            ),
        ),
        Specialist(
            "audio",
            "Works on sound: transcribes speech in a recording to text with timestamps, reads text aloud "
            "(text to speech, voice-over), classifies sounds (instrument, siren, bird song), removes noise "
            "from a recording, separates vocals from music.",
            (TranscribeSpeech, SynthesizeSpeech, ClassifyAudio, EnhanceSpeech, SeparateSources),
        ),
        Specialist(
            "generation",
            "Creates new images and videos: text to image (pictures, logos, illustrations, wallpapers), edits an "
            "image by instruction, renders from a sketch or edge map (ControlNet), restyles or upscales an "
            "image, text to video.",
            (GenerateImage, EditImage, RestyleImage, GenerateImageFromEdges, UpscaleImage, GenerateVideo),
        ),
        Specialist(
            "language",
            "Works on text given in the request: sentiment, grammar, entailment, topic classification, "
            "summaries, translation and language detection, answers from a given passage, named entities, "
            "writing (emails, poems, slogans), paraphrase, text similarity, arithmetic, math and unit conversions, "
            "conversation, explaining concepts.",
            (
                DetectLanguage,  # first: the prompt's example call uses the first tool, and the 0.5B copies it
                SummarizeText,
                TranslateText,
                AnswerFromText,
                ClassifySentiment,
                CheckGrammar,
                CheckEntailment,
                ClassifyTextZeroShot,
                ExtractEntities,
                TagPartsOfSpeech,
                CompareSentences,
                GenerateText,
                ReplyInConversation,
                Calculate,
                ConvertUnits,
                CountWords,
            ),
        ),
        Specialist(
            "research",
            "Finds information in documents and memory: answers questions over PDFs and ingested documents "
            "with page citations, searches notes, the knowledge base and past runs, compares sources, "
            "analyzes CSV files, spreadsheets and tables.",
            (
                SearchDocuments,
                AnswerWithCitations,
                RecallMemory,
                TraceRun,
                AnswerFromPdf,
                AnswerTableQuestion,
                DescribeTable,
                QueryTable,
                ReadTableInImage,
                RankPassages,
                Calculate,
            ),
        ),
    )
}


def _models_here(factory: type[Tool], pool: PipelinePool) -> bool:
    either = getattr(factory, "optional_roles", ())
    return all(pool.can_load(role) for role in tool_roles(factory)) and (
        not either or any(pool.can_load(role) for role in either)
    )


def tool_roles(tool: type[Tool] | Tool) -> list[str]:
    """The model roles a tool needs (its `role`, `audio_role`); none for tools without a model. Roles in the
    tool's `optional_roles` are not needed each: the tool works with any one of them (see `usable_tools`)."""
    optional = getattr(tool, "optional_roles", ())
    return [
        role
        for attr in ("role", "audio_role")
        if isinstance(role := getattr(tool, attr, None), str) and role not in optional
    ]


def load_examples() -> list[tuple[str, str]]:
    """The router's example bank as (specialist, request) pairs."""
    text = (Path(__file__).parent / "data" / "routing_examples.jsonl").read_text(encoding="utf-8")
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    return [(row["specialist"], row["text"]) for row in rows]
