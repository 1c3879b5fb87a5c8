"""`python -m hl.pipelines.cli ...` runs the `hl` command."""
from .main import main

main()
