"""Local fakes of the remote services the stack cannot reach here (the LLM)."""
