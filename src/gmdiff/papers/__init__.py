"""What is specific to each paper: its variants, its tables' published numbers, and the
experiment functions that the chapters call."""
