"""Tear down what cloudbench created: Terraform stacks first, then a tag-based sweep."""
