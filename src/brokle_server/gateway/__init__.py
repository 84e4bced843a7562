"""The AI gateway: OpenAI- and Anthropic-compatible APIs in front of many LLM providers.

- ``types``          shared types: ProviderConfig, Usage, ChatResult, provider errors
- ``providers/``     one module per upstream wire format, behind one interface (its
                     docstring is the contract the gateway service codes against)
- ``anthropic_api``  inbound Anthropic Messages requests ↔ the internal OpenAI format
- ``routes``/``service``  HTTP endpoints and routing, retries, cache, budgets, tracing
"""
