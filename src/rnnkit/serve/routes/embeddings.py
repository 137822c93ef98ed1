"""Word vectors: ``POST /v1/models/{model}/embeddings``, a word's vector and its nearest neighbours.

An :class:`~rnnkit.tasks.embeddings.task.Embeddings` table (GloVe vectors, ``--embeddings SOURCE``) is a
resource the server looks words up in, not a Task: nothing is trained or registered, so it has its own router
and its own request (in the one vocabulary: ``num_results``, which ``top`` was called before)."""

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter

from rnnkit.config import field
from rnnkit.serve.errors import ApiError
from rnnkit.serve.routes import answer, pick, run_model
from rnnkit.serve.schemas import renamed_notes, request_model

ENDPOINT = "embeddings"


@dataclass
class EmbeddingsRequest:
    """A word to look up: its vector and its nearest neighbours by cosine."""

    RENAMED = {"top": "num_results"}       # rnnkit 0.1's name: accepted for one release, with a note

    word: str = field("", "the word to look up", limits={"min_length": 1, "max_length": 200})
    num_results: int = field(10, "how many neighbours", limits={"ge": 1, "le": "max_results"})


def router(served: dict[str, Any], config: Any) -> APIRouter:
    r = APIRouter()
    Body = request_model(EmbeddingsRequest, config)

    @r.post(f"/v1/models/{{model}}/{ENDPOINT}", summary="A word's vector and its nearest neighbours (word vectors)")
    async def embeddings(model: str, body: Body):
        m = pick(served, model, ENDPOINT, "word vectors (--embeddings)")
        emb = m.obj
        if body.word not in emb:
            try:
                emb.require(body.word)
            except ValueError as err:
                raise ApiError(404, str(err), "word", f"a word of {m.key}") from None
        neighbors = await run_model(lambda: emb.neighbors(body.word, body.num_results), ["word"], config.timeout)
        return answer(m, {"word": body.word, "vector": [float(v) for v in emb.get(body.word)],
                          "neighbors": [{"word": w, "similarity": s} for w, s in neighbors]}, renamed_notes(body))

    return r
