"""FastAPI dependencies: the hub wired by the composition root."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ordersync.runtime.hub import Hub


async def get_hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


HubDep = Annotated[Hub, Depends(get_hub)]
