"""Fan-out: tag and thumbnail every image in parallel child instances, then start a sync
without waiting for it."""

from __future__ import annotations

from pydantic import BaseModel

from example_app._generated import workflows
from framework import WorkflowContext, workflow


class ImageBatch(BaseModel):
    urls: list[str]
    width: int = 128


@workflow
async def image_batch(ctx: WorkflowContext[ImageBatch]) -> dict[str, object]:
    tag, thumbnail = workflows.get("image-tag"), workflows.get("thumbnail")
    urls, width = ctx.params.urls, ctx.params.width
    tags = await ctx.parallel([tag.branch({"url": url}) for url in urls])  # list[list[str]]
    thumbnails = await ctx.parallel(  # list[str]
        [thumbnail.branch({"url": url, "width": width}) for url in urls]
    )
    sync = await ctx.spawn(workflows.get("data-sync"), ["images", "thumbnails"])
    return {"tags": dict(zip(urls, tags, strict=True)), "thumbnails": thumbnails, "sync": sync.id}
