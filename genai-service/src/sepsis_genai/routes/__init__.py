"""HTTP routes of the GenAI service, one router per resource."""
