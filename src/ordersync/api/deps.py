"""FastAPI dependencies: the hub wired by the composition root."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request


async def get_hub(request: Request) -> Any:
    return request.app.state.hub


HubDep = Annotated[Any, Depends(get_hub)]
