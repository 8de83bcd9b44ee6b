"""The AWS twin (scripts/cloud-twin): test tooling, not product code."""
