"""Homework for the book: otter-grader master notebooks, a builder and a local grader."""
