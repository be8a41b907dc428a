"""Thin helpers over the official ``kubernetes`` client: connect, read and write GPURepairs and nodes."""
