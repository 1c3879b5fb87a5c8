"""The stages, each a library call the CLI wraps: extract (:mod:`.extract`), train (:mod:`.train_segment`,
:mod:`.train_pixel`), evaluate (:mod:`.evaluate`) and predict (:mod:`.predict`, :mod:`.predict_pixel`)."""
