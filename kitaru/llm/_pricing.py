"""Cost estimates from pydantic's maintained price table (the ``genai-prices`` package).

Prices come from the snapshot installed with the package; nothing is fetched
at run time. Unknown models, local providers and a missing package give
``None`` (unknown), never a guess.
"""

from __future__ import annotations

__all__ = ["estimate_cost"]

_PROVIDER_IDS = {"openai": "openai", "anthropic": "anthropic", "openrouter": "openrouter"}


def estimate_cost(provider: str | None, model: str | None, input_tokens: int | None, output_tokens: int | None) -> float | None:
    """Estimated cost in USD of one call, or ``None`` when it is unknown."""
    provider_id = _PROVIDER_IDS.get(provider or "")
    if provider_id is None or model is None or input_tokens is None or output_tokens is None:
        return None
    try:
        from genai_prices import Usage, calc_price
    except ImportError:
        return None
    try:
        price = calc_price(Usage(input_tokens=input_tokens, output_tokens=output_tokens), model, provider_id=provider_id)
    except (LookupError, ValueError):
        return None
    return float(price.total_price)
