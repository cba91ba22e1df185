"""Fan-out: tag and thumbnail every image in parallel child instances, then start a sync
without waiting for it."""

from __future__ import annotations

from pydantic import BaseModel

from framework import WorkflowContext, branch, workflow


class ImageBatch(BaseModel):
    urls: list[str]
    width: int = 128


@workflow
async def image_batch(ctx: WorkflowContext[ImageBatch]) -> dict[str, object]:
    results = await ctx.parallel(
        [branch("image-tag", {"url": url}) for url in ctx.params.urls]
        + [branch("thumbnail", {"url": url, "width": ctx.params.width}) for url in ctx.params.urls]
    )
    count = len(ctx.params.urls)
    sync = await ctx.spawn("data-sync", ["images", "thumbnails"])
    return {
        "tags": dict(zip(ctx.params.urls, results[:count], strict=True)),
        "thumbnails": results[count:],
        "sync": sync.id,
    }
