"""The course pack's own tooling: one module per step of the course workflow (see the Makefile)."""
