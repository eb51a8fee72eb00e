"""`demo.image`: a real PNG from a prompt, painted procedurally (SPEC §7)."""

from __future__ import annotations

import asyncio

from pydantic import BaseModel, ConfigDict, Field

from genwire.models import JsonObject
from genwire.pipelines.base import PipelineContext, pipeline
from genwire.pipelines.media.art import Painter, seed_from
from genwire.pipelines.media.captions import Caption
from genwire.pipelines.media.inputs import MAX_SEED, Prompt, seed_or_random
from genwire.pipelines.media.scenes import shorten

CAPTION_CHARS = 160


class ImageInput(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    prompt: Prompt
    width: int = Field(
        768, ge=64, le=2048, title="Width (pixels)", description="Image width, pixels."
    )
    height: int = Field(
        512, ge=64, le=2048, title="Height (pixels)", description="Image height, pixels."
    )
    seed: int | None = Field(
        None,
        ge=0,
        le=MAX_SEED,
        title="Seed",
        description="Same prompt and seed, same picture; none for random.",
    )


@pipeline(
    "demo.image",
    input=ImageInput,
    phases={"plan": (0, 10), "render": (10, 90), "encode": (90, 100)},
)
async def demo_image(ctx: PipelineContext, params: ImageInput) -> JsonObject:
    """A PNG painted from a prompt and a seed, captioned with the prompt."""
    await ctx.phase("plan")
    seed = seed_or_random(params.seed)
    size = (params.width, params.height)
    painter = Painter(size, seed_from(params.prompt, seed))
    await ctx.report(100, f"seed {seed}")

    await ctx.phase("render")
    picture = await asyncio.to_thread(painter.background)
    await ctx.report(40, "sky painted")
    picture = await asyncio.to_thread(painter.scenery, picture)
    await ctx.report(80, "scenery painted")
    caption = await asyncio.to_thread(
        Caption.build, shorten(" ".join(params.prompt.split()), CAPTION_CHARS), size, max_lines=3
    )
    caption.draw_on(picture)
    await ctx.report(100, "caption drawn")

    await ctx.phase("encode")
    path = ctx.workdir / "image.png"
    await asyncio.to_thread(picture.save, path, format="PNG")
    image = await ctx.artifact(path, media_type="image/png")
    return {"width": params.width, "height": params.height, "seed": seed, "image": image.id}
