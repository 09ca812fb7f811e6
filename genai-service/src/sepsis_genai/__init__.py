"""GenAI sepsis assessment service (LLM + deterministic clinical guardrail)."""
