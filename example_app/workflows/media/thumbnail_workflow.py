"""One child of image-batch: make a thumbnail."""

from __future__ import annotations

from pydantic import BaseModel

from example_app.services import thumbnail as make_thumbnail
from framework import WorkflowContext, workflow


class ThumbnailParams(BaseModel):
    url: str
    width: int


@workflow
async def thumbnail(ctx: WorkflowContext[ThumbnailParams]) -> str:
    return await ctx.step.do("resize", make_thumbnail, ctx.params.url, ctx.params.width)
