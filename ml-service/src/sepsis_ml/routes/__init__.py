"""HTTP routes of ml-service, one router per resource."""
