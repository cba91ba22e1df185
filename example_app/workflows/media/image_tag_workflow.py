"""One child of image-batch: tag an image."""

from __future__ import annotations

from pydantic import BaseModel

from example_app.services import image_labels
from framework import WorkflowContext, workflow


class TagParams(BaseModel):
    url: str


@workflow
async def image_tag(ctx: WorkflowContext[TagParams]) -> list[str]:
    return await ctx.step.do("label", image_labels, ctx.params.url)
