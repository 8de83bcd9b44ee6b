from cloudbench.cli import app

app()
