"""The master: `cloudbench run`, `cloudbench status` — drives a whole benchmark run."""
