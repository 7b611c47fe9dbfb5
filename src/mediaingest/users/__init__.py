"""Tenants: users with a plan, their API tokens, and authentication of API requests."""
