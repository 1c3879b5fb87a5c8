"""Everything between a folder of videos and its highlights, built on :mod:`hl.extract` and :mod:`hl.heads`.

    cache/        the feature cache format (the one contract between stages) and importers into it
    run.py        the run directory format (what training leaves behind, what inference reads)
    cluster.py    the Dask client and the one way work is submitted to it
    stages/       extract, train (segment and pixel heads), evaluate, predict
    highlights/   new videos -> moments, clips and the HTML report
    cli/          the `hl` command, its options and progress display, the demo
"""
