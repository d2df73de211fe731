"""`python -m translate ...` (used by torchrun: `torchrun --nproc_per_node=N -m translate train ...`)."""

from translate.cli import app

app(prog_name="translate")
